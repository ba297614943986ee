//! The two users of a build, looked up by name in `/etc/passwd`.
//!
//! Only the file is read, never NSS: the sandbox and game users are system users that
//! `systemd-sysusers` writes there, and a lookup through NSS daemons would give a root process a
//! reason to talk to them before it sandboxes anything.

use std::path::{Path, PathBuf};

/// A user's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// Errors looking a user up.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The passwd file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No line names the user.
    #[error(
        "user {name:?} is not in {path}: create it (systemd-sysusers left4me.conf) or pass --user/--owner"
    )]
    Missing {
        /// The user name.
        name: String,
        /// The file searched.
        path: PathBuf,
    },
    /// The user's line is malformed.
    #[error("line {line} of {path} (user {name:?}) is malformed")]
    Malformed {
        /// The user name.
        name: String,
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The user is root: the sandbox must drop privileges and the output must not be root's.
    #[error("user {name:?} has uid or gid 0; the sandbox needs an unprivileged user")]
    Root {
        /// The user name.
        name: String,
    },
}

/// Looks `name` up in the passwd file at `path`.
pub fn lookup(path: &Path, name: &str) -> Result<Ids, UserError> {
    let text = std::fs::read_to_string(path).map_err(|source| UserError::Read {
        path: path.to_owned(),
        source,
    })?;
    let ids = find(&text, name).map_err(|e| match e {
        Find::Missing => UserError::Missing {
            name: name.to_owned(),
            path: path.to_owned(),
        },
        Find::Malformed(line) => UserError::Malformed {
            name: name.to_owned(),
            path: path.to_owned(),
            line,
        },
    })?;
    if ids.uid == 0 || ids.gid == 0 {
        return Err(UserError::Root {
            name: name.to_owned(),
        });
    }
    Ok(ids)
}

enum Find {
    Missing,
    Malformed(usize),
}

/// `name:password:uid:gid:gecos:home:shell`, the first line whose name matches.
fn find(text: &str, name: &str) -> Result<Ids, Find> {
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split(':');
        if fields.next() != Some(name) {
            continue;
        }
        let mut ids = fields.skip(1).map(str::parse::<u32>);
        return match (ids.next(), ids.next()) {
            (Some(Ok(uid)), Some(Ok(gid))) => Ok(Ids { uid, gid }),
            _ => Err(Find::Malformed(index + 1)),
        };
    }
    Err(Find::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        left4me:x:990:985:left4me game server:/var/lib/left4me:/usr/sbin/nologin\n\
        l4d2-sandbox:x:989:984:left4me build sandbox:/:/usr/sbin/nologin\n\
        broken:x:abc:1::/:\n";

    #[test]
    fn finds_by_exact_name() {
        let dir = TempDir::new();
        let path = dir.path().join("passwd");
        std::fs::write(&path, PASSWD).unwrap();
        assert_eq!(
            lookup(&path, "l4d2-sandbox").unwrap(),
            Ids { uid: 989, gid: 984 }
        );
        assert_eq!(
            lookup(&path, "left4me").unwrap(),
            Ids { uid: 990, gid: 985 }
        );
        assert!(matches!(
            lookup(&path, "left4"),
            Err(UserError::Missing { .. })
        ));
        assert!(matches!(
            lookup(&path, "broken"),
            Err(UserError::Malformed { line: 4, .. })
        ));
        assert!(matches!(lookup(&path, "root"), Err(UserError::Root { .. })));
        let missing = lookup(&dir.path().join("nope"), "x").unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
