//! The mount plan against a fixture host, and the sequence of calls through the recording
//! double.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::plan::join_link;
use super::*;
use crate::policy::{Device, Network, Policy, Profile};
use crate::testutil::TempDir;
use left4me_contract::passwd::Ids;
use std::os::unix::fs::symlink;

/// A merged-/usr host whose /etc/resolv.conf points into /run.
fn host() -> TempDir {
    let dir = TempDir::new();
    let root = dir.path();
    for d in [
        "usr/bin",
        "usr/lib",
        "etc/ssl",
        "run/systemd/resolve",
        "opt/tool",
        "dev",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in [
        "etc/passwd",
        "run/systemd/resolve/stub-resolv.conf",
        "dev/null",
    ] {
        std::fs::write(root.join(f), "").unwrap();
    }
    symlink("usr/bin", root.join("bin")).unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    symlink(
        "../run/systemd/resolve/stub-resolv.conf",
        root.join("etc/resolv.conf"),
    )
    .unwrap();
    dir
}

fn policy(root: &Path) -> Policy {
    Policy {
        read_exec: ["/usr", "/bin", "/lib", "/lib64"]
            .map(PathBuf::from)
            .to_vec(),
        extra_exec: vec![PathBuf::from("/opt/tool")],
        read_only: ["/etc/passwd", "/etc/resolv.conf", "/etc/ssl", "/etc/gnutls"]
            .map(PathBuf::from)
            .to_vec(),
        read_write: vec![PathBuf::from("/overlay"), PathBuf::from("/tmp")],
        home: None,
        devices: vec![
            Device {
                path: PathBuf::from("/dev/null"),
                writable: true,
            },
            Device {
                path: PathBuf::from("/dev/urandom"),
                writable: false,
            },
        ],
        network: Network::Off,
        profile: Profile::Script,
    }
    .concrete(root)
    .unwrap()
}

#[test]
fn plan_binds_what_the_policy_names() {
    let host = host();
    let plan = RootPlan::new(&policy(host.path()), host.path()).unwrap();
    let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "proc at /proc",
            "tmpfs at /tmp",
            "overlay at /overlay",
            "symlink /bin -> usr/bin",
            "symlink /lib -> usr/lib",
            "bind Tree /etc at /etc",
            "bind Tree /usr at /usr",
            "dir /run",
            "dir /run/systemd",
            "dir /run/systemd/resolve",
            "bind File /run/systemd/resolve/stub-resolv.conf at /run/systemd/resolve/stub-resolv.conf",
            "dir /opt",
            "bind Tree /opt/tool at /opt/tool",
            "dir /dev",
            "bind Device /dev/null at /dev/null",
            "symlink /dev/fd -> /proc/self/fd",
            "symlink /dev/stdin -> /proc/self/fd/0",
            "symlink /dev/stdout -> /proc/self/fd/1",
            "symlink /dev/stderr -> /proc/self/fd/2",
        ]
    );
}

#[test]
fn build_root_sequence() {
    let host = host();
    let plan = RootPlan::new(&policy(host.path()), host.path()).unwrap();
    let ops = RecordingMounts::default();
    let output = std::fs::File::open(host.path()).unwrap();
    let map = IdMap {
        sandbox: Ids { uid: 989, gid: 984 },
        owner: Ids { uid: 990, gid: 985 },
    };
    let userns = ops.idmap_userns(&map).unwrap();
    let sources = Sources {
        overlay: OverlaySource::Dir(output.as_fd()),
        home: None,
    };
    build_root(&ops, &plan, &sources, &userns, &map).unwrap();
    let calls = ops.calls();
    let expected_start = [
        "userns uid_map 990 989 1 gid_map 985 984 1",
        "open_tree <output>",
        "setattr <output> IDMAP,NODEV,NOEXEC,NOSUID (userns uid_map 990 989 1 gid_map 985 984 1)",
        "unshare mount namespace; / rslave",
        "open_tree /etc recursive",
        "setattr /etc NODEV,NOSUID,RDONLY recursive",
        "open_tree /usr recursive",
        "setattr /usr NODEV,NOSUID,RDONLY recursive",
        "open_tree /run/systemd/resolve/stub-resolv.conf",
        "setattr /run/systemd/resolve/stub-resolv.conf NODEV,NOEXEC,NOSUID,RDONLY",
        "open_tree /opt/tool recursive",
        "setattr /opt/tool NODEV,NOSUID,RDONLY recursive",
        "open_tree /dev/null",
        "setattr /dev/null NOEXEC,NOSUID,RDONLY",
        "tmpfs /tmp mode=0755,size=1m,nr_inodes=4096",
        "mkdir /tmp/proc 555",
        "proc /tmp/proc hidepid=invisible,subset=pid",
        "mkdir /tmp/tmp 755",
        "tmpfs /tmp/tmp mode=1777",
        "mkdir /tmp/overlay 755",
        "move_mount <output> -> /tmp/overlay",
    ];
    assert_eq!(calls[..expected_start.len()], expected_start);
    let expected_end = [
        "symlink /tmp/dev/stderr -> /proc/self/fd/2",
        "readonly /tmp",
        "pivot_root /tmp",
    ];
    assert_eq!(calls[calls.len() - expected_end.len()..], expected_end);
    assert!(calls.contains(&"create /tmp/dev/null".to_string()));
    assert!(calls.contains(&"move_mount /dev/null -> /tmp/dev/null".to_string()));
    assert!(calls.contains(&"move_mount /usr -> /tmp/usr".to_string()));
}

/// `--lower` and `--home` (SteamCMD, owner root): the lowers read-only and the output
/// directory idmapped before the namespace is unshared; the overlayfs mounted from a private
/// layer tmpfs, which is detached and removed right after; the home idmapped and executable.
#[test]
fn build_root_sequence_with_layers_and_home() {
    let host = host();
    let mut policy = policy(host.path());
    policy.home = Some(PathBuf::from("/home/steamcmd"));
    let plan = RootPlan::new(&policy, host.path()).unwrap();
    let ops = RecordingMounts::default();
    let dir = std::fs::File::open(host.path()).unwrap();
    let map = IdMap {
        sandbox: Ids { uid: 989, gid: 984 },
        owner: Ids { uid: 0, gid: 0 },
    };
    let userns = ops.idmap_userns(&map).unwrap();
    let sources = Sources {
        overlay: OverlaySource::Layers {
            lowers: vec![dir.as_fd(), dir.as_fd()],
            staging: dir.as_fd(),
        },
        home: Some(dir.as_fd()),
    };
    build_root(&ops, &plan, &sources, &userns, &map).unwrap();
    let calls = ops.calls();
    let ns = "(userns uid_map 0 989 1 gid_map 0 984 1)";
    let expected_start = [
        "userns uid_map 0 989 1 gid_map 0 984 1".to_string(),
        "open_tree <output>".into(),
        format!("setattr <output> IDMAP,NODEV,NOEXEC,NOSUID,RDONLY {ns}"),
        "open_tree <output>".into(),
        format!("setattr <output> IDMAP,NODEV,NOEXEC,NOSUID,RDONLY {ns}"),
        "open_tree <output>".into(),
        format!("setattr <output> IDMAP,NODEV,NOEXEC,NOSUID {ns}"),
        "open_tree <output>".into(),
        format!("setattr <output> IDMAP,NODEV,NOSUID {ns}"),
        "unshare mount namespace; / rslave".into(),
    ];
    assert_eq!(calls[..expected_start.len()], expected_start);
    let at = |line: &str| {
        calls
            .iter()
            .position(|c| c == line)
            .unwrap_or_else(|| panic!("no {line:?} in {calls:#?}"))
    };
    let overlay = [
        "mkdir /tmp/overlay 755",
        "mkdir /tmp/.left4me-layers 700",
        "tmpfs /tmp/.left4me-layers mode=0700,size=64k,nr_inodes=64",
        "mkdir /tmp/.left4me-layers/0 700",
        "move_mount <output> -> /tmp/.left4me-layers/0",
        "mkdir /tmp/.left4me-layers/1 700",
        "move_mount <output> -> /tmp/.left4me-layers/1",
        "mkdir /tmp/.left4me-layers/upper 700",
        "move_mount <output> -> /tmp/.left4me-layers/upper",
        "overlay /tmp/overlay lowers /tmp/.left4me-layers/0:/tmp/.left4me-layers/1 \
         upper /tmp/.left4me-layers/upper/tree work /tmp/.left4me-layers/upper/work \
         as uid 989 gid 984",
        "detach /tmp/.left4me-layers",
        "rmdir /tmp/.left4me-layers",
    ];
    let first = at(overlay[0]);
    assert_eq!(calls[first..first + overlay.len()], overlay);
    let home = [
        "mkdir /tmp/home 755",
        "mkdir /tmp/home/steamcmd 755",
        "move_mount <output> -> /tmp/home/steamcmd",
    ];
    let first = at(home[0]);
    assert_eq!(calls[first..first + home.len()], home);
    assert!(at("readonly /tmp") > first);
}

/// A host path beneath the sandbox's own /tmp (a tool kit in /tmp, a checkout under /tmp) is
/// mounted on the sandbox's fresh tmpfs, after it, at the same path.
#[test]
fn plan_mounts_host_paths_under_tmp_on_the_sandbox_tmpfs() {
    let host = host();
    std::fs::create_dir_all(host.path().join("tmp/kit/bin")).unwrap();
    let mut policy = policy(host.path());
    policy.extra_exec = vec![
        PathBuf::from("/tmp/kit"),
        PathBuf::from("/tmp/kit/bin"),
        PathBuf::from("/tmp/kit"),
    ];
    let plan = RootPlan::new(&policy, host.path()).unwrap();
    let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    let at = |line: &str| lines.iter().position(|l| l == line);
    let tmpfs = at("tmpfs at /tmp").expect("the sandbox's /tmp");
    let kit = at("bind Tree /tmp/kit at /tmp/kit").expect("the kit, once");
    assert!(tmpfs < kit, "{lines:#?}");
    assert!(!lines.contains(&"dir /tmp".to_string()), "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("/tmp/kit")).count(),
        1,
        "nested and repeated --allow-exec dirs are bound once: {lines:#?}"
    );
}

#[test]
fn plan_refuses_host_paths_on_the_sandbox_mount_points() {
    let host = host();
    for (path, reserved) in [
        ("/tmp", "/tmp"),
        ("/dev", "/dev/null"),
        ("/overlay/tools", "/overlay"),
        ("/proc/tools", "/proc"),
        ("/", "/"),
    ] {
        std::fs::create_dir_all(host.path().join(path.trim_start_matches('/'))).unwrap();
        let mut policy = policy(host.path());
        policy.extra_exec = vec![PathBuf::from(path)];
        let err = RootPlan::new(&policy, host.path()).unwrap_err();
        assert!(
            matches!(&err, MountError::Reserved { path: p, reserved: r }
                if p == Path::new(path) && r == Path::new(reserved)),
            "{path}: {err}"
        );
    }
}

#[test]
fn link_targets_resolve_lexically() {
    assert_eq!(
        join_link(Path::new("/etc/resolv.conf"), Path::new("../run/x")),
        Path::new("/run/x")
    );
    assert_eq!(
        join_link(Path::new("/lib"), Path::new("usr/lib")),
        Path::new("/usr/lib")
    );
    assert_eq!(
        join_link(Path::new("/a/b"), Path::new("/abs")),
        Path::new("/abs")
    );
}
