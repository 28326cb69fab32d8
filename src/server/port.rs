//! Port selection and the `.hive/port` file that clients use to find the broker.
//!
//! Order: an explicit port (`--port` or `HIVE_WS_PORT`), else a free port in
//! 49152-65535 starting at a random one and trying the next ones, else whatever port the
//! OS assigns. The port file is written atomically (temp file + rename) so that a
//! reader never sees half a number; only the broker holding the directory's lock
//! writes it (see [`super::state_dir`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

/// The dynamic port range of RFC 6335.
pub const RANGE: std::ops::RangeInclusive<u16> = 49152..=65535;

/// How many ports of the range to try before asking the OS.
pub const ATTEMPTS: u16 = 64;

/// How the listener's port was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// The port asked for.
    Requested,
    /// A port in the dynamic range (the requested one, if any, was taken).
    Dynamic,
    /// The range gave nothing; the OS chose.
    OsAssigned,
}

/// What port to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// This port or fail (`--port`).
    Exactly(u16),
    /// This port if free, else fall back to the dynamic range (`HIVE_WS_PORT`).
    Preferably(u16),
    /// Any free port of the dynamic range, starting at a random one.
    Any,
}

/// Binds `host` as `want` says.
///
/// # Errors
/// The bind error of [`Want::Exactly`] (taken, not permitted); otherwise only when even
/// an OS-assigned port cannot be had.
pub async fn bind(host: IpAddr, want: Want) -> io::Result<(TcpListener, Chosen)> {
    match want {
        Want::Exactly(p) => {
            let l = TcpListener::bind(SocketAddr::new(host, p)).await?;
            Ok((l, Chosen::Requested))
        }
        Want::Preferably(p) => match TcpListener::bind(SocketAddr::new(host, p)).await {
            Ok(l) => Ok((l, Chosen::Requested)),
            Err(e) => {
                tracing::warn!(port = p, error = %e, "requested port unavailable; using the dynamic range");
                bind_from(host, fastrand::u16(RANGE)).await
            }
        },
        Want::Any => bind_from(host, fastrand::u16(RANGE)).await,
    }
}

/// Tries `start`, then the next ports of the range (wrapping), [`ATTEMPTS`] in all,
/// then an OS-assigned port.
///
/// # Errors
/// Only when even an OS-assigned port cannot be had.
pub async fn bind_from(host: IpAddr, start: u16) -> io::Result<(TcpListener, Chosen)> {
    let span = RANGE.end() - RANGE.start() + 1;
    let first = start.clamp(*RANGE.start(), *RANGE.end()) - RANGE.start();
    for i in 0..ATTEMPTS {
        let p = RANGE.start() + (first + i) % span;
        if let Ok(l) = TcpListener::bind(SocketAddr::new(host, p)).await {
            return Ok((l, Chosen::Dynamic));
        }
    }
    let l = TcpListener::bind(SocketAddr::new(host, 0)).await?;
    Ok((l, Chosen::OsAssigned))
}

/// The port file of a working directory: `<dir>/.hive/port`.
pub fn port_file(dir: &Path) -> PathBuf {
    dir.join(".hive").join("port")
}

/// Writes `port` to `path` atomically, creating the directory.
///
/// # Errors
/// I/O errors from creating, writing or renaming.
pub fn write_port_file(path: &Path, port: u16) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{port}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Reads a port file: the port is its first line (later lines, if a future version
/// adds any, are ignored).
///
/// # Errors
/// I/O errors, or `InvalidData` when it does not hold a port number.
pub fn read_port_file(path: &Path) -> io::Result<u16> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
}

/// Where a client should connect: the port file of a live broker under `dir`, else
/// `HIVE_WS_PORT` (see [`super::state_dir::locate`], which also returns the warnings
/// that this function logs with `tracing`).
///
/// # Errors
/// When neither gives a port, or the port file names a broker that is gone.
pub fn discover(dir: &Path) -> io::Result<u16> {
    let found = super::state_dir::locate(dir)?;
    for w in &found.warnings {
        tracing::warn!("{w}");
    }
    Ok(found.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dynamic_bind_lands_in_the_range_and_exact_taken_port_fails() {
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        let (l, how) = bind(host, Want::Any).await.unwrap();
        let p = l.local_addr().unwrap().port();
        assert_eq!(how, Chosen::Dynamic);
        assert!(RANGE.contains(&p));
        assert!(bind(host, Want::Exactly(p)).await.is_err());
        let (l2, how) = bind(host, Want::Preferably(p)).await.unwrap();
        assert_eq!(how, Chosen::Dynamic);
        assert_ne!(l2.local_addr().unwrap().port(), p);
    }

    #[tokio::test]
    async fn a_taken_port_falls_back_to_the_next_free_one() {
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        let (taken, _) = bind(host, Want::Any).await.unwrap();
        let p = taken.local_addr().unwrap().port();
        let (l, how) = bind_from(host, p).await.unwrap();
        let got = l.local_addr().unwrap().port();
        assert_eq!(how, Chosen::Dynamic);
        assert_ne!(got, p);
        // The next free port after p, wrapping at the end of the range.
        let expected_first = if p == *RANGE.end() {
            *RANGE.start()
        } else {
            p + 1
        };
        assert!(got == expected_first || RANGE.contains(&got));
    }

    #[test]
    fn port_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("hivebus-port-{}", fastrand::u64(..)));
        let f = port_file(&dir);
        write_port_file(&f, 50123).unwrap();
        assert_eq!(read_port_file(&f).unwrap(), 50123);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
