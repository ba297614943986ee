//! Who makes a change: the real uid of the process, its user name, and `SUDO_USER`.

/// The author of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Who {
    pub uid: u32,
    pub user: Option<String>,
    pub sudo_user: Option<String>,
}

impl Who {
    /// This process's author: its real uid (the operator, even under a setuid wrapper), the
    /// name `/etc/passwd` gives it, and `SUDO_USER` when set and not empty.
    pub fn of_process() -> Who {
        let uid = rustix::process::getuid().as_raw();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Who {
            uid,
            user: user_name(&passwd, uid),
            sudo_user: std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()),
        }
    }
}

/// The name of `uid` in the text of a passwd file (`name:x:uid:…` lines).
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_in_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 5), None);
    }
}
