//! The call sequences of mounting, keeping, replacing and unmounting, against the recording
//! double (no root needed).

use super::*;
use crate::dirs::caller;
use crate::recording::RecordingSys;
use crate::testutil::TempDir;
use crate::verify::mount_state;

fn state() -> TempDir {
    let t = TempDir::new("mount");
    for d in ["installation", "overlays/a", "overlays/b"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
    }
    t
}

fn plan(t: &TempDir, layers: &[&str]) -> MountPlan {
    MountPlan::new(t.path(), "coop1", layers).unwrap()
}

/// The calls that mount `plan` by descriptor (without the probe).
fn fd_mount_calls(plan: &MountPlan) -> Vec<String> {
    let mut calls = vec![
        "fsopen overlay".to_owned(),
        format!("fsconfig source={}", plan.source()),
    ];
    for dir in &plan.lowerdirs {
        calls.push(format!("fsconfig lowerdir+=fd:{}", dir.display()));
    }
    calls.push(format!(
        "fsconfig upperdir=fd:{}",
        plan.dirs().upper.display()
    ));
    calls.push(format!(
        "fsconfig workdir=fd:{}",
        plan.dirs().work.display()
    ));
    calls.push("fsconfig create".into());
    calls.push("fsmount nosuid,nodev".into());
    calls.push(format!("move_mount {}", plan.dirs().merged.display()));
    calls
}

#[test]
fn mount_keep_replace_unmount() {
    let t = state();
    let sys = RecordingSys::new();
    let p = plan(&t, &["overlays/b", "overlays/a", "installation"]);

    let report = ensure_mounted(&sys, &p, caller()).unwrap();
    assert_eq!(report.outcome, MountOutcome::Mounted);
    assert_eq!(report.method, Some(MountMethod::LayerFds));
    assert_eq!(report.layers, 3);
    let mut want = vec![
        "fsopen overlay".to_owned(),
        format!("fsconfig lowerdir+=fd:{}", p.lowerdirs[0].display()),
    ];
    want.extend(fd_mount_calls(&p));
    assert_eq!(sys.calls(), want);
    assert_eq!(
        report.to_string(),
        format!(
            "coop1: mounted 3 layers at {} via fsconfig lowerdir+ by file descriptor (Linux 6.13+)",
            p.dirs().merged.display()
        )
    );
    assert!(matches!(
        mount_state(&sys, &p.runtime).unwrap(),
        MountState::Mounted(_)
    ));

    // Second call keeps it, without a single mount call.
    sys.clear_calls();
    let report = ensure_mounted(&sys, &p, caller()).unwrap();
    assert_eq!(report.outcome, MountOutcome::AlreadyMounted);
    assert_eq!(report.method, None);
    assert_eq!(sys.calls(), Vec::<String>::new());

    // A different plan replaces it: unmount, then mount (the probe is not repeated).
    sys.clear_calls();
    let q = plan(&t, &["overlays/a", "installation"]);
    let report = ensure_mounted(&sys, &q, caller()).unwrap();
    match &report.outcome {
        MountOutcome::Replaced { reason } => {
            assert!(
                reason.starts_with("it was made from another plan: source left4me:coop1:"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let mut want = vec![format!("umount {}", p.dirs().merged.display())];
    want.extend(fd_mount_calls(&q));
    assert_eq!(sys.calls(), want);
    assert_eq!(sys.mount_targets(), std::slice::from_ref(&q.dirs().merged));

    // Unmount: once, then nothing to do; overlayfs' leftovers are removed.
    std::fs::create_dir_all(q.dirs().work.join("work")).unwrap();
    std::fs::create_dir_all(q.dirs().work.join("index/00")).unwrap();
    sys.clear_calls();
    let report = unmount(&sys, &q.runtime).unwrap();
    assert_eq!(report.outcome, UnmountOutcome::Unmounted { mounts: 1 });
    assert_eq!(
        report.removed,
        [q.dirs().work.join("work"), q.dirs().work.join("index")]
    );
    assert_eq!(
        sys.calls(),
        [format!("umount {}", q.dirs().merged.display())]
    );
    assert!(sys.mount_targets().is_empty());
    sys.clear_calls();
    let report = unmount(&sys, &q.runtime).unwrap();
    assert_eq!(
        report,
        UnmountReport {
            outcome: UnmountOutcome::NotMounted,
            removed: vec![],
            moved: vec![]
        }
    );
    assert_eq!(sys.calls(), Vec::<String>::new());
}

#[test]
fn unmount_without_runtime_dir() {
    let t = state();
    let sys = RecordingSys::new();
    let report = unmount(&sys, &plan(&t, &["installation"]).runtime).unwrap();
    assert_eq!(report.outcome, UnmountOutcome::NotMounted);
    assert!(!t.path().join("runtime").exists());
    assert_eq!(
        mount_state(&sys, &plan(&t, &["installation"]).runtime).unwrap(),
        MountState::NotMounted
    );
}

#[test]
fn staged_files_change_replaces() {
    let t = state();
    let sys = RecordingSys::new();
    let p = plan(&t, &["installation"]);
    let cfg = |text: &str| [StagedFile::new("left4dead2/cfg/server.cfg", text)];
    prepare(
        &sys,
        &resolve_plan(&p).unwrap(),
        caller(),
        &cfg("hostname a\n"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(p.dirs().upper.join("left4dead2/cfg/server.cfg")).unwrap(),
        "hostname a\n"
    );
    let report = prepare(
        &sys,
        &resolve_plan(&p).unwrap(),
        caller(),
        &cfg("hostname a\n"),
    )
    .unwrap();
    assert_eq!(report.outcome, MountOutcome::AlreadyMounted);
    sys.clear_calls();
    let report = prepare(
        &sys,
        &resolve_plan(&p).unwrap(),
        caller(),
        &cfg("hostname b\n"),
    )
    .unwrap();
    assert_eq!(
        report.outcome,
        MountOutcome::Replaced {
            reason: "the staged files changed".into()
        }
    );
    // The file is staged between the unmount and the mount.
    assert_eq!(
        sys.calls()[0],
        format!("umount {}", p.dirs().merged.display())
    );
    assert_eq!(
        std::fs::read_to_string(p.dirs().upper.join("left4dead2/cfg/server.cfg")).unwrap(),
        "hostname b\n"
    );
}

#[test]
fn stacked_and_foreign_mounts_are_all_replaced() {
    let t = state();
    let sys = RecordingSys::new();
    let p = plan(&t, &["installation"]);
    ensure_mounted(&sys, &p, caller()).unwrap();
    let dirs = ensure_runtime_dirs(&p.runtime, caller()).unwrap();
    let target = rustix::fs::open(
        &p.dirs().merged,
        rustix::fs::OFlags::PATH,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    drop(dirs);
    let other = ClassicMount {
        source: "other",
        options: p.options,
        data: "lowerdir=/x",
    };
    sys.mount_classic(&other, target.as_fd()).unwrap();
    assert_eq!(sys.mount_targets().len(), 2);
    sys.clear_calls();
    let report = ensure_mounted(&sys, &p, caller()).unwrap();
    assert_eq!(
        report.outcome,
        MountOutcome::Replaced {
            reason: format!(
                "it was made from another plan: source other, expected {}",
                p.source()
            )
        }
    );
    let umount = format!("umount {}", p.dirs().merged.display());
    assert_eq!(sys.calls()[..2], [umount.clone(), umount]);
    assert_eq!(sys.mount_targets(), std::slice::from_ref(&p.dirs().merged));
}

#[test]
fn busy_unmount_says_what_to_do() {
    let t = state();
    let sys = RecordingSys::new();
    let p = plan(&t, &["installation"]);
    ensure_mounted(&sys, &p, caller()).unwrap();
    sys.set_busy(true);
    let e = unmount(&sys, &p.runtime).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "unmount {0}: busy: a process still uses the game tree; stop the instance \
             (`systemctl stop left4me-server@coop1`) and look for stragglers with `fuser -vm {0}`",
            p.dirs().merged.display()
        )
    );
    sys.set_busy(false);
    assert_eq!(
        unmount(&sys, &p.runtime).unwrap().outcome,
        UnmountOutcome::Unmounted { mounts: 1 }
    );
}

#[test]
fn falls_back_to_layer_paths() {
    let t = state();
    let sys = RecordingSys::emulating(MountMethod::LayerPaths);
    let p = plan(&t, &["overlays/a", "installation"]);
    let report = ensure_mounted(&sys, &p, caller()).unwrap();
    assert_eq!(report.method, Some(MountMethod::LayerPaths));
    let calls = sys.calls();
    assert_eq!(calls[0], "fsopen overlay");
    assert_eq!(
        calls[1],
        format!("fsconfig lowerdir+=fd:{}", p.lowerdirs[0].display())
    );
    assert_eq!(calls[2], "fsopen overlay");
    assert!(
        calls[3].starts_with("fsconfig lowerdir+=/proc/self/fd/"),
        "{}",
        calls[3]
    );
    assert_eq!(calls[4], "fsopen overlay");
    assert_eq!(calls[5], format!("fsconfig source={}", p.source()));
    for (i, key) in ["lowerdir+", "lowerdir+", "upperdir", "workdir"]
        .iter()
        .enumerate()
    {
        assert!(
            calls[6 + i].starts_with(&format!("fsconfig {key}=/proc/self/fd/")),
            "{calls:?}"
        );
    }
    assert_eq!(
        calls[10..],
        [
            "fsconfig create".to_owned(),
            "fsmount nosuid,nodev".into(),
            format!("move_mount {}", p.dirs().merged.display())
        ]
    );
    // Matched by its source fingerprint.
    assert_eq!(
        ensure_mounted(&sys, &p, caller()).unwrap().outcome,
        MountOutcome::AlreadyMounted
    );
}

#[test]
fn falls_back_to_classic_mount() {
    let t = state();
    let sys = RecordingSys::emulating(MountMethod::Classic);
    let p = plan(&t, &["overlays/b", "overlays/a", "installation"]);
    let report = ensure_mounted(&sys, &p, caller()).unwrap();
    assert_eq!(report.method, Some(MountMethod::Classic));
    let calls = sys.calls();
    assert_eq!(calls.len(), 5, "{calls:?}");
    let mount = &calls[4];
    let prefix = format!(
        "mount {} {} nosuid,nodev lowerdir=/proc/self/fd/",
        p.source(),
        p.dirs().merged.display()
    );
    assert!(mount.starts_with(&prefix), "{mount}");
    assert_eq!(mount.matches(":/proc/self/fd/").count(), 2, "{mount}");
    assert!(
        mount.contains(",upperdir=/proc/self/fd/") && mount.contains(",workdir=/proc/self/fd/")
    );
    assert_eq!(
        ensure_mounted(&sys, &p, caller()).unwrap().outcome,
        MountOutcome::AlreadyMounted
    );
}

#[test]
fn classic_mount_refuses_more_than_a_page() {
    let t = state();
    let layers: Vec<String> = (0..300).map(|i| format!("overlays/{i}")).collect();
    for l in &layers {
        std::fs::create_dir_all(t.path().join(l)).unwrap();
    }
    let p = MountPlan::new(t.path(), "coop1", &layers).unwrap();
    let sys = RecordingSys::emulating(MountMethod::Classic);
    let e = ensure_mounted(&sys, &p, caller()).unwrap_err();
    assert!(
        matches!(e, MountError::OptionsTooLong { layers: 300, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("upgrade the kernel or use fewer overlays"),
        "{e}"
    );
    assert!(sys.mount_targets().is_empty());
    // The new mount API takes them.
    let sys = RecordingSys::new();
    ensure_mounted(&sys, &p, caller()).unwrap();
}

#[test]
fn refusals_happen_before_any_mount_call() {
    let t = state();
    std::os::unix::fs::symlink("/etc", t.path().join("overlays/evil")).unwrap();
    let sys = RecordingSys::new();
    let e = ensure_mounted(
        &sys,
        &plan(&t, &["overlays/evil", "installation"]),
        caller(),
    )
    .unwrap_err();
    assert!(
        matches!(e, MountError::Layer(LayerError::Layer { .. })),
        "{e}"
    );
    assert!(
        e.to_string().contains("overlays/evil: escapes overlays/"),
        "{e}"
    );
    assert_eq!(sys.calls(), Vec::<String>::new());
}

#[test]
fn fuse_tainted_upper_refused() {
    let t = state();
    let p = plan(&t, &["installation"]);
    let dirs = ensure_runtime_dirs(&p.runtime, caller()).unwrap();
    std::fs::create_dir_all(p.dirs().upper.join("left4dead2/addons")).unwrap();
    let deep = rustix::fs::open(
        p.dirs().upper.join("left4dead2/addons"),
        rustix::fs::OFlags::RDONLY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    rustix::fs::fsetxattr(
        &deep,
        "user.fuseoverlayfs.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    drop(dirs);
    let sys = RecordingSys::new();
    let e = ensure_mounted(&sys, &p, caller()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{} carries the xattr user.fuseoverlayfs.opaque: the upper dir is left over from \
             fuse-overlayfs; wipe it with `left4mectl reset coop1`",
            p.dirs().upper.join("left4dead2/addons").display()
        )
    );
    assert_eq!(sys.calls(), Vec::<String>::new());
}
