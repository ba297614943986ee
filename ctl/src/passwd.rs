//! Looking users up in `/etc/passwd`: the game user owns overlay content, the sandbox user runs
//! builds. Both are system users made by `systemd-sysusers`, so they are in the file; no NSS.

use std::path::{Path, PathBuf};

/// The passwd file of the host.
pub const PASSWD: &str = "/etc/passwd";

/// A user's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no user '{user}' in {}: install left4me (`make install` runs systemd-sysusers) or set \
         {key} in /etc/left4me/host.toml",
        path.display()
    )]
    Missing {
        user: String,
        key: &'static str,
        path: PathBuf,
    },
}

/// The ids of `user` in the passwd text `text`, if it is there.
pub fn find(text: &str, user: &str) -> Option<Ids> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(Ids { uid, gid })
    })
}

/// The ids of `user` from `passwd`; `key` names the host.toml setting that chose the user.
pub fn lookup(passwd: &Path, user: &str, key: &'static str) -> Result<Ids, PasswdError> {
    let text = std::fs::read_to_string(passwd).map_err(|source| PasswdError::Read {
        path: passwd.to_path_buf(),
        source,
    })?;
    find(&text, user).ok_or_else(|| PasswdError::Missing {
        user: user.to_owned(),
        key,
        path: passwd.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_by_exact_name() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    left4me:x:995:995:left4me game server:/var/lib/left4me:/usr/sbin/nologin\n\
                    left4me2:x:996:990::/:/usr/sbin/nologin\n\
                    broken:x:abc:1::/:/bin/sh\n";
        assert_eq!(find(text, "left4me"), Some(Ids { uid: 995, gid: 995 }));
        assert_eq!(find(text, "left4me2"), Some(Ids { uid: 996, gid: 990 }));
        assert_eq!(find(text, "left4"), None);
        assert_eq!(find(text, "broken"), None);
        assert_eq!(find(text, "nobody"), None);
    }
}
