//! The runner: fork, confine the child step by step, execute the command, report its status.
//!
//! The parent stays root and outside every restriction; it only waits, forwards `SIGTERM`,
//! `SIGINT`, `SIGHUP` and `SIGQUIT` to the child and turns the child's end into an exit code. The
//! child, in this order:
//!
//! 1. builds its mount namespace and root ([`crate::mounts`]), with the output directory
//!    idmapped at `/overlay`, and changes to `/overlay`;
//! 2. closes every descriptor above 2 (except the close-on-exec error pipe to the parent);
//! 3. prepares the scrubbed environment ([`ENVIRONMENT`]), umask 022, no core dumps;
//! 4. drops to the sandbox user ([`crate::creds`]);
//! 5. enforces Landlock ([`crate::landlock`]);
//! 6. installs the seccomp filters ([`crate::seccomp`]);
//! 7. executes the command.
//!
//! Mounts come first because they need root and because Landlock rules are opened on paths of
//! the new root. Descriptors are closed before anything of the command's can see them.
//! Privileges go before Landlock so the rules are opened as the user they will confine. Seccomp
//! is last because it forbids the calls the steps before it make (mount, setresuid, …).
//!
//! A failure in the child is written to the error pipe; a successful `execve` closes the pipe
//! empty. So the parent knows whether the exit status is the command's or the runner's.

use std::convert::Infallible;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rustix::fs::Mode;
use rustix::process::{Pid, Resource, Rlimit, Signal, WaitOptions, WaitStatus};

use left4me_contract::passwd::{self, Ids, PASSWD, PasswdError};
use left4me_contract::sandbox::{ROOT_OWNER, SandboxArgs, SandboxArgsError};

use crate::mounts::{IdMap, MountError, MountOps, OverlaySource, RealMounts, RootPlan, Sources};
use crate::policy::{HOME_DIR, OVERLAY_DIR, Policy};
use crate::profile::{self, WriteExecute};
use crate::sources::{OpenSources, open_owned, open_sources};
use crate::{creds, landlock, mounts, seccomp, sys};

/// The whole environment of the command (with `--home`, `HOME` is [`HOME_DIR`] instead).
pub const ENVIRONMENT: [(&str, &str); 4] = [
    ("HOME", "/tmp"),
    ("PATH", "/usr/bin:/bin"),
    ("OVERLAY", OVERLAY_DIR),
    ("LANG", "C.UTF-8"),
];

/// [`ENVIRONMENT`], with `HOME` at [`HOME_DIR`] when the run has a home.
pub fn environment(home: bool) -> [(&'static str, &'static str); 4] {
    let mut env = ENVIRONMENT;
    if home {
        env[0].1 = HOME_DIR;
    }
    env
}

/// Exit code: the sandbox could not be set up; the command did not run.
pub const EXIT_SETUP_FAILED: u8 = 125;
/// Exit code: the command exists but could not be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit code: the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// Signals the parent passes on to the child.
const FORWARDED: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// One sandboxed run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The directory behind `/overlay`; must be owned by `owner`. With `lowers` or the owner
    /// `root` it holds `tree/` (and `work/`), see [`SandboxArgs::output`].
    pub output: PathBuf,
    /// The user the command runs as.
    pub sandbox_user: String,
    /// The user files written to `/overlay` belong to on disk (`root`: uid 0, `steamcmd` only).
    pub owner_user: String,
    /// What the command may access.
    pub policy: Policy,
    /// Read-only lower layers of `/overlay`, topmost first (`steamcmd` only).
    pub lowers: Vec<PathBuf>,
    /// The writable home mounted at [`HOME_DIR`] (`steamcmd` only).
    pub home: Option<PathBuf>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
}

impl Invocation {
    /// The command line this run stands for (for [`SandboxArgs::check`]).
    fn args(&self) -> SandboxArgs {
        SandboxArgs {
            output: self.output.clone(),
            user: self.sandbox_user.clone(),
            owner: self.owner_user.clone(),
            profile: self.policy.profile,
            network: self.policy.network.clone(),
            allow_exec: self.policy.extra_exec.clone(),
            lowers: self.lowers.clone(),
            home: self.home.clone(),
            command: self.command.clone(),
        }
    }
}

impl From<SandboxArgs> for Invocation {
    /// The run the command line asks for.
    fn from(args: SandboxArgs) -> Self {
        let mut policy = Policy::new(args.profile, args.network);
        policy.extra_exec = args.allow_exec;
        Self {
            output: args.output,
            sandbox_user: args.user,
            owner_user: args.owner,
            policy,
            lowers: args.lowers,
            home: args.home,
            command: args.command,
        }
    }
}

/// Which confinement layers the child applies. Production always uses [`Layers::ALL`]; the
/// layer tests switch single layers on to show which one stops a probe. The mount namespace
/// (and so `/overlay`, the read-only root and the closed descriptors) is always there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// Drop to the sandbox user, no capabilities, `no_new_privs`.
    pub credentials: bool,
    /// Landlock.
    pub landlock: bool,
    /// seccomp, and the profile's W^X memory rule (`PR_SET_MDWE`) applied just before it.
    pub seccomp: bool,
}

impl Layers {
    /// Every layer.
    pub const ALL: Self = Self {
        credentials: true,
        landlock: true,
        seccomp: true,
    };
    /// Only the mount namespace (for tests).
    pub const NONE: Self = Self {
        credentials: false,
        landlock: false,
        seccomp: false,
    };
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited with this status.
    Exited(u8),
    /// The command was killed by this signal.
    Signaled(i32),
    /// The sandbox could not be set up or the command could not be executed.
    Failed {
        /// [`EXIT_SETUP_FAILED`], [`EXIT_CANNOT_EXECUTE`] or [`EXIT_NOT_FOUND`].
        code: u8,
        /// What went wrong, with its causes.
        message: String,
    },
}

impl Outcome {
    /// The runner's exit code: the command's status, 128 + signal, or 125/126/127.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Exited(code) => *code,
            Self::Signaled(signal) => 128u8.saturating_add(*signal as u8),
            Self::Failed { code, .. } => *code,
        }
    }
}

/// Errors of the parent, before the child exists or while waiting for it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A combination of settings the runner refuses.
    #[error(transparent)]
    Args(#[from] SandboxArgsError),
    /// A user lookup failed.
    #[error(transparent)]
    User(#[from] PasswdError),
    /// The sandbox user is the owner (or the runner itself): the idmap would change nothing.
    #[error(
        "the sandbox user {sandbox:?} must differ from the owner {owner:?} and from the user running \
         left4me-sandbox, in uid and gid"
    )]
    SameUser { sandbox: String, owner: String },
    /// The output directory (or a lower layer, or the home) cannot be used.
    #[error("{what} {path}: {problem}")]
    Output {
        /// Which directory: `output directory`, `lower layer`, `home`.
        what: &'static str,
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The mount plan could not be made.
    #[error(transparent)]
    Plan(#[from] MountError),
    /// The policy's paths could not be checked.
    #[error("checking the policy's paths")]
    Policy(#[source] std::io::Error),
    /// No command was given.
    #[error("no command to run")]
    NoCommand,
    /// fork, pipes, waiting.
    #[error("{what}")]
    Process {
        /// Which step.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn process(what: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| RunError::Process { what, source }
}

/// What the child needs, prepared by the parent so errors surface before the fork.
struct Prepared {
    map: IdMap,
    policy: Policy,
    plan: RootPlan,
    sources: OpenSources,
    home: Option<OwnedFd>,
    mounts: RealMounts,
    userns: OwnedFd,
}

fn prepare(invocation: &Invocation) -> Result<Prepared, RunError> {
    if invocation.command.is_empty() {
        return Err(RunError::NoCommand);
    }
    invocation.args().check()?;
    let passwd = Path::new(PASSWD);
    let sandbox = passwd::lookup(passwd, &invocation.sandbox_user, "--user")?;
    let owner = if invocation.owner_user == ROOT_OWNER {
        // Only with the steamcmd profile (checked above): the game's files are root's.
        Ids { uid: 0, gid: 0 }
    } else {
        passwd::lookup(passwd, &invocation.owner_user, "--owner")?
    };
    let map = IdMap { sandbox, owner };
    let me = rustix::process::getuid().as_raw();
    if map.sandbox.uid == map.owner.uid || map.sandbox.gid == map.owner.gid || map.sandbox.uid == me
    {
        return Err(RunError::SameUser {
            sandbox: invocation.sandbox_user.clone(),
            owner: invocation.owner_user.clone(),
        });
    }
    let sources = open_sources(invocation, map.owner)?;
    let home = match &invocation.home {
        Some(path) => Some(open_owned("home", path, None, map.owner)?),
        None => None,
    };
    let mut policy = invocation
        .policy
        .concrete(Path::new("/"))
        .map_err(RunError::Policy)?;
    policy.home = home.as_ref().map(|_| PathBuf::from(HOME_DIR));
    let plan = RootPlan::new(&policy, Path::new("/"))?;
    let mounts = RealMounts::default();
    let userns = mounts.idmap_userns(&map)?;
    Ok(Prepared {
        map,
        policy,
        plan,
        sources,
        home,
        mounts,
        userns,
    })
}

/// Runs `invocation` with `layers` and waits for it. Must be called from a single-threaded
/// process (it forks and the child keeps running Rust code).
pub fn run(invocation: &Invocation, layers: Layers) -> Result<Outcome, RunError> {
    let prepared = prepare(invocation)?;
    let (error_read, error_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| process("creating the error pipe")(e.into()))?;
    let mut waited = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let old_mask = sys::block_signals(&waited).map_err(process("blocking signals"))?;
    let parent = rustix::process::getpid();

    let child = match sys::fork() {
        Ok(sys::Fork::Child) => {
            sys::restore_signal_mask(&old_mask);
            drop(error_read);
            let (code, message) =
                match child_main(invocation, &prepared, layers, parent, &error_write) {
                    Ok(never) => match never {},
                    Err(failure) => failure,
                };
            let mut pipe = std::fs::File::from(error_write);
            let _ = pipe.write_all(&[code]);
            let _ = pipe.write_all(message.as_bytes());
            drop(pipe);
            std::process::exit(i32::from(code));
        }
        Ok(sys::Fork::Parent(pid)) => pid,
        Err(e) => {
            sys::restore_signal_mask(&old_mask);
            return Err(process("fork")(e));
        }
    };
    drop(error_write);
    let Prepared { mounts, .. } = prepared;

    let mut report = Vec::new();
    let read = std::fs::File::from(error_read).read_to_end(&mut report);
    let status = wait_forwarding(child);
    mounts.reap();
    sys::restore_signal_mask(&old_mask);
    read.map_err(process("reading the error pipe"))?;
    let status = status?;

    if let Some((&code, message)) = report.split_first() {
        return Ok(Outcome::Failed {
            code,
            message: String::from_utf8_lossy(message).into_owned(),
        });
    }
    if let Some(signal) = status.terminating_signal() {
        return Ok(Outcome::Signaled(signal));
    }
    Ok(Outcome::Exited(status.exit_status().unwrap_or(1) as u8))
}

/// Waits for `child`, passing on forwarded signals.
fn wait_forwarding(child: Pid) -> Result<WaitStatus, RunError> {
    let mut waited = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    loop {
        match rustix::process::waitpid(Some(child), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(process("waiting for the sandbox")(e.into())),
        }
        let signal = sys::wait_for_signal(&waited).map_err(process("waiting for signals"))?;
        if signal != libc::SIGCHLD {
            let _ = sys::kill(child, signal);
        }
    }
}

/// The sandbox child; returns only on failure, with the exit code and message for the parent.
fn child_main(
    invocation: &Invocation,
    prepared: &Prepared,
    layers: Layers,
    parent: Pid,
    error_pipe: &OwnedFd,
) -> Result<Infallible, (u8, String)> {
    let setup = |e: &dyn std::fmt::Display| (EXIT_SETUP_FAILED, e.to_string());
    let chain = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        (EXIT_SETUP_FAILED, text)
    };
    let die_with_parent = || {
        rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
            .map_err(|e| setup(&format!("PR_SET_PDEATHSIG: {e}")))?;
        if rustix::process::getppid() != Some(parent) {
            return Err(setup(&"the runner's parent process is gone"));
        }
        Ok(())
    };
    die_with_parent()?;
    // Before anything is created: the root's dirs and /dev nodes get their modes whatever
    // UMask= the unit has.
    rustix::process::umask(Mode::from_raw_mode(0o022));

    // 1. mounts
    let overlay = match &prepared.sources {
        OpenSources::Dir(dir) => OverlaySource::Dir(dir.as_fd()),
        OpenSources::Layers { lowers, staging } => OverlaySource::Layers {
            lowers: lowers.iter().map(AsFd::as_fd).collect(),
            staging: staging.as_fd(),
        },
    };
    let sources = Sources {
        overlay,
        home: prepared.home.as_ref().map(AsFd::as_fd),
    };
    mounts::build_root(
        &prepared.mounts,
        &prepared.plan,
        &sources,
        &prepared.userns,
        &prepared.map,
    )
    .map_err(|e| chain(&e))?;
    rustix::process::chdir(OVERLAY_DIR).map_err(|e| setup(&format!("chdir {OVERLAY_DIR}: {e}")))?;

    // 2. descriptors
    sys::close_fds_above_stderr(Some(error_pipe.as_raw_fd()))
        .map_err(|e| setup(&format!("close_range: {e}")))?;

    // 3. environment (applied by the exec below), no core files in /overlay (umask: above)
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| setup(&format!("setrlimit(RLIMIT_CORE): {e}")))?;

    // 4. privileges
    let mut log = Vec::new();
    if layers.credentials {
        creds::drop_to(prepared.map.sandbox).map_err(|e| chain(&e))?;
        // A credential change clears the death signal.
        die_with_parent()?;
        let layers = match &prepared.sources {
            OpenSources::Layers { lowers, .. } => {
                format!(", an overlayfs over {} lower layers", lowers.len())
            }
            OpenSources::Dir(_) => String::new(),
        };
        let home = match &prepared.policy.home {
            Some(home) => format!(" and {}", home.display()),
            None => String::new(),
        };
        log.push(format!(
            "uid {} (writes to {OVERLAY_DIR}{layers}{home} land as uid {})",
            prepared.map.sandbox.uid, prepared.map.owner.uid
        ));
    } else {
        log.push("credentials kept (test)".into());
    }

    // 5. Landlock
    if layers.landlock {
        let status = landlock::enforce(&prepared.policy).map_err(|e| chain(&e))?;
        log.push(format!("landlock {status}"));
    } else {
        log.push("landlock off (test)".into());
    }

    // 6. W^X memory (before the filter, which refuses this prctl) and seccomp
    if layers.seccomp {
        let write_execute = match profile::definition(prepared.policy.profile).write_execute {
            WriteExecute::Refused(_) => {
                sys::refuse_write_execute().map_err(|e| {
                    setup(&format!(
                        "PR_SET_MDWE (refusing writable+executable memory needs Linux 6.3): {e}"
                    ))
                })?;
                "W^X memory refused"
            }
            WriteExecute::Allowed(_) => "W^X memory allowed",
        };
        let installed = seccomp::install(&prepared.policy).map_err(|e| chain(&e))?;
        log.push(format!(
            "seccomp profile {}: {installed}; {write_execute}",
            prepared.policy.profile
        ));
    } else {
        log.push("seccomp off (test)".into());
    }
    eprintln!("left4me-sandbox: {}", log.join("; "));

    // 7. exec
    let program = &invocation.command[0];
    let error = std::process::Command::new(program)
        .args(&invocation.command[1..])
        .env_clear()
        .envs(environment(prepared.policy.home.is_some()))
        .exec();
    let code = if error.kind() == std::io::ErrorKind::NotFound {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    };
    Err((
        code,
        format!("cannot execute {}: {error}", Path::new(program).display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        assert_eq!(Outcome::Signaled(libc::SIGSYS).exit_code(), 159);
        assert_eq!(Outcome::Signaled(libc::SIGKILL).exit_code(), 137);
        let failed = Outcome::Failed {
            code: EXIT_NOT_FOUND,
            message: String::new(),
        };
        assert_eq!(failed.exit_code(), 127);
    }

    #[test]
    fn environment_is_exactly_four_variables() {
        let names: Vec<&str> = ENVIRONMENT.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["HOME", "PATH", "OVERLAY", "LANG"]);
        assert_eq!(environment(false), ENVIRONMENT);
        let with_home = environment(true);
        assert_eq!(with_home[0], ("HOME", "/home/steamcmd"));
        assert_eq!(with_home[1..], ENVIRONMENT[1..]);
    }
}
