//! The racing attacker of `tests/tests/booted_root_race.rs`: run as the game user inside a
//! booted system while root runs a `left4mectl` verb, it races renames and symlink swaps in
//! every directory of one instance and one overlay that it can write, and tries to rename or
//! replace the root-owned directories on the way (`runtime`, `overlays`, `runtime/NAME`),
//! which must fail with EACCES.
//!
//! ```text
//! left4me-race-attacker STATE_DIR INSTANCE OVERLAY STOP_FILE TARGET...
//! ```
//!
//! Every pass undoes what it did before the next starts, so stopping between passes (when
//! STOP_FILE exists) leaves the tree as it was. Prints `ready` after the first pass and, at
//! the end, one line `passes=… swaps=… plants=… refused=… absent=…`, then one `HOLE …` line
//! per root-owned directory it could change and one `ODD …` line per unexpected error.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustix::fs::{Access, CWD, RenameFlags, access, renameat_with};

/// Names root looks for in an instance's or an overlay's tree, planted as symlinks.
const PLANTED: &[&str] = &[
    "left4dead2",
    "cfg",
    "server.cfg",
    "addons",
    "upper",
    "work",
    "merged",
];
/// Prefix of everything the attacker creates itself.
const OWN: &str = ".race-";
/// How deep and how many directories one pass looks at.
const MAX_DEPTH: usize = 8;
const MAX_DIRS: usize = 256;
const MAX_ENTRIES: usize = 32;

#[derive(Default)]
struct Counts {
    passes: u64,
    swaps: u64,
    plants: u64,
    refused: u64,
    absent: u64,
    holes: BTreeSet<String>,
    odd: BTreeSet<String>,
}

struct Attack {
    state: PathBuf,
    instance: String,
    overlay: String,
    targets: Vec<PathBuf>,
    counts: Counts,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state, instance, overlay, stop, targets @ ..] = args.as_slice() else {
        eprintln!("usage: left4me-race-attacker STATE_DIR INSTANCE OVERLAY STOP_FILE TARGET...");
        return ExitCode::from(2);
    };
    if targets.is_empty() {
        eprintln!("left4me-race-attacker: give at least one symlink TARGET");
        return ExitCode::from(2);
    }
    let mut attack = Attack {
        state: PathBuf::from(state),
        instance: instance.clone(),
        overlay: overlay.clone(),
        targets: targets.iter().map(PathBuf::from).collect(),
        counts: Counts::default(),
    };
    let stop = Path::new(stop);
    loop {
        attack.pass();
        if attack.counts.passes == 1 {
            println!("ready");
            let _ = io::stdout().flush();
        }
        if stop.exists() {
            break;
        }
    }
    attack.report();
    ExitCode::SUCCESS
}

impl Attack {
    fn target(&self, n: u64) -> &Path {
        &self.targets[(n % self.targets.len() as u64) as usize]
    }

    fn pass(&mut self) {
        self.counts.passes += 1;
        self.root_owned();
        for dir in self.writable_dirs() {
            self.swap_entries(&dir);
            self.plant(&dir);
        }
    }

    /// Tries to rename or replace what root owns; each try must fail with EACCES.
    fn root_owned(&mut self) {
        let state = self.state.clone();
        let runtime = state.join("runtime");
        let overlays = state.join("overlays");
        let link = self.target(self.counts.passes).to_owned();
        let renames = [
            (runtime.clone(), state.join(".race-runtime")),
            (overlays.clone(), state.join(".race-overlays")),
            (runtime.join(&self.instance), runtime.join(".race-instance")),
            (overlays.join(&self.overlay), overlays.join(".race-overlay")),
        ];
        for (from, to) in &renames {
            let result = std::fs::rename(from, to);
            if result.is_ok() {
                // Put it back, so later rounds see the layout again.
                let _ = std::fs::rename(to, from);
            }
            self.judge(&format!("rename {}", from.display()), result);
        }
        for dir in [&state, &runtime, &overlays] {
            let planted = dir.join(".race-link");
            let result = symlink(&link, &planted);
            if result.is_ok() {
                let _ = std::fs::remove_file(&planted);
            }
            self.judge(&format!("symlink in {}", dir.display()), result);
        }
    }

    fn judge(&mut self, what: &str, result: io::Result<()>) {
        match result {
            Ok(()) => {
                self.counts
                    .holes
                    .insert(format!("HOLE {what}: done as the game user"));
            }
            Err(e) if e.raw_os_error() == Some(libc_eacces()) => self.counts.refused += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.counts.absent += 1,
            Err(e) => {
                self.counts.odd.insert(format!("ODD {what}: {e}"));
            }
        }
    }

    /// The directories of the instance and the overlay the game user can write: everything
    /// beneath `runtime/NAME`, `overlays/OVERLAY` and the overlay's build and old dirs, on the
    /// state dir's file system (not inside a mount), without following a symlink.
    fn writable_dirs(&self) -> Vec<PathBuf> {
        let Ok(state_dev) = std::fs::metadata(&self.state).map(|m| m.dev()) else {
            return Vec::new();
        };
        let overlays = self.state.join("overlays");
        let mut starts = vec![
            self.state.join("runtime").join(&self.instance),
            overlays.join(&self.overlay),
        ];
        let prefix = format!(".{}.", self.overlay);
        if let Ok(entries) = std::fs::read_dir(&overlays) {
            starts.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path()),
            );
        }
        let mut found = Vec::new();
        let mut queue: Vec<(PathBuf, usize)> = starts.into_iter().map(|p| (p, 0)).collect();
        while let Some((dir, depth)) = queue.pop() {
            if found.len() >= MAX_DIRS {
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if !meta.is_dir() || meta.dev() != state_dev {
                continue;
            }
            if access(&dir, Access::WRITE_OK).is_ok() {
                found.push(dir.clone());
            }
            if depth < MAX_DEPTH
                && let Ok(entries) = std::fs::read_dir(&dir)
            {
                queue.extend(
                    entries
                        .flatten()
                        .filter(|e| !own(&e.file_name().to_string_lossy()))
                        .map(|e| (e.path(), depth + 1)),
                );
            }
        }
        found
    }

    /// Exchanges each entry of `dir` with a symlink to a target and back, and renames it
    /// away and back.
    fn swap_entries(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let names: Vec<_> = entries
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| !own(&n.to_string_lossy()))
            .take(MAX_ENTRIES)
            .collect();
        let swap = dir.join(".race-swap");
        let away = dir.join(".race-away");
        for name in names {
            let entry = dir.join(&name);
            let _ = std::fs::remove_file(&swap);
            let link = self.target(self.counts.swaps).to_owned();
            if symlink(&link, &swap).is_err() {
                return;
            }
            if renameat_with(CWD, &entry, CWD, &swap, RenameFlags::EXCHANGE).is_ok() {
                self.counts.swaps += 1;
                std::thread::yield_now();
                let _ = renameat_with(CWD, &swap, CWD, &entry, RenameFlags::EXCHANGE);
            }
            let _ = std::fs::remove_file(&swap);
            if std::fs::rename(&entry, &away).is_ok() {
                std::thread::yield_now();
                // NOREPLACE: if root made a new entry meanwhile, keep root's.
                if renameat_with(CWD, &away, CWD, &entry, RenameFlags::NOREPLACE).is_err() {
                    let _ = std::fs::remove_dir_all(&away).or_else(|_| std::fs::remove_file(&away));
                }
            }
        }
    }

    /// Plants symlinks under the names root looks for, then removes them.
    fn plant(&mut self, dir: &Path) {
        for (i, name) in PLANTED.iter().enumerate() {
            let path = dir.join(name);
            if std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            let link = self.target(self.counts.plants + i as u64).to_owned();
            if symlink(&link, &path).is_ok() {
                self.counts.plants += 1;
                std::thread::yield_now();
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn report(&self) {
        let c = &self.counts;
        println!(
            "passes={} swaps={} plants={} refused={} absent={}",
            c.passes, c.swaps, c.plants, c.refused, c.absent
        );
        for line in c.holes.iter().chain(&c.odd) {
            println!("{line}");
        }
    }
}

fn own(name: &str) -> bool {
    name.starts_with(OWN)
}

fn libc_eacces() -> i32 {
    rustix::io::Errno::ACCESS.raw_os_error()
}
