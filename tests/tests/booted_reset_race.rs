//! `left4mectl reset` racing starts, in a booted systemd (needs root): while a thread keeps
//! asking systemd to start the instance (as an operator's script or `Restart=` would), reset
//! must succeed or fail cleanly, never remove anything through a mounted game tree, never leave
//! the unit unable to start, and leave at most one overlay mount of the instance.

mod booted_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Result, ensure};
use booted_support::*;
use left4me_tests::{STATE_DIR, require_root};

const ROUNDS: usize = 4;
/// A file of the instance's overlay: a removal that walked into the mounted game tree would
/// take it.
const VPK: &str = "left4dead2/addons/maps.vpk";
const CREATE_RACE1: [&str; 6] = [
    "create",
    "race1",
    "--port",
    "27030",
    "--overlay",
    "overlays/race",
];

#[test]
fn booted_reset_while_starts_keep_coming() -> Result<()> {
    require_root();
    let sys = boot(builder("reset-race"))?;
    // The ownership rule (DESIGN.md §2): root owns the state dir.
    sys.run_ok(["chown", "root:root", STATE_DIR])?;
    sys.run_ok(["chmod", "0755", STATE_DIR])?;
    make_overlay(&sys, "race", &[(VPK, "not really a vpk\n")])?;
    ctl_ok(&sys, &CREATE_RACE1)?;
    // A start holds its mount a while before the game runs: a removal that overlaps a start
    // takes the game tree from under it.
    write(
        &sys,
        "/etc/systemd/system/left4me-server@race1.service.d/90-slow-start.conf",
        "[Service]\nExecStartPre=/bin/sleep 0.5\n",
    )?;
    sys.run_ok(["systemctl", "daemon-reload"])?;
    ctl_ok(&sys, &["start", "race1"])?;
    let vpk = sys.state_dir().join("overlays/race").join(VPK);
    let srcds = sys.state_dir().join("installation/srcds_run");

    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let stop = AtomicBool::new(false);
        let starts = AtomicUsize::new(0);
        let reset = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = sys.run(["systemctl", "start", "--no-block", &unit("race1")]);
                    starts.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let reset = ctl(&sys, &["reset", "race1"]);
            // Keep starting a little after the reset, then stop.
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            reset
        })?;
        let said = text(&reset);
        report(&format!(
            "round {round}: reset exited {} during {} starts: {}",
            reset.status,
            starts.load(Ordering::Relaxed),
            said.trim()
        ));
        ensure!(
            reset.status.success() || (reset.status.code() == Some(1) && said.contains("error: ")),
            "round {round}: reset neither succeeded nor failed cleanly:\n{said}"
        );
        ensure!(
            !said.contains("warning: "),
            "round {round}: reset left something behind:\n{said}"
        );
        ensure!(
            prop(&sys, "race1", "UnitFileState")? != "masked-runtime",
            "round {round}: reset left the unit masked"
        );
        // Whatever the starts did meanwhile, settle and look.
        wait_settled(&sys)?;
        let mounts = merged_mounts(&sys, "race1")?;
        ensure!(
            mounts.len() <= 1,
            "round {round}: more than one overlay mount: {mounts:?}"
        );
        let all = state_overlay_mounts(&sys)?;
        ensure!(all.len() <= 1, "round {round}: overlay mounts {all:?}");
        ensure!(
            vpk.is_file() && srcds.is_file(),
            "round {round}: reset removed the lower layers through the mounted game tree"
        );
        outcomes.push(reset.status.success());
    }
    report(&format!(
        "{} of {ROUNDS} resets succeeded, the others failed cleanly",
        outcomes.iter().filter(|ok| **ok).count()
    ));
    // No start ever overlapped a removal: a prepare that fails by itself (not killed by a
    // stop) exits non-zero ("Control process exited, code=exited"); a game whose tree was
    // removed after prepare finds it "not mounted".
    let journal = sys.run_stdout(["journalctl", "--no-pager", "-q", "-u", &unit("race1")])?;
    let failed: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("Control process exited, code=exited") || l.contains("not mounted"))
        .collect();
    ensure!(
        failed.is_empty(),
        "a start overlapped the removal of its runtime dir:\n{}",
        failed.join("\n")
    );

    // Afterwards the instance still starts, from a runtime dir prepare made whole.
    ctl_ok(&sys, &["restart", "race1"])?;
    ensure!(state(&sys, "race1")? == "active/running");
    ensure!(merged_mounts(&sys, "race1")?.len() == 1);
    finish(sys, &["race1"])
}

/// Waits until no job of the instance is queued or running.
fn wait_settled(sys: &left4me_tests::BootedSystem) -> Result<()> {
    for _ in 0..200 {
        let jobs = sys.run_stdout(["systemctl", "list-jobs", "--no-legend", &unit("race1")])?;
        if jobs.trim().is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("jobs of race1 still pending after 20 s")
}
