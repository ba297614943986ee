//! What every game verb works with: the state dir and the version store opened once under the
//! game lock, SteamCMD wired to the job machinery (its home, limits, login, bootstrap, one
//! run), the publish with `steamclient.so` put where the game server finds it, and the pins.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use left4me_contract::game::{GAME, STEAMCMD_HOME};
use left4me_game::store::{NewVersion, Staging, Store, Version};
use left4me_jobs::steamcmd::bootstrap::{self, BootstrapJob, Bootstrapped, Source};
use left4me_jobs::steamcmd::{Action, GameJob, GameReport, Login, RetryPolicy, Secret, sdk};
use left4me_jobs::{Host, Limits, Stop, SystemdRun};
use left4me_spec::Catalog;
use left4me_statedir::{Lock, LockError, StateDir, Subject};

use super::printer::Printer;
use crate::Ctx;
use crate::error::UsageError;
use crate::output::emit;

/// The limits of every SteamCMD unit: a full install of 222860 downloads about 10 GB.
const STEAMCMD_MEMORY_MAX: &str = "2G";
const STEAMCMD_TASKS_MAX: u32 = 512;
const STEAMCMD_TIMEOUT: &str = "6h";

/// The file in root's admin dir naming the Steam account `game login` cached (absent:
/// anonymous).
pub(super) const LOGIN_FILE: &str = "steam-login";

/// The directory in root's admin dir keeping beta passwords, one file per branch.
const BETA_PASSWORDS: &str = "steam-beta-passwords";

/// A Steam branch and its beta password, if it has one.
#[derive(Debug, Clone)]
pub(super) struct Branch {
    pub(super) name: String,
    pub(super) password: Option<Secret>,
}

/// Writes `text` to `path` (creating its directory 0700) as a root-only file: temp (0600),
/// fsync, rename.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let dir = path.parent().context("a kept file has a directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let temp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("create {}", temp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path))
        .with_context(|| format!("write {}", path.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
}

/// Everything a game verb works with, opened once, the game lock held.
pub(super) struct Game {
    pub(super) catalog: Catalog,
    pub(super) state_dir: PathBuf,
    pub(super) store: Store,
    pub(super) host: Host,
    _lock: Lock,
}

impl Game {
    /// Opens the state dir and the store (creating `game/` when `create`), taking the game lock
    /// (waiting for another game verb, and saying so).
    pub(super) fn open(ctx: &Ctx) -> anyhow::Result<Game> {
        if !rustix::process::geteuid().is_root() {
            return Err(UsageError::new(
                "the game verbs install and update the game as root: run left4mectl as root",
            )
            .into());
        }
        let catalog = ctx.catalog()?;
        let layout = &catalog.layout;
        let lock = match Lock::take(&layout.locks_dir(), Subject::Game, false) {
            Err(LockError::Busy { .. }) => {
                eprintln!("waiting for another `left4mectl game` to finish");
                Lock::take(&layout.locks_dir(), Subject::Game, true)?
            }
            other => other?,
        };
        let state = StateDir::open(&layout.state_dir)?;
        let store = Store::open(&state, true)?.context("the game store was not created")?;
        let host = crate::verbs::overlay::job_host(layout);
        Ok(Game {
            state_dir: layout.state_dir.clone(),
            catalog,
            store,
            host,
            _lock: lock,
        })
    }

    /// SteamCMD's home, `game/steamcmd`.
    pub(super) fn home(&self) -> PathBuf {
        self.state_dir.join(GAME).join(STEAMCMD_HOME)
    }

    pub(super) fn limits() -> Limits {
        Limits {
            memory_max: STEAMCMD_MEMORY_MAX.into(),
            tasks_max: STEAMCMD_TASKS_MAX,
            timeout: STEAMCMD_TIMEOUT.into(),
        }
    }

    /// The account `game login` cached, else anonymous.
    pub(super) fn login(&self) -> anyhow::Result<Login> {
        let path = self.catalog.layout.admin_dir.join(LOGIN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok(Login::Account(text.trim().to_owned())),
            Ok(_) => Ok(Login::Anonymous),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Login::Anonymous),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Where the beta password of `branch` is kept: root's admin dir (0700), a file of mode
    /// 0600, so the timer's updates of a password-protected branch need no operator.
    fn beta_password_file(&self, branch: &str) -> PathBuf {
        self.catalog
            .layout
            .admin_dir
            .join(BETA_PASSWORDS)
            .join(branch)
    }

    /// The beta password of `branch`: `given` (and then kept for later runs), else the one kept
    /// from an earlier run, else none.
    pub(super) fn beta_password(
        &self,
        branch: &str,
        given: Option<&Path>,
    ) -> anyhow::Result<Option<Secret>> {
        let kept = self.beta_password_file(branch);
        let Some(given) = given else {
            return match std::fs::read_to_string(&kept) {
                Ok(text) => Ok(Some(Secret::new(text.trim_end_matches('\n')))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("cannot read {}", kept.display())),
            };
        };
        let text = if given == Path::new("-") {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line
        } else {
            std::fs::read_to_string(given).with_context(|| {
                format!("cannot read the beta password from {}", given.display())
            })?
        };
        let password = text.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() || password.contains('\n') {
            return Err(UsageError::new(format!(
                "{}: expected the beta password on one line",
                given.display()
            ))
            .into());
        }
        write_private(&kept, &password)?;
        Ok(Some(Secret::new(password)))
    }

    /// Makes SteamCMD exist in its home (copied from host.toml's or Debian's, or downloaded).
    pub(super) fn bootstrap(&self, printer: &mut Printer) -> anyhow::Result<()> {
        let job = BootstrapJob {
            state_dir: self.state_dir.clone(),
            home: self.home(),
            configured: self.catalog.host.steamcmd.clone(),
            debian_dir: PathBuf::from(bootstrap::DEBIAN_DIR),
            url: self.catalog.host.steamcmd_url.clone(),
            game_user: self.catalog.host.game_user.clone(),
            sandbox_user: self.catalog.host.sandbox_user.clone(),
            limits: Game::limits(),
        };
        match bootstrap::bootstrap(&job, &self.host, &SystemdRun, &Stop::new(), printer)? {
            Bootstrapped::Ready(Source::Present) => Ok(()),
            Bootstrapped::Ready(source) => {
                let from = match source {
                    Source::Configured(path) => format!("host.toml's {}", path.display()),
                    Source::Debian(path) => format!("Debian's {}", path.display()),
                    _ => job.url.clone(),
                };
                emit(&format!(
                    "SteamCMD: copied into {} from {from}\n",
                    job.home.display()
                ))?;
                Ok(())
            }
            Bootstrapped::Failed { status, ledger_id } => Err(anyhow::anyhow!(
                "SteamCMD could not be downloaded from {} ({}; ledger row {ledger_id}); set \
                 host.toml steamcmd to an installed steamcmd.sh",
                job.url,
                status.detail()
            )),
        }
    }

    /// One SteamCMD job of `action` into `staging`; gives the staging dir back with the
    /// report, or removes it when the job could not be carried out at all.
    pub(super) fn run(
        &self,
        action: Action,
        branch: &Branch,
        staging: Staging,
        printer: &mut Printer,
    ) -> anyhow::Result<(Staging, GameReport)> {
        match self.run_in(action, branch, &staging, printer) {
            Ok(report) => Ok((staging, report)),
            Err(err) => {
                if let Err(left) = self.store.abandon(staging) {
                    eprintln!("warning: the staging dir stays until the next job: {left}");
                }
                Err(err)
            }
        }
    }

    fn run_in(
        &self,
        action: Action,
        branch: &Branch,
        staging: &Staging,
        printer: &mut Printer,
    ) -> anyhow::Result<GameReport> {
        let job = GameJob {
            action,
            login: self.login()?,
            branch: branch.name.clone(),
            beta_password: branch.password.clone(),
            state_dir: self.state_dir.clone(),
            output: staging.dir.clone(),
            lowers: staging.lowers.clone(),
            home: self.home(),
            game_user: self.catalog.host.game_user.clone(),
            sandbox_user: self.catalog.host.sandbox_user.clone(),
            limits: Game::limits(),
            expected_download: None,
            expected_build: None,
            retry: RetryPolicy::default(),
        };
        let report =
            left4me_jobs::steamcmd::run(&job, &self.host, &SystemdRun, &Stop::new(), printer)?;
        printer.finish();
        Ok(report)
    }

    /// Publishes `staging` as a new current version and puts SteamCMD's `steamclient.so`
    /// where the game server looks for it.
    pub(super) fn publish(&self, staging: Staging, new: NewVersion) -> anyhow::Result<Version> {
        let version = self.store.publish(staging, new)?;
        sdk::install_sdk(&self.state_dir, &self.home())?;
        link_sdk(&self.state_dir)?;
        Ok(version)
    }

    /// The versions specs pin, with who pins them.
    pub(super) fn pins(&self) -> Vec<(String, String)> {
        self.catalog
            .valid()
            .filter_map(|i| Some((i.game_version.clone()?, i.name.clone())))
            .collect()
    }
}

/// The game user's `~/.steam/sdk32` and `sdk64` (its HOME is the state dir) → `game/sdk/…`,
/// where the server finds `steamclient.so` (without it it is LAN-only). Root works here by
/// path, so only in a `.steam` that is root's own directory (DESIGN §2); anything else there (a
/// directory an operator made, a game-user-owned `.steam`) is left alone with a warning.
fn link_sdk(state_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let steam = state_dir.join(".steam");
    match std::fs::symlink_metadata(&steam) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(&steam).with_context(|| format!("create {}", steam.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("inspect {}", steam.display())),
        Ok(meta) if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 => {
            eprintln!(
                "warning: {} is not root's own directory: not linking sdk32/sdk64 there; the \
                 server needs {}/sdk32/steamclient.so (from {})",
                steam.display(),
                steam.display(),
                state_dir.join(GAME).join("sdk").display()
            );
            return Ok(());
        }
        Ok(_) => {}
    }
    for bits in ["sdk32", "sdk64"] {
        let link = steam.join(bits);
        let target = Path::new("..").join(GAME).join("sdk").join(bits);
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if std::fs::read_link(&link).is_ok_and(|t| t == target) {
                    continue;
                }
                std::fs::remove_file(&link)
                    .with_context(|| format!("replace {}", link.display()))?;
            }
            Ok(_) => {
                eprintln!(
                    "warning: {} is not a link: left as it is (the game's {bits} is in {})",
                    link.display(),
                    state_dir.join(GAME).join("sdk").join(bits).display()
                );
                continue;
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("link {} to {}", link.display(), target.display()))?;
    }
    Ok(())
}
