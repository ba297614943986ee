//! Shared by the stand-in's integration tests: temporary game trees with the stand-in installed
//! as `srcds_run`, and a running stand-in that is killed on drop.
#![allow(dead_code)] // Each test file uses a different part.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use left4me_a2s::{A2sClient, Info};

pub const STANDIN: &str = env!("CARGO_BIN_EXE_srcds-standin");
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(300);

/// A game tree in a temp dir: `srcds_run` (a symlink to the stand-in) and `left4dead2/cfg/`.
pub struct GameTree {
    pub root: PathBuf,
}

impl GameTree {
    pub fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "left4me-standin-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("left4dead2/cfg")).unwrap();
        std::os::unix::fs::symlink(STANDIN, root.join("srcds_run")).unwrap();
        Self { root }
    }

    pub fn game(&self) -> PathBuf {
        self.root.join("left4dead2")
    }

    pub fn cfg(&self, name: &str, text: &str) -> &Self {
        let path = self.game().join("cfg").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn control(&self, words: &str) {
        std::fs::write(self.game().join("standin.control"), words).unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.game().join("standin.log")).unwrap_or_default()
    }
}

impl Drop for GameTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A port free for UDP (the game) and TCP (RCON, on the same port) on 127.0.0.1 now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running stand-in; killed on drop so a failing test leaves no process behind.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Start `<root>/srcds_run` as the supervisor does: cwd `<root>/left4dead2`, a set HOME.
    ///
    /// The ports are free when chosen, but another test (or process) may bind one before the
    /// stand-in does, which then quits (`-strictportbind`, as under left4me): such a start is
    /// made again on other ports.
    pub fn start(tree: &GameTree, extra: &[&str]) -> Self {
        for _ in 0..5 {
            let mut server = Self::spawn(tree, extra);
            if !server.lost_a_port(tree) {
                return server;
            }
        }
        Self::spawn(tree, extra)
    }

    /// Whether the stand-in quit within its first 300 ms because a port was taken.
    fn lost_a_port(&mut self, tree: &GameTree) -> bool {
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                let log = tree.log();
                return log.contains("was unavailable - quitting")
                    || log.contains("Couldn't allocate any");
            }
            sleep(Duration::from_millis(20));
        }
        false
    }

    fn spawn(tree: &GameTree, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(tree.root.join("srcds_run"))
            .args([
                "-game",
                "left4dead2",
                "-norestart",
                "-strictportbind",
                "-port",
                &port.to_string(),
                "+clientport",
                &free_port().to_string(),
                "-nohltv",
            ])
            .args(["+ip", "127.0.0.1", "+map", "c1m1_hotel"])
            .args(extra)
            .current_dir(tree.game())
            .env("HOME", "/nonexistent/standin-home")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    pub fn client(&self) -> A2sClient {
        A2sClient::connect(self.addr, QUERY_TIMEOUT).unwrap()
    }

    /// Query until A2S_INFO is answered; panics after `within`.
    pub fn wait_ready(&mut self, within: Duration) -> Info {
        let client = self.client();
        let deadline = Instant::now() + within;
        loop {
            match client.info() {
                Ok(info) => return info,
                Err(e) if Instant::now() < deadline => {
                    assert!(
                        self.child.try_wait().unwrap().is_none(),
                        "exited early: {e}"
                    );
                    sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("no answer within {within:?}: {e}"),
            }
        }
    }

    /// Query until A2S_INFO stops being answered; panics after `within`.
    pub fn wait_silent(&self, within: Duration) {
        let client = self.client();
        let deadline = Instant::now() + within;
        while client.info().is_ok() {
            assert!(
                Instant::now() < deadline,
                "still answering after {within:?}"
            );
            sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}");
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
