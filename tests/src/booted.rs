//! A throwaway systemd, booted in namespaces of its own over an overlay of the
//! host's root, exactly as /work/shared/TESTBED.md describes, plus what keeps
//! it from touching the host (see `boot/stage2.sh`).
//!
//! ```no_run
//! # fn main() -> Result<(), left4me_tests::BootError> {
//! use left4me_tests::BootedSystem;
//! let mut sys = BootedSystem::builder().name("lifecycle").boot()?;
//! let out = sys.run_ok(["systemctl", "is-system-running"])?;
//! assert_eq!(out.stdout, b"running\n");
//! std::fs::write(sys.root().join("etc/motd"), "hello\n").unwrap();
//! sys.reboot()?;
//! drop(sys); // powers off and removes every trace
//! # Ok(()) }
//! ```

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::cgroup::{CgroupError, SystemCgroups, namespace_mount_lines};
use crate::exec::{self, ExecError, check_success, output_with_timeout, wait_with_deadline};
use crate::game_tree::{self, GameTree, GameTreeError};
use crate::leftovers::{BASE_PREFIX, SystemIdentity, reap_stale};
use crate::mounts::{self, MountError};

/// The left4me state dir inside the booted system; a tmpfs of its own (an
/// overlay upper dir cannot live on the overlay root), kept across reboots.
pub const STATE_DIR: &str = "/var/lib/left4me";
/// The veth end that carries the default route, with [`ROUTE_ADDRESS`].
pub const ROUTE_DEVICE: &str = "a";
/// The other veth end: where test hosts get their addresses
/// ([`BootedSystem::add_peer_address`]).
pub const PEER_DEVICE: &str = "b";
/// The address of [`ROUTE_DEVICE`].
pub const ROUTE_ADDRESS: &str = "192.0.2.1/24";
/// The game user: owns only the leaves it must write (`runtime/NAME/upper`,
/// overlay content); root owns the state dir (DESIGN.md section 2).
pub const GAME_USER: &str = "left4me";

/// The `container=` value the booted systemd sees.
const CONTAINER: &str = "left4me-test";
/// Waits for "go" on stdin (once the process is in its cgroups), then execs
/// the rest of its arguments.
const STAGE1: &str = r#"read -r go && [ "$go" = go ] && exec "$@""#;
const STAGE2: &str = include_str!("../boot/stage2.sh");
/// Environment of commands run inside, instead of the test process's.
pub const INSIDE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("TERM", "dumb"),
    ("SYSTEMD_PAGER", "cat"),
    ("SYSTEMD_COLORS", "0"),
];
/// Units of the host image that are masked in every throwaway system: gettys
/// would open the host's ttys and console, the rest is host maintenance or
/// unrelated and only slows the boot.
pub const DEFAULT_MASKED: &[&str] = &[
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "container-getty@.service",
    "postgresql.service",
    "postgresql@.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
];
/// How many journal lines a panicking test prints.
const PANIC_JOURNAL_LINES: usize = 200;

static NEXT_SYSTEM: AtomicU32 = AtomicU32::new(0);
/// `make install` runs one at a time in a test process (they share cargo's
/// target dir anyway).
static INSTALL: Mutex<()> = Mutex::new(());

/// Errors of booting, using and tearing down a throwaway system.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("needs root: run `make test` as root")]
    NotRoot,
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    GameTree(#[from] GameTreeError),
    #[error("`make install` into {root} failed: {source}")]
    Install {
        root: PathBuf,
        #[source]
        source: ExecError,
    },
    #[error("booting {name} failed before systemd ran ({status})\n--- boot log ---\n{log}")]
    EarlyExit {
        name: String,
        status: String,
        log: String,
    },
    #[error("{what} of {name} took longer than {timeout:?}\n--- boot log ---\n{log}")]
    Timeout {
        name: String,
        what: &'static str,
        timeout: Duration,
        log: String,
    },
    #[error(
        "{name} is `{state}` instead of `running`\n--- failed units ---\n{failed}\n--- journal ---\n{journal}"
    )]
    NotRunning {
        name: String,
        state: String,
        failed: String,
        journal: String,
    },
    #[error("cannot enter the network namespace of {name}: {source}")]
    Netns {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{name} is not running (powered off and not booted again)")]
    NotBooted { name: String },
}

pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BootError {
    let path = path.to_owned();
    move |source| BootError::Io {
        action,
        path,
        source,
    }
}

/// How to boot a [`BootedSystem`].
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    install_project: bool,
    masked: Vec<String>,
    files: Vec<(PathBuf, Vec<u8>)>,
    symlinks: Vec<(PathBuf, PathBuf)>,
    boot_timeout: Duration,
    poweroff_timeout: Duration,
    command_timeout: Duration,
    top_layer: Option<PathBuf>,
    systemd_args: Vec<String>,
    tmpfs_size: Option<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: "system".to_owned(),
            install_project: false,
            masked: DEFAULT_MASKED.iter().map(|&unit| unit.to_owned()).collect(),
            files: Vec::new(),
            symlinks: Vec::new(),
            boot_timeout: Duration::from_secs(60),
            poweroff_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(120),
            top_layer: None,
            systemd_args: Vec::new(),
            tmpfs_size: None,
        }
    }
}

impl Builder {
    /// The size limit of the tmpfs holding the system (and its state dir), as tmpfs takes it
    /// (`64g`); default half the RAM. Only what is written uses memory: a large limit lets a
    /// test pass a free-space check sized for a real host.
    pub fn tmpfs_size(mut self, size: &str) -> Self {
        self.tmpfs_size = Some(size.to_owned());
        self
    }

    /// A short name for messages, the base dir and the hostname
    /// (`left4me-<name>`); anything but `[a-z0-9-]` becomes `-`.
    pub fn name(mut self, name: &str) -> Self {
        let mut clean: String = name
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '-') => c,
                _ => '-',
            })
            .take(32)
            .collect();
        if clean.is_empty() {
            clean = "system".to_owned();
        }
        self.name = clean;
        self
    }

    /// Whether to `make install DESTDIR=<root> PREFIX=/usr` before the first
    /// boot, then run the Makefile's post-install steps (`systemd-sysusers`,
    /// `systemd-tmpfiles --create`) inside. Off by default.
    pub fn install_project(mut self, install: bool) -> Self {
        self.install_project = install;
        self
    }

    /// Also mask `unit` (besides [`DEFAULT_MASKED`]).
    pub fn mask(mut self, unit: &str) -> Self {
        self.masked.push(unit.to_owned());
        self
    }

    /// Writes `contents` to `path` (inside, absolute) before the first boot,
    /// creating parent dirs: instance specs for the generator, unit files, …
    pub fn with_file(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), contents.into()));
        self
    }

    /// Creates the symlink `link` → `target` (inside) before the first boot,
    /// e.g. to enable a unit: `with_symlink("/etc/systemd/system/multi-user.target.wants/x.service", "/etc/systemd/system/x.service")`.
    pub fn with_symlink(mut self, link: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        self.symlinks.push((link.into(), target.into()));
        self
    }

    /// How long a boot may take until `is-system-running` answers (60 s).
    pub fn boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// How long a poweroff may take before the system is killed (30 s).
    pub fn poweroff_timeout(mut self, timeout: Duration) -> Self {
        self.poweroff_timeout = timeout;
        self
    }

    /// How long [`BootedSystem::run`] lets a command run (120 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Lays `dir` over the host's root as the topmost read-only layer of the system's root,
    /// e.g. a newer systemd and its libraries unpacked with `dpkg -x` (`boot/newer-systemd.sh`).
    pub fn top_layer(mut self, dir: impl Into<PathBuf>) -> Self {
        self.top_layer = Some(dir.into());
        self
    }

    /// Passes `arg` to the booted systemd (after `--system`); in a container systemd reads
    /// its own arguments as the kernel command line.
    pub fn systemd_arg(mut self, arg: &str) -> Self {
        self.systemd_args.push(arg.to_owned());
        self
    }

    /// Sets up the root, boots systemd in it and waits until it is `running`.
    /// Fails (and cleans up) if it ends up `degraded`, listing the failed
    /// units and the journal.
    pub fn boot(self) -> Result<BootedSystem, BootError> {
        if !rustix::process::geteuid().is_root() {
            return Err(BootError::NotRoot);
        }
        for line in reap_stale() {
            eprintln!("left4me-tests: {line}");
        }
        let started = Instant::now();
        let leaf = format!(
            "{BASE_PREFIX}{}-{}-{}",
            self.name,
            std::process::id(),
            NEXT_SYSTEM.fetch_add(1, Ordering::Relaxed)
        );
        let base = Path::new("/tmp").join(&leaf);
        std::fs::create_dir(&base).map_err(io_error("create", &base))?;
        // From here on, dropping `system` undoes whatever was done.
        let mut system = BootedSystem {
            root: base.join("root"),
            base,
            leaf,
            cgroups: None,
            stage1: None,
            init_pid: 0,
            setup_duration: Duration::ZERO,
            boot_duration: Duration::ZERO,
            torn_down: false,
            settings: self,
        };
        system.set_up()?;
        if system.settings.install_project {
            install_project(&system.root)?;
        }
        system.cgroups = Some(SystemCgroups::create(&system.leaf)?);
        system.setup_duration = started.elapsed();
        system.start()?;
        if system.settings.install_project {
            system.run_ok(["systemd-sysusers", "left4me.conf"])?;
            system.run_ok(["systemd-tmpfiles", "--create", "left4me.conf"])?;
        }
        Ok(system)
    }
}

/// A booted throwaway systemd. Dropping it powers it off and removes every
/// trace from the host, also when the test panics (then it first prints the
/// end of the journal).
#[derive(Debug)]
pub struct BootedSystem {
    settings: Builder,
    /// `/tmp/<leaf>`: a tmpfs holding `upper/`, `work/`, `root/`, `state/`.
    base: PathBuf,
    root: PathBuf,
    leaf: String,
    cgroups: Option<SystemCgroups>,
    /// `sh` → `setpriv` → `unshare`, whose child is the booted systemd.
    stage1: Option<Child>,
    /// The booted systemd as the host sees it; 0 while powered off.
    init_pid: u32,
    setup_duration: Duration,
    boot_duration: Duration,
    torn_down: bool,
}

impl BootedSystem {
    /// How to boot one.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The name given to the builder, cleaned.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The host path of the system's root: write files here before or while
    /// it runs (writes land in its overlay's upper dir).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of something inside: `host_path("/etc/x")` is
    /// `<root>/etc/x`.
    pub fn host_path(&self, inside: impl AsRef<Path>) -> PathBuf {
        let inside = inside.as_ref();
        self.root.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// The host path of [`STATE_DIR`] (a tmpfs kept across reboots).
    pub fn state_dir(&self) -> PathBuf {
        self.host_path(STATE_DIR)
    }

    /// The host path of the tmpfs base dir holding everything of this system.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The booted systemd's pid as the host sees it.
    pub fn pid(&self) -> u32 {
        self.init_pid
    }

    /// What to look for with [`crate::Leftovers::find`] after the drop.
    pub fn identity(&self) -> SystemIdentity {
        SystemIdentity {
            base: self.base.clone(),
            cgroup_leaf: self.leaf.clone(),
        }
    }

    /// Setting up base, overlay and cgroups before the first boot.
    pub fn setup_duration(&self) -> Duration {
        self.setup_duration
    }

    /// From starting `unshare` to `running`, for the latest boot.
    pub fn boot_duration(&self) -> Duration {
        self.boot_duration
    }

    /// A command that runs `argv` inside (all of the system's namespaces, its
    /// root and cwd, through `nsenter -t PID -a -r -w`), with a clean
    /// environment ([`INSIDE_ENV`]); add env or stdin as needed.
    pub fn command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.init_pid.to_string(), "-a", "-r", "-w", "--"])
            .args(argv)
            .env_clear()
            .envs(INSIDE_ENV.iter().copied())
            .current_dir("/");
        command
    }

    /// Runs `argv` inside and returns its output, whatever its exit status;
    /// kills it after the builder's command timeout.
    pub fn run<I, S>(&self, argv: I) -> Result<Output, BootError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_timeout(argv, self.settings.command_timeout)
    }

    /// [`Self::run`] with a timeout of its own.
    pub fn run_timeout<I, S>(&self, argv: I, timeout: Duration) -> Result<Output, BootError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ensure_booted()?;
        Ok(output_with_timeout(&mut self.command(argv), timeout)?)
    }

    /// Runs `argv` inside; a non-zero exit is an error carrying stdout and
    /// stderr.
    pub fn run_ok<I, S>(&self, argv: I) -> Result<Output, BootError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ensure_booted()?;
        let mut command = self.command(argv);
        let described = exec::describe(&command);
        let output = output_with_timeout(&mut command, self.settings.command_timeout)?;
        Ok(check_success(&described, output)?)
    }

    /// [`Self::run_ok`], returning stdout without its final newline.
    pub fn run_stdout<I, S>(&self, argv: I) -> Result<String, BootError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.run_ok(argv)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
    }

    /// The journal of all boots (of `unit` only, if given). Never fails: a
    /// problem reading it is returned as the text.
    pub fn journal(&self, unit: Option<&str>) -> String {
        let mut argv = vec!["journalctl", "--no-pager", "-o", "short-precise"];
        if let Some(unit) = unit {
            argv.extend(["-u", unit]);
        }
        self.text_of(&argv)
    }

    /// The last `lines` lines of the journal of all boots.
    pub fn journal_tail(&self, lines: usize) -> String {
        let lines = lines.to_string();
        self.text_of(&[
            "journalctl",
            "--no-pager",
            "-o",
            "short-precise",
            "-n",
            &lines,
        ])
    }

    /// `systemctl --failed`, for messages.
    pub fn failed_units(&self) -> String {
        self.text_of(&["systemctl", "--failed", "--no-legend", "--plain", "--full"])
    }

    /// What stage 1 and 2 printed, and what systemd wrote to its console.
    pub fn boot_log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.base.join(name)).unwrap_or_default();
        format!("{}{}", read("boot.log"), read("console"))
    }

    /// Runs `f` on a thread inside the system's network namespace (and only
    /// that: the filesystem and pids stay the host's). Sockets made there
    /// stay in that namespace, so this is how a test binds listeners on peer
    /// addresses or probes connectivity from the test process itself.
    pub fn in_netns<T, F>(&self, f: F) -> Result<T, BootError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        self.ensure_booted()?;
        let path = PathBuf::from(format!("/proc/{}/ns/net", self.init_pid));
        let netns = File::open(&path).map_err(io_error("open", &path))?;
        let joined = thread::scope(|scope| {
            scope
                .spawn(|| {
                    move_into_link_name_space(netns.as_fd(), Some(LinkNameSpaceType::Network))?;
                    Ok(f())
                })
                .join()
        });
        match joined {
            Ok(result) => result.map_err(|errno: rustix::io::Errno| BootError::Netns {
                name: self.name().to_owned(),
                source: errno.into(),
            }),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Gives [`PEER_DEVICE`] the address `cidr` (`10.0.0.1/32`), so
    /// connections to it from inside reach a listener the test binds there
    /// (with [`Self::in_netns`]) instead of dying in the veth. Gone after a
    /// reboot.
    pub fn add_peer_address(&self, cidr: &str) -> Result<(), BootError> {
        self.run_ok(["ip", "addr", "add", cidr, "dev", PEER_DEVICE])?;
        Ok(())
    }

    /// Lays out the stand-in game install in the state dir:
    /// `installation/srcds_run` (a copy of `srcds_run`, the stand-in server),
    /// `installation/left4dead2/{cfg,addons,maps}`, and
    /// `.steam/sdk32`/`sdk64` pointing at a stand-in steamcmd's
    /// `linux32`/`linux64` with a `steamclient.so` each. Root's, like a game
    /// installed by hand: the game user only reads it.
    pub fn install_game_tree(&self, srcds_run: &Path) -> Result<GameTree, BootError> {
        Ok(game_tree::lay_out(
            &self.state_dir(),
            Path::new(STATE_DIR),
            srcds_run,
        )?)
    }

    /// Powers off, waits, and boots the same root again: files persist,
    /// volatile mounts and /run are gone, enabled units start.
    pub fn reboot(&mut self) -> Result<(), BootError> {
        self.power_off()?;
        if let Some(cgroups) = &self.cgroups {
            cgroups.remove_children(Duration::from_secs(5))?;
        }
        self.start()
    }

    /// Powers off and removes everything from the host, reporting problems
    /// (dropping does the same but can only print them). Returns how long
    /// the teardown took.
    pub fn shutdown(mut self) -> Result<Duration, BootError> {
        let started = Instant::now();
        self.tear_down()?;
        Ok(started.elapsed())
    }

    /// Base tmpfs, overlay root, state bind, the stage 2 script, masks.
    fn set_up(&mut self) -> Result<(), BootError> {
        let options = match &self.settings.tmpfs_size {
            Some(size) => format!("mode=0700,size={size}"),
            None => "mode=0700".to_owned(),
        };
        mounts::mount_private_tmpfs(&self.base, &options)?;
        for dir in ["upper", "work", "root", "state"] {
            let path = self.base.join(dir);
            std::fs::create_dir(&path).map_err(io_error("create", &path))?;
        }
        let lower = match &self.settings.top_layer {
            // Copied into the base tmpfs: overlayfs refuses (ELOOP, "overlapping lowerdir
            // path") a layer on the root file system, beneath the other layer "/".
            Some(top) => {
                let copy = self.base.join("top");
                let out = Command::new("cp")
                    .arg("-a")
                    .arg(top)
                    .arg(&copy)
                    .output()
                    .map_err(io_error("run cp for", top))?;
                if !out.status.success() {
                    return Err(io_error("copy", top)(io::Error::other(
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )));
                }
                PathBuf::from(format!("{}:/", copy.display()))
            }
            None => PathBuf::from("/"),
        };
        mounts::mount_overlay(
            &lower,
            &self.base.join("upper"),
            &self.base.join("work"),
            &self.root,
        )?;
        let state = self.state_dir();
        std::fs::create_dir_all(&state).map_err(io_error("create", &state))?;
        mounts::bind(&self.base.join("state"), &state)?;

        let write = |path: PathBuf, contents: &str| {
            std::fs::write(&path, contents).map_err(io_error("write", &path))
        };
        write(self.base.join("stage2.sh"), STAGE2)?;
        write(self.base.join("console"), "")?;
        write(
            self.host_path("/etc/hostname"),
            &format!("left4me-{}\n", self.name()),
        )?;
        let units = self.host_path("/etc/systemd/system");
        std::fs::create_dir_all(&units).map_err(io_error("create", &units))?;
        for unit in &self.settings.masked {
            let link = units.join(unit);
            match std::fs::remove_file(&link) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("replace", &link)(source)),
            }
            symlink("/dev/null", &link).map_err(io_error("mask", &link))?;
        }
        for (path, contents) in &self.settings.files {
            let path = self.host_path(path);
            create_parent(&path)?;
            std::fs::write(&path, contents).map_err(io_error("write", &path))?;
        }
        for (link, target) in &self.settings.symlinks {
            let link = self.host_path(link);
            create_parent(&link)?;
            symlink(target, &link).map_err(io_error("create the symlink", &link))?;
        }
        Ok(())
    }

    /// Starts stage 1 in the system's cgroups and waits until systemd says
    /// `running`.
    fn start(&mut self) -> Result<(), BootError> {
        let started = Instant::now();
        let deadline = started + self.settings.boot_timeout;
        let cgroups = self
            .cgroups
            .as_ref()
            .expect("cgroups are made before start");
        let log_path = self.base.join("boot.log");
        let log = File::create(&log_path).map_err(io_error("create", &log_path))?;
        let log2 = log.try_clone().map_err(io_error("open", &log_path))?;
        let mut child = Command::new("sh")
            .args(["-c", STAGE1, "left4me-stage1"])
            .args(["setpriv", "--bounding-set=-sys_module,-sys_time", "--"])
            .args([
                "unshare",
                "--pid",
                "--fork",
                "--kill-child=SIGKILL",
                "--mount",
            ])
            .args([
                "--uts",
                "--ipc",
                "--net",
                "--cgroup",
                "--propagation",
                "private",
            ])
            .args(["--", "sh"])
            .args([
                self.base.join("stage2.sh"),
                self.root.clone(),
                self.base.join("console"),
            ])
            .args(&self.settings.systemd_args)
            .env("L4M_CGROUP_MOUNTS", namespace_mount_lines()?)
            .env("L4M_CONTAINER", CONTAINER)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_error("run stage 1 of booting", Path::new("sh")))?;
        let stdin = child.stdin.take();
        let go = cgroups
            .attach(child.id())
            .map_err(BootError::from)
            .and_then(|()| {
                stdin
                    .expect("stdin is piped")
                    .write_all(b"go\n")
                    .map_err(io_error("start", Path::new("stage 1")))
            });
        if let Err(e) = go {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let stage1_pid = child.id();
        self.stage1 = Some(child);
        self.init_pid = self.wait_for_systemd(stage1_pid, deadline)?;
        self.wait_until_running(deadline)?;
        self.boot_duration = started.elapsed();
        Ok(())
    }

    /// Finds the child of `unshare` (the namespace's PID 1) once it has
    /// become systemd.
    fn wait_for_systemd(&mut self, stage1_pid: u32, deadline: Instant) -> Result<u32, BootError> {
        let children = format!("/proc/{stage1_pid}/task/{stage1_pid}/children");
        loop {
            let child = std::fs::read_to_string(&children)
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok());
            if let Some(pid) = child {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "systemd" {
                    return Ok(pid);
                }
            }
            self.check_stage1_alive()?;
            if Instant::now() >= deadline {
                return Err(self.timeout("starting systemd"));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Polls `systemctl is-system-running --wait` until the manager is up.
    fn wait_until_running(&mut self, deadline: Instant) -> Result<(), BootError> {
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.timeout("booting"));
            }
            let mut command = self.command(["systemctl", "is-system-running", "--wait"]);
            let output = match output_with_timeout(&mut command, remaining) {
                Ok(output) => output,
                Err(ExecError::Timeout { .. }) => return Err(self.timeout("booting")),
                Err(e) => return Err(e.into()),
            };
            let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            match state.as_str() {
                "running" => return Ok(()),
                // Before the manager listens, systemctl says `offline` or
                // nothing (cannot connect); --wait covers the rest.
                "" | "offline" | "initializing" | "starting" => {}
                _ => {
                    return Err(BootError::NotRunning {
                        name: self.name().to_owned(),
                        state,
                        failed: self.failed_units(),
                        journal: self.journal_tail(PANIC_JOURNAL_LINES),
                    });
                }
            }
            self.check_stage1_alive()?;
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn check_stage1_alive(&mut self) -> Result<(), BootError> {
        let exited = match self.stage1.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(io_error("wait for", Path::new("stage 1")))?,
            None => {
                return Err(BootError::NotBooted {
                    name: self.name().to_owned(),
                });
            }
        };
        match exited {
            None => Ok(()),
            Some(status) => {
                self.stage1 = None;
                self.init_pid = 0;
                Err(BootError::EarlyExit {
                    name: self.name().to_owned(),
                    status: status.to_string(),
                    log: self.boot_log(),
                })
            }
        }
    }

    fn timeout(&self, what: &'static str) -> BootError {
        BootError::Timeout {
            name: self.name().to_owned(),
            what,
            timeout: self.settings.boot_timeout,
            log: self.boot_log(),
        }
    }

    fn ensure_booted(&self) -> Result<(), BootError> {
        if self.stage1.is_some() && self.init_pid != 0 {
            Ok(())
        } else {
            Err(BootError::NotBooted {
                name: self.name().to_owned(),
            })
        }
    }

    /// Output of a diagnostic command, or the error as text.
    fn text_of(&self, argv: &[&str]) -> String {
        match self.run_timeout(argv, Duration::from_secs(30)) {
            Ok(output) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                text
            }
            Err(e) => format!("({} failed: {e})", argv.join(" ")),
        }
    }

    /// `systemctl poweroff`, then waits for the namespace to end; kills it
    /// after the poweroff timeout. Does nothing when not booted.
    fn power_off(&mut self) -> Result<(), BootError> {
        if self.ensure_booted().is_ok() {
            // The connection may drop as the manager goes down; only the
            // namespace ending counts.
            let _ = self.run_timeout(["systemctl", "poweroff"], Duration::from_secs(10));
        }
        let Some(mut child) = self.stage1.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.settings.poweroff_timeout;
        let waited = wait_with_deadline(&mut child, deadline)
            .map_err(io_error("wait for", Path::new("stage 1")))?;
        if waited.is_none() {
            eprintln!(
                "left4me-tests: {} did not power off within {:?}; killing it",
                self.name(),
                self.settings.poweroff_timeout
            );
            // `unshare` is alive, so it has not reaped its child: the pid is
            // still the namespace's init, not a reused one.
            if let Some(pid) = Pid::from_raw(self.init_pid as i32) {
                let _ = kill_process(pid, Signal::KILL);
            }
            let _ = child.kill();
            child
                .wait()
                .map_err(io_error("wait for", Path::new("stage 1")))?;
        }
        self.init_pid = 0;
        Ok(())
    }

    /// Powers off, removes the cgroups, unmounts everything beneath the base
    /// dir and removes it. Runs every step even if one fails.
    fn tear_down(&mut self) -> Result<(), BootError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first_error = None;
        let mut note = |result: Result<(), BootError>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        note(self.power_off());
        if let Some(cgroups) = self.cgroups.take() {
            note(cgroups.remove(Duration::from_secs(5)).map_err(Into::into));
        }
        note(mounts::unmount_beneath(&self.base).map_err(Into::into));
        note(match std::fs::remove_dir(&self.base) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &self.base)(e)),
            _ => Ok(()),
        });
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for BootedSystem {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        if thread::panicking() && self.init_pid != 0 {
            eprintln!(
                "left4me-tests: --- last {PANIC_JOURNAL_LINES} journal lines of {} ---\n{}",
                self.name(),
                self.journal_tail(PANIC_JOURNAL_LINES)
            );
            eprintln!(
                "left4me-tests: --- failed units ---\n{}",
                self.failed_units()
            );
        }
        if let Err(e) = self.tear_down() {
            eprintln!("left4me-tests: tearing down {} failed: {e}", self.name());
        }
    }
}

/// The workspace root (where the Makefile is).
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
}

/// Cargo's target dir for this run: `$CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// A binary of the release build `make install` makes, e.g. `srcds-standin`
/// (valid once a system was booted with `install_project(true)`).
pub fn release_binary(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

fn create_parent(path: &Path) -> Result<(), BootError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(io_error("create", parent)),
        None => Ok(()),
    }
}

/// `make install DESTDIR=<root> PREFIX=/usr`, with the cargo target dir this
/// test run uses.
fn install_project(root: &Path) -> Result<(), BootError> {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let workspace = workspace_dir();
    let target = target_dir();
    let mut command = Command::new("make");
    command
        .arg("-C")
        .arg(workspace)
        .arg("install")
        .arg(format!("DESTDIR={}", root.display()))
        .arg("PREFIX=/usr")
        .arg(format!("TARGET_DIR={}", target.display()));
    let described = exec::describe(&command);
    output_with_timeout(&mut command, Duration::from_secs(30 * 60))
        .and_then(|output| check_success(&described, output))
        .map(drop)
        .map_err(|source| BootError::Install {
            root: root.to_owned(),
            source,
        })
}
