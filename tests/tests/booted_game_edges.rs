//! The game verbs' edge cases, end to end in a booted systemd (needs root; issue 9, DESIGN §8).
//!
//! `booted_game.rs` covers the main path (install, the when-empty rollout, gc, squash, failed
//! and stopped updates, an offline check, a reboot). This file covers the rest, in one booted
//! system because each step builds on the store the previous one left (and a boot costs
//! ~10 s); each scenario is its own function, called in order:
//!
//! 1. an anonymous install refused with "Invalid platform" goes through the two-pass
//!    workaround, says so, and `versions --json` records it;
//! 2. the game user's `~/.steam/sdk32/steamclient.so` resolves to `game/sdk/sdk32`;
//! 3. `check --json`: its shape, exit 0 when up to date (1 when newer: in 4);
//! 4. `validate` with nothing wrong publishes nothing; after bit rot in the current version
//!    it publishes `ID-2` holding the repaired file, and the damaged version is untouched;
//! 5. a pinned instance stays on its version through `update --restart now` while an
//!    unpinned one moves; the update meets a transient network failure and succeeds on the
//!    retry; `gc` keeps the pinned version; unpinning shows "update pending";
//! 6. `game login` on a terminal (`script` gives it one), then an update as that account with
//!    the cached credentials; the password is nowhere: journal, ledger, unit properties,
//!    command lines.

mod booted_support;
mod game_support;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use booted_support::{boot, builder, ctl, ctl_ok, ctl_status, finish, report, text, write};
use game_support::{current, fingerprint, json, running_version, version_dirs, version_row};
use left4me_steamcmd_standin::{Depot, DepotFile, Fault};
use left4me_tests::steam::{FakeSteam, KIT, base_files};
use left4me_tests::{BootedSystem, STATE_DIR, require_root};

const BUILD_A: u64 = 9_200_001;
/// The file the validate scenario damages.
const ROTTING: &str = "left4dead2/cfg/valve.rc";
const ROTTING_BYTES: &[u8] = b"// stand-in\n";
/// The Steam account of the login scenario (test values; the stand-in Steam's only account).
const STEAM_USER: &str = "edgeoperator";
const STEAM_PASSWORD: &str = "Pw-7c1e9b2f-never-logged";
const STEAM_GUARD: &str = "G7K2Q";

/// The files of `build`: the stand-in's (server, `valve.rc` — the file the validate scenario
/// damages — and `steam.inf`), and a bigger one.
fn build_files(build: u64) -> Result<Vec<DepotFile>> {
    let mut files = base_files(build)?;
    files.push(DepotFile::generated(
        "left4dead2/pak01_000.vpk",
        0o644,
        7,
        1 << 20,
    ));
    Ok(files)
}

/// Points branch `public` at a new `build`.
fn release(depot: &Depot, build: u64) -> Result<()> {
    depot.add_build("public", build, &build_files(build)?)?;
    depot.set_branch("public", build, None)?;
    Ok(())
}

#[test]
fn booted_game_edges() -> Result<()> {
    require_root();
    // `game install` wants room for a real download (about 12 GiB) before it starts.
    let sys = boot(builder("gedge").tmpfs_size("64g"))?;
    let depot_dir = sys.base_dir().join("depot");
    let depot = Depot::create(&depot_dir)?;
    release(&depot, BUILD_A)?;
    let steam = FakeSteam::start(&sys, Depot::open(&depot_dir), None)?;

    let a = invalid_platform_install(&sys, &depot)?;
    game_user_steamclient(&sys)?;
    check_up_to_date(&sys, &a)?;
    let repaired = validate_repairs(&sys, &a)?;
    pins_and_transient_failure(&sys, &depot, &repaired)?;
    login_and_cached_credentials(&sys, &depot)?;
    beta_and_rollback(&sys, &depot)?;
    check_failures(&sys, steam)?;
    finish(sys, &["pinned", "moving"])
}

/// 1. The anonymous install is refused with "Invalid platform"; the workaround installs it.
fn invalid_platform_install(sys: &BootedSystem, depot: &Depot) -> Result<String> {
    depot.set_fault(Fault::InvalidPlatformForAnonymous)?;
    let out = ctl(sys, &["game", "install"])?;
    ensure!(out.status.success(), "game install failed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict = last_line(&stdout);
    report(&format!("invalid platform install: {verdict}"));
    ensure!(
        verdict.starts_with("installed version")
            && verdict.contains("Invalid platform")
            && verdict.contains("workaround"),
        "the install's verdict does not say which path it took:\n{}",
        text(&out)
    );
    let a = BUILD_A.to_string();
    ensure!(
        current(sys)? == a,
        "current after install: {}",
        current(sys)?
    );
    let row = version_row(sys, &a)?;
    ensure!(
        row["platform_workaround"] == true && row["how"] == "install",
        "versions --json: {row}"
    );
    Ok(a)
}

/// 7 (of the brief). The game user finds SteamCMD's steamclient.so through `~/.steam`.
fn game_user_steamclient(sys: &BootedSystem) -> Result<()> {
    for bits in ["sdk32", "sdk64"] {
        let link = format!("{STATE_DIR}/.steam/{bits}/steamclient.so");
        let resolved =
            sys.run_stdout(["runuser", "-u", "left4me", "--", "readlink", "-e", &link])?;
        let want = format!("{STATE_DIR}/game/sdk/{bits}/steamclient.so");
        ensure!(
            resolved == want,
            "{link} resolves to {resolved}, not {want}"
        );
        let as_game_user = sys.run_ok(["runuser", "-u", "left4me", "--", "cat", &link])?;
        let linux = if bits == "sdk32" {
            "linux32"
        } else {
            "linux64"
        };
        let kit = std::fs::read(sys.host_path(format!("{KIT}/{linux}/steamclient.so")))?;
        ensure!(
            as_game_user.stdout == kit,
            "{link} is not the kit's {linux}/steamclient.so"
        );
    }
    report("steamclient.so: the game user's ~/.steam/sdk32 and sdk64 resolve to game/sdk");
    Ok(())
}

/// 5 (of the brief), the up-to-date half: exit 0 and the JSON fields.
fn check_up_to_date(sys: &BootedSystem, a: &str) -> Result<()> {
    let out = ctl_status(sys, &["game", "check"], 0)?;
    ensure!(out.contains("up to date"), "check says: {out}");
    let check = json(&ctl_status(sys, &["game", "check", "--json"], 0)?)?;
    let build = BUILD_A;
    ensure!(
        check["current"] == a
            && check["current_build"] == build
            && check["remote_build"] == build
            && check["branch"] == "public"
            && check["update_available"] == false
            && check["error"].is_null(),
        "check --json when up to date: {check}"
    );
    report(&format!("check --json (up to date): {check}"));
    Ok(())
}

/// 2 (of the brief). `validate`: nothing to repair, then bit rot repaired into `A-2`.
fn validate_repairs(sys: &BootedSystem, a: &str) -> Result<String> {
    let before = version_dirs(sys)?;
    let out = ctl_ok(sys, &["game", "validate"])?;
    report(&format!("validate (intact): {}", last_line(&out)));
    ensure!(
        last_line(&out).contains("nothing to repair"),
        "validate of an intact version says:\n{out}"
    );
    ensure!(
        version_dirs(sys)? == before && current(sys)? == a,
        "validate of an intact version published {:?}",
        version_dirs(sys)?
    );

    // Bit rot: one byte of one file of A changes on disk, in place (same inode, same size).
    let rotting = format!("{STATE_DIR}/game/versions/{a}/tree/{ROTTING}");
    let others = |sys: &BootedSystem| -> Result<String> {
        Ok(fingerprint(sys, a)?
            .lines()
            .filter(|l| !l.contains(ROTTING))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let others_before = others(sys)?;
    sys.run_ok([
        "sh",
        "-c",
        &format!("printf X | dd of={rotting} bs=1 seek=3 conv=notrunc status=none"),
    ])?;
    let damaged = std::fs::read(sys.host_path(&rotting))?;
    ensure!(damaged != ROTTING_BYTES, "the file did not change");

    let out = ctl_ok(sys, &["game", "validate"])?;
    report(&format!("validate (bit rot): {}", last_line(&out)));
    let repaired = format!("{a}-2");
    ensure!(
        current(sys)? == repaired,
        "current after the repair is {}, not {repaired}:\n{out}",
        current(sys)?
    );
    let fixed = std::fs::read(sys.host_path(format!(
        "{STATE_DIR}/game/versions/{repaired}/tree/{ROTTING}"
    )))?;
    ensure!(fixed == ROTTING_BYTES, "{repaired} holds {fixed:?}");
    let row = version_row(sys, &repaired)?;
    ensure!(
        row["how"] == "validate" && row["parent"] == a && row["build_id"] == BUILD_A,
        "versions --json: {row}"
    );
    // A is as it was: its other files unchanged, the damaged one still damaged (the repair
    // went into the new layer, never into A).
    ensure!(
        others(sys)? == others_before,
        "validate changed other files of {a}"
    );
    ensure!(
        std::fs::read(sys.host_path(&rotting))? == damaged,
        "validate wrote into {a}"
    );
    // And the repaired version has only the repaired file, not the whole game.
    let new_files = sys.run_stdout([
        "find",
        &format!("{STATE_DIR}/game/versions/{repaired}/tree"),
        "-type",
        "f",
        "-not",
        "-path",
        "*/steamapps/*",
    ])?;
    ensure!(
        new_files.lines().count() == 1 && new_files.ends_with(ROTTING),
        "{repaired} holds more than the repaired file:\n{new_files}"
    );
    Ok(repaired)
}

/// 3, 4 and the newer half of 5 (of the brief).
fn pins_and_transient_failure(sys: &BootedSystem, depot: &Depot, pin: &str) -> Result<()> {
    ctl_ok(sys, &["create", "pinned", "--port", "27015"])?;
    ctl_ok(sys, &["create", "moving", "--port", "27016"])?;
    ctl_ok(sys, &["set", "pinned", &format!("game_version={pin}")])?;
    ctl_ok(sys, &["start", "pinned", "moving"])?;
    for name in ["pinned", "moving"] {
        ensure!(
            running_version(sys, name)?.as_deref() == Some(pin),
            "{name} is not on {pin}"
        );
    }
    let pinned_since = booted_support::prop(sys, "pinned", "ExecMainStartTimestampMonotonic")?;

    // A newer build: check exits 1 and says so in JSON.
    let b = BUILD_A + 1;
    release(depot, b)?;
    let check = json(&ctl_status(sys, &["game", "check", "--json"], 1)?)?;
    ensure!(
        check["current"] == pin
            && check["current_build"] == BUILD_A
            && check["remote_build"] == b
            && check["update_available"] == true,
        "check --json with a newer build: {check}"
    );
    report(&format!("check --json (newer): {check}"));

    // The update's first download breaks off; the retry (after the default 30 s backoff)
    // finishes it.
    depot.set_fault(Fault::TransientNetworkFailures(1))?;
    let started = Instant::now();
    let out = ctl_ok(sys, &["game", "update", "--restart", "now"])?;
    report(&format!(
        "update after a transient failure ({:.0} s): {}",
        started.elapsed().as_secs_f64(),
        out.lines()
            .filter(|l| l.contains("0x602") || l.contains("retry") || l.contains("SteamCMD run"))
            .chain(out.lines().rev().take(2))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    ensure!(
        out.contains("0x602") && out.lines().filter(|l| l.contains("SteamCMD run")).count() >= 2,
        "the update did not meet and retry the transient failure:\n{out}"
    );
    ensure!(
        !depot
            .faults()?
            .iter()
            .any(|f| matches!(f, Fault::TransientNetworkFailures(n) if *n > 0)),
        "the transient failure was never hit"
    );
    let b = b.to_string();
    ensure!(
        current(sys)? == b,
        "current after the update: {}",
        current(sys)?
    );
    ensure!(
        running_version(sys, "moving")?.as_deref() == Some(b.as_str()),
        "the unpinned instance did not move to {b}:\n{out}"
    );
    ensure!(
        running_version(sys, "pinned")?.as_deref() == Some(pin),
        "the pinned instance left {pin}:\n{out}"
    );
    ensure!(
        booted_support::prop(sys, "pinned", "ExecMainStartTimestampMonotonic")? == pinned_since,
        "the pinned instance was restarted:\n{out}"
    );
    let status = json(&ctl_ok(sys, &["status", "pinned", "--json"])?)?;
    ensure!(
        status["update_pending"] == false && status["game_version_pinned"] == true,
        "pinned status: {status}"
    );

    // Two more builds: the chain is full, the last is squashed; gc then removes what nothing
    // needs, but keeps the pinned version (and its base) even while its instance is stopped.
    for build in [BUILD_A + 2, BUILD_A + 3] {
        release(depot, build)?;
        ctl_ok(sys, &["game", "update", "--restart", "now"])?;
    }
    let last = (BUILD_A + 3).to_string();
    ensure!(
        version_row(sys, &last)?["how"] == "squash",
        "the fourth link was not squashed"
    );
    ctl_ok(sys, &["stop", "pinned"])?;
    let out = ctl_ok(sys, &["game", "gc"])?;
    report(&format!("gc with a pin: {}", out.trim()));
    let a = BUILD_A.to_string();
    let left = version_dirs(sys)?;
    ensure!(
        left == [a.as_str(), pin, last.as_str()],
        "gc left {left:?}, not the pinned {pin}, its base {a} and current {last}"
    );
    let row = version_row(sys, pin)?;
    ensure!(row["pinned_by"] == serde_json::json!(["pinned"]), "{row}");

    // Unpinned, the instance still runs its version until it restarts: update pending.
    ctl_ok(sys, &["start", "pinned"])?;
    ensure!(
        running_version(sys, "pinned")?.as_deref() == Some(pin),
        "the pinned instance did not start on {pin}"
    );
    ctl_ok(sys, &["set", "pinned", "--unset", "game_version"])?;
    let status = json(&ctl_ok(sys, &["status", "pinned", "--json"])?)?;
    ensure!(
        status["update_pending"] == true && status["game_version"] == pin,
        "unpinned status: {status}"
    );
    let list = json(&ctl_ok(sys, &["list", "--json"])?)?;
    let rows = list.as_array().context("list --json is an array")?;
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).cloned();
    let (pinned, moving) = (row("pinned"), row("moving"));
    ensure!(
        pinned.as_ref().is_some_and(|r| r["update_pending"] == true)
            && moving
                .as_ref()
                .is_some_and(|r| r["update_pending"] == false),
        "list --json: {list}"
    );
    let text = ctl_ok(sys, &["status", "pinned"])?;
    ensure!(text.contains("update pending"), "status says:\n{text}");
    ctl_ok(sys, &["restart", "pinned"])?;
    ensure!(
        running_version(sys, "pinned")?.as_deref() == Some(last.as_str()),
        "the unpinned instance did not move on restart"
    );
    Ok(())
}

/// 6 (of the brief). `game login` on a terminal; updates then use the cached credentials.
fn login_and_cached_credentials(sys: &BootedSystem, depot: &Depot) -> Result<()> {
    depot.add_account(STEAM_USER, STEAM_PASSWORD, Some(STEAM_GUARD))?;
    // No terminal: refused at once (SteamCMD's prompt would wait forever for a password).
    let out = ctl_status(sys, &["game", "login", STEAM_USER], 2)?;
    report(&format!("login without a terminal: {}", out.trim()));
    ensure!(
        out.contains("terminal"),
        "the refusal does not say why: {out}"
    );
    let units = sys.run_stdout([
        "systemctl",
        "list-units",
        "--no-legend",
        "left4me-game-login-*",
    ])?;
    ensure!(units.trim().is_empty(), "a login unit was left: {units}");
    // A wrong password: the login fails, says what to do, and names no account.
    let (ok, transcript) = drive_login(sys, "not-the-password", None)?;
    report(&format!(
        "login, wrong password: {}",
        last_line(&transcript)
    ));
    ensure!(!ok, "a wrong password logged in:\n{transcript}");
    ensure!(
        transcript.contains(&format!("run `left4mectl game login {STEAM_USER}` again")),
        "the failed login does not say what to do:\n{transcript}"
    );
    ensure!(
        !sys.host_path("/var/lib/left4me-admin/steam-login").exists(),
        "a failed login named an account"
    );
    let (ok, transcript) = drive_login(sys, STEAM_PASSWORD, Some(STEAM_GUARD))?;
    report(&format!("login: {}", last_line(&transcript)));
    ensure!(ok, "game login failed:\n{transcript}");
    let named = std::fs::read_to_string(sys.host_path("/var/lib/left4me-admin/steam-login"))?;
    ensure!(named.trim() == STEAM_USER, "steam-login names {named:?}");

    let next = BUILD_A + 4;
    release(depot, next)?;
    let out = ctl_ok(sys, &["game", "update", "--restart", "never"])?;
    report(&format!("update as {STEAM_USER}: {}", last_line(&out)));
    ensure!(
        out.contains("Logging in using cached credentials")
            && out.contains(&format!("Logging in user '{STEAM_USER}'")),
        "the update did not log in with the cached credentials:\n{out}"
    );
    ensure!(
        current(sys)? == next.to_string(),
        "current: {}",
        current(sys)?
    );
    // `--restart never`: both instances are named as still on the old version.
    for name in ["pinned", "moving"] {
        ensure!(
            out.contains(&format!("{name} still runs {}", BUILD_A + 3)),
            "`--restart never` does not name {name}:\n{out}"
        );
    }
    // The failure messages point at the ledger's log of SteamCMD runs: it is there.
    let log = ctl_ok(sys, &["overlay", "jobs", "game:222860", "--log", "-n", "1"])?;
    ensure!(
        log.contains("Logging in using cached credentials"),
        "`overlay jobs game:222860 --log` lacks the last run's output:\n{log}"
    );

    // The password is nowhere.
    let journal = sys.run_stdout(["journalctl", "--no-pager", "-o", "verbose"])?;
    ensure!(
        !journal.contains(STEAM_PASSWORD),
        "the password is in the journal"
    );
    for dir in [
        "/var/lib/left4me-admin",
        "/run/systemd/transient",
        "/etc/left4me",
    ] {
        if let Some(file) = file_holding(&sys.host_path(dir), STEAM_PASSWORD.as_bytes())? {
            bail!("the password is in {}", file.display());
        }
    }
    let units = sys.run_stdout(["systemctl", "show", "--all", "*"])?;
    ensure!(
        !units.contains(STEAM_PASSWORD),
        "the password is in a unit's properties"
    );
    Ok(())
}

/// A password-protected beta branch: refused without its password (nothing changes), installed
/// with it from a file (kept root-only for later runs, in no journal, ledger or unit); then
/// `game use` goes back to the public version, and refuses a version that is not there.
fn beta_and_rollback(sys: &BootedSystem, depot: &Depot) -> Result<()> {
    const BETA_PASSWORD: &str = "beta-5f0e-never-logged";
    let public = current(sys)?;
    let beta = BUILD_A + 10;
    depot.add_build("beta", beta, &build_files(beta)?)?;
    depot.set_branch("beta", beta, Some(BETA_PASSWORD))?;
    let update = ["game", "update", "--branch", "beta", "--restart", "never"];
    let out = ctl_status(sys, &update, 1)?;
    report(&format!("beta without its password: {}", last_line(&out)));
    ensure!(current(sys)? == public, "a refused beta changed current");

    write(sys, "/root/beta.txt", &format!("{BETA_PASSWORD}\n"))?;
    let mut with_password = update.to_vec();
    with_password.extend(["--beta-password-file", "/root/beta.txt"]);
    let out = ctl_ok(sys, &with_password)?;
    report(&format!("beta with its password: {}", last_line(&out)));
    let id = current(sys)?;
    let row = version_row(sys, &id)?;
    ensure!(
        row["branch"] == "beta",
        "the new version is not the beta: {row}"
    );
    let kept = sys.host_path("/var/lib/left4me-admin/steam-beta-passwords/beta");
    let mode = std::fs::metadata(&kept)?.permissions().mode() & 0o7777;
    ensure!(mode == 0o600, "the kept beta password has mode {mode:o}");
    // A later update of the branch needs no file: the kept password is used.
    ctl_ok(sys, &update)?;

    let journal = sys.run_stdout(["journalctl", "--no-pager", "-o", "verbose"])?;
    ensure!(
        !journal.contains(BETA_PASSWORD),
        "the beta password is in the journal"
    );
    for ledger in ["left4me.db", "left4me.db-wal"] {
        let path = sys.host_path(format!("/var/lib/left4me-admin/{ledger}"));
        let bytes = std::fs::read(&path).unwrap_or_default();
        ensure!(
            !bytes
                .windows(BETA_PASSWORD.len())
                .any(|w| w == BETA_PASSWORD.as_bytes()),
            "the beta password is in {}",
            path.display()
        );
    }
    let units = sys.run_stdout(["systemctl", "show", "--all", "*"])?;
    ensure!(
        !units.contains(BETA_PASSWORD),
        "the beta password is in a unit"
    );

    let out = ctl_ok(sys, &["game", "use", &public])?;
    report(&format!("rollback: {}", out.trim()));
    ensure!(
        current(sys)? == public,
        "game use did not make {public} current"
    );
    let out = ctl(sys, &["game", "use", "123"])?;
    ensure!(
        !out.status.success() && text(&out).contains("123"),
        "game use of a missing version: {}",
        text(&out)
    );
    Ok(())
}

/// 5 (of the brief), the failures: exit 2 (never 1, which the update timer takes for "a
/// newer build is out") whatever failed, and `--json` still prints JSON saying why.
fn check_failures(sys: &BootedSystem, steam: FakeSteam<'_>) -> Result<()> {
    // The store is broken: `current` names a version that is not there.
    let current_file = sys.host_path(format!("{STATE_DIR}/game/current"));
    let good = std::fs::read_to_string(&current_file)?;
    std::fs::write(&current_file, "9999999\n")?;
    let text = ctl_status(sys, &["game", "check"], 2);
    let out = ctl(sys, &["game", "check", "--json"])?;
    std::fs::write(&current_file, &good)?;
    report(&format!("check with a broken store: {}", text?.trim()));
    ensure!(
        out.status.code() == Some(2),
        "check --json with a broken store exited {}",
        out.status
    );
    let check = json(&String::from_utf8_lossy(&out.stdout))?;
    ensure!(
        check["current"] == "9999999"
            && check["update_available"].is_null()
            && check["error"].is_string(),
        "check --json with a broken store: {check}"
    );

    // Steam is unreachable.
    drop(steam);
    let out = ctl(sys, &["game", "check", "--json"])?;
    let check = json(&String::from_utf8_lossy(&out.stdout))?;
    report(&format!("check --json (Steam unreachable): {check}"));
    ensure!(
        out.status.code() == Some(2)
            && check["current"] == good.trim()
            && check["remote_build"].is_null()
            && check["update_available"].is_null()
            && check["error"]
                .as_str()
                .is_some_and(|e| e.contains("check that this host reaches")),
        "check --json with Steam unreachable ({}): {check}",
        out.status
    );
    Ok(())
}

/// Runs `game login STEAM_USER` on a terminal (`script` makes one), typing `password` and
/// `guard` (when asked for) at SteamCMD's prompts. While the code is asked for, the login unit is
/// running: its properties and every command line inside must not hold the password.
/// Returns whether it succeeded, and what was on the terminal.
fn drive_login(sys: &BootedSystem, password: &str, guard: Option<&str>) -> Result<(bool, String)> {
    let mut child = sys
        .command([
            "script",
            "-qec",
            &format!("left4mectl game login {STEAM_USER}"),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut seen = String::new();
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if answered == 0 && seen.contains("password:") {
            stdin.write_all(format!("{password}\r").as_bytes())?;
            answered = 1;
        } else if let (1, Some(code)) = (answered, guard)
            && seen.contains("Steam Guard code:")
        {
            password_not_in_running_login(sys)?;
            stdin.write_all(format!("{code}\r").as_bytes())?;
            answered = 2;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("game login did not finish in 120 s (answered {answered} prompts):\n{seen}");
        }
    }
    let status = child.wait()?;
    drop(stdin);
    let questions = if guard.is_some() { 2 } else { 1 };
    ensure!(
        answered == questions,
        "the login asked {answered} of {questions} questions:\n{seen}"
    );
    Ok((status.success(), seen))
}

/// The running login unit's properties and every command line inside hold no password.
fn password_not_in_running_login(sys: &BootedSystem) -> Result<()> {
    let units = sys.run_stdout([
        "systemctl",
        "list-units",
        "--no-legend",
        "--plain",
        "left4me-game-login-*",
    ])?;
    ensure!(
        !units.trim().is_empty(),
        "no login unit runs while SteamCMD asks for the code"
    );
    let props = sys.run_stdout(["systemctl", "show", "--all", "left4me-game-login-*"])?;
    ensure!(
        !props.contains(STEAM_PASSWORD),
        "the password is in the login unit's properties"
    );
    let cmdlines = sys.run_stdout([
        "sh",
        "-c",
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done",
    ])?;
    ensure!(
        !cmdlines.contains(STEAM_PASSWORD),
        "the password is on a command line"
    );
    Ok(())
}

/// The first file under `dir` (recursively) whose bytes hold `needle`.
fn file_holding(dir: &std::path::Path, needle: &[u8]) -> Result<Option<std::path::PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if let Some(found) = file_holding(&entry.path(), needle)? {
                return Ok(Some(found));
            }
        } else if kind.is_file() {
            let bytes = std::fs::read(entry.path())?;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return Ok(Some(entry.path()));
            }
        }
    }
    Ok(None)
}

fn last_line(out: &str) -> &str {
    out.trim().lines().last().unwrap_or("")
}
