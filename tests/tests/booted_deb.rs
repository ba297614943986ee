//! The Debian package as an operator meets it (needs root and cargo-deb): `make deb` once per
//! run, then in a fresh booted systemd (nothing of left4me installed) `dpkg -i`, create →
//! start → status → stop, an upgrade to a rebuilt package with a higher version while an
//! instance runs (it keeps running, the unit files are replaced and systemd has read them),
//! `dpkg -r` while an instance runs (it is stopped, and the output says so), `dpkg -P`, and what
//! is left and gone after each. Also: the package is lintian clean.
//!
//! The second package is the same build with a marker line appended to the staged
//! `left4me-server@.service` and version 0.1.1-1, so the upgrade visibly replaces a unit file.

mod booted_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use booted_support::*;
use left4me_tests::{BootedSystem, release_binary, require_root, target_dir, workspace_dir};

/// The Debian version `make deb` builds (the workspace's, revision 1) and the one the upgrade
/// goes to.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-1");
const UPGRADE_VERSION: &str = "0.1.1-1";
/// Appended to the unit file of the upgrade package.
const MARKER: &str = "# left4me booted_deb: the upgrade package's unit file";

/// The two packages, built once per test run.
#[derive(Debug)]
struct Packages {
    first: PathBuf,
    upgrade: PathBuf,
}

fn run_host(command: &mut Command) -> Result<String> {
    let described = format!("{command:?}");
    let out = command
        .output()
        .with_context(|| format!("cannot run {described}"))?;
    let text = text(&out);
    ensure!(
        out.status.success(),
        "{described} failed ({}):\n{text}",
        out.status
    );
    Ok(text)
}

fn build_packages() -> Result<Packages> {
    let workspace = workspace_dir();
    let target = target_dir();
    let deb_dir = target.join("debian");
    run_host(
        Command::new("make")
            .arg("-C")
            .arg(workspace)
            .arg("deb")
            .arg(format!("TARGET_DIR={}", target.display())),
    )?;
    let built = deb_dir.join(format!("left4me_{VERSION}_amd64.deb"));
    ensure!(
        built.is_file(),
        "make deb did not write {}",
        built.display()
    );
    // cargo-deb deletes every other version of the package from target/debian when it builds
    // one: both packages live in a dir of their own.
    let own_dir = target.join("booted-deb");
    let _ = std::fs::remove_dir_all(&own_dir);
    std::fs::create_dir_all(&own_dir)?;
    let first = own_dir.join(built.file_name().context("a file name")?);
    std::fs::copy(&built, &first)?;

    let unit = workspace.join("target/deb-root/usr/lib/systemd/system/left4me-server@.service");
    let mut text =
        std::fs::read_to_string(&unit).with_context(|| format!("read {}", unit.display()))?;
    text.push_str(MARKER);
    text.push('\n');
    std::fs::write(&unit, text)?;
    run_host(
        Command::new("cargo")
            .current_dir(workspace)
            .args(["deb", "-p", "left4mectl", "--no-build", "--no-strip"])
            .args(["--deb-version", UPGRADE_VERSION, "--output"])
            .arg(&own_dir),
    )?;
    let upgrade = own_dir.join(format!("left4me_{UPGRADE_VERSION}_amd64.deb"));
    ensure!(
        upgrade.is_file(),
        "cargo deb did not write {}",
        upgrade.display()
    );
    Ok(Packages { first, upgrade })
}

fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| build_packages().unwrap_or_else(|e| panic!("{e:#}")))
}

/// `dpkg ARGS…` inside; must succeed. Returns its output.
fn dpkg(sys: &BootedSystem, args: &[&str]) -> Result<String> {
    let mut argv = vec!["dpkg"];
    argv.extend_from_slice(args);
    let out = sys.run(&argv)?;
    ensure!(
        out.status.success(),
        "`{}` failed:\n{}",
        argv.join(" "),
        text(&out)
    );
    Ok(text(&out))
}

/// Copies `deb` into the system's /root and installs it with `dpkg -i`.
fn install(sys: &BootedSystem, deb: &Path) -> Result<String> {
    let name = deb
        .file_name()
        .context("a file name")?
        .to_string_lossy()
        .into_owned();
    std::fs::copy(deb, sys.host_path(format!("/root/{name}")))?;
    dpkg(sys, &["-i", &format!("/root/{name}")])
}

fn exists(sys: &BootedSystem, inside: &str) -> bool {
    sys.host_path(inside).symlink_metadata().is_ok()
}

/// Files of the package, one of each kind.
const PACKAGE_FILES: &[&str] = &[
    "/usr/bin/left4mectl",
    "/usr/lib/left4me/left4me-supervisor",
    "/usr/lib/left4me/left4me-sandbox",
    "/usr/lib/systemd/system-generators/left4me-generator",
    "/usr/lib/systemd/system/left4me-server@.service",
    "/usr/lib/systemd/system/left4me-server@.service.d/10-hardening.conf",
    "/usr/lib/sysusers.d/left4me.conf",
    "/usr/lib/tmpfiles.d/left4me.conf",
    "/usr/share/man/man1/left4mectl.1.gz",
    "/usr/share/man/man1/left4mectl-start.1.gz",
    "/usr/share/man/man5/left4me.toml.5.gz",
    "/usr/share/man/man7/left4me.7.gz",
    "/usr/share/bash-completion/completions/left4mectl",
    "/usr/share/zsh/vendor-completions/_left4mectl",
    "/usr/share/fish/vendor_completions.d/left4mectl.fish",
];

/// What the operator made and the package must never take away.
const OPERATOR_FILES: &[&str] = &[
    "/etc/left4me/instances/coop1.toml",
    "/var/lib/left4me/runtime/coop1/upper",
    "/var/lib/left4me/installation/srcds_run",
    "/var/lib/left4me-admin",
];

const ENABLED_LINK: &str =
    "/etc/systemd/system/multi-user.target.wants/left4me-server@coop1.service";

#[test]
fn booted_deb_install_run_upgrade_remove_purge() -> Result<()> {
    require_root();
    let packages = packages();
    let sys = BootedSystem::builder()
        .name("deb")
        .command_timeout(Duration::from_secs(90))
        .boot()?;
    // The host image is a container image whose policy-rc.d forbids every service start and
    // stop by packages; a real host has none.
    let policy = sys.host_path("/usr/sbin/policy-rc.d");
    if policy.exists() {
        std::fs::remove_file(&policy)?;
    }
    // Minimised images also tell dpkg to skip man pages and docs (`path-exclude`).
    if let Ok(entries) = std::fs::read_dir(sys.host_path("/etc/dpkg/dpkg.cfg.d")) {
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if text.contains("path-exclude") {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    ensure!(
        !exists(&sys, "/usr/bin/left4mectl"),
        "left4mectl is there before the package"
    );

    // Install: users, dirs and units are ready; nothing is enabled or started.
    let out = install(&sys, &packages.first)?;
    report(&format!("dpkg -i {VERSION}:\n{out}"));
    for file in PACKAGE_FILES {
        ensure!(exists(&sys, file), "{file} not installed by the package");
    }
    sys.run_ok(["id", "left4me"])?;
    sys.run_ok(["id", "l4d2-sandbox"])?;
    ensure!(
        exists(&sys, "/var/lib/left4me-admin"),
        "tmpfiles did not run:\n{out}"
    );
    let version = sys.run_stdout(["left4mectl", "--version"])?;
    ensure!(
        version.starts_with(&format!("left4mectl {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let units = sys.run_stdout([
        "systemctl",
        "list-units",
        "--plain",
        "--no-legend",
        "left4me-*",
    ])?;
    ensure!(units.is_empty(), "the package started units: {units}");
    let enabled = sys.run_stdout(["systemctl", "is-enabled", "left4me-game-update.timer"]);
    ensure!(
        enabled.is_err(),
        "the package enabled the update timer: {enabled:?}"
    );
    let man = sys.run_stdout(["man", "-w", "left4me.toml", "left4mectl-start", "left4me"])?;
    ensure!(
        man.contains("/usr/share/man/man5/left4me.toml.5.gz")
            && man.contains("/usr/share/man/man1/left4mectl-start.1.gz")
            && man.contains("/usr/share/man/man7/left4me.7.gz"),
        "man -w: {man}"
    );

    // create → start → status → stop, with the stand-in game.
    sys.install_game_tree(&release_binary("srcds-standin"))?;
    ctl_ok(&sys, &["create", "coop1", "--port", "27015"])?;
    ctl_ok(&sys, &["start", "coop1"])?;
    let status = ctl_ok(&sys, &["status", "coop1"])?;
    ensure!(status.contains("active (running)"), "{status}");
    ctl_ok(&sys, &["stop", "coop1"])?;
    ensure!(state(&sys, "coop1")? == "inactive/dead");

    // Upgrade while the instance runs: same main process, new unit file, already read.
    ctl_ok(&sys, &["start", "coop1"])?;
    let pid = prop(&sys, "coop1", "MainPID")?;
    let out = install(&sys, &packages.upgrade)?;
    report(&format!(
        "dpkg -i {UPGRADE_VERSION} while coop1 runs:\n{out}"
    ));
    ensure!(
        out.contains("left4me-server@coop1.service"),
        "the upgrade did not say coop1 keeps running the old programs:\n{out}"
    );
    ensure!(
        state(&sys, "coop1")? == "active/running",
        "coop1 after the upgrade"
    );
    ensure!(
        prop(&sys, "coop1", "MainPID")? == pid,
        "coop1 was restarted by the upgrade"
    );
    let unit =
        std::fs::read_to_string(sys.host_path("/usr/lib/systemd/system/left4me-server@.service"))?;
    ensure!(unit.contains(MARKER), "the unit file was not replaced");
    ensure!(
        prop(&sys, "coop1", "NeedDaemonReload")? == "no",
        "systemd was not told about the new unit file"
    );
    let installed = sys.run_stdout(["dpkg-query", "-W", "-f", "${Version}", "left4me"])?;
    ensure!(
        installed == UPGRADE_VERSION,
        "installed version {installed}"
    );

    // Remove while the instance runs: it is stopped and unmounted, and the output says so.
    let out = dpkg(&sys, &["-r", "left4me"])?;
    report(&format!("dpkg -r while coop1 runs:\n{out}"));
    ensure!(
        out.contains("stopping left4me-server@coop1.service"),
        "dpkg -r did not say it stops coop1:\n{out}"
    );
    ensure!(
        state(&sys, "coop1")? == "inactive/dead",
        "coop1 after dpkg -r"
    );
    let mounts = state_overlay_mounts(&sys)?;
    ensure!(
        mounts.is_empty(),
        "overlay mounts left after dpkg -r: {mounts:?}"
    );
    ensure!(
        out.contains("kept /etc/left4me"),
        "dpkg -r did not say what is kept:\n{out}"
    );
    for file in PACKAGE_FILES {
        ensure!(!exists(&sys, file), "{file} is still there after dpkg -r");
    }
    for file in OPERATOR_FILES {
        ensure!(exists(&sys, file), "{file} is gone after dpkg -r");
    }
    ensure!(
        exists(&sys, ENABLED_LINK),
        "dpkg -r removed coop1's boot-time link"
    );

    // Purge: the dangling boot-time link goes; config, state and users stay, and it says so.
    let out = dpkg(&sys, &["-P", "left4me"])?;
    report(&format!("dpkg -P:\n{out}"));
    ensure!(
        !exists(&sys, ENABLED_LINK),
        "dpkg -P left coop1's dangling boot-time link"
    );
    ensure!(
        out.contains("kept /etc/left4me"),
        "dpkg -P did not say what is kept:\n{out}"
    );
    for file in OPERATOR_FILES {
        ensure!(exists(&sys, file), "{file} is gone after dpkg -P");
    }
    sys.run_ok(["id", "left4me"])?;
    let status = sys.run(["dpkg-query", "-W", "-f", "${Status}", "left4me"])?;
    let status = text(&status);
    if !status.contains("not-installed") && !status.contains("no packages found") {
        bail!("left4me still known to dpkg after the purge: {status}");
    }
    ensure!(
        !exists(&sys, "/usr/share/doc/left4me"),
        "the package's docs are left"
    );
    finish(sys, &[])
}

#[test]
fn booted_deb_package_is_lintian_clean() -> Result<()> {
    require_root();
    let packages = packages();
    let out = run_host(
        Command::new("lintian")
            .args(["--fail-on", "error,warning", "--info"])
            .arg(&packages.first),
    )?;
    report(&format!("lintian {}:\n{out}", packages.first.display()));
    Ok(())
}
