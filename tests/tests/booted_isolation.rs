//! Instances are walled off from each other (needs root, boots a throwaway systemd): all run as
//! the game user, so what separates them is the mount namespace the generator's drop-in gives
//! each. Seen from inside instance `a`'s game process (its mount and user namespaces, its uid),
//! nothing of instance `b` — runtime dir, upper layer, spec — nor overlay content, a running
//! build's dir or the job ledger can be read or written; its own files can (the control that
//! shows the probe really runs where the game does).

mod booted_support;

use anyhow::{Result, ensure};
use booted_support::*;
use left4me_tests::{BootedSystem, STATE_DIR, require_root};

const CONFIG_DIR: &str = "/etc/left4me";
const ADMIN_DIR: &str = "/var/lib/left4me-admin";

/// Runs `script` with `sh -c` in the mount and user namespaces of `pid`, as the game user:
/// what the game process itself could do with its files. Returns (exit status, output).
fn as_game(sys: &BootedSystem, pid: &str, script: &str) -> Result<(i32, String)> {
    let uid = sys.run_stdout(["id", "-u", "left4me"])?;
    let gid = sys.run_stdout(["id", "-g", "left4me"])?;
    let out = sys.run([
        "nsenter", "-t", pid, "-m", "-U", "-S", &uid, "-G", &gid, "--", "sh", "-c", script,
    ])?;
    Ok((out.status.code().unwrap_or(-1), text(&out)))
}

#[test]
fn booted_an_instance_sees_nothing_of_another() -> Result<()> {
    require_root();
    let sys = boot(builder("isolation"))?;
    make_overlay(
        &sys,
        "maps",
        &[("left4dead2/addons/maps.vpk", "not really a vpk\n")],
    )?;
    for (name, port) in [("a", "27015"), ("b", "27016")] {
        ctl_ok(
            &sys,
            &["create", name, "--port", port, "--overlay", "overlays/maps"],
        )?;
        ctl_ok(
            &sys,
            &[
                "set",
                name,
                &format!("config=\"hostname \\\"secret-of-{name}\\\"\""),
            ],
        )?;
        ctl_ok(&sys, &["start", name])?;
    }
    // A build in progress and the ledger, as they look on the host.
    write(
        &sys,
        &format!("{STATE_DIR}/overlays/.maps.build-0a1b2c3d/left4dead2/x"),
        "wip\n",
    )?;
    sys.run_ok([
        "chown",
        "-R",
        "left4me:left4me",
        &format!("{STATE_DIR}/overlays/.maps.build-0a1b2c3d"),
    ])?;
    // World-readable on purpose: the admin dir itself must keep it from the game.
    write(&sys, &format!("{ADMIN_DIR}/left4me.db"), "ledger\n")?;
    let game = game_pid(&sys, "a")?;
    let b_cfg_path = runtime_path(&sys, "b", "upper/left4dead2/cfg/server.cfg");
    let b_before = std::fs::read_to_string(&b_cfg_path)?;
    ensure!(b_before.contains("secret-of-b"), "{b_before}");

    // The control: a's game reads and writes its own files.
    let own = [
        format!("cat {STATE_DIR}/runtime/a/upper/left4dead2/cfg/server.cfg"),
        format!("cat {CONFIG_DIR}/instances/a.toml"),
        format!("cat {STATE_DIR}/runtime/a/merged/left4dead2/addons/maps.vpk"),
        format!("echo probe > {STATE_DIR}/runtime/a/merged/left4dead2/probe.txt"),
    ];
    for script in &own {
        let (code, out) = as_game(&sys, &game, script)?;
        ensure!(code == 0, "a's game cannot `{script}`: {out}");
    }
    let (_, cfg) = as_game(&sys, &game, &own[0])?;
    ensure!(cfg.contains("secret-of-a"), "not a's server.cfg: {cfg}");

    // Everything else: refused or absent, for reading and for writing.
    let others = [
        format!("{STATE_DIR}/runtime/b/upper/left4dead2/cfg/server.cfg"),
        format!("{STATE_DIR}/runtime/b/merged/left4dead2/addons/maps.vpk"),
        format!("{CONFIG_DIR}/instances/b.toml"),
        format!("{STATE_DIR}/overlays/maps/left4dead2/addons/maps.vpk"),
        format!("{STATE_DIR}/overlays/.maps.build-0a1b2c3d/left4dead2/x"),
        format!("{ADMIN_DIR}/left4me.db"),
    ];
    for path in &others {
        let (code, out) = as_game(&sys, &game, &format!("cat {path}"))?;
        ensure!(code != 0, "a's game can read {path}: {out}");
        let (code, out) = as_game(&sys, &game, &format!("echo x >> {path}"))?;
        ensure!(code != 0, "a's game can write {path}: {out}");
    }
    for dir in [
        format!("{STATE_DIR}/runtime"),
        format!("{CONFIG_DIR}/instances"),
    ] {
        let (code, out) = as_game(&sys, &game, &format!("ls -A {dir}"))?;
        ensure!(code == 0, "ls {dir}: {out}");
        let entries: Vec<&str> = out.split_whitespace().collect();
        ensure!(
            entries == ["a"] || entries == ["a.toml"],
            "a's game sees {dir} as {entries:?}, want only its own entry"
        );
    }
    // b still has its secret and its game still answers: nothing was changed from a.
    let b_after = std::fs::read_to_string(&b_cfg_path)?;
    ensure!(b_after == b_before, "b's server.cfg changed:\n{b_after}");
    ensure!(state(&sys, "b")? == "active/running");
    finish(sys, &["a", "b"])
}
