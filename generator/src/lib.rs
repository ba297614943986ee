//! The left4me systemd generator: turns every valid instance spec into
//! `left4me-server@NAME.service.d/50-left4me.conf`, and `host.toml`'s CPU split into slice
//! drop-ins. It reads only the config dir; it never touches the state dir, the network or D-Bus.

#![forbid(unsafe_code)]

mod log;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use left4me_spec::{Catalog, render_dropin, render_slice_dropins};

pub use log::Logger;

/// The drop-in file name, inside `left4me-server@NAME.service.d/`.
pub const DROPIN_NAME: &str = "50-left4me.conf";

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
/// refused spec with its reason.
pub fn generate(
    config_dir: &Path,
    state_dir: Option<PathBuf>,
    normal_dir: &Path,
    cpus: u32,
    log: &mut Logger,
) -> Outcome {
    let catalog = match Catalog::load(config_dir, state_dir) {
        Ok(catalog) => catalog,
        Err(err) => {
            log.error(&format!("{err}; no instance drop-ins written"));
            return Outcome::Failed;
        }
    };
    let mut outcome = Outcome::AllWritten;
    let mut write = |dir: String, text: &str, log: &mut Logger| {
        if let Err(err) = write_dropin(&normal_dir.join(&dir), text) {
            log.error(&format!(
                "cannot write {}/{dir}/{DROPIN_NAME}: {err}",
                normal_dir.display()
            ));
            outcome = Outcome::Failed;
        }
    };
    match render_slice_dropins(&catalog.host, cpus) {
        Ok(None) => {}
        Ok(Some((game, build))) => {
            write("l4d2-game.slice.d".into(), &game, log);
            write("l4d2-build.slice.d".into(), &build, log);
        }
        Err(why) => log.warning(&format!(
            "{}: key 'system_cpus': {why}; slices keep all CPUs",
            catalog.layout.host_file().display()
        )),
    }
    let mut refused = 0;
    for (_, entry) in &catalog.instances {
        match entry {
            Ok(instance) => write(
                format!("left4me-server@{}.service.d", instance.name),
                &render_dropin(instance, &catalog.layout, &catalog.host),
                log,
            ),
            Err(err) => {
                refused += 1;
                log.error(&format!("{err} (skipped)"));
            }
        }
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

/// Writes `dir/50-left4me.conf` atomically: a temp file renamed into place. No fsync: the
/// generator output dirs live on tmpfs and are rebuilt on every daemon-reload.
fn write_dropin(dir: &Path, text: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{DROPIN_NAME}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    fs::rename(&tmp, dir.join(DROPIN_NAME))
}

/// The CPUs this process may run on (the whole host at boot), by `sched_getaffinity` — no file
/// outside the config dir is read.
pub fn online_cpus() -> u32 {
    rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count())
}
