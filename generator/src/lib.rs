//! The left4me systemd generator: turns every valid instance spec into
//! `left4me-server@NAME.service.d/50-left4me.conf`, an instance's `[schedule]` into drop-ins
//! for `left4me-restart@NAME.timer`/`.service` and a `timers.target.wants/` link, and
//! `host.toml`'s CPU split into slice drop-ins. It reads only the config dir; it never touches the state dir, the network or D-Bus.

#![forbid(unsafe_code)]

mod log;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use left4me_spec::{
    Catalog, RestartDropins, map_chunks, render_dropin, render_restart_dropins,
    render_slice_dropins,
};

pub use log::Logger;

/// The drop-in file name, inside `left4me-server@NAME.service.d/` (and the restart units' dirs).
pub const DROPIN_NAME: &str = "50-left4me.conf";

/// Where the timers of scheduled restarts are linked, so `timers.target` starts them at boot.
pub const TIMER_LINK_DIRS: [&str; 1] = ["timers.target.wants"];

/// What each link in [`TIMER_LINK_DIRS`] points to: the installed template. systemd takes the
/// dependency from the link's name; the target only has to name the template.
pub const RESTART_TIMER_TEMPLATE: &str = "/usr/lib/systemd/system/left4me-restart@.timer";

/// How a run ended; `main` maps it to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every spec was valid and written.
    AllWritten,
    /// Some specs were refused (logged and skipped); the valid ones were written.
    SomeRefused,
    /// Nothing could be done: host.toml is broken, or output could not be written.
    Failed,
}

/// Runs the generator: loads `config_dir`, writes drop-ins under `normal_dir`, logs every
/// refused spec with its reason. `cpus` is the host's CPU count: it sets the slice split and
/// how many threads share the work.
pub fn generate(
    config_dir: &Path,
    state_dir: Option<PathBuf>,
    normal_dir: &Path,
    cpus: u32,
    log: &mut Logger,
) -> Outcome {
    let catalog = match Catalog::load_parallel(config_dir, state_dir, cpus as usize) {
        Ok(catalog) => catalog,
        Err(err) => {
            log.error(&format!("{err}; no instance drop-ins written"));
            return Outcome::Failed;
        }
    };
    let out = match OutputDir::open(normal_dir) {
        Ok(out) => out,
        Err(err) => {
            log.error(&format!("cannot open {}: {err}", normal_dir.display()));
            return Outcome::Failed;
        }
    };
    let mut files: Vec<(String, String)> = Vec::new();
    match render_slice_dropins(&catalog.host, cpus) {
        Ok(None) => {}
        Ok(Some((game, build))) => {
            files.push(("l4d2-game.slice.d".into(), game));
            files.push(("l4d2-build.slice.d".into(), build));
        }
        Err(why) => log.warning(&format!(
            "{}: key 'system_cpus': {why}; slices keep all CPUs",
            catalog.layout.host_file().display()
        )),
    }
    let mut refused = 0;
    let mut timers = Vec::new();
    for (_, entry) in &catalog.instances {
        match entry {
            Ok(instance) => {
                files.push((
                    format!("left4me-server@{}.service.d", instance.name),
                    render_dropin(instance, &catalog.layout, &catalog.host),
                ));
                if let Some(restart) = render_restart_dropins(instance) {
                    let timer = RestartDropins::timer_unit(&instance.name);
                    let service = RestartDropins::service_unit(&instance.name);
                    files.push((format!("{timer}.d"), restart.timer));
                    files.push((format!("{service}.d"), restart.service));
                    timers.push(timer);
                }
            }
            Err(err) => {
                refused += 1;
                log.error(&format!("{err} (skipped)"));
            }
        }
    }
    if !timers.is_empty() {
        files.push(("timers.target.d".into(), render_timers_upheld(&timers)));
    }
    let mut outcome = Outcome::AllWritten;
    for (dir, err) in out.write_all(&files, cpus as usize) {
        log.error(&format!(
            "cannot write {}/{dir}/{DROPIN_NAME}: {err}",
            normal_dir.display()
        ));
        outcome = Outcome::Failed;
    }
    for (link, err) in out.link_timers(&timers) {
        log.error(&format!(
            "cannot link {}/{link}: {err}",
            normal_dir.display()
        ));
        outcome = Outcome::Failed;
    }
    if refused > 0 {
        log.error(&format!(
            "{refused} of {} instance specs refused; fix them (left4mectl validate) and run `systemctl daemon-reload`",
            catalog.instances.len()
        ));
        if outcome == Outcome::AllWritten {
            outcome = Outcome::SomeRefused;
        }
    }
    outcome
}

/// The drop-in `timers.target.d/50-left4me.conf`: `Upholds=` every scheduled-restart timer.
/// The `timers.target.wants/` links start them at boot; a reload alone starts nothing a
/// `Wants=` adds, while an upheld unit is started whenever systemd finds it inactive under an
/// active upholder, so a `[schedule]` added on a running system takes effect at its
/// `daemon-reload`.
fn render_timers_upheld(timers: &[String]) -> String {
    let mut out = format!(
        "{} from the instance specs' [schedule] tables.\n[Unit]\n",
        left4me_spec::GENERATED_HEADER
    );
    for timer in timers {
        out.push_str(&format!("Upholds={timer}\n"));
    }
    out
}

/// The generator's output dir, written relative to an open descriptor so each file costs few
/// system calls and short path walks (1000 instances are written at every daemon-reload).
struct OutputDir(OwnedFd);

impl OutputDir {
    fn open(dir: &Path) -> rustix::io::Result<Self> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        rustix::fs::open(dir, flags, Mode::empty()).map(OutputDir)
    }

    /// Writes every `(drop-in dir, text)`; returns the failures. The dirs are made first, one
    /// after another (each mkdir locks the shared parent), then the files, which lock only
    /// their own dir, are written on up to `threads` threads.
    fn write_all(
        &self,
        files: &[(String, String)],
        threads: usize,
    ) -> Vec<(String, rustix::io::Errno)> {
        let mut failed: Vec<(String, rustix::io::Errno)> = Vec::new();
        let mut made = Vec::with_capacity(files.len());
        for (dir, text) in files {
            match rustix::fs::mkdirat(&self.0, dir, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => made.push((dir, text)),
                Err(err) => failed.push((dir.clone(), err)),
            }
        }
        failed.extend(map_chunks(&made, threads, 64, |chunk| {
            chunk
                .iter()
                .filter_map(|&(dir, text)| {
                    self.write_file(dir, text).err().map(|e| (dir.clone(), e))
                })
                .collect()
        }));
        failed
    }

    /// Links each timer into every dir of [`TIMER_LINK_DIRS`]; returns the failed links.
    fn link_timers(&self, timers: &[String]) -> Vec<(String, rustix::io::Errno)> {
        if timers.is_empty() {
            return Vec::new();
        }
        let mut failed = Vec::new();
        for dir in TIMER_LINK_DIRS {
            match rustix::fs::mkdirat(&self.0, dir, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(err) => {
                    failed.push((dir.to_owned(), err));
                    continue;
                }
            }
            for timer in timers {
                let link = format!("{dir}/{timer}");
                if let Err(err) = rustix::fs::symlinkat(RESTART_TIMER_TEMPLATE, &self.0, &link) {
                    failed.push((link, err));
                }
            }
        }
        failed
    }

    /// Writes `dir/50-left4me.conf` atomically: a temp file renamed into place. No fsync: the
    /// generator output dirs live on tmpfs and are rebuilt on every daemon-reload.
    fn write_file(&self, dir: &str, text: &str) -> rustix::io::Result<()> {
        let tmp = format!("{dir}/.{DROPIN_NAME}.tmp");
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = rustix::fs::openat(&self.0, &tmp, flags, Mode::from_raw_mode(0o644))?;
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let n = rustix::io::write(&file, rest)?;
            rest = &rest[n..];
        }
        drop(file);
        rustix::fs::renameat(&self.0, &tmp, &self.0, format!("{dir}/{DROPIN_NAME}"))
    }
}

/// The CPUs this process may run on (the whole host at boot), by `sched_getaffinity` — no file
/// outside the config dir is read.
pub fn online_cpus() -> u32 {
    rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count())
}
