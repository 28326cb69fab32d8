//! One broker per state directory, and port discovery that cannot name a dead broker.
//!
//! A broker *claims* `<dir>/.hive/` by holding an exclusive lock (`flock` through
//! std's `File::try_lock`) on `.hive/broker.lock` for as long as it runs; the lock file
//! says who holds it (`pid=`, `port=`, `started=` lines). Only the holder writes
//! `.hive/port` (still one port number on its first line, so older readers parse it)
//! and only the holder removes it, when the claim is dropped. A second broker on the
//! same directory is refused, naming the first's PID and port; the kernel drops the
//! lock when a process dies, even by SIGKILL, so a crash never leaves a directory
//! claimed.
//!
//! Invariants: the lock file is never truncated by anyone but the holder (it is opened
//! without truncation and rewritten only once locked); a client decides that a port
//! file is stale only when a lock file exists and nobody holds its lock (a probe with a
//! shared lock, released at once), never from the PID alone, which may be reused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a starting broker retries a lock held by someone else before refusing:
/// a client's liveness probe holds a shared lock for a few microseconds.
const CLAIM_RETRY: Duration = Duration::from_millis(300);

/// The lock file of a working directory: `<dir>/.hive/broker.lock`.
pub fn lock_file(dir: &Path) -> PathBuf {
    dir.join(".hive").join("broker.lock")
}

/// Who holds (or last held) a state directory, as its lock file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Process id of the broker.
    pub pid: Option<u32>,
    /// Port it listens on, once it listens.
    pub port: Option<u16>,
    /// Start time, RFC 3339.
    pub started: Option<String>,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let mut h = Holder::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => h.pid = v.trim().parse().ok(),
                Some(("port", v)) => h.port = v.trim().parse().ok(),
                Some(("started", v)) => h.started = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        h
    }

    /// "PID 123, port 50123" with what is known.
    pub fn describe(&self) -> String {
        let pid = self.pid.map_or("PID ?".into(), |p| format!("PID {p}"));
        match self.port {
            Some(p) => format!("{pid}, port {p}"),
            None => format!("{pid}, not listening yet"),
        }
    }
}

/// Why a directory could not be claimed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// Another live process holds the lock.
    #[error("another broker ({}) already runs on {}; stop it, or use another --dir", .holder.describe(), .dir.display())]
    Held {
        /// What the lock file says about the holder.
        holder: Holder,
        /// The `.hive` directory.
        dir: PathBuf,
    },
    /// The lock file could not be created, read or locked.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A claimed state directory; dropping it removes the port file it wrote and releases
/// the lock (in that order, so no other broker's file is ever removed).
#[derive(Debug)]
pub struct Claim {
    file: File,
    hive: PathBuf,
    started: String,
    port: Option<u16>,
}

impl Claim {
    /// Locks `<dir>/.hive/broker.lock` (creating the directory) and records this
    /// process as its holder.
    ///
    /// # Errors
    /// [`ClaimError::Held`] when another live broker holds it; [`ClaimError::Io`]
    /// otherwise.
    pub fn acquire(dir: &Path) -> Result<Claim, ClaimError> {
        let path = lock_file(dir);
        let io_err = |source| ClaimError::Io {
            path: path.clone(),
            source,
        };
        let hive = dir.join(".hive");
        std::fs::create_dir_all(&hive).map_err(io_err)?;
        // The state directory is this machine's (a queue database, a port, a lock): a
        // `.gitignore` keeps it out of commits, where a port file would mislead others.
        let ignore = hive.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(&ignore, "# written by hive broker: local state\n*\n");
        }
        // No truncation: the current holder's lines must survive our failed attempt.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let deadline = Instant::now() + CLAIM_RETRY;
        // A blocking wait of at most CLAIM_RETRY, once, at a broker's start.
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&path).unwrap_or_default();
                    return Err(ClaimError::Held { holder, dir: hive });
                }
                // A file system without locks (some network mounts): run, but say
                // that a second broker will not be noticed.
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    tracing::warn!(path = %path.display(), "file locks are not supported here; a second broker on this directory will not be refused");
                    break;
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let mut claim = Claim {
            file,
            hive,
            started,
            port: None,
        };
        claim.record().map_err(io_err)?;
        Ok(claim)
    }

    /// Rewrites the lock file's lines (we hold the lock, so nobody else writes it).
    fn record(&mut self) -> io::Result<()> {
        let mut text = format!("pid={}\nstarted={}\n", std::process::id(), self.started);
        if let Some(p) = self.port {
            text.push_str(&format!("port={p}\n"));
        }
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }

    /// Records `port` in the lock file, then writes `.hive/port` (atomically) for
    /// clients.
    ///
    /// # Errors
    /// I/O errors writing either file.
    pub fn publish(&mut self, port: u16) -> io::Result<()> {
        self.port = Some(port);
        self.record()?;
        super::port::write_port_file(&self.hive.join("port"), port)
    }

    /// The port file this claim writes.
    pub fn port_file(&self) -> PathBuf {
        self.hive.join("port")
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let f = self.port_file();
        // Only our own file: it names our port (we hold the lock, so nobody else
        // should have written it, but a file written by hand is left alone).
        if self.port.is_some() && super::port::read_port_file(&f).ok() == self.port {
            let _ = std::fs::remove_file(&f);
        }
        // Unlocked when `file` closes right after; the lines stay for post-mortems.
    }
}

/// An exclusive lock on `<db>.lock` for a queue database kept outside the claimed
/// `.hive/` (`[queue] db_path`): two brokers with different directories must not
/// share one database either. Held while the returned file is open.
///
/// # Errors
/// [`ClaimError::Held`] when another live broker holds it; [`ClaimError::Io`]
/// otherwise.
pub fn lock_database(db: &Path) -> Result<File, ClaimError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let io_err = |source| ClaimError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&path).unwrap_or_default();
            return Err(ClaimError::Held { holder, dir: path });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(e)),
    }
    file.set_len(0).map_err(io_err)?;
    writeln!(file, "pid={}", std::process::id()).map_err(io_err)?;
    Ok(file)
}

fn read_holder(path: &Path) -> io::Result<Holder> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    Ok(Holder::parse(&s))
}

/// Whether the broker a state directory names is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// A process holds the lock.
    Alive(Holder),
    /// The lock file exists and nobody holds it: the broker that wrote it is gone.
    Gone(Holder),
    /// No lock file (a broker of an older version, or none ever ran here).
    Unknown,
}

/// Probes `<dir>/.hive/broker.lock` with a shared lock, released at once.
pub fn probe(dir: &Path) -> Liveness {
    let path = lock_file(dir);
    let Ok(file) = File::open(&path) else {
        return Liveness::Unknown;
    };
    let holder = read_holder(&path).unwrap_or_default();
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Liveness::Gone(holder)
        }
        Err(TryLockError::WouldBlock) => Liveness::Alive(holder),
        Err(TryLockError::Error(_)) => Liveness::Unknown,
    }
}

/// Where a client should connect, and what it should warn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The port.
    pub port: u16,
    /// Sentences for stderr (disagreeing `HIVE_WS_PORT`, an ignored stale file).
    pub warnings: Vec<String>,
}

/// Finds the broker of `dir` for a client. The port file of a live broker wins over
/// `HIVE_WS_PORT` (with a warning when they disagree: the broker falls back from a
/// taken `HIVE_WS_PORT` and says where in the file); a stale port file, or one that no
/// running broker holds (no lock file: copied or checked in), is never followed: an
/// error, or a warning when `HIVE_WS_PORT` is set; without a port file, `HIVE_WS_PORT`.
///
/// # Errors
/// `NotFound` when neither names a port; `ConnectionRefused` for a stale port file;
/// `InvalidInput` when `HIVE_WS_PORT` is not a port.
pub fn locate(dir: &Path) -> io::Result<Located> {
    let env = match std::env::var("HIVE_WS_PORT") {
        Ok(v) => Some(v.trim().parse::<u16>().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("HIVE_WS_PORT={v:?}: {e}"),
            )
        })?),
        Err(_) => None,
    };
    let file = super::port::port_file(dir);
    let from_file = match super::port::read_port_file(&file) {
        Ok(p) => Some(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) if env.is_some() => {
            let warning = format!("ignoring unreadable {}: {e}", file.display());
            return Ok(Located {
                port: env.unwrap_or_default(),
                warnings: vec![warning],
            });
        }
        Err(e) => return Err(e),
    };
    let mut warnings = Vec::new();
    match (from_file, env) {
        (None, Some(p)) => Ok(Located { port: p, warnings }),
        (None, None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no broker: {} does not exist and HIVE_WS_PORT is not set (start one with `hive broker`, or pass --url)",
                file.display()
            ),
        )),
        (Some(p), env) => match probe(dir) {
            Liveness::Gone(h) => {
                let pid = h.pid.map_or("?".into(), |p| p.to_string());
                let stale = format!(
                    "stale {} (broker PID {pid} is gone; start one with `hive broker`)",
                    file.display()
                );
                match env {
                    Some(e) => {
                        warnings.push(format!("{stale}; using HIVE_WS_PORT={e}"));
                        Ok(Located { port: e, warnings })
                    }
                    None => Err(io::Error::new(io::ErrorKind::ConnectionRefused, stale)),
                }
            }
            Liveness::Alive(h) => {
                if let Some(e) = env.filter(|e| *e != p) {
                    warnings.push(format!(
                        "HIVE_WS_PORT={e} disagrees with {}: {p} (broker {}); using {p}",
                        file.display(),
                        h.describe()
                    ));
                }
                Ok(Located { port: p, warnings })
            }
            // No lock file: a file nobody running vouches for (copied, or checked into
            // a repository) or a broker older than the lock. Never followed: the CLI
            // would present its token to whatever listens on the port it names.
            Liveness::Unknown => match env {
                Some(e) => {
                    warnings.push(format!(
                        "ignoring {}: no running broker holds it (no {}); using HIVE_WS_PORT={e}",
                        file.display(),
                        lock_file(dir).display()
                    ));
                    Ok(Located { port: e, warnings })
                }
                None => Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "{} names port {p}, but no running broker holds it (no {}): it may have been copied or checked in, and a token is never sent on its word; start a broker with `hive broker`, or pass --url",
                        file.display(),
                        lock_file(dir).display()
                    ),
                )),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("hivebus-claim-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_second_claim_is_refused_naming_the_first_and_a_dropped_one_is_gone() {
        let dir = temp();
        let mut first = Claim::acquire(&dir).unwrap();
        first.publish(50001).unwrap();
        match Claim::acquire(&dir) {
            Err(ClaimError::Held { holder, .. }) => {
                assert_eq!(holder.pid, Some(std::process::id()));
                assert_eq!(holder.port, Some(50001));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(probe(&dir), Liveness::Alive(_)));
        drop(first);
        assert!(!super::super::port::port_file(&dir).exists());
        assert!(matches!(probe(&dir), Liveness::Gone(_)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_database_outside_the_state_directory_is_locked_once() {
        let dir = temp();
        let db = dir.join("elsewhere.db");
        let held = lock_database(&db).unwrap();
        assert!(matches!(
            lock_database(&db),
            Err(ClaimError::Held { holder, .. }) if holder.pid == Some(std::process::id())
        ));
        drop(held);
        lock_database(&db).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
