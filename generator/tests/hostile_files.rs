//! What sits in a config dir is not always a spec: a FIFO, a link to `/dev/zero`, a huge file,
//! a file name with a newline, or a second name for an existing spec. Each must cost one error
//! line for that file — never a hang at boot or `daemon-reload`, never the host's memory — and
//! the good specs must still be written.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Far beyond what the generator needs (a few ms); only a hang reaches it, and fails the test.
const HANG: Duration = Duration::from_secs(30);

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn hostile_files_are_refused_one_line_each_and_good_specs_still_written() {
    let root =
        Scratch(std::env::temp_dir().join(format!("left4me-gen-hostile-{}", std::process::id())));
    let config = root.0.join("config");
    let instances = config.join("instances");
    let out = root.0.join("out");
    std::fs::create_dir_all(&instances).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(instances.join("coop1.toml"), "port = 27015\n").unwrap();
    std::fs::write(instances.join("coop2.toml"), "port = 27016\n").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        instances.join("fifo.toml"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    symlink("/dev/zero", instances.join("zero.toml")).unwrap();
    // Sorted before coop1, it would win the port check if links were followed.
    symlink("coop1.toml", instances.join("alias.toml")).unwrap();
    let huge = std::fs::File::create(instances.join("huge.toml")).unwrap();
    huge.set_len(50 << 20).unwrap();
    std::fs::write(
        instances.join(std::ffi::OsStr::from_bytes(b"evil\n\x1b[2Jx.toml")),
        "port = 27017\n",
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_left4me-generator"))
        .arg(&out)
        .env("LEFT4ME_CONFIG_DIR", &config)
        .env_remove("LEFT4ME_STATE_DIR")
        .env_remove("SYSTEMD_SCOPE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("the generator hung on a hostile file in the config dir");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");

    let lines: Vec<&str> = stderr.lines().collect();
    let line_for = |file: &str| {
        let hits: Vec<&&str> = lines.iter().filter(|l| l.contains(file)).collect();
        assert_eq!(hits.len(), 1, "one line for {file}: {stderr}");
        hits[0].to_string()
    };
    assert!(line_for("fifo.toml").contains("is a FIFO"));
    assert!(line_for("zero.toml").contains("is a symbolic link"));
    assert!(line_for("alias.toml").contains("is a symbolic link"));
    assert!(line_for("huge.toml").contains("more than the 1048576"));
    let evil = line_for("evil\\x0a\\x1b[2Jx.toml");
    assert!(evil.contains("not a valid name"), "{evil}");
    assert!(
        !stderr.contains('\x1b'),
        "a raw escape reached the log: {stderr:?}"
    );
    let skipped = lines.iter().filter(|l| l.ends_with("(skipped)")).count();
    assert_eq!(skipped, 5, "exactly the five refusals: {stderr}");

    for good in ["coop1", "coop2"] {
        let dropin = out.join(format!("left4me-server@{good}.service.d/50-left4me.conf"));
        assert!(Path::new(&dropin).is_file(), "{good} was not written");
    }
    assert!(!out.join("left4me-server@alias.service.d").exists());
}
