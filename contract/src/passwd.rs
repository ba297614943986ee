//! Looking users up in `/etc/passwd`: the game user owns instance and overlay content, the
//! sandbox user runs builds. Both are system users that `systemd-sysusers` writes into the file,
//! so only the file is read, never NSS: a root process has no reason to talk to NSS daemons before
//! it drops privileges.

use std::path::{Path, PathBuf};

/// The passwd file of the host.
pub const PASSWD: &str = "/etc/passwd";

/// A user's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// Why a user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no user '{user}' in {}: create it with `systemd-sysusers` (left4me ships \
         /usr/lib/sysusers.d/left4me.conf) or change {setting}",
        path.display()
    )]
    Missing {
        user: String,
        path: PathBuf,
        /// Where the user name came from, e.g. "game_user in /etc/left4me/host.toml".
        setting: &'static str,
    },
    #[error("line {line} of {} (user '{user}') is malformed: fix or remove it", path.display())]
    Malformed {
        user: String,
        path: PathBuf,
        /// 1-based.
        line: usize,
    },
    #[error(
        "user '{user}' has uid or gid 0: left4me runs games and builds unprivileged; change \
         {setting}"
    )]
    Root { user: String, setting: &'static str },
}

/// What [`find`] found instead of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFound {
    /// No line names the user.
    Missing,
    /// The user's line (1-based) does not have numeric uid and gid fields.
    Malformed(usize),
}

/// The ids of `user` in the passwd text `text`: the first line whose name field is exactly
/// `user`.
pub fn find(text: &str, user: &str) -> Result<Ids, NotFound> {
    for (index, line) in text.lines().enumerate() {
        let mut fields = line.split(':');
        if fields.next() != Some(user) {
            continue;
        }
        let _password = fields.next();
        let uid = fields.next().and_then(|f| f.parse().ok());
        let gid = fields.next().and_then(|f| f.parse().ok());
        return match (uid, gid) {
            (Some(uid), Some(gid)) => Ok(Ids { uid, gid }),
            _ => Err(NotFound::Malformed(index + 1)),
        };
    }
    Err(NotFound::Missing)
}

/// The ids of `user` from the passwd file at `path` (normally [`PASSWD`]); `setting` says where
/// the name came from, for the error. Refuses a user with uid or gid 0.
pub fn lookup(path: &Path, user: &str, setting: &'static str) -> Result<Ids, PasswdError> {
    let text = std::fs::read_to_string(path).map_err(|source| PasswdError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let ids = find(&text, user).map_err(|not_found| match not_found {
        NotFound::Missing => PasswdError::Missing {
            user: user.to_owned(),
            path: path.to_path_buf(),
            setting,
        },
        NotFound::Malformed(line) => PasswdError::Malformed {
            user: user.to_owned(),
            path: path.to_path_buf(),
            line,
        },
    })?;
    if ids.uid == 0 || ids.gid == 0 {
        return Err(PasswdError::Root {
            user: user.to_owned(),
            setting,
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "root:x:0:0:root:/root:/bin/bash\n\
                        broken line\n\
                        left4me:x:995:995:left4me game server:/var/lib/left4me:/usr/sbin/nologin\n\
                        left4me2:x:996:990::/:/usr/sbin/nologin\n\
                        bad:x:abc:1::/:/bin/sh\n";

    #[test]
    fn finds_users_by_exact_name() {
        assert_eq!(find(TEXT, "left4me"), Ok(Ids { uid: 995, gid: 995 }));
        assert_eq!(find(TEXT, "left4me2"), Ok(Ids { uid: 996, gid: 990 }));
        assert_eq!(find(TEXT, "left4"), Err(NotFound::Missing));
        assert_eq!(find(TEXT, "nobody"), Err(NotFound::Missing));
        assert_eq!(find(TEXT, "bad"), Err(NotFound::Malformed(5)));
    }

    #[test]
    fn lookup_names_the_setting_and_refuses_root() {
        let dir = std::env::temp_dir().join(format!("left4me-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, TEXT).unwrap();
        assert_eq!(
            lookup(&path, "left4me", "game_user").unwrap(),
            Ids { uid: 995, gid: 995 }
        );
        let missing = lookup(&path, "ghost", "game_user in host.toml").unwrap_err();
        assert!(
            missing.to_string().contains("no user 'ghost'")
                && missing
                    .to_string()
                    .contains("change game_user in host.toml"),
            "{missing}"
        );
        let root = lookup(&path, "root", "--user").unwrap_err();
        assert!(matches!(root, PasswdError::Root { .. }), "{root}");
        let bad = lookup(&path, "bad", "--user").unwrap_err();
        assert!(bad.to_string().contains("line 5"), "{bad}");
        let unreadable = lookup(&dir.join("none"), "left4me", "--user").unwrap_err();
        assert!(matches!(unreadable, PasswdError::Read { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
