//! A throwaway config and state dir, and running the built `left4mectl` against it.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_left4mectl");

pub const BLUEPRINT_COOP: &str = r#"# Shared by the coop servers.
map = "c1m1_hotel"
maxplayers = 4
overlays = [{ path = "overlays/sourcemod", alias = "sm" }]
config = """
sv_consistency 0
"""

[resources]
memory_max = "2G"
"#;

pub const INSTANCE_COOP1: &str = r#"# The first coop server.
blueprint = "coop"
port = 27015 # the game port
map = "c2m1_highway"
args = ["-tickrate", "60"]
overlays = ["overlays/tickrate"]
config = 'hostname "Coop #1"'

[health]
watchdog = "30s" # a minute is too long
"#;

pub const INSTANCE_VS1: &str = "port = 27020\nmaxplayers = 8\n";

/// A temp dir holding `etc/` (the config dir) and `state/`; removed when dropped.
pub struct Fixture {
    pub root: PathBuf,
}

impl Fixture {
    /// An empty config dir.
    pub fn empty() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "left4mectl-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("state")).unwrap();
        Fixture { root }
    }

    /// Blueprint `coop`, instances `coop1` (uses coop) and `vs1`.
    pub fn standard() -> Self {
        let fx = Self::empty();
        fx.write("etc/blueprints/coop.toml", BLUEPRINT_COOP);
        fx.write("etc/instances/coop1.toml", INSTANCE_COOP1);
        fx.write("etc/instances/vs1.toml", INSTANCE_VS1);
        fx
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Writes an executable shell script (an EDITOR).
    pub fn script(&self, rel: &str, body: &str) -> PathBuf {
        let path = self.path(rel);
        fs::write(&path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Every file under the config dir with its bytes, except the lock file (which the
    /// changing verbs create on first use).
    pub fn tree(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if path.file_name().unwrap() != ".left4mectl.lock" {
                    let rel = path.strip_prefix(base).unwrap().to_path_buf();
                    out.insert(rel, fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.config_dir(), &self.config_dir(), &mut out);
        out
    }

    /// `left4mectl ARGS…` against this fixture, without any editor variables and without
    /// touching systemd.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(BIN), args)
    }

    /// [`Self::command`] running `program` (a copy of the binary) instead of the built one.
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LEFT4ME_CONFIG_DIR", self.config_dir())
            .env("LEFT4ME_STATE_DIR", self.root.join("state"))
            .env("LEFT4ME_ADMIN_DIR", self.root.join("admin"))
            .env("COLUMNS", "100")
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .arg("--no-reload")
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap(), self)
    }

    pub fn run_with_editor(&self, editor: &Path, args: &[&str]) -> Run {
        let output = self.command(args).env("EDITOR", editor).output().unwrap();
        Run::from(output, self)
    }

    /// Runs `args`, expects exit status 2 with one `error:` line on stderr containing
    /// `needle`, and checks that no file changed.
    pub fn refused(&self, args: &[&str], needle: &str) -> Run {
        let before = self.tree();
        let run = self.run(args);
        run.assert_refused(needle);
        assert_eq!(self.tree(), before, "files changed by refused {args:?}");
        run
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The result of one run, with the fixture root replaced by `[ROOT]`.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output, fx: &Fixture) -> Self {
        let root = fx.root.to_string_lossy().into_owned();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&root, "[ROOT]");
        Run {
            status: output.status.code().expect("exited, not killed"),
            stdout: text(&output.stdout),
            stderr: text(&output.stderr),
        }
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, 0, "{self:#?}");
        self
    }

    pub fn assert_refused(&self, needle: &str) -> &Self {
        assert_eq!(self.status, 2, "{self:#?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:#?}");
        assert!(self.stderr.starts_with("error: "), "{self:#?}");
        assert!(self.stderr.contains(needle), "want {needle:?}: {self:#?}");
        self
    }
}

/// Fails a test that needs root when it runs without: `make test` runs it as root (CI does)
/// and skips tests named `privileged_*` for an ordinary user.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "privileged test: run as root (make test does, as CI does)"
    );
}
