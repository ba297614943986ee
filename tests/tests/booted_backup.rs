//! End to end in two booted systemds (needs root): `left4mectl backup` on one system with a
//! running instance whose upper layer holds files the game user wrote (the instance is frozen
//! while it is read and runs on afterwards), `left4mectl restore` on a second, fresh system;
//! the instance starts there with the same spec, the same upper-layer files (content, mode,
//! owner) and the same RCON password.

mod booted_support;

use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use booted_support::*;
use left4me_tests::require_root;

/// Files the game user writes into the upper layer of `coop1` (path under `left4dead2/`, text).
const FILES: &[(&str, &str)] = &[
    (
        "addons/sourcemod/data/bans.txt",
        "\"STEAM_1:0:12345\" \"griefing\"\n",
    ),
    (
        "logs/L1206000.log",
        "L 12/06/2026 - 04:00:00: a round ended\n",
    ),
    ("cfg/banned_user.cfg", "banid 0 STEAM_1:1:999\n"),
];

#[test]
fn booted_backup_on_one_system_restore_on_a_fresh_one() -> Result<()> {
    require_root();
    let source = boot(builder("e2e-backup-a"))?;
    ctl_ok(
        &source,
        &[
            "create",
            "coop1",
            "--port",
            "27015",
            "--map",
            "c2m1_highway",
        ],
    )?;
    ctl_ok(&source, &["start", "coop1"])?;
    for (path, text) in FILES {
        let file = format!("/var/lib/left4me/runtime/coop1/upper/left4dead2/{path}");
        let script = format!(
            "mkdir -p \"$(dirname {file})\" && printf '%s' '{text}' > {file} && chmod 640 {file}"
        );
        source.run_ok(["runuser", "-u", "left4me", "--", "sh", "-c", &script])?;
    }
    let spec = source.run_stdout(["cat", "/etc/left4me/instances/coop1.toml"])?;
    let password = ctl_ok(&source, &["rcon-password", "coop1"])?;

    let out = ctl_ok(&source, &["backup", "-o", "/root/coop.tar.zst"])?;
    report(&out);
    ensure!(
        state(&source, "coop1")? == "active/running",
        "coop1 is not running after the backup"
    );
    ensure!(
        prop(&source, "coop1", "FreezerState")? == "running",
        "coop1 was left frozen"
    );
    let archive = std::fs::read(source.host_path("/root/coop.tar.zst"))
        .context("read the archive from the first system")?;
    finish(source, &["coop1"])?;

    let target = boot(builder("e2e-backup-b"))?;
    std::fs::write(target.host_path("/root/coop.tar.zst"), &archive)?;
    let dry = ctl_ok(&target, &["restore", "/root/coop.tar.zst", "--dry-run"])?;
    ensure!(dry.contains("upper layer of coop1"), "{dry}");
    ensure!(
        ctl(&target, &["show", "coop1"])?.status.code() != Some(0),
        "--dry-run wrote the spec"
    );
    let out = ctl_ok(&target, &["restore", "/root/coop.tar.zst"])?;
    report(&out);
    ensure!(out.contains("left4mectl start coop1"), "{out}");
    ctl_ok(&target, &["start", "coop1"])?;
    wait_for(
        &target,
        "coop1",
        "the restored instance runs",
        Duration::from_secs(60),
        || Ok((state(&target, "coop1")? == "active/running").then_some(())),
    )?;
    ensure!(
        target.run_stdout(["cat", "/etc/left4me/instances/coop1.toml"])? == spec,
        "the restored spec differs"
    );
    ensure!(
        ctl_ok(&target, &["rcon-password", "coop1"])? == password,
        "the restored RCON password differs"
    );
    let status = ctl_ok(&target, &["status", "coop1"])?;
    ensure!(status.contains("c2m1_highway"), "{status}");
    for (path, text) in FILES {
        let file = runtime_path(&target, "coop1", &format!("upper/left4dead2/{path}"));
        let got = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        ensure!(got == *text, "{}: {got:?}", file.display());
        let meta = std::fs::metadata(&file)?;
        ensure!(meta.mode() & 0o777 == 0o640, "{}: mode", file.display());
        let owner = target.run_stdout(["stat", "-c", "%U", &file_inside(path)])?;
        ensure!(
            owner.trim() == "left4me",
            "{}: owner {owner}",
            file.display()
        );
    }
    // The game sees them through its merged tree.
    let merged = target.run_stdout([
        "cat",
        "/var/lib/left4me/runtime/coop1/merged/left4dead2/addons/sourcemod/data/bans.txt",
    ])?;
    ensure!(
        merged.trim_end() == FILES[0].1.trim_end(),
        "merged: {merged:?}"
    );
    finish(target, &["coop1"])
}

fn file_inside(path: &str) -> String {
    format!("/var/lib/left4me/runtime/coop1/upper/left4dead2/{path}")
}
