//! A content job as plain data: what runs in the sandbox, under which profile, network and
//! limits, and which content dir it publishes to; plus the host paths the pipeline works in.
//!
//! [`Job::plan`] turns a job into the [`Plan`] of one run: a fresh id, the transient unit and
//! the resolver the unit shows the job. A plan changes nothing on the host, so a caller can show
//! it (`--dry-run`, `--unit-file`) or run it ([`crate::pipeline::run`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use left4me_contract::sandbox::Profile;

use crate::content::{self, ContentError, OverlayDirs};
use crate::resolver::{self, ResolverPlan};
use crate::unit::TransientUnit;

/// Where jobs keep their resolv.conf files while they run (root's: created 0700).
pub const RUN_DIR: &str = "/run/left4me/builds";

/// What a job is, for the ledger and the unit's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// `left4mectl overlay build`: a script overlay's script.
    OverlayBuild,
    /// `left4mectl game install`: SteamCMD installs the game into a new version.
    GameInstall,
    /// `left4mectl game update`: SteamCMD updates a new layer over the current version.
    GameUpdate,
    /// `left4mectl game validate`: SteamCMD validates into a new layer.
    GameValidate,
    /// `left4mectl game check`: SteamCMD asks Steam for the remote build id.
    GameCheck,
    /// SteamCMD itself downloaded into `game/steamcmd` (Valve's tarball, in the sandbox).
    SteamcmdBootstrap,
    /// `left4mectl game login USER`: SteamCMD caches an account's credentials (interactive).
    GameLogin,
    /// `left4mectl overlay build` of a workshop overlay: the missing items downloaded.
    WorkshopDownload,
}

/// The kinds that work on the game: one of them at a time (they share SteamCMD's home).
pub const GAME_KINDS: [JobKind; 6] = [
    JobKind::GameInstall,
    JobKind::GameUpdate,
    JobKind::GameValidate,
    JobKind::GameCheck,
    JobKind::SteamcmdBootstrap,
    JobKind::GameLogin,
];

impl JobKind {
    const ALL: [JobKind; 8] = [
        JobKind::OverlayBuild,
        JobKind::GameInstall,
        JobKind::GameUpdate,
        JobKind::GameValidate,
        JobKind::GameCheck,
        JobKind::SteamcmdBootstrap,
        JobKind::GameLogin,
        JobKind::WorkshopDownload,
    ];

    /// The name the ledger stores.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::OverlayBuild => "overlay-build",
            JobKind::GameInstall => "game-install",
            JobKind::GameUpdate => "game-update",
            JobKind::GameValidate => "game-validate",
            JobKind::GameCheck => "game-check",
            JobKind::SteamcmdBootstrap => "steamcmd-bootstrap",
            JobKind::GameLogin => "game-login",
            JobKind::WorkshopDownload => "workshop-download",
        }
    }

    /// The kind the ledger stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The prefix of its units: `left4me-build-NAME-ID.service`, `left4me-game-install-ID.service`.
    pub fn unit_prefix(self) -> &'static str {
        match self {
            JobKind::OverlayBuild => "left4me-build",
            JobKind::GameInstall => "left4me-game-install",
            JobKind::GameUpdate => "left4me-game-update",
            JobKind::GameValidate => "left4me-game-validate",
            JobKind::GameCheck => "left4me-game-check",
            JobKind::SteamcmdBootstrap => "left4me-steamcmd-bootstrap",
            JobKind::GameLogin => "left4me-game-login",
            JobKind::WorkshopDownload => "left4me-workshop",
        }
    }

    /// What every unit of the job of `name` starts with, before its 8-hex-digit id: overlay
    /// builds carry the overlay's name, game jobs (one game per host) do not.
    pub fn unit_stem(self, name: &str) -> String {
        match self {
            JobKind::OverlayBuild | JobKind::WorkshopDownload => {
                format!("{}-{name}-", self.unit_prefix())
            }
            _ => format!("{}-", self.unit_prefix()),
        }
    }

    /// The unit of run `id` of the job of `name`.
    pub fn unit_name(self, name: &str, id: &str) -> String {
        format!("{}{id}.service", self.unit_stem(name))
    }

    /// The kinds a job of this kind must not run beside (itself included).
    pub fn family(self) -> &'static [JobKind] {
        match self {
            JobKind::OverlayBuild => &[JobKind::OverlayBuild],
            JobKind::WorkshopDownload => &[JobKind::WorkshopDownload],
            _ => &GAME_KINDS,
        }
    }

    /// The unit's description for the job of `name`.
    pub fn describe(self, name: &str) -> String {
        match self {
            JobKind::OverlayBuild => format!("left4me build of overlay {name}"),
            JobKind::GameInstall => "left4me game install (SteamCMD)".into(),
            JobKind::GameUpdate => "left4me game update (SteamCMD)".into(),
            JobKind::GameValidate => "left4me game validate (SteamCMD)".into(),
            JobKind::GameCheck => "left4me game check (SteamCMD)".into(),
            JobKind::SteamcmdBootstrap => "left4me SteamCMD bootstrap".into(),
            JobKind::GameLogin => "left4me SteamCMD login".into(),
            JobKind::WorkshopDownload => format!("left4me workshop download for overlay {name}"),
        }
    }

    /// What an earlier run is called in messages: `build of overlay NAME`, `game install`.
    pub fn what(self, name: &str) -> String {
        match self {
            JobKind::OverlayBuild => format!("build of overlay {name}"),
            JobKind::WorkshopDownload => format!("workshop download of overlay {name}"),
            other => other.as_str().replace('-', " "),
        }
    }
}

/// The job's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// No network namespace of the host, no IP sockets.
    Off,
    /// Public addresses only, TCP only to `ports`; DNS through the host's resolvers.
    Public { ports: Vec<u16> },
}

/// The unit's cgroup and time limits, as systemd takes them (`4G`, `512`, `1h`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `MemoryMax=`.
    pub memory_max: String,
    /// `TasksMax=`.
    pub tasks_max: u32,
    /// `RuntimeMaxSec=`.
    pub timeout: String,
}

/// One content job.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: JobKind,
    /// What the ledger files it under (the overlay's name).
    pub name: String,
    /// The command inside the sandbox, with its arguments.
    pub command: Vec<OsString>,
    /// The sandbox runner's policy.
    pub profile: Profile,
    pub network: NetworkPolicy,
    pub limits: Limits,
    /// The content dir the job publishes to, with its build and old siblings.
    pub output: OverlayDirs,
    /// The user published content belongs to (host.toml `game_user`).
    pub game_user: String,
    /// The user the command runs as (host.toml `sandbox_user`).
    pub sandbox_user: String,
}

/// The host files the pipeline reads and writes, besides the job's own content dirs.
#[derive(Debug, Clone)]
pub struct Host {
    /// The ledger database (`left4me.db`).
    pub database: PathBuf,
    /// `<state_dir>/runtime`: where instances mount their overlays (for retiring old content).
    pub runtime_root: PathBuf,
    /// Root's locks dir (`<admin_dir>/locks`): the overlay's lock.
    pub locks_dir: PathBuf,
    /// The resolv.conf files of running jobs ([`RUN_DIR`]).
    pub run_dir: PathBuf,
    /// The passwd file the users are looked up in.
    pub passwd: PathBuf,
    /// The host's resolver configuration.
    pub etc_resolv_conf: PathBuf,
    /// systemd-resolved's list of its upstream servers.
    pub resolved_upstream: PathBuf,
}

impl Host {
    /// The real host's paths, with the ledger at `database`, instances under `runtime_root`
    /// and root's locks in `locks_dir`.
    pub fn new(database: PathBuf, runtime_root: PathBuf, locks_dir: PathBuf) -> Self {
        Host {
            database,
            runtime_root,
            locks_dir,
            run_dir: PathBuf::from(RUN_DIR),
            passwd: PathBuf::from(left4me_contract::passwd::PASSWD),
            etc_resolv_conf: PathBuf::from(resolver::ETC_RESOLV_CONF),
            resolved_upstream: PathBuf::from(resolver::RESOLVED_UPSTREAM),
        }
    }
}

/// The build's own resolv.conf: where it is written and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub path: PathBuf,
    pub plan: ResolverPlan,
}

impl Resolver {
    /// The resolver of the run `stem` (`maps-1a2b3c4d`): `<run dir>/STEM.resolv.conf`, from
    /// the host's resolver configuration.
    pub(crate) fn for_run(host: &Host, stem: &str) -> Resolver {
        Resolver {
            path: host.run_dir.join(format!("{stem}.resolv.conf")),
            plan: read_resolver(&host.etc_resolv_conf, &host.resolved_upstream),
        }
    }
}

/// One run of a job, before anything on the host changed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// 8 hex digits: names the unit and the build dir.
    pub id: String,
    /// The fresh dir the command fills (`overlays/.NAME.build-ID`).
    pub output: PathBuf,
    /// The resolver, when the job has network.
    pub resolver: Option<Resolver>,
    pub unit: TransientUnit,
}

impl Job {
    /// Plans one run: a new id, the resolver from the host's configuration, the unit.
    pub fn plan(&self, host: &Host) -> Result<Plan, ContentError> {
        let id = content::new_build_id()?;
        let output = self.output.build(&id);
        let resolver = match self.network {
            NetworkPolicy::Off => None,
            NetworkPolicy::Public { .. } => {
                Some(Resolver::for_run(host, &format!("{}-{id}", self.name)))
            }
        };
        let unit = TransientUnit::new(self, &id, &output, resolver.as_ref());
        Ok(Plan {
            id,
            output,
            resolver,
            unit,
        })
    }
}

/// The resolver plan for a host whose files are at `etc` and `upstream`.
fn read_resolver(etc: &Path, upstream: &Path) -> ResolverPlan {
    let etc = std::fs::read_to_string(etc).unwrap_or_default();
    let upstream = std::fs::read_to_string(upstream).ok();
    resolver::plan(&etc, upstream.as_deref())
}
