//! Exit statuses, and the errors that mean "you asked for something wrong" rather than "something
//! broke".

use left4me_spec::{ErrorKind, SpecError};

use crate::store::StoreError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A runtime error: I/O, systemctl failed.
pub const EXIT_RUNTIME: u8 = 1;
/// A usage or validation error; nothing was changed.
pub const EXIT_INVALID: u8 = 2;

/// A request that cannot be carried out as asked (exit status 2). The message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        UsageError(message.into())
    }
}

/// The exit status for `err`: 2 when anything in its chain is a usage or validation error
/// (a [`SpecError`] other than an unreadable file, a `UsageError`, an existing file), else 1.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(spec) = cause.downcast_ref::<SpecError>() {
            return match spec.kind {
                ErrorKind::Io => EXIT_RUNTIME,
                _ => EXIT_INVALID,
            };
        }
        if cause.is::<UsageError>() {
            return EXIT_INVALID;
        }
        if let Some(StoreError::Exists { .. }) = cause.downcast_ref::<StoreError>() {
            return EXIT_INVALID;
        }
    }
    EXIT_RUNTIME
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec_error(kind: ErrorKind) -> SpecError {
        SpecError {
            kind,
            file: PathBuf::from("/x.toml"),
            key: None,
            reason: "r".into(),
        }
    }

    #[test]
    fn statuses() {
        let invalid = anyhow::Error::new(spec_error(ErrorKind::Invalid)).context("while creating");
        assert_eq!(exit_status(&invalid), EXIT_INVALID);
        let io = anyhow::Error::new(spec_error(ErrorKind::Io));
        assert_eq!(exit_status(&io), EXIT_RUNTIME);
        assert_eq!(
            exit_status(&anyhow::Error::new(UsageError::new("no"))),
            EXIT_INVALID
        );
        assert_eq!(exit_status(&anyhow::anyhow!("broken")), EXIT_RUNTIME);
        let exists = StoreError::Exists {
            path: PathBuf::from("/x"),
        };
        assert_eq!(exit_status(&exists.into()), EXIT_INVALID);
    }
}
