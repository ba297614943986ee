//! `left4mectl game login USER`: SteamCMD logs the account in once, interactively, and caches
//! its credentials in its home, so later runs log in with `+login USER` alone.
//!
//! The password and the Steam Guard code are typed at SteamCMD's own prompts on the
//! operator's terminal (`systemd-run --pty`), so they are in no argument vector, no unit
//! property, no journal line (a `--pty` unit's output goes to the terminal) and no ledger row
//! (the row keeps no output). The unit is the same sandbox as every SteamCMD run, with
//! SteamCMD's home writable: that is where the credentials are cached.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use left4me_game::steamcmd::args;

use super::files::GameDirs;
use super::{GameJob, GameJobError, LEDGER_NAME, SteamcmdUnit};
use crate::PathIo;
use crate::content;
use crate::job::{Host, JobKind, Limits, Resolver};
use crate::ledger::{Ending, LedgerStatus, now_ms};
use crate::pipeline::write_resolver;
use crate::preflight;
use crate::progress::Progress;
use crate::record;
use crate::systemd::UnitRunner;
use crate::unit::TransientUnit;

/// An interactive login, as plain data.
#[derive(Debug, Clone)]
pub struct LoginJob {
    /// The Steam account name.
    pub user: String,
    pub state_dir: PathBuf,
    /// A staging dir with an empty `tree/` (the sandbox always has an `/overlay`; nothing is
    /// written there); the caller removes it.
    pub output: PathBuf,
    /// SteamCMD's home (`game/steamcmd`).
    pub home: PathBuf,
    pub game_user: String,
    pub sandbox_user: String,
    pub limits: Limits,
}

/// How the login ended: SteamCMD's exit status (0: the credentials are cached) and the
/// ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginReport {
    pub exit_status: Option<i32>,
    pub ledger_id: i64,
    pub unit: String,
}

/// The unit of login run `id` (run it with [`TransientUnit::interactive_args`]).
pub fn login_unit(
    job: &LoginJob,
    id: &str,
    resolver: Option<&Resolver>,
) -> Result<TransientUnit, GameJobError> {
    Ok(SteamcmdUnit {
        kind: JobKind::GameLogin,
        id,
        game_user: &job.game_user,
        sandbox_user: &job.sandbox_user,
        limits: &job.limits,
        output: &job.output,
        lowers: &[],
        home: &job.home,
        resolver,
        args: args::login(&job.user)?
            .into_iter()
            .map(OsString::from)
            .collect(),
    }
    .unit())
}

/// Runs the login on this process's terminal and records it (without output) in the ledger.
/// `runner` is asked only the preflight questions (root, systemd, no other game job); the
/// unit itself is started with `systemd-run --pty`, which needs the terminal.
pub fn login(
    job: &LoginJob,
    host: &Host,
    runner: &dyn UnitRunner,
    progress: &mut dyn Progress,
) -> Result<LoginReport, GameJobError> {
    const KIND: JobKind = JobKind::GameLogin;
    preflight::check_host(runner)?;
    preflight::check_user_names(&job.game_user, &job.sandbox_user, host)?;
    preflight::check_no_earlier_units(KIND, LEDGER_NAME, runner)?;
    args::login(&job.user)?;
    // The same checks of the dirs as a SteamCMD job (home with steamcmd.sh, staging tree).
    GameDirs::open(&GameJob {
        action: super::Action::Check,
        login: args::Login::Account(job.user.clone()),
        branch: args::PUBLIC_BRANCH.into(),
        beta_password: None,
        state_dir: job.state_dir.clone(),
        output: job.output.clone(),
        lowers: Vec::new(),
        home: job.home.clone(),
        game_user: job.game_user.clone(),
        sandbox_user: job.sandbox_user.clone(),
        limits: job.limits.clone(),
        expected_download: None,
        expected_build: None,
        retry: super::RetryPolicy::default(),
    })?;
    let ledger = record::open_ledger(host, KIND, LEDGER_NAME, progress)?;
    let id = content::new_build_id()?;
    let resolver = Resolver::for_run(host, &format!("login-{id}"));
    let _resolv_guard = write_resolver(&resolver, &host.run_dir)?;
    let unit = login_unit(job, &id, Some(&resolver))?;
    let ledger_id = ledger.begin(KIND, LEDGER_NAME, &unit.unit, now_ms())?;
    let status = Command::new("systemd-run")
        .args(unit.interactive_args())
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    let exit_status = status.as_ref().ok().and_then(|s| s.code());
    let (ledger_status, detail) = match &status {
        Ok(s) if s.success() => (
            LedgerStatus::Success,
            "SteamCMD cached the account's credentials".to_owned(),
        ),
        Ok(s) => (LedgerStatus::Failed, format!("the login failed ({s})")),
        Err(e) => (LedgerStatus::Failed, format!("cannot run systemd-run: {e}")),
    };
    ledger.finish(
        ledger_id,
        &Ending {
            ended_ms: now_ms(),
            status: ledger_status,
            result: None,
            exit_status: exit_status.map(i64::from),
            detail: &detail,
            log_tail: "",
        },
    )?;
    status.map_err(PathIo::at("run", std::path::Path::new("systemd-run")))?;
    Ok(LoginReport {
        exit_status,
        ledger_id,
        unit: unit.unit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steamcmd::STEAMCMD_IN_SANDBOX;

    #[test]
    fn the_login_unit_has_no_password_and_a_terminal() {
        let job = LoginJob {
            user: "operator".into(),
            state_dir: "/var/lib/left4me".into(),
            output: "/var/lib/left4me/game/versions/.new-0a0b0c0d".into(),
            home: "/var/lib/left4me/game/steamcmd".into(),
            game_user: "left4me".into(),
            sandbox_user: "l4d2-sandbox".into(),
            limits: Limits {
                memory_max: "1G".into(),
                tasks_max: 64,
                timeout: "15min".into(),
            },
        };
        let unit = login_unit(&job, "0a0b0c0d", None).unwrap();
        assert_eq!(unit.unit, "left4me-game-login-0a0b0c0d.service");
        let args: Vec<String> = unit
            .interactive_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--pty".to_owned()) && !args.contains(&"--pipe".to_owned()));
        let tail = &args[args.len() - 4..];
        assert_eq!(tail, [STEAMCMD_IN_SANDBOX, "+login", "operator", "+quit"]);
        assert!(args.contains(&"SystemCallArchitectures=native x86".to_owned()));
        let bad = LoginJob {
            user: "-x".into(),
            ..job
        };
        assert!(login_unit(&bad, "0a0b0c0d", None).is_err());
    }
}
