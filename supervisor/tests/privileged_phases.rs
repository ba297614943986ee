//! The supervisor's three phases for real, as root: a tmpfs state dir, a game tree whose
//! `srcds_run` is the stand-in, real overlayfs mounts, the game run as `nobody`.
//! Run by `make test` (CI is root); fails loudly when not root.
//!
//! Each test makes its own "PID 1": a `sleep` that is PID 1 of a new PID and mount namespace.
//! `prepare` and `cleanup` are started in that PID namespace but in yet another, private mount
//! namespace (as systemd starts them in the unit's namespace), so the overlay only appears in
//! PID 1's namespace if the supervisor really joined it. The test looks at that namespace
//! through `/proc/<pid 1>/mountinfo` and `/proc/<pid 1>/root`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use left4me_supervisor::a2s::A2sClient;

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_left4me-supervisor");
const NOBODY: u32 = 65534;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "needs root: run `make test` as root"
    );
}

/// The stand-in game server, built by the workspace next to this test's binary.
fn standin() -> PathBuf {
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

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A host in a temp dir: config dir, tmpfs state dir with a game tree, its own PID 1; torn
/// down on drop.
struct Host {
    base: PathBuf,
    config: PathBuf,
    state: PathBuf,
    pid1: Child,
    children: Vec<Child>,
}

impl Host {
    fn new(tag: &str) -> Host {
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
    fn pid1(&self) -> u32 {
        let children = format!("/proc/{0}/task/{0}/children", self.pid1.id());
        std::fs::read_to_string(children)
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("unshare has started its child")
    }

    fn wait_for_pid1(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid1.id()))
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the test's PID 1 did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn write(&self, rel: &str, text: &str) {
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
    fn supervisor(&self, verb: &str, name: &str) -> Command {
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
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC");
        command
    }

    fn phase(&self, verb: &str, name: &str) -> Output {
        self.supervisor(verb, name).output().unwrap()
    }

    fn merged(&self, name: &str) -> PathBuf {
        self.state.join("runtime").join(name).join("merged")
    }

    /// A path as PID 1 of the test sees it.
    fn in_pid1(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid1())).join(path.strip_prefix("/").unwrap())
    }

    /// Overlay mounts at `path` in PID 1's mount namespace.
    fn mounted_in_pid1(&self, path: &Path) -> usize {
        overlay_mounts(&format!("/proc/{}/mountinfo", self.pid1()), path)
    }

    /// Starts `run NAME` with a notify socket of our own; returns the socket.
    fn start_run(&mut self, name: &str) -> UnixDatagram {
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

fn overlay_mounts(mountinfo: &str, path: &Path) -> usize {
    let mountinfo = std::fs::read_to_string(mountinfo).unwrap();
    let needle = format!(" {} ", path.display());
    mountinfo
        .lines()
        .filter(|l| l.contains(&needle) && l.contains(" overlay "))
        .count()
}

/// The host pid of the first process whose command line starts with `prefix`.
fn pid_of(prefix: &[&str]) -> u32 {
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

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Waits for a notify message containing `wanted`; returns every message seen up to it.
fn await_notify(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
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
fn game_pid(merged: &Path) -> u32 {
    pid_of(&[&merged.join("srcds_run").to_string_lossy()])
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
    assert_eq!(order.value, "server_overlay_tick.cfg,server.cfg");

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
