//! `reset` and `delete` while the owner of a directory in the state dir races them (needs root:
//! the state dir must be root's). A swapper thread exchanges `runtime` with a symbolic link to a
//! canary dir outside the state dir (`renameat2(RENAME_EXCHANGE)`, as a game user owning the
//! state dir could before the ownership rule), and another swaps a subdir of the game user's
//! `upper` with a link to a second canary, for a fixed number of rounds. Whatever the verb
//! reports, both canaries must be intact.

mod common;
mod fakes;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use fakes::Fakes;
use rustix::fs::{CWD, RenameFlags};

const ROUNDS: usize = 40;

/// Exchanges `a` and `b` until told to stop, then leaves them as they were.
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Swapper {
    fn start(a: PathBuf, b: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut swapped = false;
                loop {
                    let stopping = stop.load(Ordering::Relaxed);
                    if stopping && !swapped {
                        break;
                    }
                    if rustix::fs::renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).is_ok() {
                        swapped = !swapped;
                    } else if stopping || !swapped {
                        // One of them is gone (the verb removed it): nothing left to swap.
                        break;
                    }
                }
            })
        };
        Swapper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// `dir/coop1/deep/file` (the target a redirected removal of `runtime/coop1` would hit) and
/// `dir/deep/file`.
fn make_canary(dir: &Path) {
    for sub in ["coop1/deep", "deep"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        fs::write(dir.join(sub).join("file"), "keep me\n").unwrap();
    }
}

fn canary_intact(dir: &Path) -> bool {
    ["coop1/deep/file", "deep/file"]
        .iter()
        .all(|f| fs::read_to_string(dir.join(f)).is_ok_and(|t| t == "keep me\n"))
}

fn race(verb: &[&str]) {
    common::require_root();
    let f = Fakes::new();
    let canary = f.fx.path("canary");
    make_canary(&canary);
    let state = f.fx.path("state");
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        f.fx.write("etc/instances/coop1.toml", "port = 27015\n");
        f.fx.write("state/runtime/coop1/upper/sub/file", "game data\n");
        let evil = state.join("evil");
        let _ = fs::remove_file(&evil);
        symlink(&canary, &evil).unwrap();
        let upper = state.join("runtime/coop1/upper");
        symlink(canary.join("deep"), upper.join("evil")).unwrap();
        let outer = Swapper::start(state.join("runtime"), evil.clone());
        let inner = Swapper::start(upper.join("sub"), upper.join("evil"));
        let run = f.run(verb);
        drop((outer, inner));
        assert!(
            canary_intact(&canary),
            "round {round}: `left4mectl {}` removed files outside the state dir: {run:#?}",
            verb.join(" ")
        );
        assert!(
            run.status == 0 || run.stderr.starts_with("error: "),
            "round {round}: {run:#?}"
        );
        outcomes.push(run.status);
        let _ = fs::remove_dir_all(state.join("runtime"));
    }
    eprintln!(
        "{} of {ROUNDS} `{}` succeeded, the others refused cleanly",
        outcomes.iter().filter(|s| **s == 0).count(),
        verb.join(" ")
    );
}

#[test]
fn privileged_reset_removes_nothing_outside_while_runtime_is_swapped() {
    race(&["reset", "coop1"]);
}

#[test]
fn privileged_delete_removes_nothing_outside_while_runtime_is_swapped() {
    race(&["delete", "coop1", "--yes"]);
}
