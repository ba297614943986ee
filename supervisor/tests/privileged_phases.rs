//! The supervisor's three phases for real, as root: a tmpfs state dir, a game tree whose
//! `srcds_run` is the stand-in, real overlayfs mounts, the game run as `nobody`.
//! Run by `make test` (CI is root); fails loudly when not root.
//!
//! Each test makes its own "PID 1": a `sleep` that is PID 1 of a new PID and mount namespace.
//! `prepare` and `cleanup` are started in that PID namespace but in yet another, private mount
//! namespace (as systemd starts them in the unit's namespace), so the overlay only appears in
//! PID 1's namespace if the supervisor really joined it. The test looks at that namespace
//! through `/proc/<pid 1>/mountinfo` and `/proc/<pid 1>/root`.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::*;
use left4me_a2s::A2sClient;
#[test]
fn privileged_full_lifecycle_with_the_standin() {
    let mut host = Host::new("life");
    let port = free_udp_port();
    host.write("overlays/base/left4dead2/addons/base.txt", "base");
    host.write("overlays/tick/left4dead2/cfg/server.cfg", "sv_tick 100\n");
    host.write(
        "config/instances/life.toml",
        &format!(
            "port = {port}\nmap = \"c2m1_highway\"\n\
             overlays = [\"overlays/base\", {{ path = \"overlays/tick\", alias = \"tick\" }}]\n\
             config = 'hostname \"Life #1\"'\n"
        ),
    );

    let prepared = host.phase("prepare", "life");
    assert!(
        prepared.status.success(),
        "prepare failed: {}",
        stderr(&prepared)
    );
    let merged = host.merged("life");
    assert_eq!(
        host.mounted_in_pid1(&merged),
        1,
        "one overlay at merged in PID 1's namespace"
    );
    assert_eq!(
        overlay_mounts("/proc/self/mountinfo", &merged),
        0,
        "the mount lives in PID 1's namespace, not in ours"
    );
    let merged_in_pid1 = host.in_pid1(&merged);
    assert_eq!(
        std::fs::read_to_string(merged_in_pid1.join("left4dead2/addons/base.txt")).unwrap(),
        "base"
    );
    let upper_cfg = host.state.join("runtime/life/upper/left4dead2/cfg");
    let meta = std::fs::metadata(upper_cfg.join("server.cfg")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        NOBODY,
        "staged cfg owned by the game user"
    );
    assert!(upper_cfg.join("server_overlay_tick.cfg").is_file());

    // The RCON password was made at this first start (the spec was written by hand), staged
    // readable by the game user alone, and run first by server.cfg; it is in no output.
    let password = std::fs::read_to_string(host.admin().join("rcon/life")).unwrap();
    let password = password.trim_end();
    assert_eq!(password.len(), 32);
    let rcon_cfg = upper_cfg.join("left4me_rcon.cfg");
    let meta = std::fs::metadata(&rcon_cfg).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY);
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777, 0o600);
    let rcon_text = std::fs::read_to_string(&rcon_cfg).unwrap();
    assert!(
        rcon_text.contains(&format!("\nrcon_password \"{password}\"\n")),
        "{rcon_text}"
    );
    assert!(rcon_text.contains("\nsv_rcon_maxfailures "), "{rcon_text}");
    let server_cfg = std::fs::read_to_string(upper_cfg.join("server.cfg")).unwrap();
    let first = server_cfg.lines().find(|l| !l.starts_with("//"));
    assert_eq!(first, Some("exec left4me_rcon"), "{server_cfg}");
    assert!(!server_cfg.contains(password));
    for output in [&prepared.stdout, &prepared.stderr] {
        assert!(!String::from_utf8_lossy(output).contains(password));
    }

    let notify = host.start_run("life");
    let messages = await_notify(&notify, "READY=1");
    assert!(
        messages
            .last()
            .unwrap()
            .contains("STATUS=c2m1_highway, 0/8 players — Life #1"),
        "{messages:#?}"
    );

    let game = game_pid(&merged);
    assert_eq!(
        status_field(game, "Uid").split_whitespace().next(),
        Some("65534")
    );
    assert_eq!(status_field(game, "CapEff"), "0000000000000000");
    assert_eq!(status_field(game, "CapPrm"), "0000000000000000");
    let argv = std::fs::read(format!("/proc/{game}/cmdline")).unwrap();
    assert!(
        !String::from_utf8_lossy(&argv).contains(password),
        "the password is not on the game's command line"
    );

    let client = A2sClient::connect(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(2),
    )
    .unwrap();
    let rules = client.rules().unwrap();
    let order = rules
        .iter()
        .find(|r| r.name == "standin_cfg_order")
        .expect("cfg order rule");
    assert_eq!(
        order.value,
        "left4me_rcon.cfg,server_overlay_tick.cfg,server.cfg"
    );

    // systemd's stop: SIGINT to the main process, forwarded to the game; a clean quit is success.
    let mut run = host.children.pop().unwrap();
    kill(pid_of(&[SUPERVISOR, "run", "life"]), "-INT");
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "run exits 0 after a clean stop");
    await_notify(&notify, "STOPPING=1");

    let cleaned = host.phase("cleanup", "life");
    assert!(
        cleaned.status.success(),
        "cleanup failed: {}",
        stderr(&cleaned)
    );
    assert_eq!(host.mounted_in_pid1(&merged), 0);
    assert!(
        !host.state.join("runtime/life/work/work").exists(),
        "work/work removed"
    );
    let again = host.phase("cleanup", "life");
    assert!(
        again.status.success(),
        "cleanup is idempotent: {}",
        stderr(&again)
    );
    let log = std::fs::read_to_string(host.state.join("runtime/life/upper/left4dead2/standin.log"))
        .unwrap();
    assert!(log.contains("quit on SIGINT"), "{log}");
}

#[test]
fn privileged_prepare_after_kill_9_keeps_one_mount() {
    let mut host = Host::new("kill9");
    let port = free_udp_port();
    host.write("config/instances/k.toml", &format!("port = {port}\n"));
    assert!(host.phase("prepare", "k").status.success());
    let password = std::fs::read_to_string(host.admin().join("rcon/k")).unwrap();
    let notify = host.start_run("k");
    await_notify(&notify, "READY=1");
    let game = game_pid(&host.merged("k"));
    kill(pid_of(&[SUPERVISOR, "run", "k"]), "-KILL");
    kill(game, "-KILL");
    for child in &mut host.children {
        child.wait().unwrap();
    }
    let again = host.phase("prepare", "k");
    assert!(again.status.success(), "re-prepare: {}", stderr(&again));
    // The kept password is staged again (the same file, 0600): the mount stays.
    assert_eq!(
        std::fs::read_to_string(host.admin().join("rcon/k")).unwrap(),
        password
    );
    assert!(
        stderr(&again).contains("kept the existing mount"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        host.mounted_in_pid1(&host.merged("k")),
        1,
        "one mount, not two"
    );
}

#[test]
fn privileged_symlink_escape_is_refused() {
    let host = Host::new("escape");
    std::fs::create_dir_all(host.state.join("overlays")).unwrap();
    std::os::unix::fs::symlink("/etc", host.state.join("overlays/evil")).unwrap();
    host.write(
        "config/instances/e.toml",
        "port = 27015\noverlays = [\"overlays/evil\"]\n",
    );
    let out = host.phase("prepare", "e");
    assert_eq!(
        out.status.code(),
        Some(4),
        "bad layer exit code: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("overlays/evil"), "{}", stderr(&out));
    assert_eq!(host.mounted_in_pid1(&host.merged("e")), 0);
}

#[test]
fn privileged_fuse_tainted_upper_is_refused() {
    let host = Host::new("fuse");
    host.write("config/instances/f.toml", "port = 27015\n");
    let upper = host.state.join("runtime/f/upper");
    std::fs::create_dir_all(&upper).unwrap();
    let status = Command::new("setfattr")
        .args(["-n", "user.fuseoverlayfs.origin", "-v", "x"])
        .arg(&upper)
        .status()
        .or_else(|_| {
            Command::new("python3")
                .args([
                    "-c",
                    "import os,sys; os.setxattr(sys.argv[1], 'user.fuseoverlayfs.origin', b'x')",
                ])
                .arg(&upper)
                .status()
        })
        .unwrap();
    assert!(status.success(), "set the fuse-overlayfs xattr");
    let out = host.phase("prepare", "f");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("fuse"), "{}", stderr(&out));
    assert_eq!(host.mounted_in_pid1(&host.merged("f")), 0);
}

#[test]
fn privileged_bad_spec_exits_3_and_missing_spec_says_how_to_create_it() {
    let host = Host::new("badspec");
    host.write("config/instances/b.toml", "port = 'x'\n");
    let out = host.phase("prepare", "b");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("b.toml: key 'port'"),
        "{}",
        stderr(&out)
    );
    let out = host.phase("prepare", "nosuch");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("left4mectl create nosuch"),
        "{}",
        stderr(&out)
    );
    let out = host.phase("prepare", "../etc");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// Game versions: `prepare` mounts the current version's chain (not `installation/`), says
/// which one, moves to a new current version only on the next prepare, follows a pin (from
/// the blueprint here), and a pin naming no version fails with exit 4 naming file and key.
#[test]
fn privileged_prepare_mounts_the_current_or_pinned_game_version() {
    use left4me_game::store::{How, NewVersion, Store, running_versions_in};
    let host = Host::new("gamever");
    let state = left4me_statedir::StateDir::open(&host.state).unwrap();
    let store = Store::open(&state, true).unwrap().unwrap();
    let new = |build_id, how| NewVersion {
        build_id,
        branch: "public".into(),
        how,
        platform_workaround: false,
    };
    let staging = store.begin(None).unwrap();
    std::fs::create_dir_all(staging.tree.join("left4dead2/cfg")).unwrap();
    std::fs::copy(standin(), staging.tree.join("srcds_run")).unwrap();
    std::fs::write(staging.tree.join("which"), "100").unwrap();
    store.publish(staging, new(100, How::Install)).unwrap();

    let port = free_udp_port();
    host.write("config/instances/v.toml", &format!("port = {port}\n"));
    let running = |host: &Host| {
        let table = std::fs::read(format!("/proc/{}/mountinfo", host.pid1())).unwrap();
        let entries = left4me_overlay::mountinfo::parse(&table).unwrap();
        running_versions_in(&entries, &host.state).get("v").cloned()
    };
    let out = host.phase("prepare", "v");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("v: game version 100 (1 layer)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(running(&host).as_deref(), Some("100"));
    let which = host.in_pid1(&host.merged("v").join("which"));
    assert_eq!(std::fs::read_to_string(&which).unwrap(), "100");

    // A new version: the mount changes only when prepare runs again, and then it is replaced.
    let staging = store.begin(Some("100")).unwrap();
    std::fs::write(staging.tree.join("which"), "200").unwrap();
    store.publish(staging, new(200, How::Update)).unwrap();
    assert_eq!(running(&host).as_deref(), Some("100"));
    let out = host.phase("prepare", "v");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("game version 200 (2 layers)"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("kept the existing mount"),
        "{}",
        stderr(&out)
    );
    assert_eq!(running(&host).as_deref(), Some("200"));
    assert_eq!(std::fs::read_to_string(&which).unwrap(), "200");
    assert_eq!(host.mounted_in_pid1(&host.merged("v")), 1);
    let again = host.phase("prepare", "v");
    assert!(
        stderr(&again).contains("kept the existing mount"),
        "{}",
        stderr(&again)
    );

    // Pinned by the blueprint.
    host.write("config/blueprints/old.toml", "game_version = \"100\"\n");
    host.write(
        "config/instances/v.toml",
        &format!("blueprint = \"old\"\nport = {port}\n"),
    );
    let out = host.phase("prepare", "v");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("game version 100 (1 layer), pinned"),
        "{}",
        stderr(&out)
    );
    assert_eq!(running(&host).as_deref(), Some("100"));

    // A pin naming no version: exit 4, the file and key named, the mount left alone.
    host.write(
        "config/instances/v.toml",
        &format!("blueprint = \"old\"\nport = {port}\ngame_version = \"999\"\n"),
    );
    let out = host.phase("prepare", "v");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("instances/v.toml: key 'game_version': game version 999 does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(running(&host).as_deref(), Some("100"));
}
