//! Shared set-up of the privileged sandbox tests: test users in a private copy of
//! /etc/passwd and /etc/group (bind-mounted in this test process's own mount namespace, so the
//! host's files are never touched), output directories, listeners and a victim process.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The sandbox user of the tests.
pub const SANDBOX_USER: &str = "l4d2-sbxtest";
/// Its uid and gid.
pub const SANDBOX_UID: u32 = 61901;
/// The owner (game) user of the tests.
pub const OWNER_USER: &str = "left4me-sbxtest";
/// Its uid and gid.
pub const OWNER_UID: u32 = 61902;

/// The runner binary.
pub const RUNNER: &str = env!("CARGO_BIN_EXE_left4me-sandbox");
/// The probe binary.
pub const PROBE: &str = env!("CARGO_BIN_EXE_left4me-sandbox-probe");

/// Whether libtest-style arguments filter out the test `name`: `--skip PATTERN` (which
/// `make test` passes as `--skip privileged` when not root) or positional filters that `name`
/// does not contain. Prints libtest's "filtered out" summary when so.
pub fn filtered_out(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filters = Vec::new();
    let mut skipped = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--skip" => {
                skipped |= args.get(i + 1).is_some_and(|p| name.contains(p.as_str()));
                i += 1;
            }
            "--test-threads" | "--logfile" | "--format" | "--color" | "-Z" => i += 1,
            arg if arg.starts_with('-') => {}
            filter => filters.push(filter.to_owned()),
        }
        i += 1;
    }
    let out =
        skipped || (!filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())));
    if out {
        println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 1 filtered out");
    }
    out
}

/// Panics unless running as root.
pub fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run `make test` as root"
    );
}

/// The directory holding the probe (granted `--allow-exec`).
pub fn probe_dir() -> PathBuf {
    Path::new(PROBE).parent().unwrap().to_path_buf()
}

/// A test run's scratch space and users. Dropping it removes the scratch directory; the
/// passwd/group bind mounts vanish with this process's mount namespace.
#[derive(Debug)]
pub struct TestEnv {
    /// Scratch directory (on the target dir's file system, like a real state dir).
    pub base: PathBuf,
}

impl TestEnv {
    /// Private mount namespace, test users, scratch dir. Call first, while single-threaded.
    pub fn new(name: &str) -> Self {
        assert_root();
        left4me_sandbox::sys::unshare_mount_namespace().expect("unshare(CLONE_NEWNS)");
        rustix::mount::mount_change(
            "/",
            rustix::mount::MountPropagationFlags::PRIVATE
                | rustix::mount::MountPropagationFlags::REC,
        )
        .expect("making / private in the test's namespace");
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("privileged-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        for (file, extra) in [
            (
                "passwd",
                format!(
                    "{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox test:/:/usr/sbin/nologin\n\
                     {OWNER_USER}:x:{OWNER_UID}:{OWNER_UID}:owner test:/:/usr/sbin/nologin\n"
                ),
            ),
            (
                "group",
                format!("{SANDBOX_USER}:x:{SANDBOX_UID}:\n{OWNER_USER}:x:{OWNER_UID}:\n"),
            ),
        ] {
            let host = Path::new("/etc").join(file);
            let mut text = std::fs::read_to_string(&host).unwrap();
            text.push_str(&extra);
            let copy = base.join(file);
            std::fs::write(&copy, text).unwrap();
            rustix::mount::mount_bind(&copy, &host).expect("bind-mounting the test passwd/group");
        }
        Self { base }
    }

    /// A fresh output directory owned by the owner user.
    pub fn output(&self, name: &str) -> PathBuf {
        let dir = self.base.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(OWNER_UID), Some(OWNER_UID)).unwrap();
        dir
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Two loopback listeners: one on the port the sandbox may connect to, one on a port it may not.
#[derive(Debug)]
pub struct Listeners {
    /// Allowed (passed as `--allow-port`).
    pub allowed: TcpListener,
    /// Not allowed.
    pub blocked: TcpListener,
}

impl Listeners {
    /// Binds both on 127.0.0.1 with kernel-chosen ports.
    pub fn new() -> Self {
        Self {
            allowed: TcpListener::bind("127.0.0.1:0").unwrap(),
            blocked: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// The allowed port.
    pub fn allowed_port(&self) -> u16 {
        self.allowed.local_addr().unwrap().port()
    }

    /// The blocked port.
    pub fn blocked_port(&self) -> u16 {
        self.blocked.local_addr().unwrap().port()
    }
}

/// An abstract unix socket listener outside the sandbox.
pub fn abstract_listener(name: &str) -> UnixListener {
    use std::os::linux::net::SocketAddrExt;
    UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap()
}

/// A process outside the sandbox running as the sandbox user (so only the sandbox's own layers,
/// not plain uid checks, can keep the sandbox from signalling or tracing it). Killed on drop.
#[derive(Debug)]
pub struct Victim(pub Child);

impl Victim {
    /// Starts `sleep 600` as the sandbox user.
    pub fn start() -> Self {
        let child = Command::new("/bin/sleep")
            .arg("600")
            .uid(SANDBOX_UID)
            .gid(SANDBOX_UID)
            .spawn()
            .unwrap();
        Self(child)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Records checks and prints them as a table; `finish` exits non-zero if any failed.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<[String; 4]>,
    failures: usize,
}

impl Report {
    /// One check: `what` was tried, `got` happened, `want` was required, `layer` explains who
    /// stops it.
    pub fn check(&mut self, what: &str, got: &str, ok: bool, layer: &str) {
        let status = if ok { "PASS" } else { "FAIL" };
        if !ok {
            self.failures += 1;
        }
        println!("{status}  {what:<44} {got:<26} {layer}");
        self.rows
            .push([status.into(), what.into(), got.into(), layer.into()]);
    }

    /// Prints the summary, cleans up `env`, and exits 1 if a check failed.
    pub fn finish(self, name: &str, env: TestEnv) {
        println!(
            "{name}: {} checks, {} failed",
            self.rows.len(),
            self.failures
        );
        drop(env);
        if self.failures > 0 {
            std::process::exit(1);
        }
    }
}
