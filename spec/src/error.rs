//! The one error type of the spec model.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of problem a [`SpecError`] reports; callers map it to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file exists but could not be read.
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// The TOML is fine but a value breaks a rule.
    Invalid,
}

/// A problem with one spec file: which file, which key, and what is wrong with it.
///
/// Displayed as one line: `FILE: key 'KEY': REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub kind: ErrorKind,
    pub file: PathBuf,
    pub key: Option<String>,
    pub reason: String,
}

impl SpecError {
    pub(crate) fn new(kind: ErrorKind, file: &Path, key: Option<&str>, reason: String) -> Self {
        SpecError {
            kind,
            file: file.to_path_buf(),
            key: key.map(str::to_owned),
            reason,
        }
    }

    /// A rule broken by the value of `key` (a dotted path such as `resources.nice`).
    pub(crate) fn invalid(file: &Path, key: &str, reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, file, Some(key), reason.into())
    }

    /// A rule broken by the file as a whole.
    pub(crate) fn file(file: &Path, reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, file, None, reason.into())
    }

    pub(crate) fn read(file: &Path, err: &std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::NotFound {
            Self::new(ErrorKind::NotFound, file, None, "no such file".into())
        } else if err.kind() == std::io::ErrorKind::InvalidInput {
            // A file refused by `read_spec` (a FIFO, a link, too big): the reason says it all.
            Self::new(ErrorKind::Io, file, None, err.to_string())
        } else {
            Self::new(ErrorKind::Io, file, None, format!("cannot read: {err}"))
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", left4me_contract::printable::path(&self.file))?;
        if let Some(key) = &self.key {
            write!(f, "key '{key}': ")?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for SpecError {}
