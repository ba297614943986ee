//! The game user's uid and gid, looked up with left4me's one passwd parser
//! ([`left4me_contract::passwd::lookup`]) in `/etc/passwd`, where systemd-sysusers creates it.

use std::path::Path;

use left4me_contract::passwd::{self, PasswdError};
use left4me_overlay::Owner;

/// Why the game user cannot be used: missing, malformed, unreadable passwd file, or uid/gid 0.
pub type UserError = PasswdError;

/// Where the game user's name comes from, for the error that says what to change.
const SETTING: &str = "game_user in host.toml";

/// The uid and primary gid of `user`, from the passwd file under `root` (`/` on a host), as the
/// [`Owner`] the overlay gives the upper dir and runs the game as.
pub fn lookup(root: &Path, user: &str) -> Result<Owner, UserError> {
    let ids = passwd::lookup(&root.join("etc/passwd"), user, SETTING)?;
    Ok(Owner {
        uid: ids.uid,
        gid: ids.gid,
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
        assert!(
            err.contains("no user 'nobody-here'") && err.contains("change game_user in host.toml"),
            "{err}"
        );
        let err = lookup(&root, "root").unwrap_err();
        assert!(matches!(err, PasswdError::Root { .. }), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
