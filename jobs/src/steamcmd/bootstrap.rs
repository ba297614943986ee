//! Making `game/steamcmd/steamcmd.sh` exist: SteamCMD always runs from its own writable copy
//! in its home (it updates itself in place, and the sandbox sees only its home).
//!
//! In order, the first that applies:
//! 1. it is there already ([`Source::Present`]);
//! 2. host.toml `steamcmd`: a `steamcmd.sh` whose dir holds `linux32/` (a tarball install):
//!    that dir is copied ([`Source::Configured`]);
//! 3. Debian's `steamcmd` package (non-free; the path in host.toml may also name its
//!    `/usr/games/steamcmd`): `/usr/games/steamcmd` is only a wrapper script that, on first
//!    run, copies `/usr/lib/games/steam/steamcmd.sh` and the 32-bit
//!    `/usr/lib/games/steam/steamcmd` into `~/.steam/steamcmd/` and `…/linux32/` and runs it
//!    from there. The same two files are copied into the home the same way
//!    ([`Source::Debian`]);
//! 4. Valve's `steamcmd_linux.tar.gz` from host.toml `steamcmd_url`, downloaded and unpacked
//!    in the sandbox (profile `script`, `curl` and `tar`, HTTPS only) into a scratch dir the
//!    game user owns, checked, then copied ([`Source::Downloaded`]).
//!
//! Every copy is root's, by descriptor (`left4me-statedir`): the home is opened beneath the
//! state dir, the files land in it root-owned (`cp` as root through `/proc/self/fd`, or an
//! `openat` per file), never through a path the game user could redirect. SteamCMD's
//! self-update on its first real run fetches the rest (`linux32/steamclient.so`, …).

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use left4me_contract::Ids;
use left4me_statedir::{Dir, StateDir};
use rustix::fs::{Mode, OFlags};

use super::GameJobError;
use super::files::beneath;
use crate::PathIo;
use crate::check::check_output;
use crate::content::{self, seed};
use crate::job::{GAME_KINDS, Host, JobKind, Limits, NetworkPolicy, Resolver};
use crate::pipeline::write_resolver;
use crate::preflight;
use crate::progress::Progress;
use crate::record;
use crate::stream::Stop;
use crate::systemd::UnitRunner;
use crate::unit::{Download, TransientUnit};
use crate::verdict::{Failure, Status};

/// Where Debian's `steamcmd` package keeps the real files.
pub const DEBIAN_DIR: &str = "/usr/lib/games/steam";

/// Debian's wrapper script (host.toml `steamcmd` may name it).
pub const DEBIAN_WRAPPER: &str = "/usr/games/steamcmd";

/// What to bootstrap from, as plain data.
#[derive(Debug, Clone)]
pub struct BootstrapJob {
    pub state_dir: PathBuf,
    /// SteamCMD's home, `game/steamcmd` (absolute, in a dir beneath the state dir that must
    /// exist; the home itself is made when missing).
    pub home: PathBuf,
    /// host.toml `steamcmd`.
    pub configured: Option<PathBuf>,
    /// Debian's files ([`DEBIAN_DIR`]; tests point it elsewhere).
    pub debian_dir: PathBuf,
    /// host.toml `steamcmd_url`.
    pub url: String,
    pub game_user: String,
    pub sandbox_user: String,
    /// The download's limits.
    pub limits: Limits,
}

/// Where the home's SteamCMD came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Present,
    Configured(PathBuf),
    Debian(PathBuf),
    Downloaded { url: String, ledger_id: i64 },
}

/// How a bootstrap ended: the source, or the download's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrapped {
    Ready(Source),
    /// The download ran and failed (or was stopped): its status and ledger row.
    Failed {
        status: Status,
        ledger_id: i64,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> GameJobError {
    let path = path.to_path_buf();
    move |errno| {
        GameJobError::Io(PathIo {
            action,
            path,
            source: errno.into(),
        })
    }
}

/// Opens a directory outside the state dir (root's configuration: host.toml, Debian's
/// package), not following a final symlink.
fn open_outside(path: &Path) -> Result<Dir, GameJobError> {
    let fd: OwnedFd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", path))?;
    Ok(Dir::from_fd(fd, path.to_path_buf()))
}

/// Copies the regular file `from` into `dir` as `name` (root, `mode`).
fn copy_file(from: &Path, dir: &Dir, name: &str, mode: u32) -> Result<(), GameJobError> {
    let source: OwnedFd = rustix::fs::open(
        from,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", from))?;
    let target = dir.path().join(name);
    let dest: OwnedFd = rustix::fs::openat(
        dir.fd(),
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(io("create", &target))?;
    rustix::fs::fchmod(&dest, Mode::from_raw_mode(mode)).map_err(io("chmod", &target))?;
    std::io::copy(
        &mut std::fs::File::from(source),
        &mut std::fs::File::from(dest),
    )
    .map_err(PathIo::at("copy", from))?;
    Ok(())
}

const ROOT: Ids = Ids { uid: 0, gid: 0 };

/// The home, opened (created root 0755 when missing).
fn open_home(job: &BootstrapJob) -> Result<(StateDir, Dir), GameJobError> {
    let state = StateDir::open(&job.state_dir)?;
    let rel = beneath(&job.state_dir, &job.home)?;
    let (parent, name) = match (rel.parent(), rel.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => (parent, name),
        _ => {
            return Err(GameJobError::NotBeneath {
                path: job.home.clone(),
                state_dir: job.state_dir.clone(),
            });
        }
    };
    let parent = state.open_dir(parent)?;
    let home = match parent.open_dir_if_exists(name)? {
        Some(home) => home,
        None => parent.create_dir(name, (0, 0), 0o755)?,
    };
    Ok((state, home))
}

/// Makes `job.home/steamcmd.sh` exist (see the module's docs for the order); a download runs
/// as a job of kind [`JobKind::SteamcmdBootstrap`] through `runner`, events to `progress`.
pub fn bootstrap(
    job: &BootstrapJob,
    host: &Host,
    runner: &dyn UnitRunner,
    stop: &Stop,
    progress: &mut dyn Progress,
) -> Result<Bootstrapped, GameJobError> {
    let (state, home) = open_home(job)?;
    if home.contains("steamcmd.sh")? {
        return Ok(Bootstrapped::Ready(Source::Present));
    }
    let debian_wrapper = job
        .configured
        .as_deref()
        .is_some_and(|p| p == Path::new(DEBIAN_WRAPPER));
    if let Some(script) = job.configured.as_deref().filter(|_| !debian_wrapper) {
        let dir = script.parent().unwrap_or(Path::new("/"));
        let from = open_outside(dir)?;
        if !from.contains("steamcmd.sh")? || !from.contains("linux32")? {
            return Err(GameJobError::Io(PathIo {
                action: "use host.toml steamcmd",
                path: script.to_path_buf(),
                source: std::io::Error::other(
                    "its dir must hold steamcmd.sh and linux32/ (a steamcmd_linux.tar.gz install)",
                ),
            }));
        }
        seed(&from, &home, ROOT)?;
        return Ok(Bootstrapped::Ready(Source::Configured(
            script.to_path_buf(),
        )));
    }
    let debian_script = job.debian_dir.join("steamcmd.sh");
    let debian_binary = job.debian_dir.join("steamcmd");
    if debian_script.is_file() && debian_binary.is_file() {
        let linux32 = match home.open_dir_if_exists("linux32")? {
            Some(dir) => dir,
            None => home.create_dir("linux32", (0, 0), 0o755)?,
        };
        copy_file(&debian_binary, &linux32, "steamcmd", 0o755)?;
        copy_file(&debian_script, &home, "steamcmd.sh", 0o755)?;
        return Ok(Bootstrapped::Ready(Source::Debian(job.debian_dir.clone())));
    }
    download(job, host, runner, stop, progress, &state, &home)
}

/// The download path: Valve's tarball unpacked in the sandbox, checked, copied into the home.
fn download(
    job: &BootstrapJob,
    host: &Host,
    runner: &dyn UnitRunner,
    stop: &Stop,
    progress: &mut dyn Progress,
    state: &StateDir,
    home: &Dir,
) -> Result<Bootstrapped, GameJobError> {
    const KIND: JobKind = JobKind::SteamcmdBootstrap;
    let name = super::LEDGER_NAME;
    preflight::check_host(runner)?;
    let game = preflight::check_user_names(&job.game_user, &job.sandbox_user, host)?;
    preflight::check_no_earlier_units(KIND, name, runner)?;
    debug_assert!(GAME_KINDS.contains(&KIND));
    // open_home made sure the home has a parent beneath the state dir.
    let rel = beneath(&job.state_dir, &job.home)?;
    let parent = state.open_dir(rel.parent().unwrap_or(rel))?;
    let id = content::new_build_id()?;
    let scratch_name = format!(".steamcmd-download-{id}");
    let scratch = parent.create_dir(&scratch_name, (game.uid, game.gid), 0o755)?;
    let _remove = Scratch {
        dir: &parent,
        name: &scratch_name,
    };
    let ledger = record::open_ledger(host, KIND, name, progress)?;
    let guard = preflight::check_disk(scratch.path())?;
    let network = NetworkPolicy::Public {
        ports: vec![443, 80],
    };
    let resolver = Resolver::for_run(host, &format!("steamcmd-{id}"));
    let _resolv_guard = write_resolver(&resolver, &host.run_dir)?;
    // The URL is an argument of the script, never part of its text.
    let command: Vec<OsString> = [
        "/bin/bash",
        "-c",
        "set -o pipefail; curl -fsSL --proto =https --tlsv1.2 -- \"$1\" | tar -xz -C /overlay",
        "bash",
        &job.url,
    ]
    .map(OsString::from)
    .to_vec();
    let unit = TransientUnit::download(Download {
        kind: KIND,
        name,
        id: &id,
        game_user: &job.game_user,
        sandbox_user: &job.sandbox_user,
        limits: &job.limits,
        output: scratch.path(),
        network: &network,
        resolver: &resolver,
        command,
    });
    let recorded =
        record::run_recorded(&ledger, KIND, name, &unit, &guard, runner, stop, progress)?;
    let mut status = record::judge_streamed(&recorded.streamed, &job.limits, &guard);
    if status == Status::Succeeded {
        let mut problems = check_output(&scratch, game).map_err(|e| match e {
            crate::check::CheckError::Dir(d) => GameJobError::Dir(d),
        })?;
        if !scratch.contains("steamcmd.sh")? {
            problems.push(format!("{} has no steamcmd.sh", job.url));
        }
        if problems.is_empty() {
            seed(&scratch, home, ROOT)?;
        } else {
            status = Status::Failed(Failure::Refused(problems));
        }
    }
    record::complete(&ledger, &recorded, &status)?;
    Ok(match status {
        Status::Succeeded => Bootstrapped::Ready(Source::Downloaded {
            url: job.url.clone(),
            ledger_id: recorded.ledger_id,
        }),
        status => Bootstrapped::Failed {
            status,
            ledger_id: recorded.ledger_id,
        },
    })
}

/// The download's scratch dir, removed when dropped.
struct Scratch<'a> {
    dir: &'a Dir,
    name: &'a str,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.dir.remove_tree(self.name);
    }
}

#[cfg(test)]
mod privileged_tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use super::*;
    use crate::testing::{RecordingRunner, Scenario, TempDir, current_ids, test_host};
    use left4me_contract::Ids;

    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn fixture(tag: &str) -> (TempDir, Host, BootstrapJob) {
        assert_eq!(current_ids().uid, 0, "privileged test: run as root");
        let dir = TempDir::new(&format!("bootstrap-{tag}"));
        let state = dir.path().join("state");
        fs::create_dir_all(state.join("game")).unwrap();
        let host = test_host(
            dir.path(),
            &state,
            Ids {
                uid: 65534,
                gid: 65534,
            },
            Ids {
                uid: 65533,
                gid: 65533,
            },
        );
        let job = BootstrapJob {
            home: state.join("game/steamcmd"),
            state_dir: state,
            configured: None,
            debian_dir: dir.path().join("no-debian"),
            url: "https://steamcdn-a.akamaihd.net/client/installer/steamcmd_linux.tar.gz".into(),
            game_user: "game".into(),
            sandbox_user: "sandbox".into(),
            limits: Limits {
                memory_max: "1G".into(),
                tasks_max: 64,
                timeout: "10min".into(),
            },
        };
        (dir, host, job)
    }

    fn go(job: &BootstrapJob, host: &Host, runner: &RecordingRunner) -> Bootstrapped {
        let mut progress = |_: crate::Event<'_>| {};
        bootstrap(job, host, runner, &Stop::new(), &mut progress).unwrap()
    }

    fn root_owned_executable(path: &Path) {
        let meta = fs::metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
        assert_ne!(meta.permissions().mode() & 0o111, 0, "{}", path.display());
    }

    #[test]
    fn privileged_copies_the_configured_install_then_finds_it_present() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (dir, host, mut job) = fixture("configured");
        let install = dir.path().join("opt-steamcmd");
        fs::create_dir_all(install.join("linux32")).unwrap();
        fs::write(install.join("steamcmd.sh"), "#!/bin/sh\n").unwrap();
        fs::write(install.join("linux32/steamcmd"), "\x7fELF").unwrap();
        for f in ["steamcmd.sh", "linux32/steamcmd"] {
            fs::set_permissions(install.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        job.configured = Some(install.join("steamcmd.sh"));
        let runner = RecordingRunner::new(Scenario::default());
        assert_eq!(
            go(&job, &host, &runner),
            Bootstrapped::Ready(Source::Configured(install.join("steamcmd.sh")))
        );
        root_owned_executable(&job.home.join("steamcmd.sh"));
        root_owned_executable(&job.home.join("linux32/steamcmd"));
        assert_eq!(
            go(&job, &host, &runner),
            Bootstrapped::Ready(Source::Present)
        );
        assert!(runner.started().is_empty());
    }

    #[test]
    fn privileged_copies_debians_files_into_its_layout() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (dir, host, mut job) = fixture("debian");
        let debian = dir.path().join("usr-lib-games-steam");
        fs::create_dir_all(&debian).unwrap();
        fs::write(debian.join("steamcmd.sh"), "#!/bin/sh\n").unwrap();
        fs::write(debian.join("steamcmd"), "\x7fELF").unwrap();
        job.debian_dir = debian.clone();
        job.configured = Some(DEBIAN_WRAPPER.into());
        let runner = RecordingRunner::new(Scenario::default());
        assert_eq!(
            go(&job, &host, &runner),
            Bootstrapped::Ready(Source::Debian(debian))
        );
        root_owned_executable(&job.home.join("steamcmd.sh"));
        root_owned_executable(&job.home.join("linux32/steamcmd"));
    }

    #[test]
    fn privileged_downloads_in_the_sandbox_and_copies_as_root() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_dir, host, job) = fixture("download");
        let mut scenario = Scenario::exiting(&[], 0);
        scenario.files = vec![
            ("steamcmd.sh".into(), "#!/bin/sh\n".into()),
            ("linux32/steamcmd".into(), "\x7fELF".into()),
        ];
        scenario.owner = Some(Ids {
            uid: 65534,
            gid: 65534,
        });
        let runner = RecordingRunner::new(scenario);
        let Bootstrapped::Ready(Source::Downloaded { url, .. }) = go(&job, &host, &runner) else {
            panic!("not downloaded");
        };
        assert_eq!(url, job.url);
        let meta = fs::metadata(job.home.join("linux32/steamcmd")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        let args: Vec<String> = runner.started()[0]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.iter()
                .any(|a| a.starts_with("--unit=left4me-steamcmd-bootstrap-"))
        );
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--profile" && w[1] == "script")
        );
        assert_eq!(args.last().unwrap(), &job.url);
        // The scratch dir is gone.
        let left: Vec<_> = fs::read_dir(job.state_dir.join("game"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [OsString::from("steamcmd")]);
    }

    #[test]
    fn privileged_a_download_without_steamcmd_is_refused() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_dir, host, job) = fixture("refused");
        let mut scenario = Scenario::exiting(&[], 0);
        scenario.files = vec![("index.html".into(), "<html>".into())];
        scenario.owner = Some(Ids {
            uid: 65534,
            gid: 65534,
        });
        let runner = RecordingRunner::new(scenario);
        let Bootstrapped::Failed { status, .. } = go(&job, &host, &runner) else {
            panic!("accepted");
        };
        assert!(
            status.detail().contains("no steamcmd.sh"),
            "{}",
            status.detail()
        );
        assert!(!job.home.join("index.html").exists());
    }
}
