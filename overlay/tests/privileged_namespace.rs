//! Joining PID 1's mount namespace, for real. Needs root.
//!
//! `setns(CLONE_NEWNS)` needs a single-threaded process and the libtest harness runs every test
//! on a thread of its own, so this file has its own `main` (`harness = false`) and re-executes
//! itself in roles, like the booted-systemd testbed:
//!
//! * `pidns` unshares a PID and a (private) mount namespace and starts
//! * `init`, PID 1 of the new PID namespace, with its own /proc, which runs
//! * `joiner` twice: it unshares yet another private mount namespace, joins PID 1's (or, as the
//!   control, does not) and mounts an overlay. `init` must see the mount exactly when the joiner
//!   joined, and the test's own namespace must never see either.
//!
//! (A PID namespace of our own, because the real PID 1 of a confined test machine may not be
//! inspectable; the code path is the same: `setns` on `/proc/1/ns/mnt`.)

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::{GAME, Tmpfs, assert_root};
use left4me_overlay::{
    MountPlan, MountState, NamespaceJoin, RealSys, UnmountOutcome, ensure_mounted,
    join_pid1_mount_namespace, mount_state, unmount,
};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

const ROLE: &str = "LEFT4ME_TEST_NS_ROLE";
const STATE: &str = "LEFT4ME_TEST_NS_STATE";
const NAME: &str = "LEFT4ME_TEST_NS_NAME";
const JOIN: &str = "LEFT4ME_TEST_NS_JOIN";

fn mnt_ns(pid: &str) -> (u64, u64) {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).unwrap();
    (meta.dev(), meta.ino())
}

/// Unshares `flags` (always including a mount namespace) and makes every mount private, so
/// nothing mounted afterwards propagates back.
fn unshare_private(flags: UnshareFlags) {
    // SAFETY: called from main before any thread exists; the flags unshare namespaces, not the
    // fd table, so no thread can observe descriptors it does not share.
    unsafe { rustix::thread::unshare_unsafe(flags | UnshareFlags::NEWNS) }.expect("unshare");
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .expect("make / private");
}

fn run_self(role: &str, state: &Path, name: &str, join: bool) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(ROLE, role).env(STATE, state).env(NAME, name);
    if join {
        command.env(JOIN, "1");
    } else {
        command.env_remove(JOIN);
    }
    let status = command.status().unwrap();
    assert!(
        status.success(),
        "role {role} ({name}, join={join}) failed: {status}"
    );
}

fn plan(state: &Path, name: &str) -> MountPlan {
    MountPlan::new(state, name, &["installation"]).unwrap()
}

fn role_pidns(state: &Path) {
    unshare_private(UnshareFlags::NEWPID);
    run_self("init", state, "", false);
}

fn role_init(state: &Path) {
    assert_eq!(
        rustix::process::getpid().as_raw_nonzero().get(),
        1,
        "init must be PID 1"
    );
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount("proc", "/proc", "proc", flags, None).expect("mount /proc");
    let sys = RealSys::new();

    run_self("joiner", state, "joined", true);
    let joined = plan(state, "joined");
    let MountState::Mounted(entry) = mount_state(&sys, &joined.runtime).unwrap() else {
        panic!("the joiner's mount is not visible in PID 1's namespace");
    };
    assert_eq!(entry.source, joined.source());
    assert_eq!(
        std::fs::read_to_string(joined.dirs().merged.join("who")).unwrap(),
        "installation"
    );
    assert_eq!(
        unmount(&sys, &joined.runtime).unwrap().outcome,
        UnmountOutcome::Unmounted { mounts: 1 }
    );

    run_self("joiner", state, "private", false);
    assert_eq!(
        mount_state(&sys, &plan(state, "private").runtime).unwrap(),
        MountState::NotMounted
    );
}

fn role_joiner(state: &Path, name: &str, join: bool) {
    unshare_private(UnshareFlags::empty());
    assert_ne!(
        mnt_ns("self"),
        mnt_ns("1"),
        "the joiner must start in a namespace of its own"
    );
    if join {
        assert_eq!(join_pid1_mount_namespace().unwrap(), NamespaceJoin::Joined);
        assert_eq!(mnt_ns("self"), mnt_ns("1"));
        assert_eq!(
            join_pid1_mount_namespace().unwrap(),
            NamespaceJoin::AlreadyThere
        );
    }
    let report = ensure_mounted(&RealSys::new(), &plan(state, name), GAME).unwrap();
    eprintln!("joiner (join={join}): {report}");
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let state = std::path::PathBuf::from(std::env::var_os(STATE).unwrap());
        let name = std::env::var(NAME).unwrap();
        match role.as_str() {
            "pidns" => role_pidns(&state),
            "init" => role_init(&state),
            "joiner" => role_joiner(&state, &name, std::env::var_os(JOIN).is_some()),
            other => panic!("unknown role {other}"),
        }
        return;
    }

    // Honour libtest's `--skip FILTER` (make test passes `--skip privileged` when not root).
    const TEST: &str = "privileged_join_pid1_mount_namespace";
    let args: Vec<String> = std::env::args().collect();
    if args
        .windows(2)
        .any(|w| w[0] == "--skip" && TEST.contains(w[1].as_str()))
    {
        println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 1 filtered out");
        return;
    }
    println!("\nrunning 1 test");
    print!("test privileged_join_pid1_mount_namespace ... ");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    assert_root();
    let t = Tmpfs::new("ns");
    t.write("installation/who", "installation");
    run_self("pidns", t.path(), "", false);
    // Nothing leaked into this namespace.
    for name in ["joined", "private"] {
        assert_eq!(
            Tmpfs::mounts_at(&plan(t.path(), name).dirs().merged),
            0,
            "{name}"
        );
    }
    drop(t);
    println!("ok\n\ntest result: ok. 1 passed; 0 failed");
}
