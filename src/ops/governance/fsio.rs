//! The file-system edge of the governance code: bounded reads that refuse symlinks,
//! checked ids and relative paths, sorted and bounded directory listings, the UTC date,
//! and writes that leave a file alone when its content would not change.
//!
//! Why symlinks are refused: a ballot or a checklist reference that is a link could
//! make a tally or a report read (and quote) any file of the machine; a governance
//! repository has no need for them.

use super::error::{GovError, Problem, ProblemCode};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The file does not exist.
    Missing,
    /// A reportable problem (too large, not a regular file).
    Problem(ProblemCode, String),
    /// Another I/O error.
    Io(std::io::Error),
}

impl ReadError {
    /// As a [`Problem`] of `file`.
    pub fn problem(self, file: &str) -> Problem {
        match self {
            ReadError::Missing => {
                Problem::new(file, "", ProblemCode::MissingVoteFile, "no such file")
            }
            ReadError::Problem(code, reason) => Problem::new(file, "", code, reason),
            ReadError::Io(e) => Problem::new(file, "", ProblemCode::NotAFile, e.to_string()),
        }
    }

    /// As a [`GovError`] for `path` (files a function cannot do without).
    pub fn into_error(self, path: &Path, what: &'static str) -> GovError {
        match self {
            ReadError::Missing => GovError::NotFound {
                what,
                path: path.to_owned(),
            },
            ReadError::Problem(code, reason) => {
                GovError::Invalid(Problem::new(path.display().to_string(), "", code, reason))
            }
            ReadError::Io(e) => GovError::io(path, e),
        }
    }
}

/// Reads a regular file of at most `limit` bytes. Symlinks and other non-regular files
/// are refused (`not_a_file`), larger files too (`too_large`) without being read whole.
///
/// # Errors
/// [`ReadError`] says why.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Io(e)),
    };
    if !meta.file_type().is_file() {
        return Err(ReadError::Problem(
            ProblemCode::NotAFile,
            "a symlink or other non-regular file; only regular files are read".into(),
        ));
    }
    if meta.len() > limit {
        return Err(too_large(meta.len(), limit));
    }
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the stat and the read: read one byte past the limit.
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64, limit));
    }
    Ok(buf)
}

fn too_large(len: u64, limit: u64) -> ReadError {
    ReadError::Problem(
        ProblemCode::TooLarge,
        format!("{len} bytes, over the limit of {limit}"),
    )
}

/// Reads a UTF-8 document of at most `limit` bytes, or `None` when it does not exist.
///
/// # Errors
/// Too large, not a regular file, not UTF-8, or unreadable.
pub fn read_text(path: &Path, limit: u64) -> Result<Option<String>, GovError> {
    match read_bounded(path, limit) {
        Ok(b) => String::from_utf8(b).map(Some).map_err(|_| {
            GovError::Invalid(Problem::new(
                path.display().to_string(),
                "",
                ProblemCode::WrongType,
                "not UTF-8 text",
            ))
        }),
        Err(ReadError::Missing) => Ok(None),
        Err(e) => Err(e.into_error(path, "file")),
    }
}

/// The names of the entries of `dir`, sorted, at most `limit` of them; `None` when the
/// directory does not exist.
///
/// # Errors
/// Unreadable, or more than `limit` entries (refused whole: a partial listing would
/// silently drop files).
pub fn list_dir(dir: &Path, limit: usize) -> Result<Option<Vec<String>>, GovError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(GovError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| GovError::io(dir, e))?;
        if names.len() == limit {
            return Err(GovError::Invalid(Problem::new(
                dir.display().to_string(),
                "",
                ProblemCode::TooLarge,
                format!("more than {limit} entries"),
            )));
        }
        // Names that are not UTF-8 are shown lossily; they are reported, not skipped.
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(Some(names))
}

/// Whether `rel` is a relative path that stays inside the directory it is joined to
/// (no root, no `..`, not empty).
pub fn is_safe_relative(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && !rel.contains('\0')
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Joins a relative path that must stay inside `base`.
///
/// # Errors
/// `invalid_argument` naming `field` when `rel` is absolute or climbs out.
pub fn join_safe(base: &Path, rel: &str, field: &str) -> Result<PathBuf, GovError> {
    if is_safe_relative(rel) {
        Ok(base.join(rel))
    } else {
        Err(GovError::arg(
            field,
            format!("{rel:?} must be a relative path inside the repository (no `..`)"),
        ))
    }
}

/// Checks a numeric id (`003`, `0007`): 1 to `max_digits` ASCII digits.
///
/// # Errors
/// `invalid_argument` naming `field`.
pub fn check_numeric_id(field: &str, id: &str, max_digits: usize) -> Result<(), GovError> {
    if !id.is_empty() && id.len() <= max_digits && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(GovError::arg(
            field,
            format!("{id:?} is not an id of 1 to {max_digits} digits"),
        ))
    }
}

/// Today's date in UTC, `YYYY-MM-DD` (for templates when no `date` argument is given).
pub fn utc_today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_date((secs / 86_400) as i64)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the "days from
/// civil" inverse, so no calendar crate is needed for one date).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Checks a `YYYY-MM-DD` date argument (only its shape: it is written into documents).
///
/// # Errors
/// `invalid_argument` naming `date`.
pub fn check_date(date: &str) -> Result<(), GovError> {
    let b = date.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if shape {
        Ok(())
    } else {
        Err(GovError::arg("date", format!("{date:?} is not YYYY-MM-DD")))
    }
}

/// Writes `content` to `path` unless the file already holds exactly it; creates the
/// parent directories. Returns whether it wrote. Refuses to write through a symlink.
///
/// # Errors
/// I/O errors, or a symlink at `path`.
pub fn write_if_changed(path: &Path, content: &[u8]) -> Result<bool, GovError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_file() {
            return Err(GovError::Refused(format!(
                "{} is not a regular file; refusing to write through it",
                path.display()
            )));
        }
        if std::fs::read(path).map_err(|e| GovError::io(path, e))? == content {
            return Ok(false);
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GovError::io(parent, e))?;
    }
    // Write beside, then rename: a reader never sees half a report.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, content).map_err(|e| GovError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| GovError::io(path, e))?;
    Ok(true)
}

/// Creates `path` with `content` only if nothing is there. Returns whether it created.
///
/// # Errors
/// I/O errors.
pub fn create_if_missing(path: &Path, content: &str) -> Result<bool, GovError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GovError::io(parent, e))?;
    }
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        // Created by someone else meanwhile: theirs stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(GovError::io(path, e)),
    };
    std::io::Write::write_all(&mut f, content.as_bytes()).map_err(|e| GovError::io(path, e))?;
    Ok(true)
}
