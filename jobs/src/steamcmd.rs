//! SteamCMD runs as jobs (DESIGN §8, docs/game.md "SteamCMD in the sandbox"): one `game
//! install`, `update`, `validate` or `check` is one or more SteamCMD runs, each a transient
//! unit in `l4d2-build.slice` running `left4me-sandbox --profile steamcmd`, streamed, guarded
//! and recorded in the ledger by the same steps as overlay builds (`crate::record`).
//!
//! The request is plain data ([`GameJob`]); [`run`] carries it out and returns a
//! [`GameReport`]. What is decided here, and why:
//!
//! - **Where.** SteamCMD runs from its own writable copy, `/home/steamcmd/steamcmd.sh` (the
//!   caller's `home`, `game/steamcmd`, idmapped writable at `/home/steamcmd`; [`bootstrap`]
//!   makes it exist), with `+force_install_dir /overlay`: `/overlay` is the overlay of the
//!   caller's `lowers` (read-only, topmost first) under `output/tree` (the new layer). Files
//!   it writes are root's on disk (`--owner root`).
//! - **Room first.** The state dir's file system must have the expected download, 250 MiB for
//!   SteamCMD's self-update and the disk guard's reserve free ([`estimate_download`] says how
//!   the download is guessed); the disk guard kills a run that eats into the reserve anyway.
//! - **`steamapps/` first.** Created in `output/tree` before the first run (SteamCMD fails an
//!   install into a dir without it).
//! - **Anonymous "Invalid platform"** (steam-for-linux #11522): a linux run that fails with it
//!   is followed by the known two-pass workaround, a `windows` pass and then a `linux` pass
//!   with `validate`; the report says so ([`GameReport::platform_workaround`]). With an
//!   account, the account is used and no workaround is tried.
//! - **Retries.** Network errors (`0x402`/`0x602`, AppInfo timeouts, exit status 1) are
//!   retried with exponential backoff; a login rate limit waits ([`RetryPolicy`]); everything
//!   else (disk full, no subscription, login failures, permissions) is final.
//! - **Never trust a success line.** After the last pass the appmanifest is read from the new
//!   layer (or the lowers below it) and checked ([`left4me_game::steamcmd::manifest`]): a run
//!   that says `Success!` over a half-done install fails here. Only then may the caller
//!   publish.
//! - **The beta password** never appears in an argument vector, the unit, the journal or the
//!   ledger: the `app_update` command holding it goes into a `+runscript` file written by root
//!   (mode 0600) into SteamCMD's home for the run and removed after it, and every output line
//!   is scrubbed of it before anyone sees it.
//!
//! [`sdk::install_sdk`] copies SteamCMD's `steamclient.so` to `game/sdk/sdk32` and `sdk64`
//! (the caller runs it after a successful job).
//!
//! [`login::login`] caches an account's credentials interactively (`left4mectl game login`).
//!
//! The caller holds the game's lock (the version store's) for the whole job: this module
//! takes none, and refuses to start beside a loaded unit of any game job.

mod files;
mod flow;
mod tap;
#[cfg(test)]
mod tests;

pub mod bootstrap;
pub mod login;
pub mod sdk;

use std::path::PathBuf;
use std::time::Duration;

use left4me_game::steamcmd::appinfo::AppInfoError;
use left4me_game::steamcmd::args::{ArgsError, Platform};
use left4me_game::steamcmd::manifest::{ManifestError, Problem};
use left4me_game::steamcmd::output::{Phase, SteamError, Verdict};
use left4me_statedir::DirError;

pub use flow::{estimate_download, run};
pub use left4me_game::steamcmd::args::Login;

use crate::PathIo;
use crate::content::ContentError;
use crate::job::{JobKind, Limits};
use crate::ledger::LedgerError;
use crate::pipeline::JobError;
use crate::preflight::PreflightError;
use crate::progress::Event;
use crate::verdict::Failure;
use crate::{format_bytes, format_duration};

/// The ledger name of every game job (one game per host; `:` keeps it apart from overlay
/// names, which cannot hold one).
pub const LEDGER_NAME: &str = "game:222860";

/// SteamCMD inside the sandbox: its own copy in its home.
pub const STEAMCMD_IN_SANDBOX: &str = "/home/steamcmd/steamcmd.sh";

/// Where the new layer is seen inside the sandbox (`+force_install_dir`).
pub const INSTALL_DIR_IN_SANDBOX: &str = "/overlay";

/// What SteamCMD's self-update may need besides the download.
pub const SELF_UPDATE_BYTES: u64 = 250 << 20;

/// The TCP ports SteamCMD needs: HTTP and HTTPS for content and its own update, 27015-27050
/// for Steam's connection managers (Valve's "Required Ports for Steam").
pub fn steam_ports() -> Vec<u16> {
    let mut ports = vec![80, 443];
    ports.extend(27015..=27050);
    ports
}

/// What the job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A first install (usually no lowers); validates.
    Install,
    /// An update over the lowers.
    Update,
    /// An update with `validate`.
    Validate,
    /// Only the remote build id (`app_info_print`): nothing is written but SteamCMD's home.
    Check,
}

impl Action {
    /// The ledger's kind of job.
    pub fn kind(self) -> JobKind {
        match self {
            Action::Install => JobKind::GameInstall,
            Action::Update => JobKind::GameUpdate,
            Action::Validate => JobKind::GameValidate,
            Action::Check => JobKind::GameCheck,
        }
    }
}

/// A secret (the beta password): its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }
    /// The secret itself, for the one place that must write it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How often and how long a job waits and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs in all for errors a retry may fix (network, AppInfo timeouts).
    pub attempts: u32,
    /// The first backoff; doubled after every retry, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long to wait after "Rate Limit Exceeded" (Steam blocks logins from the address for
    /// about half an hour, and every failed try starts the block again).
    pub rate_limit_wait: Duration,
    /// How many times to wait for the rate limit before giving up.
    pub rate_limit_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
            rate_limit_wait: Duration::from_secs(31 * 60),
            rate_limit_retries: 1,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first).
    pub fn backoff_for(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// One game job, as plain data.
#[derive(Debug, Clone)]
pub struct GameJob {
    pub action: Action,
    pub login: Login,
    /// The branch (`public` unless asked).
    pub branch: String,
    pub beta_password: Option<Secret>,
    /// The state dir every path below lies beneath.
    pub state_dir: PathBuf,
    /// The staging dir (`game/versions/.new-JOB`), made by the caller, holding `tree/` (the
    /// new layer, root's, empty) and `work/` (overlayfs' work dir, when there are lowers).
    /// A `check` needs one too (the sandbox always has an `/overlay`); nothing is written
    /// there, and the caller removes it afterwards.
    pub output: PathBuf,
    /// The layers below the new one, topmost first (`game/versions/ID/tree`, …).
    pub lowers: Vec<PathBuf>,
    /// SteamCMD's home, `game/steamcmd`, holding `steamcmd.sh` ([`bootstrap`]).
    pub home: PathBuf,
    pub game_user: String,
    pub sandbox_user: String,
    pub limits: Limits,
    /// The download the caller expects, in bytes; `None`: [`estimate_download`] guesses.
    pub expected_download: Option<u64>,
    /// The build the appmanifest must show (the remote build a `check` found); `None`: any.
    pub expected_build: Option<u64>,
    pub retry: RetryPolicy,
}

/// What a SteamCMD unit is made of, whatever the run: its kind and id, the users and limits,
/// the staging dir (`output`, with `tree/` and `work/`), the lowers, SteamCMD's home and the
/// arguments after `steamcmd.sh`.
pub(crate) struct SteamcmdUnit<'a> {
    pub kind: JobKind,
    pub id: &'a str,
    pub game_user: &'a str,
    pub sandbox_user: &'a str,
    pub limits: &'a Limits,
    pub output: &'a std::path::Path,
    pub lowers: &'a [PathBuf],
    pub home: &'a std::path::Path,
    pub resolver: Option<&'a crate::job::Resolver>,
    pub args: Vec<std::ffi::OsString>,
}

impl SteamcmdUnit<'_> {
    /// The transient unit: `left4me-sandbox --profile steamcmd --owner root` running
    /// `steamcmd.sh` from its home, TCP to [`steam_ports`] of public addresses.
    pub(crate) fn unit(self) -> crate::unit::TransientUnit {
        use left4me_contract::Profile;
        use left4me_contract::sandbox::{Network, ROOT_OWNER, SandboxArgs};
        let ports = steam_ports();
        let mut command = vec![std::ffi::OsString::from(STEAMCMD_IN_SANDBOX)];
        command.extend(self.args);
        crate::unit::TransientUnit::from_spec(&crate::unit::UnitSpec {
            kind: self.kind,
            name: LEDGER_NAME,
            id: self.id,
            user: self.game_user,
            limits: self.limits,
            network: &crate::job::NetworkPolicy::Public {
                ports: ports.clone(),
            },
            writable: vec![self.output, self.home],
            resolver: self.resolver,
            sandbox: SandboxArgs {
                output: self.output.to_path_buf(),
                user: self.sandbox_user.to_owned(),
                owner: ROOT_OWNER.into(),
                profile: Profile::Steamcmd,
                network: Network::Tcp { ports },
                allow_exec: Vec::new(),
                lowers: self.lowers.to_vec(),
                home: Some(self.home.to_path_buf()),
                command,
            },
        })
    }
}

/// One SteamCMD run of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// `+@sSteamCmdForcePlatformType`.
    pub platform: Option<Platform>,
    pub validate: bool,
}

/// A SteamCMD progress line, with what the caller needs to draw a bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Download {
    pub phase: Phase,
    /// SteamCMD's name of the phase (`downloading`, `verifying update`).
    pub name: String,
    pub percent: f64,
    /// Bytes done and in all, in this phase.
    pub done: u64,
    pub total: u64,
    /// Bytes per second since the phase began (once there is a second to go by).
    pub rate: Option<f64>,
    /// Time left at that rate.
    pub eta: Option<Duration>,
}

/// What a game job tells its caller as it happens.
#[derive(Debug)]
pub enum GameEvent<'a> {
    /// What every job says (output lines, scrubbed of the beta password, included).
    Job(Event<'a>),
    /// A SteamCMD run starts: its pass and its number in the job (from 1).
    Run { pass: &'a Pass, run: u32 },
    /// A progress line, parsed.
    Download(&'a Download),
    /// Waiting before the next run, and why.
    Waiting { why: &'a Verdict, wait: Duration },
    /// The anonymous "Invalid platform" workaround starts (windows pass, then linux with
    /// validate).
    PlatformWorkaround,
}

/// Receives a game job's events (one call at a time).
pub trait GameProgress: Send {
    fn event(&mut self, event: GameEvent<'_>);
}

impl<F: FnMut(GameEvent<'_>) + Send> GameProgress for F {
    fn event(&mut self, event: GameEvent<'_>) {
        self(event)
    }
}

/// Why a game job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameFailure {
    #[error(
        "{}: the state dir's file system has {} free",
        SteamError::DiskFull { state: *state },
        format_bytes(*free)
    )]
    DiskFull { state: u32, free: u64 },
    /// What SteamCMD's output and exit status say.
    #[error("{0}")]
    Steam(Verdict),
    #[error("{verdict} (gave up after {runs} runs)")]
    GaveUp { verdict: Verdict, runs: u32 },
    /// The run's unit failed (time or memory limit, the disk guard, the sandbox).
    #[error("{0}")]
    Job(Failure),
    /// SteamCMD said it succeeded; its appmanifest says otherwise.
    #[error("SteamCMD reported success, but the appmanifest says: {}", join(.0))]
    Manifest(Vec<Problem>),
    #[error("SteamCMD reported success, but left no appmanifest_222860.acf")]
    NoManifest,
    #[error("SteamCMD reported success, but {0}")]
    BadManifest(ManifestError),
    #[error("{0}")]
    AppInfo(AppInfoError),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How a game job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameStatus {
    /// Installed and checked (the caller may publish), or, for `check`, the remote build read.
    Succeeded,
    Failed(GameFailure),
    /// A signal to this process stopped it.
    Interrupted,
}

/// What a game job did.
#[derive(Debug, Clone)]
pub struct GameReport {
    pub status: GameStatus,
    /// The installed build (from the appmanifest), or for `check` the remote one.
    pub build_id: Option<u64>,
    /// `BytesDownloaded` of the appmanifest.
    pub bytes_downloaded: u64,
    /// Bytes in regular files of the new layer (`output/tree`).
    pub bytes_written: u64,
    /// The passes run, in order (retries repeat a pass).
    pub passes: Vec<Pass>,
    /// Whether the anonymous two-pass "Invalid platform" workaround was taken.
    pub platform_workaround: bool,
    /// The ledger rows, one per SteamCMD run; the last decides.
    pub ledger_ids: Vec<i64>,
    pub elapsed: Duration,
    /// The last lines of the last run (scrubbed of the beta password).
    pub log_tail: Vec<String>,
}

impl GameReport {
    /// The last ledger row.
    pub fn ledger_id(&self) -> Option<i64> {
        self.ledger_ids.last().copied()
    }
    /// How many SteamCMD runs it took.
    pub fn runs(&self) -> usize {
        self.passes.len()
    }
}

/// Why a game job could not be carried out (a job that ran and failed is a [`GameReport`]).
#[derive(Debug, thiserror::Error)]
pub enum GameJobError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Io(#[from] PathIo),
    #[error(transparent)]
    Args(#[from] ArgsError),
    #[error("{} is not beneath the state dir {}", path.display(), state_dir.display())]
    NotBeneath { path: PathBuf, state_dir: PathBuf },
    #[error(
        "{} has {} free; the download needs about {} (with SteamCMD's self-update) and builds \
         keep {} free: make room first",
        path.display(),
        format_bytes(*free),
        format_bytes(*needed),
        format_bytes(*reserve)
    )]
    NoRoom {
        path: PathBuf,
        free: u64,
        needed: u64,
        reserve: u64,
    },
    #[error(
        "{} has no steamcmd.sh: bootstrap SteamCMD first (jobs::steamcmd::bootstrap)",
        home.display()
    )]
    NoSteamcmd { home: PathBuf },
}

impl GameReport {
    /// One line about it, for the operator.
    pub fn verdict(&self) -> String {
        let took = format_duration(self.elapsed);
        match &self.status {
            GameStatus::Succeeded => format!(
                "build {} after {} run(s) in {took}{}",
                self.build_id.map_or("?".into(), |b| b.to_string()),
                self.runs(),
                if self.platform_workaround {
                    " (anonymous Invalid-platform workaround: windows pass, then linux with validate)"
                } else {
                    ""
                }
            ),
            GameStatus::Failed(failure) => format!("failed after {took}: {failure}"),
            GameStatus::Interrupted => format!("stopped by a signal after {took}"),
        }
    }
}
