//! Looking up the game user in `/etc/passwd`, where systemd-sysusers creates it.

use std::path::Path;

use left4me_overlay::Owner;

/// Why a user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "user '{user}' does not exist in {path}; create it with `systemd-sysusers` (left4me ships \
         /usr/lib/sysusers.d/left4me.conf) or set game_user in host.toml"
    )]
    Missing { user: String, path: String },
}

/// The uid and primary gid of `user`, from the passwd file under `root` (`/` on a host).
pub fn lookup(root: &Path, user: &str) -> Result<Owner, UserError> {
    let path = root.join("etc/passwd");
    let text = std::fs::read_to_string(&path).map_err(|source| UserError::Read {
        path: path.display().to_string(),
        source,
    })?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (name == user).then_some(Owner { uid, gid })
        })
        .next()
        .ok_or_else(|| UserError::Missing {
            user: user.to_owned(),
            path: path.display().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_and_names_missing_ones() {
        let root = std::env::temp_dir().join(format!("left4me-users-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nbroken line\nleft4me:x:990:985::/var/lib/left4me:/usr/sbin/nologin\n",
        )
        .unwrap();
        assert_eq!(
            lookup(&root, "left4me").unwrap(),
            Owner { uid: 990, gid: 985 }
        );
        let err = lookup(&root, "nobody-here").unwrap_err().to_string();
        assert!(err.contains("user 'nobody-here' does not exist"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
