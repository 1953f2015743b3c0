//! The native core's error type; `python.rs` turns each variant into a Python exception.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::pattern::PatternError;

#[derive(Debug)]
pub enum ScanError {
    /// An I/O error on `path` (becomes an `OSError` subclass with `filename = path`).
    Io { path: PathBuf, err: io::Error },
    /// A name that is not valid UTF-8; `path` is relative, with the bad bytes as `\xNN`.
    NonUtf8 { path: String },
    /// A file that got shorter while it was read (becomes `ChunkSourceChangedError`).
    Changed {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The file opened is not the one the walk saw (a link or file swapped since): becomes
    /// `ChunkSourceChangedError`, so nothing outside the root is read under a hash.
    Swapped { path: PathBuf },
    /// A bad ignore pattern (becomes `PatternError`, a `ValueError`).
    Pattern(PatternError),
    /// The job was cancelled.
    Cancelled,
    /// A worker thread died or could not start.
    Internal(String),
}

impl ScanError {
    pub fn io(path: impl Into<PathBuf>, err: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            err,
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, err } => write!(f, "{}: {err}", path.display()),
            Self::NonUtf8 { path } => write!(f, "{}", non_utf8_message(path)),
            Self::Changed {
                path,
                offset,
                reason,
            } => {
                write!(
                    f,
                    "{} changed while it was read ({reason} at offset {offset})",
                    path.display()
                )
            }
            Self::Swapped { path } => write!(
                f,
                "{} changed while it was read ({SWAPPED})",
                path.display()
            ),
            Self::Pattern(e) => write!(f, "{e}"),
            Self::Cancelled => write!(f, "chunker: the scan was cancelled"),
            Self::Internal(msg) => write!(f, "chunker: internal error: {msg}"),
        }
    }
}

impl std::error::Error for ScanError {}

impl From<PatternError> for ScanError {
    fn from(e: PatternError) -> Self {
        Self::Pattern(e)
    }
}

/// Why a swapped file is refused (the Python fallback words it the same).
pub const SWAPPED: &str = "not the file the scan saw (replaced or relinked)";

/// The message for a name that is not valid UTF-8 (the Python fallback words it the same).
#[must_use]
pub fn non_utf8_message(rel: &str) -> String {
    format!("chunker: file name is not valid UTF-8: \"{rel}\" (manifest paths must be UTF-8; rename it)")
}
