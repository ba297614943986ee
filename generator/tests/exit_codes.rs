//! The binary's contract with systemd: exit 2 on usage errors, 1 when a spec was refused, 0
//! otherwise; log lines go to stderr when not started by the service manager.

use std::path::Path;
use std::process::Command;

fn generator(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_left4me-generator"))
        .args(args)
        .env("LEFT4ME_CONFIG_DIR", config)
        .env_remove("LEFT4ME_STATE_DIR")
        .env_remove("SYSTEMD_SCOPE")
        .output()
        .unwrap()
}

fn case(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
        .join("config")
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("left4me-gen-exit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["a", "b"], &["a", "b", "c", "d"]] {
        let out = generator(args, &case("01-minimal"));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: left4me-generator"));
    }
}

#[test]
fn valid_specs_exit_0_and_write() {
    let out_dir = scratch("ok");
    let dir = out_dir.to_str().unwrap();
    let out = generator(&[dir, dir, dir], &case("07-several-instances"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    assert!(
        out_dir
            .join("left4me-server@coop1.service.d/50-left4me.conf")
            .is_file()
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn a_refused_spec_exits_1_and_says_why_on_stderr() {
    let out_dir = scratch("bad");
    let out = generator(&[out_dir.to_str().unwrap()], &case("08-one-bad-among-good"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("left4me-generator: "), "{stderr}");
    assert!(stderr.contains("broken.toml: key 'port'"), "{stderr}");
    assert!(
        out_dir
            .join("left4me-server@good1.service.d/50-left4me.conf")
            .is_file()
    );
    assert!(!out_dir.join("left4me-server@broken.service.d").exists());
    std::fs::remove_dir_all(&out_dir).unwrap();
}
