//! The game through SteamCMD, end to end in a booted systemd (needs root; issue 9, DESIGN §8).
//!
//! The stand-in SteamCMD (`tests/steamcmd`, an i386 program) is installed as host.toml's
//! `steamcmd` and talks to the stand-in Steam, an HTTP server the test runs on 192.0.2.10:80
//! inside the system's own network namespace. The scenario: install → two instances start on
//! version A; a new build appears; `game update --restart when-empty` while instance 1 has 2
//! players and instance 2 none → 2 moves to B at once, 1 stays on A and moves when its
//! players leave; A's files never change; `gc` keeps A while it is mounted and removes it
//! after. Then the failures: an update stopped mid-download and one that fails leave
//! `current` and every running instance untouched and no partial version; `check` with Steam
//! unreachable fails clearly while starts still work; and a reboot keeps everything.

mod booted_support;
mod game_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use booted_support::{boot, builder, ctl, ctl_ok, ctl_status, report, text};
use game_support::{
    current, fingerprint, json, running_version, spawn_ctl, version_dirs, wait_for,
};
use left4me_steamcmd_standin::{Depot, DepotFile, Fault, cfg_text};
use left4me_tests::steam::{FakeSteam, STEAM_URL, base_files};
use left4me_tests::{BootedSystem, STATE_DIR, require_root};

const BUILD_A: u64 = 9_100_001;
const BUILD_B: u64 = 9_100_002;

/// The game files of a build: the stand-in server as `srcds_run`, the game dir, and files
/// that change, appear and go between builds.
fn build_files(build: u64) -> Result<Vec<DepotFile>> {
    let mut files = base_files(build)?;
    files.extend([
        DepotFile::generated("left4dead2/pak01_000.vpk", 0o644, 1, 3 << 20),
        DepotFile::bytes("bin/steamclient.so", 0o644, b"not a library\n"),
    ]);
    if build == BUILD_A {
        files.push(DepotFile::bytes(
            "left4dead2/only_in_a.txt",
            0o644,
            b"removed in B\n",
        ));
    } else {
        files.push(DepotFile::bytes(
            "left4dead2/only_in_b.txt",
            0o644,
            b"added in B\n",
        ));
    }
    Ok(files)
}

/// Sets the human players the stand-in server of `name` (on `port`) reports: its control file,
/// written through the instance's mounted tree (inside the system, where the mount is); then
/// waits until A2S_INFO says so.
fn set_players(sys: &BootedSystem, name: &str, port: u16, players: u8) -> Result<()> {
    let control = format!("{STATE_DIR}/runtime/{name}/merged/left4dead2/standin.control");
    sys.run_ok(["sh", "-c", &format!("echo 'players {players}' > {control}")])?;
    wait_for(
        &format!("{name} to report {players} players"),
        Duration::from_secs(10),
        || {
            let info = sys.in_netns(move || {
                left4me_a2s::query_info((Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
            })?;
            Ok(info.is_ok_and(|i| i.players - i.bots == players))
        },
    )
}

#[test]
fn booted_game_install_update_rollout_and_failures() -> Result<()> {
    require_root();
    // `game install` wants room for a real download (about 12 GiB) before it starts.
    let mut sys = boot(builder("game").tmpfs_size("64g"))?;
    let depot_dir = sys.base_dir().join("depot");
    let depot = Depot::create(&depot_dir)?;
    depot.add_build("public", BUILD_A, &build_files(BUILD_A)?)?;
    depot.set_branch("public", BUILD_A, None)?;
    let steam = FakeSteam::start(&sys, Depot::open(&depot_dir), None)?;

    // Install: version A, current, the timer enabled.
    let out = ctl_ok(&sys, &["game", "install"])?;
    report(&format!("install: {}", out.trim()));
    let a = BUILD_A.to_string();
    ensure!(
        current(&sys)? == a,
        "current after install: {}",
        current(&sys)?
    );
    ensure!(
        sys.run_stdout(["systemctl", "is-enabled", "left4me-game-update.timer"])?
            .trim()
            == "enabled",
        "the update timer is not enabled after the install"
    );
    let a_before = fingerprint(&sys, &a)?;
    ensure!(
        a_before.contains("./srcds_run 755 0:0"),
        "A's files are not root's:\n{a_before}"
    );

    // Two instances on A.
    for (name, port) in [("coop1", "27015"), ("coop2", "27016")] {
        ctl_ok(&sys, &["create", name, "--port", port])?;
    }
    ctl_ok(&sys, &["start", "coop1", "coop2"])?;
    for name in ["coop1", "coop2"] {
        ensure!(
            running_version(&sys, name)?.as_deref() == Some(a.as_str()),
            "{name} is not on A"
        );
    }

    // A new build; check says so (exit 1), and the update moves coop2 (empty) at once while
    // coop1 (2 players) stays on A until its players leave.
    depot.add_build("public", BUILD_B, &build_files(BUILD_B)?)?;
    depot.set_branch("public", BUILD_B, None)?;
    ctl_status(&sys, &["game", "check"], 1)?;
    set_players(&sys, "coop1", 27015, 2)?;
    let b = BUILD_B.to_string();
    let mut update = spawn_ctl(
        &sys,
        &[
            "game",
            "update",
            "--restart",
            "when-empty",
            "--max-wait",
            "2min",
        ],
    )?;
    let moved = wait_for("coop2 on B", Duration::from_secs(120), || {
        Ok(running_version(&sys, "coop2")?.as_deref() == Some(b.as_str()))
    });
    if let Err(err) = moved {
        let _ = update.kill();
        let out = update.wait_with_output()?;
        bail!("{err}; `game update` printed:\n{}", text(&out));
    }
    ensure!(
        current(&sys)? == b,
        "current after the update: {}",
        current(&sys)?
    );
    if running_version(&sys, "coop1")?.as_deref() != Some(a.as_str()) {
        let _ = update.kill();
        let out = update.wait_with_output()?;
        bail!(
            "coop1 left A while it had players; status: {}\n`game update` printed:\n{}",
            ctl_ok(&sys, &["status", "coop1"])?,
            text(&out)
        );
    }
    let status = json(&ctl_ok(&sys, &["status", "coop1", "--json"])?)?;
    ensure!(
        status["update_pending"] == true,
        "coop1 is not flagged: {status}"
    );
    // gc keeps A: coop1 still has it mounted.
    ctl_ok(&sys, &["game", "gc"])?;
    ensure!(
        version_dirs(&sys)?.contains(&a),
        "gc removed A while coop1 runs it"
    );

    set_players(&sys, "coop1", 27015, 0)?;
    let out = update.wait_with_output()?;
    ensure!(out.status.success(), "game update failed:\n{}", text(&out));
    report(&format!("update: {}", text(&out).trim()));
    ensure!(
        running_version(&sys, "coop1")?.as_deref() == Some(b.as_str()),
        "coop1 is not on B"
    );
    ensure!(
        fingerprint(&sys, &a)? == a_before,
        "A's files changed during the update"
    );

    // B is a delta: it holds the changed and added files and a whiteout, not the whole game.
    let b_tree = sys.host_path(format!("{STATE_DIR}/game/versions/{b}/tree"));
    ensure!(
        b_tree.join("left4dead2/only_in_b.txt").exists(),
        "B lacks its new file"
    );
    ensure!(
        !b_tree.join("left4dead2/pak01_000.vpk").exists(),
        "B copied an unchanged file"
    );
    let versions = json(&ctl_ok(&sys, &["game", "versions", "--json"])?)?;
    report(&format!("versions: {versions}"));

    // A is B's base: gc keeps it even now that nothing runs it.
    ctl_ok(&sys, &["game", "gc"])?;
    ensure!(
        version_dirs(&sys)?.contains(&a),
        "gc removed A, the base of B"
    );

    // Updates until the chain is full: the next one is squashed into a full tree, and then
    // gc removes the old chain, which nothing mounts or builds on any more.
    let mut last = BUILD_B;
    for _ in 0..left4me_contract::game::MAX_CHAIN - 1 {
        last += 1;
        depot.add_build("public", last, &build_files(last)?)?;
        depot.set_branch("public", last, None)?;
        ctl_ok(&sys, &["game", "update", "--restart", "now"])?;
    }
    let squashed = json(&ctl_ok(&sys, &["game", "versions", "--json"])?)?;
    let newest = squashed
        .as_array()
        .context("versions is an array")?
        .last()
        .cloned();
    let newest = newest.context("no versions")?;
    ensure!(
        newest["how"] == "squash" && newest["parent"].is_null(),
        "not squashed: {newest}"
    );
    ctl_ok(&sys, &["game", "gc"])?;
    let left = version_dirs(&sys)?;
    ensure!(left == [current(&sys)?], "gc left {left:?}");
    let b = current(&sys)?;

    // A failed update (no subscription) and one stopped mid-download change nothing.
    let before = (current(&sys)?, version_dirs(&sys)?);
    depot.set_fault(Fault::NoSubscription)?;
    depot.add_build("public", last + 1, &build_files(last + 1)?)?;
    depot.set_branch("public", last + 1, None)?;
    let out = ctl_status(&sys, &["game", "update", "--restart", "now"], 1)?;
    report(&format!("failed update: {}", out.trim()));
    let jobs = ctl_ok(&sys, &["game", "jobs", "-n", "1", "--log"])?;
    ensure!(
        jobs.contains("failed") && jobs.contains("No subscription"),
        "game jobs does not show the failed run:\n{jobs}"
    );
    ensure!(
        (current(&sys)?, version_dirs(&sys)?) == before,
        "a failed update left changes"
    );
    depot.clear_faults()?;

    // An update stopped mid-download (SIGTERM to left4mectl, as Ctrl-C or a stopped unit
    // would) stops its SteamCMD unit and leaves nothing behind either. The download is
    // throttled so it is still running when the signal comes.
    let mut files = build_files(last + 1)?;
    files.push(DepotFile::generated(
        "left4dead2/pak01_001.vpk",
        0o644,
        last + 1,
        8 << 20,
    ));
    depot.add_build("public", last + 1, &files)?;
    let cfg = sys.host_path(format!("{STATE_DIR}/game/steamcmd/steam_standin.cfg"));
    std::fs::write(&cfg, cfg_text(STEAM_URL, Some(1 << 20)))?;
    let update = spawn_ctl(&sys, &["game", "update", "--restart", "now"])?;
    // The transient SteamCMD units (left4me-game-update-ID.service), not the timer's unit.
    let steamcmd_units = || {
        sys.run_stdout([
            "systemctl",
            "list-units",
            "--no-legend",
            "left4me-game-update-*",
        ])
    };
    wait_for("the throttled download", Duration::from_secs(30), || {
        Ok(steamcmd_units()?.contains("running"))
    })?;
    std::thread::sleep(Duration::from_secs(2));
    sys.run_ok(["pkill", "-TERM", "-f", "left4mectl game update"])?;
    let out = update.wait_with_output()?;
    report(&format!(
        "stopped update: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ));
    ensure!(
        !out.status.success(),
        "a stopped update succeeded:\n{}",
        text(&out)
    );
    ensure!(
        (current(&sys)?, version_dirs(&sys)?) == before,
        "a stopped update left changes: {:?}",
        version_dirs(&sys)?
    );
    let units = steamcmd_units()?;
    ensure!(
        units.trim().is_empty(),
        "SteamCMD units still loaded:\n{units}"
    );
    std::fs::write(&cfg, cfg_text(STEAM_URL, None))?;

    // Steam unreachable: check fails with exit 2 and a clear line; starts still work.
    drop(steam);
    let out = ctl_status(&sys, &["game", "check"], 2)?;
    report(&format!("check offline: {}", out.trim()));
    ctl_ok(&sys, &["restart", "coop2"])?;

    // A reboot keeps the versions, current, and the instances on B.
    sys.reboot()?;
    ensure!(current(&sys)? == b, "current after reboot");
    wait_for(
        "both instances up after reboot",
        Duration::from_secs(60),
        || {
            Ok(["coop1", "coop2"]
                .iter()
                .all(|n| running_version(&sys, n).ok().flatten().as_deref() == Some(b.as_str())))
        },
    )?;
    let _ = ctl(&sys, &["stop", "coop1", "coop2"])?;
    sys.shutdown()?;
    Ok(())
}
