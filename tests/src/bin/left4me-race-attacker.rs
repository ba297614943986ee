//! The racing attacker of `tests/tests/booted_root_race.rs`: run as the game user inside a
//! booted system while root runs a `left4mectl` verb, it races renames and symlink swaps in
//! every directory of one instance and one overlay that it can write, and tries to rename or
//! replace the root-owned directories on the way (`runtime`, `overlays`, `runtime/NAME`),
//! which must fail with EACCES.
//!
//! ```text
//! left4me-race-attacker [--workshop [--poison]] STATE_DIR INSTANCE OVERLAY STOP_FILE TARGET...
//! ```
//!
//! With `--workshop` it also races in the workshop cache and in every overlay but the TARGETs
//! (DESIGN.md §9): it walks the download dirs `workshop_cache/.build-*` and every
//! `overlays/*` dir it can write (with `--poison` it also opens every downloaded file it can
//! for writing and overwrites its last bytes with [`POISON`] — again through the same
//! descriptors on every later pass, so a file root adopted while the attacker held it open
//! changes under root) and tries to rename or plant links in `workshop_cache` and its `ID/`
//! dirs and to open the cache's files for writing (all root's: each try must fail with
//! EACCES).
//!
//! Every pass undoes what it did before the next starts, so stopping between passes (when
//! STOP_FILE exists) leaves the tree as it was (a poisoned download stays poisoned: that is
//! what the test looks for in the cache). Prints `ready` after the first pass and, at the end,
//! one line `passes=… swaps=… plants=… refused=… absent=… poisoned=…`, then one `HOLE …`
//! line per root-owned directory or file it could change and one `ODD …` line per unexpected
//! error.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, symlink};
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
/// What the attacker writes over the last bytes of a download it can open.
const POISON: &[u8] = b"PLANTED!";
/// How many poisoned files it keeps open.
const MAX_HELD: usize = 64;
/// The workshop cache's entry in the state dir, and its download dirs' prefix.
const CACHE: &str = "workshop_cache";
const BUILD_PREFIX: &str = ".build-";

#[derive(Default)]
struct Counts {
    passes: u64,
    swaps: u64,
    plants: u64,
    refused: u64,
    absent: u64,
    poisoned: u64,
    holes: BTreeSet<String>,
    odd: BTreeSet<String>,
}

struct Attack {
    state: PathBuf,
    instance: String,
    overlay: String,
    targets: Vec<PathBuf>,
    /// `--workshop`: race in the workshop cache and every overlay too.
    workshop: bool,
    /// `--poison`: write into the downloads it can open.
    poison: bool,
    /// Downloads opened for writing, written again on every pass.
    held: Vec<File>,
    counts: Counts,
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let (mut workshop, mut poison) = (false, false);
    while let Some(flag) = args.first() {
        match flag.as_str() {
            "--workshop" => workshop = true,
            "--poison" => poison = true,
            _ => break,
        }
        args.remove(0);
    }
    let [state, instance, overlay, stop, targets @ ..] = args.as_slice() else {
        eprintln!(
            "usage: left4me-race-attacker [--workshop [--poison]] STATE_DIR INSTANCE OVERLAY STOP_FILE \
             TARGET..."
        );
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
        workshop,
        poison,
        held: Vec::new(),
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
        if self.workshop {
            self.cache_owned();
            self.rewrite_held();
        }
        for dir in self.writable_dirs() {
            if self.poison && dir.starts_with(self.state.join(CACHE)) {
                self.poison(&dir);
            }
            self.swap_entries(&dir);
            self.plant(&dir);
        }
    }

    /// Tries to rename `workshop_cache` and its `ID/` dirs, to plant links in them and to
    /// open the cache's files for writing; each try must fail with EACCES.
    fn cache_owned(&mut self) {
        let cache = self.state.join(CACHE);
        let link = self.target(self.counts.passes).to_owned();
        let result = std::fs::rename(&cache, self.state.join(".race-cache"));
        if result.is_ok() {
            let _ = std::fs::rename(self.state.join(".race-cache"), &cache);
        }
        self.judge(&format!("rename {}", cache.display()), result);
        let mut dirs = vec![cache.clone()];
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&cache) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let dir = entry.path();
                let result = std::fs::rename(&dir, cache.join(".race-id"));
                if result.is_ok() {
                    let _ = std::fs::rename(cache.join(".race-id"), &dir);
                }
                self.judge(&format!("rename {}", dir.display()), result);
                if let Ok(inner) = std::fs::read_dir(&dir) {
                    files.extend(inner.flatten().map(|e| e.path()).take(MAX_ENTRIES));
                }
                dirs.push(dir);
            }
        }
        for dir in dirs {
            let planted = dir.join(".race-link");
            let result = symlink(&link, &planted);
            if result.is_ok() {
                let _ = std::fs::remove_file(&planted);
            }
            self.judge(&format!("symlink in {}", dir.display()), result);
        }
        for file in files {
            let result = open_for_writing(&file).map(drop);
            self.judge(&format!("open for writing {}", file.display()), result);
        }
    }

    /// Opens every regular file of `dir` (a dir it can write) for writing, overwrites its
    /// last bytes with [`POISON`] and keeps the descriptor.
    fn poison(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten().take(MAX_ENTRIES) {
            if own(&entry.file_name().to_string_lossy())
                || !entry.file_type().is_ok_and(|t| t.is_file())
                || self.held.len() >= MAX_HELD
            {
                continue;
            }
            if let Ok(file) = open_for_writing(&entry.path()) {
                if poison_file(&file) {
                    self.counts.poisoned += 1;
                }
                self.held.push(file);
            }
        }
    }

    /// Writes [`POISON`] again through every descriptor it holds (the file may have been
    /// renamed, made root's and read-only since: the descriptor still writes).
    fn rewrite_held(&mut self) {
        let mut poisoned = 0;
        for file in &self.held {
            if poison_file(file) {
                poisoned += 1;
            }
        }
        self.counts.poisoned += poisoned;
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
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.starts_with(&prefix)
                            || (self.workshop && name != self.overlay && !own(&name))
                    })
                    .map(|e| e.path())
                    .filter(|p| !self.targets.contains(p)),
            );
        }
        if self.workshop {
            let cache = self.state.join(CACHE);
            if let Ok(entries) = std::fs::read_dir(&cache) {
                starts.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(BUILD_PREFIX))
                        .map(|e| e.path()),
                );
            }
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
            "passes={} swaps={} plants={} refused={} absent={} poisoned={}",
            c.passes, c.swaps, c.plants, c.refused, c.absent, c.poisoned
        );
        for line in c.holes.iter().chain(&c.odd) {
            println!("{line}");
        }
    }
}

/// Opens `path` for writing without following a symlink and without truncating it.
fn open_for_writing(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Overwrites the last bytes of `file` (past a VPK's header) with [`POISON`]; whether it did.
fn poison_file(file: &File) -> bool {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let at = len.saturating_sub(POISON.len() as u64).max(16);
    file.write_all_at(POISON, at).is_ok()
}

fn own(name: &str) -> bool {
    name.starts_with(OWN)
}

fn libc_eacces() -> i32 {
    rustix::io::Errno::ACCESS.raw_os_error()
}
