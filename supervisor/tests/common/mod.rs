//! The test host of the supervisor's privileged tests: a config dir, a tmpfs state dir with a
//! game tree whose `srcds_run` is the stand-in, and a PID 1 of its own (see
//! `privileged_phases.rs`).
#![allow(dead_code)]

use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SUPERVISOR: &str = env!("CARGO_BIN_EXE_left4me-supervisor");
pub const NOBODY: u32 = 65534;

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run `make test` as root"
    );
}

/// The stand-in game server, built by the workspace next to this test's binary.
pub fn standin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("srcds-standin");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p left4me-standin` (make test does)",
        path.display()
    );
    path
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A host in a temp dir: config dir, tmpfs state dir with a game tree, its own PID 1; torn
/// down on drop.
pub struct Host {
    pub base: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub pid1: Child,
    pub children: Vec<Child>,
}

impl Host {
    pub fn new(tag: &str) -> Host {
        require_root();
        let base = std::env::temp_dir().join(format!("left4me-sup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (config, state) = (base.join("config"), base.join("state"));
        std::fs::create_dir_all(config.join("instances")).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "left4me-test"])
            .arg(&state)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs at {}", state.display());
        let pid1 = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount", "--mount-proc"])
            .args(["--propagation", "private", "sleep", "infinity"])
            .spawn()
            .unwrap();
        std::fs::write(
            config.join("host.toml"),
            "game_user = \"nobody\"\nport_range = [1024, 65535]\n",
        )
        .unwrap();
        let host = Host {
            base,
            config,
            state,
            pid1,
            children: Vec::new(),
        };
        let game = host.state.join("installation");
        std::fs::create_dir_all(game.join("left4dead2/cfg")).unwrap();
        std::fs::copy(standin(), game.join("srcds_run")).unwrap();
        host.wait_for_pid1();
        host
    }

    /// The host pid of the `sleep` that is PID 1 of the test's namespaces.
    pub fn pid1(&self) -> u32 {
        let children = format!("/proc/{0}/task/{0}/children", self.pid1.id());
        std::fs::read_to_string(children)
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("unshare has started its child")
    }

    /// Waits until PID 1 of the test runs `sleep`: only after that exec has unshare mounted the
    /// namespace's own /proc (`--mount-proc`), so `nsenter` before it would see the host's PID 1.
    fn wait_for_pid1(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let children = format!("/proc/{0}/task/{0}/children", self.pid1.id());
        loop {
            let child = std::fs::read_to_string(&children).unwrap_or_default();
            let cmdline = child
                .split_whitespace()
                .next()
                .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
                .unwrap_or_default();
            if cmdline.starts_with(b"sleep\0") {
                return;
            }
            assert!(Instant::now() < deadline, "the test's PID 1 did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = if let Some(rel) = rel.strip_prefix("config/") {
            self.config.join(rel)
        } else {
            self.state.join(rel)
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The supervisor in the test's PID namespace: `run` in PID 1's mount namespace (as the
    /// unit's namespace sees the mount), `prepare` and `cleanup` in a private one.
    pub fn supervisor(&self, verb: &str, name: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("--target")
            .arg(self.pid1().to_string())
            .args(["--pid", "--mount", "--"]);
        if verb != "run" {
            command.args(["unshare", "--mount", "--propagation", "private", "--"]);
        }
        command
            .args([SUPERVISOR, verb, name])
            .env("LEFT4ME_CONFIG_DIR", &self.config)
            .env("LEFT4ME_STATE_DIR", &self.state)
            .env("LEFT4ME_ADMIN_DIR", self.admin())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC");
        command
    }

    pub fn phase(&self, verb: &str, name: &str) -> Output {
        self.supervisor(verb, name).output().unwrap()
    }

    /// Root's admin dir (the locks live in `locks/`).
    pub fn admin(&self) -> PathBuf {
        self.base.join("admin")
    }

    pub fn merged(&self, name: &str) -> PathBuf {
        self.state.join("runtime").join(name).join("merged")
    }

    /// A path as PID 1 of the test sees it.
    pub fn in_pid1(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid1())).join(path.strip_prefix("/").unwrap())
    }

    /// Overlay mounts at `path` in PID 1's mount namespace.
    pub fn mounted_in_pid1(&self, path: &Path) -> usize {
        overlay_mounts(&format!("/proc/{}/mountinfo", self.pid1()), path)
    }

    /// Starts `run NAME` with a notify socket of our own; returns the socket.
    pub fn start_run(&mut self, name: &str) -> UnixDatagram {
        let path = self.base.join(format!("notify-{name}"));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let child = self
            .supervisor("run", name)
            .env("NOTIFY_SOCKET", &path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        socket
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Killing PID 1 of the namespace kills everything in it and frees its mounts.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid1().to_string()])
            .status();
        let _ = self.pid1.wait();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("umount").arg(&self.state).status();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

pub fn overlay_mounts(mountinfo: &str, path: &Path) -> usize {
    let mountinfo = std::fs::read_to_string(mountinfo).unwrap();
    let needle = format!(" {} ", path.display());
    mountinfo
        .lines()
        .filter(|l| l.contains(&needle) && l.contains(" overlay "))
        .count()
}

/// The host pid of the first process whose command line starts with `prefix`.
pub fn pid_of(prefix: &[&str]) -> u32 {
    let wanted: Vec<u8> = prefix.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(&wanted) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no process runs {prefix:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Waits for a notify message containing `wanted`; returns every message seen up to it.
pub fn await_notify(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {wanted:?} from the supervisor ({e}); saw {seen:#?}"));
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = message.contains(wanted);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

/// The stand-in process running from `merged`.
pub fn game_pid(merged: &Path) -> u32 {
    pid_of(&[&merged.join("srcds_run").to_string_lossy()])
}

pub fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
