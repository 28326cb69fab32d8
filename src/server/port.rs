//! Port selection and the `.hive/port` file that clients use to find the broker.
//!
//! Order: an explicit port (`--port` or `HIVE_WS_PORT`), else a free port in
//! 49152-65535 starting at a random one and trying the next ones, else whatever port the
//! OS assigns. The port file is written atomically (temp file + rename) so that a
//! reader never sees half a number.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

/// The dynamic port range of RFC 6335.
pub const RANGE: std::ops::RangeInclusive<u16> = 49152..=65535;

/// How many ports of the range to try before asking the OS.
const ATTEMPTS: u16 = 64;

/// How the listener's port was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    /// The port asked for.
    Explicit,
    /// A port in the dynamic range.
    Dynamic,
    /// The range gave nothing; the OS chose.
    OsAssigned,
}

/// Binds `host` on `port` when given, else on a free dynamic port.
///
/// # Errors
/// The bind error of an explicit port (taken, not permitted); for a dynamic port only
/// when even an OS-assigned port cannot be had.
pub async fn bind(host: IpAddr, port: Option<u16>) -> io::Result<(TcpListener, Chosen)> {
    if let Some(p) = port {
        return Ok((
            TcpListener::bind(SocketAddr::new(host, p)).await?,
            Chosen::Explicit,
        ));
    }
    let span = RANGE.end() - RANGE.start() + 1;
    let start = fastrand::u16(..span);
    for i in 0..ATTEMPTS {
        let p = RANGE.start() + (start + i) % span;
        if let Ok(l) = TcpListener::bind(SocketAddr::new(host, p)).await {
            return Ok((l, Chosen::Dynamic));
        }
    }
    Ok((
        TcpListener::bind(SocketAddr::new(host, 0)).await?,
        Chosen::OsAssigned,
    ))
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

/// Reads a port file.
///
/// # Errors
/// I/O errors, or `InvalidData` when it does not hold a port number.
pub fn read_port_file(path: &Path) -> io::Result<u16> {
    std::fs::read_to_string(path)?.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Where a client should connect: `HIVE_WS_PORT` when set, else the port file under
/// `dir`.
///
/// # Errors
/// When neither gives a port.
pub fn discover(dir: &Path) -> io::Result<u16> {
    if let Ok(p) = std::env::var("HIVE_WS_PORT") {
        return p.trim().parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("HIVE_WS_PORT: {e}"))
        });
    }
    read_port_file(&port_file(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dynamic_bind_lands_in_the_range_and_explicit_taken_port_fails() {
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        let (l, how) = bind(host, None).await.unwrap();
        let p = l.local_addr().unwrap().port();
        assert_eq!(how, Chosen::Dynamic);
        assert!(RANGE.contains(&p));
        assert!(bind(host, Some(p)).await.is_err());
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
