//! End to end in a booted systemd (needs root): an instance made with `left4mectl` from a
//! blueprint with two overlays is started, checked from every side (readiness, status, the
//! mount in PID 1's namespace, the game's identity and capabilities, the cfg chain, the
//! sandbox's security score), then taken through stop, restart, reset and delete.

mod booted_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use booted_support::*;
use left4me_a2s::A2sClient;
use left4me_tests::{STATE_DIR, require_root};

/// The highest `systemd-analyze security` exposure we accept for the running unit (the seed
/// project's score on systemd 252).
const MAX_EXPOSURE: f64 = 1.5;

/// Blueprint `coop` with overlays `alpha` (aliased, with a server.cfg) and `beta`, and
/// instance `coop1` from it, all made with left4mectl.
fn create_coop1(sys: &left4me_tests::BootedSystem) -> Result<()> {
    make_overlay(
        sys,
        "alpha",
        &[(
            "left4dead2/cfg/server.cfg",
            "// the alpha overlay's own server.cfg\nhostname \"From Alpha\"\nsv_alpha 1\n",
        )],
    )?;
    make_overlay(
        sys,
        "beta",
        &[("left4dead2/addons/beta.vpk", "not really a vpk\n")],
    )?;
    ctl_ok(
        sys,
        &[
            "blueprint",
            "create",
            "coop",
            "--maxplayers",
            "8",
            "--overlay",
            "overlays/alpha:alpha",
            "--overlay",
            "overlays/beta",
        ],
    )?;
    ctl_ok(
        sys,
        &["create", "coop1", "--port", "27015", "--blueprint", "coop"],
    )?;
    ctl_ok(
        sys,
        &[
            "set",
            "coop1",
            r#"args=["+standin_start_delay", "2", "+standin_bots", "2"]"#,
            r#"config="hostname \"Coop One\"""#,
        ],
    )?;
    Ok(())
}

#[test]
fn booted_start_waits_for_the_game_and_runs_it_confined() -> Result<()> {
    require_root();
    let sys = boot(builder("e2e-start"))?;
    create_coop1(&sys)?;

    // `start` blocks while the game loads (2 s) and the unit is `activating` meanwhile.
    let (started, seen_while_starting) = thread::scope(|scope| {
        let start = scope.spawn(|| {
            let began = Instant::now();
            ctl_ok(&sys, &["start", "coop1"]).map(|out| (out, began.elapsed()))
        });
        thread::sleep(Duration::from_millis(1200));
        let during = state(&sys, "coop1");
        (start.join().expect("the start thread"), during)
    });
    let (out, took) = started?;
    eprintln!("{out}");
    report(&format!(
        "left4mectl start coop1 (game answers after 2 s) returned after {took:.1?}"
    ));
    ensure!(
        took >= Duration::from_secs(2),
        "start returned after {took:?}, before the game could answer"
    );
    let during = seen_while_starting?;
    ensure!(
        during.starts_with("activating/"),
        "1.2 s into the start, before the game answers, coop1 was {during}"
    );
    ensure!(state(&sys, "coop1")? == "active/running");
    ensure!(
        out.contains("started coop1 in ")
            && out.contains("c1m1_hotel, 2/8 players (2 bots) — Coop One"),
        "{out}"
    );

    // status: map and players from the supervisor's STATUS=.
    let status = ctl_ok(&sys, &["status", "coop1"])?;
    eprintln!("{status}");
    for needle in [
        "state      active (running) since ",
        "status     c1m1_hotel, 2/8 players (2 bots) — Coop One\n",
        "unit       left4me-server@coop1.service, enabled (starts at boot)\n",
    ] {
        ensure!(
            status.contains(needle),
            "status lacks {needle:?}:\n{status}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&ctl_ok(&sys, &["status", "coop1", "--json"])?)?;
    ensure!(
        json["active_state"] == "active" && json["spec_ok"] == true,
        "{json}"
    );
    ensure!(json["main_pid"].as_u64().is_some(), "{json}");

    // The overlay is mounted once, in PID 1's mount namespace, with the layers in kernel order.
    let mounts = merged_mounts(&sys, "coop1")?;
    ensure!(mounts.len() == 1, "overlay mounts at merged: {mounts:?}");
    let options = &mounts[0].1;
    let at = |needle: &str| {
        options
            .find(needle)
            .with_context(|| format!("{needle} not in {options}"))
    };
    ensure!(
        at("/overlays/beta")? < at("/overlays/alpha")?
            && at("/overlays/alpha")? < at("/installation")?,
        "lower dirs not topmost first: {options}"
    );

    // The supervisor and the game run as left4me without any capability.
    let uid = sys.run_stdout(["id", "-u", "left4me"])?;
    let game = game_pid(&sys, "coop1")?;
    let supervisor = prop(&sys, "coop1", "MainPID")?;
    for (what, pid) in [("supervisor", &supervisor), ("game", &game)] {
        let status = sys.run_stdout(["cat", &format!("/proc/{pid}/status")])?;
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        ensure!(
            field("Uid:").iter().all(|u| *u == uid) && field("Uid:").len() == 4,
            "{what} {pid}: Uid {:?}, want {uid}",
            field("Uid:")
        );
        for cap in ["CapEff:", "CapPrm:", "CapAmb:"] {
            ensure!(
                field(cap) == ["0000000000000000"],
                "{what} {pid}: {cap} {:?}",
                field(cap)
            );
        }
        ensure!(field("NoNewPrivs:") == ["1"], "{what}: NoNewPrivs");
    }
    eprintln!("supervisor {supervisor} and game {game} run as uid {uid} with no capabilities");

    // The composed server.cfg ran the alias cfg first; the instance's hostname won. Asked the
    // way a player's server browser would, from inside the system's network namespace.
    let (info, rules) = sys.in_netns(|| {
        let client = A2sClient::connect(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 27015)),
            Duration::from_secs(2),
        )?;
        Ok::<_, left4me_a2s::A2sError>((client.info()?, client.rules()?))
    })??;
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.value.as_str())
    };
    ensure!(
        rule("standin_cfg_order") == Some("left4me_rcon.cfg,server_overlay_alpha.cfg,server.cfg"),
        "cfg order {:?}",
        rule("standin_cfg_order")
    );
    ensure!(
        rule("sv_alpha") == Some("1"),
        "the alpha cfg did not run: {rules:?}"
    );
    ensure!(info.name == "Coop One" && info.bots == 2, "{info:?}");
    let log = std::fs::read_to_string(runtime_path(&sys, "coop1", "upper/left4dead2/standin.log"))?;
    ensure!(
        log.contains("cfg order: left4me_rcon.cfg,server_overlay_alpha.cfg,server.cfg\n"),
        "standin log:\n{log}"
    );
    let server_cfg = std::fs::read_to_string(runtime_path(
        &sys,
        "coop1",
        "upper/left4dead2/cfg/server.cfg",
    ))?;
    ensure!(
        server_cfg.contains("exec server_overlay_alpha\nhostname \"Coop One\""),
        "{server_cfg}"
    );

    // The sandbox of the running unit, scored by the booted systemd itself.
    let security = sys.run_stdout(["systemd-analyze", "security", "--no-pager", &unit("coop1")])?;
    let overall = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .context("no overall exposure line")?;
    let score: f64 = overall
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .context("no score")?
        .parse()?;
    report(&format!(
        "systemd-analyze security {} (running, game answering): exposure {score} \
         (limit {MAX_EXPOSURE})",
        unit("coop1")
    ));
    ensure!(
        score <= MAX_EXPOSURE,
        "exposure {score} above {MAX_EXPOSURE}:\n{security}"
    );
    // …while the game still answers.
    ensure!(state(&sys, "coop1")? == "active/running");

    finish(sys, &["coop1"])
}

#[test]
fn booted_stop_restart_reset_delete() -> Result<()> {
    require_root();
    let sys = boot(builder("e2e-verbs"))?;
    make_overlay(
        &sys,
        "maps",
        &[("left4dead2/addons/maps.vpk", "not really a vpk\n")],
    )?;
    ctl_ok(
        &sys,
        &[
            "create",
            "vs1",
            "--port",
            "27020",
            "--overlay",
            "overlays/maps",
        ],
    )?;
    let start = ctl_ok(&sys, &["start", "vs1"])?;
    ensure!(start.contains("started vs1"), "{start}");
    ensure!(merged_mounts(&sys, "vs1")?.len() == 1);

    // stop: inactive, unmounted, overlayfs' work/work gone, the files kept, not enabled.
    let stop = ctl_ok(&sys, &["stop", "vs1"])?;
    eprintln!("{stop}");
    ensure!(
        stop.contains("stopped vs1; disabled: it no longer starts at boot"),
        "{stop}"
    );
    ensure!(state(&sys, "vs1")? == "inactive/dead");
    ensure!(merged_mounts(&sys, "vs1")?.is_empty(), "mounted after stop");
    ensure!(
        !runtime_path(&sys, "vs1", "work/work").exists(),
        "work/work left"
    );
    ensure!(runtime_path(&sys, "vs1", "upper/left4dead2/standin.log").is_file());
    ensure!(prop(&sys, "vs1", "UnitFileState")? == "disabled");
    check_phase_journal(&sys, "vs1")?;
    let again = ctl_ok(&sys, &["stop", "vs1"])?;
    ensure!(again.contains("vs1 was not running"), "{again}");

    // restart from stopped starts it; restart while running replaces the game.
    let out = ctl_ok(&sys, &["restart", "vs1"])?;
    ensure!(out.contains("restarted vs1"), "{out}");
    ensure!(state(&sys, "vs1")? == "active/running");
    let first = prop(&sys, "vs1", "MainPID")?;
    ctl_ok(&sys, &["restart", "vs1"])?;
    let second = prop(&sys, "vs1", "MainPID")?;
    ensure!(state(&sys, "vs1")? == "active/running");
    ensure!(first != second, "restart kept main pid {first}");
    ensure!(
        merged_mounts(&sys, "vs1")?.len() == 1,
        "mounts after restart: {:?}",
        merged_mounts(&sys, "vs1")?
    );

    // reset: stopped, unmounted, runtime dir gone, spec kept; the next start starts afresh.
    let reset = ctl_ok(&sys, &["reset", "vs1"])?;
    eprintln!("{reset}");
    ensure!(
        reset.contains(
            "reset vs1: stopped, nothing mounted, removed /var/lib/left4me/runtime/vs1\n"
        ),
        "{reset}"
    );
    ensure!(state(&sys, "vs1")? == "inactive/dead");
    ensure!(merged_mounts(&sys, "vs1")?.is_empty());
    ensure!(
        !runtime_path(&sys, "vs1", "").exists(),
        "runtime/vs1 is left"
    );
    ensure!(sys.host_path("/etc/left4me/instances/vs1.toml").is_file());
    ctl_ok(&sys, &["start", "vs1"])?;
    let log = std::fs::read_to_string(runtime_path(&sys, "vs1", "upper/left4dead2/standin.log"))?;
    ensure!(
        log.matches("srcds-standin pid=").count() == 1,
        "the upper dir was not fresh:\n{log}"
    );

    // delete: refused without a terminal and --yes; then everything goes.
    let refused = ctl_status(&sys, &["delete", "vs1"], 2)?;
    ensure!(refused.contains("pass --yes"), "{refused}");
    ensure!(state(&sys, "vs1")? == "active/running");
    let deleted = ctl_ok(&sys, &["delete", "vs1", "--yes"])?;
    eprintln!("{deleted}");
    ensure!(
        deleted.contains("deleted vs1: stopped, disabled, nothing mounted, removed "),
        "{deleted}"
    );
    ensure!(!sys.host_path("/etc/left4me/instances/vs1.toml").exists());
    ensure!(!runtime_path(&sys, "vs1", "").exists());
    ensure!(merged_mounts(&sys, "vs1")?.is_empty());
    ensure!(
        !sys.host_path("/etc/systemd/system/multi-user.target.wants/left4me-server@vs1.service")
            .exists()
    );
    ensure!(
        !sys.host_path("/run/systemd/generator/left4me-server@vs1.service.d")
            .exists()
    );
    let units = sys.run_stdout([
        "systemctl",
        "list-units",
        "--all",
        "--no-legend",
        "--plain",
        "left4me-server@*",
    ])?;
    ensure!(units.is_empty(), "units left: {units}");
    let list = ctl_ok(&sys, &["list", "--json"])?;
    ensure!(list.trim() == "[]", "list after delete: {list}");
    ctl_status(&sys, &["status", "vs1"], 2)?;
    ensure!(sys.host_path(STATE_DIR).join("overlays/maps").is_dir());

    finish(sys, &[])
}

/// After one start and stop of `name`: `journalctl LEFT4ME_INSTANCE=NAME` lists the supervisor's
/// lines of all three phases, each with its `LEFT4ME_PHASE`, and every one of them is also shown
/// by `journalctl -u` (so by `systemctl status`).
fn check_phase_journal(sys: &left4me_tests::BootedSystem, name: &str) -> Result<()> {
    let unit = unit(name);
    let wanted = [
        ("prepare", format!("left4me-supervisor: {name}: mounted ")),
        ("run", "left4me-supervisor: started srcds (pid ".to_owned()),
        ("run", "left4me-supervisor: srcds answers after ".to_owned()),
        (
            "run",
            "left4me-supervisor: SIGINT received, sending srcds SIGINT".to_owned(),
        ),
        ("cleanup", format!("left4me-supervisor: {name}: unmounted ")),
    ];
    // journald reads datagrams asynchronously: give the last ones a moment to land.
    let deadline = Instant::now() + Duration::from_secs(5);
    let entries = loop {
        let json = sys.run_stdout([
            "journalctl",
            "--no-pager",
            "-o",
            "json",
            &format!("LEFT4ME_INSTANCE={name}"),
        ])?;
        let entries: Vec<serde_json::Value> = json
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let has = |(phase, prefix): &(&str, String)| {
            entries.iter().any(|e| {
                e["LEFT4ME_PHASE"] == *phase
                    && e["MESSAGE"].as_str().is_some_and(|m| m.starts_with(prefix))
            })
        };
        if wanted.iter().all(has) || Instant::now() > deadline {
            for line in &wanted {
                ensure!(
                    has(line),
                    "no {line:?} in `journalctl LEFT4ME_INSTANCE={name}`:\n{json}"
                );
            }
            break entries;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut unattributed = 0;
    for entry in &entries {
        ensure!(
            entry["SYSLOG_IDENTIFIER"] == "left4me-supervisor",
            "{entry}"
        );
        let by_cgroup = entry["_SYSTEMD_UNIT"] == unit.as_str();
        let by_root = entry["_UID"] == "0" && entry["OBJECT_SYSTEMD_UNIT"] == unit.as_str();
        unattributed += usize::from(!by_cgroup);
        ensure!(
            by_cgroup || by_root,
            "`journalctl -u {unit}` does not show {entry}"
        );
    }
    let shown = sys.journal(Some(&unit));
    for (_, prefix) in &wanted {
        ensure!(
            shown.contains(prefix.as_str()),
            "no {prefix:?} in:\n{shown}"
        );
    }
    report(&format!(
        "journalctl LEFT4ME_INSTANCE={name}: {} entries from prepare, run and cleanup; \
         {unattributed} without _SYSTEMD_UNIT (-u shows those through OBJECT_SYSTEMD_UNIT)",
        entries.len()
    ));
    Ok(())
}
