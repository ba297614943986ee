//! The argument vectors SteamCMD is run with, in the order the real one needs.
//!
//! SteamCMD runs its `+command arg…` arguments in order, so the order is the contract:
//! 1. `+@NoPromptForPassword 1`: a missing cached credential fails the login instead of
//!    waiting for a password on a terminal nobody watches;
//! 2. `+@sSteamCmdForcePlatformType windows|linux`, when set: a console variable read by the
//!    later `app_update`; set before `+login` as LinuxGSM's `fn_dl_steamcmd` (core_dl.sh)
//!    does, since reports (steam-for-linux #11522 comments, Resonite-Issues #6877) say it only
//!    takes effect ahead of the other commands;
//! 3. `+force_install_dir DIR` *before* `+login` (SteamCMD warns "Please use
//!    force_install_dir before logon!" otherwise, and installs to its default dir);
//! 4. `+login anonymous` or `+login USER` (never a password on the command line: an account
//!    logs in with the credentials SteamCMD cached at `left4mectl game login`);
//! 5. `+app_update 222860`, then `-beta B [-betapassword P]` after it, `validate` last;
//! 6. `+quit`.
//!
//! The caller creates `DIR/steamapps` before the run: SteamCMD fails an install into a
//! directory without it with a misleading state error (LinuxGSM creates it for the same
//! reason).
//!
//! A beta password must not appear on a command line (`ps`, the unit's `ExecStart=`, the
//! journal): [`AppUpdate::script`] puts the `app_update` command into a `+runscript` file
//! instead, which the caller writes where only root and the sandbox can read it.

use left4me_contract::game::APP_ID;

/// The branch every client gets when none is chosen.
pub const PUBLIC_BRANCH: &str = "public";

/// Which build of the app SteamCMD fetches (`+@sSteamCmdForcePlatformType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        }
    }
}

/// Who SteamCMD logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Anonymous,
    /// An account whose credentials SteamCMD has cached (`left4mectl game login USER`).
    Account(String),
}

impl Login {
    /// The `+login` argument.
    pub fn user(&self) -> &str {
        match self {
            Login::Anonymous => "anonymous",
            Login::Account(user) => user,
        }
    }
}

/// Why an argument cannot be given to SteamCMD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error(
        "{what} '{}' cannot be passed to SteamCMD: use letters, digits and . _ - only \
         (at most 64)",
        value.escape_debug()
    )]
    Token { what: &'static str, value: String },
    #[error(
        "the beta password cannot be passed to SteamCMD: it must be printable ASCII without spaces or quotes"
    )]
    Password,
}

/// A name SteamCMD reads as one word (branch, account name): `[A-Za-z0-9._-]{1,64}`, not
/// starting with `-` or `+` (it would read as an option or a command).
pub fn check_token(what: &'static str, value: &str) -> Result<(), ArgsError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with(['-', '+', '.'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ArgsError::Token {
            what,
            value: value.to_owned(),
        })
    }
}

/// One `+app_update 222860` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUpdate<'a> {
    /// `+force_install_dir` (inside the sandbox: `/overlay`).
    pub install_dir: &'a str,
    pub login: &'a Login,
    /// `None`: SteamCMD's own platform (linux).
    pub platform: Option<Platform>,
    /// The branch; [`PUBLIC_BRANCH`] passes no `-beta`.
    pub branch: &'a str,
    pub beta_password: Option<&'a str>,
    pub validate: bool,
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// `+@NoPromptForPassword 1 [+@sSteamCmdForcePlatformType P] +force_install_dir DIR +login U`.
fn prologue(install_dir: Option<&str>, login: &Login, platform: Option<Platform>) -> Vec<String> {
    let mut argv = vec![s("+@NoPromptForPassword"), s("1")];
    if let Some(platform) = platform {
        argv.extend([s("+@sSteamCmdForcePlatformType"), s(platform.as_str())]);
    }
    if let Some(dir) = install_dir {
        argv.extend([s("+force_install_dir"), s(dir)]);
    }
    argv.extend([s("+login"), s(login.user())]);
    argv
}

impl AppUpdate<'_> {
    fn check(&self) -> Result<(), ArgsError> {
        check_token("branch", self.branch)?;
        if let Login::Account(user) = self.login {
            check_token("account name", user)?;
        }
        if let Some(password) = self.beta_password {
            let ok = !password.is_empty()
                && password.len() <= 256
                && password
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
            if !ok {
                return Err(ArgsError::Password);
            }
        }
        Ok(())
    }

    /// `app_update 222860 [-beta B [-betapassword P]] [validate]`, as words.
    fn app_update_words(&self) -> Vec<String> {
        let mut words = vec![s("app_update"), APP_ID.to_string()];
        if self.branch != PUBLIC_BRANCH {
            words.extend([s("-beta"), s(self.branch)]);
            if let Some(password) = self.beta_password {
                words.extend([s("-betapassword"), s(password)]);
            }
        }
        if self.validate {
            words.push(s("validate"));
        }
        words
    }

    /// The whole argument vector (the beta password, if any, on it: use [`AppUpdate::script`]
    /// to keep it off the command line).
    pub fn argv(&self) -> Result<Vec<String>, ArgsError> {
        self.check()?;
        let mut argv = prologue(Some(self.install_dir), self.login, self.platform);
        let mut words = self.app_update_words();
        words[0].insert(0, '+');
        argv.extend(words);
        argv.push(s("+quit"));
        Ok(argv)
    }

    /// The argument vector with `+runscript SCRIPT` in place of `+app_update …`, and the text
    /// of that script (one `app_update` line, holding the beta password). Valve's runscript
    /// files take one console command per line.
    pub fn script(&self, script_path: &str) -> Result<(Vec<String>, String), ArgsError> {
        self.check()?;
        let mut argv = prologue(Some(self.install_dir), self.login, self.platform);
        argv.extend([s("+runscript"), s(script_path), s("+quit")]);
        let text = format!("{}\n", self.app_update_words().join(" "));
        Ok((argv, text))
    }
}

/// The remote-build check: `+login … +app_info_update 1 +app_info_print 222860 +quit`. The
/// caller deletes SteamCMD's `appcache/appinfo.vdf` first: without that SteamCMD may print a
/// stale cached answer even after `app_info_update 1`.
pub fn app_info(login: &Login) -> Result<Vec<String>, ArgsError> {
    if let Login::Account(user) = login {
        check_token("account name", user)?;
    }
    let mut argv = prologue(None, login, None);
    argv.extend([
        s("+app_info_update"),
        s("1"),
        s("+app_info_print"),
        APP_ID.to_string(),
        s("+quit"),
    ]);
    Ok(argv)
}

/// The interactive login that caches an account's credentials: `+login USER +quit`, with no
/// password on the command line (SteamCMD prompts for it and for the Steam Guard code).
pub fn login(user: &str) -> Result<Vec<String>, ArgsError> {
    check_token("account name", user)?;
    Ok(vec![s("+login"), s(user), s("+quit")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_update_in_the_order_steamcmd_needs() {
        let login = Login::Anonymous;
        let update = AppUpdate {
            install_dir: "/overlay",
            login: &login,
            platform: Some(Platform::Windows),
            branch: PUBLIC_BRANCH,
            beta_password: None,
            validate: false,
        };
        assert_eq!(
            update.argv().unwrap(),
            [
                "+@NoPromptForPassword",
                "1",
                "+@sSteamCmdForcePlatformType",
                "windows",
                "+force_install_dir",
                "/overlay",
                "+login",
                "anonymous",
                "+app_update",
                "222860",
                "+quit"
            ]
        );
    }

    #[test]
    fn beta_after_app_update_and_validate_last() {
        let login = Login::Account("operator".into());
        let update = AppUpdate {
            install_dir: "/overlay",
            login: &login,
            platform: Some(Platform::Linux),
            branch: "last_stable",
            beta_password: Some("s3cret!"),
            validate: true,
        };
        let argv = update.argv().unwrap();
        let tail: Vec<&str> = argv[8..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "+app_update",
                "222860",
                "-beta",
                "last_stable",
                "-betapassword",
                "s3cret!",
                "validate",
                "+quit"
            ]
        );
        let pos = |a: &str| argv.iter().position(|x| x == a).unwrap();
        assert!(pos("+force_install_dir") < pos("+login"));
        assert!(pos("+@sSteamCmdForcePlatformType") < pos("+app_update"));

        // The script form keeps the password off the command line.
        let (argv, script) = update.script("/home/steamcmd/run.txt").unwrap();
        assert!(!argv.iter().any(|a| a.contains("s3cret")), "{argv:?}");
        assert_eq!(
            &argv[argv.len() - 3..],
            ["+runscript", "/home/steamcmd/run.txt", "+quit"]
        );
        assert_eq!(
            script,
            "app_update 222860 -beta last_stable -betapassword s3cret! validate\n"
        );
    }

    #[test]
    fn check_and_login_commands() {
        assert_eq!(
            app_info(&Login::Anonymous).unwrap(),
            [
                "+@NoPromptForPassword",
                "1",
                "+login",
                "anonymous",
                "+app_info_update",
                "1",
                "+app_info_print",
                "222860",
                "+quit"
            ]
        );
        assert_eq!(login("operator").unwrap(), ["+login", "operator", "+quit"]);
    }

    #[test]
    fn refuses_words_steamcmd_would_split_or_read_as_commands() {
        for bad in ["", "-beta", "+quit", "a b", "a\"b", ".x", &"x".repeat(65)] {
            assert!(check_token("branch", bad).is_err(), "{bad:?}");
            assert!(login(bad).is_err());
        }
        let login = Login::Anonymous;
        let update = AppUpdate {
            install_dir: "/overlay",
            login: &login,
            platform: None,
            branch: "beta",
            beta_password: Some("two words"),
            validate: false,
        };
        assert_eq!(update.argv().unwrap_err(), ArgsError::Password);
    }
}
