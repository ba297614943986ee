//! The installed units plus generated drop-ins (the server's, and the scheduled restart's timer
//! and service) pass `systemd-analyze verify` without a single warning, and `systemd-analyze security` scores the server unit at or below the seed's 1.5.
//! Needs root (a private mount namespace); run by `make test`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Installs the units and the already built (dev profile) binaries into a fresh DESTDIR and
/// writes the generator's drop-ins for the design example into its `/etc/systemd/system`.
fn installed_root(tag: &str) -> PathBuf {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run `make test` as root"
    );
    let root = std::env::temp_dir().join(format!("left4me-verify-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let target_dir = Path::new(env!("CARGO_BIN_EXE_left4me-generator"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let out = Command::new("make")
        .arg("-C")
        .arg(workspace())
        .arg("install-files")
        .arg(format!("DESTDIR={}", root.display()))
        .arg("PROFILE=dev")
        .arg(format!("TARGET_DIR={}", target_dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make install-files failed (build the workspace first: make test does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etc = root.join("etc/systemd/system");
    std::fs::create_dir_all(&etc).unwrap();
    // The schedule case first (it also refuses two bad specs, so it exits 1): its restart
    // timers and services for coop1 and coop2 stay; the design example then rewrites coop1's
    // server drop-in.
    let schedules = workspace().join("generator/tests/20-schedule/config");
    Command::new(env!("CARGO_BIN_EXE_left4me-generator"))
        .arg(&etc)
        .env("LEFT4ME_CONFIG_DIR", &schedules)
        .output()
        .unwrap();
    assert!(
        etc.join("left4me-restart@coop2.timer.d/50-left4me.conf")
            .is_file()
    );
    let config = workspace().join("generator/tests/02-design-example/config");
    let out = Command::new(env!("CARGO_BIN_EXE_left4me-generator"))
        .arg(&etc)
        .env("LEFT4ME_CONFIG_DIR", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

#[test]
fn privileged_units_verify_without_warnings() {
    let root = installed_root("verify");
    // verify checks that ExecStart binaries exist at their /usr/lib and /usr/bin paths: lay the
    // DESTDIR's over the host's in a private mount namespace, where nothing else sees them.
    let script = format!(
        "mount -t overlay overlay -o lowerdir={root}/usr/lib:/usr/lib /usr/lib && \
         mount -t overlay overlay -o lowerdir={root}/usr/bin:/usr/bin /usr/bin && \
         SYSTEMD_UNIT_PATH={root}/etc/systemd/system: systemd-analyze verify \
         left4me-server@coop1.service left4me-server@bare.service l4d2-game.slice l4d2-build.slice \
         left4me-game-update.service left4me-game-update.timer \
         left4me-backup.service left4me-backup.timer \
         left4me-overlay-refresh.service left4me-overlay-refresh.timer \
         left4me-restart@coop1.timer left4me-restart@coop1.service \
         left4me-restart@coop2.timer left4me-restart@coop2.service timers.target",
        root = root.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&root).unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{printed}"
    );
    // verify exits 0 even when it warns: any output at all is a failure.
    assert!(
        printed.is_empty(),
        "systemd-analyze verify warned:\n{printed}"
    );
}

#[test]
fn privileged_server_unit_security_score() {
    let root = installed_root("security");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=15", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg("left4me-server@coop1.service")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    std::fs::remove_dir_all(&root).unwrap();
    let score = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in:\n{stdout}"));
    println!(
        "systemd-analyze security left4me-server@coop1.service: {}",
        score.trim()
    );
    assert!(
        out.status.success(),
        "exposure above 1.5 (threshold 15 of 100):\n{stdout}"
    );
}

/// uid and gid of `user` in `<root>/etc/passwd`.
fn ids_in(root: &Path, user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f[0] == user).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("{user} not in {passwd}"))
}

/// The ownership rule (DESIGN.md section 2) as `make install` applies it: the installed
/// tmpfiles.d gives the state dir and every dir root works in to root, the admin dir is root's
/// alone, and on an old install (the game user's state dir) `systemd-tmpfiles --create`
/// resets owner and mode of those dirs but leaves their content alone.
#[test]
fn privileged_tmpfiles_give_roots_dirs_to_root_also_on_upgrade() {
    use std::os::unix::fs::{MetadataExt, chown};
    let root = installed_root("tmpfiles");
    let run = |argv: &[&str]| {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .arg(format!("--root={}", root.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["systemd-sysusers", "left4me.conf"]);
    let (uid, gid) = ids_in(&root, "left4me");
    // An install made before the rule: everything the game user's, 0750, with content.
    let state = root.join("var/lib/left4me");
    for dir in ["installation", "overlays/maps", "workshop_cache", "runtime"] {
        std::fs::create_dir_all(state.join(dir)).unwrap();
    }
    std::fs::write(state.join("left4me.db"), "old ledger").unwrap();
    std::fs::write(state.join("overlays/maps/a.vpk"), "vpk").unwrap();
    for path in [
        "",
        "installation",
        "overlays",
        "overlays/maps",
        "overlays/maps/a.vpk",
        "workshop_cache",
        "left4me.db",
    ] {
        let path = state.join(path);
        chown(&path, Some(uid), Some(gid)).unwrap();
        let mode = if path.is_dir() { 0o750 } else { 0o640 };
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }

    run(&["systemd-tmpfiles", "--create", "left4me.conf"]);

    let owner = |path: &Path| {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    };
    for dir in [
        "var/lib/left4me",
        "var/lib/left4me/installation",
        "var/lib/left4me/overlays",
        "var/lib/left4me/workshop_cache",
        "var/lib/left4me/runtime",
        "var/lib/left4me/game",
        "etc/left4me",
    ] {
        assert_eq!(owner(&root.join(dir)), (0, 0, 0o755), "{dir}");
    }
    assert_eq!(
        owner(&root.join("var/lib/left4me-admin")),
        (0, 0, 0o700),
        "the admin dir"
    );
    // Content keeps its owner: an overlay stays the game user's, the old ledger is left alone.
    assert_eq!(owner(&state.join("overlays/maps")), (uid, gid, 0o750));
    assert_eq!(owner(&state.join("overlays/maps/a.vpk")), (uid, gid, 0o640));
    assert_eq!(owner(&state.join("left4me.db")), (uid, gid, 0o640));
    std::fs::remove_dir_all(&root).unwrap();
}
