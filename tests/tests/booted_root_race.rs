//! Root's verbs against a racing game user (issue 14). Each `#[test]` runs one root verb —
//! `left4mectl start` (prepare), `stop` (cleanup), `reset`, `delete`, `overlay build`,
//! `overlay rm` — for a fixed number of rounds while a process of the game user
//! (`left4me-race-attacker`, started inside the booted system with `setpriv` as `left4me`)
//! exchanges every entry of every directory it can write in the instance and the overlay
//! (`runtime/NAME/upper` and below, `overlays/NAME`, `overlays/.NAME.build-*`) with symlinks to
//! canaries outside, renames them away and back, plants symlinks under the names root looks
//! for, and tries to rename `runtime`, `overlays`, `runtime/NAME`, `overlays/NAME` and to plant
//! links in the root-owned dirs. After every round:
//! - every try on a root-owned dir failed with EACCES (the ownership rule of DESIGN.md §2);
//! - nothing outside the attacked instance and overlay changed: the whole state dir but those,
//!   `/srv/canary`, a canary in the admin dir, `/etc/left4me` but the attacked specs, another
//!   instance's runtime dir and another overlay;
//! - no overlay mount is left stale (each belongs to a running instance, at its `merged`).
//!
//! Whether the verb itself succeeded under attack is reported, not required: refusing is a
//! correct answer to an attack. A last test shows the attacker finding the old hole on an
//! install from before the ownership rule, and `systemd-tmpfiles --create` (the upgrade step of
//! `make install`) closing it. Needs root; run by `make test`.

mod booted_support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use booted_support::{boot, builder, ctl, ctl_ok, make_overlay, report, state, text, write};
use left4me_tests::exec::wait_with_deadline;
use left4me_tests::{BootedSystem, STATE_DIR, Snapshot, require_root};

/// The attacked instance and the other one (a canary).
const INSTANCE: &str = "race";
const OTHER: &str = "other";
/// The attacked instance's overlay, and another overlay (a canary).
const INSTANCE_OVERLAY: &str = "rov";
const KEEP_OVERLAY: &str = "keep";
const ATTACKER: &str = "/usr/local/libexec/left4me-race-attacker";
/// On the root file system (the host cannot see into the system's /run tmpfs).
const STOP_DIR: &str = "/srv/left4me-race";
const STOP_FILE: &str = "/srv/left4me-race/stop";
const AS_GAME_USER: &[&str] = &[
    "setpriv",
    "--reuid=left4me",
    "--regid=left4me",
    "--init-groups",
    "--",
];
/// Rounds per verb: fixed, no timing thresholds. Starting a game takes seconds, removing a
/// tree does not.
const START_ROUNDS: usize = 5;
const REMOVE_ROUNDS: usize = 8;
const BUILD_ROUNDS: usize = 4;
/// A tree the game user could have written in its upper dir or an overlay, with a symlink
/// leading out planted beforehand.
const GAME_TREE: &str = "mkdir -p left4dead2/cfg left4dead2/addons deep/1/2/3/4 && \
    echo 'hostname mine' > left4dead2/cfg/server.cfg && echo vpk > left4dead2/addons/a.vpk && \
    echo f > deep/1/2/3/4/f && ln -sfn /srv/canary deep/1/out";
/// A build that makes many entries and takes a while.
const BUILD_SCRIPT: &str = "mkdir -p left4dead2/addons left4dead2/cfg\n\
    i=0; while [ $i -lt 40 ]; do mkdir -p deep/d$i/x; echo $i > deep/d$i/x/f; i=$((i+1)); done\n\
    echo built > left4dead2/cfg/built.cfg\nsleep 1\n";

/// A booted system with two instances and overlays, canaries, and the attacker installed.
struct Race {
    sys: BootedSystem,
    /// The overlay the attacker goes for.
    overlay: &'static str,
    before: Snapshot,
    /// Totals over the rounds: swaps, plants, refused tries.
    swaps: u64,
    plants: u64,
    refused: u64,
    verdicts: Vec<String>,
}

/// What the attacker did in one round.
struct Attack {
    counts: String,
    swaps: u64,
    plants: u64,
    refused: u64,
    /// `HOLE …` and `ODD …` lines: root-owned dirs it could change, unexpected errors.
    findings: Vec<String>,
}

impl Race {
    fn set_up(test: &str, overlay: &'static str) -> Result<Race> {
        require_root();
        let sys = boot(builder(test))?;
        let attacker = sys.host_path(ATTACKER);
        std::fs::create_dir_all(attacker.parent().context("attacker dir")?)?;
        std::fs::copy(env!("CARGO_BIN_EXE_left4me-race-attacker"), &attacker)?;
        std::fs::set_permissions(&attacker, PermissionsExt::from_mode(0o755))?;
        std::fs::create_dir_all(sys.host_path(STOP_DIR))?;

        // Canaries: root's files outside the state dir, in the admin dir, another instance
        // with its runtime dir and its overlay.
        write(&sys, "/srv/canary/a.txt", "canary a\n")?;
        write(&sys, "/srv/canary/sub/b.txt", "canary b\n")?;
        write(&sys, "/srv/canary/sub/deep/c.txt", "canary c\n")?;
        write(
            &sys,
            "/var/lib/left4me-admin/canary/secret.txt",
            "root's only\n",
        )?;
        make_overlay(
            &sys,
            KEEP_OVERLAY,
            &[("left4dead2/addons/keep.vpk", "keep\n")],
        )?;
        make_overlay(
            &sys,
            INSTANCE_OVERLAY,
            &[("left4dead2/addons/rov.vpk", "rov\n")],
        )?;
        let overlay_arg = format!("overlays/{KEEP_OVERLAY}");
        ctl_ok(
            &sys,
            &[
                "create",
                OTHER,
                "--port",
                "27016",
                "--overlay",
                &overlay_arg,
            ],
        )?;
        runtime_by_hand(&sys, OTHER)?;
        create_instance(&sys)?;
        let mut race = Race {
            sys,
            overlay,
            before: Snapshot::default(),
            swaps: 0,
            plants: 0,
            refused: 0,
            verdicts: Vec::new(),
        };
        race.before = race.snapshot()?;
        ensure!(
            race.before.len() > 20,
            "a canary of {} entries",
            race.before.len()
        );
        Ok(race)
    }

    /// Everything the attack must leave alone, as the host sees it.
    fn snapshot(&self) -> Result<Snapshot> {
        let sys = &self.sys;
        let state = sys.state_dir();
        let instance = state.join("runtime").join(INSTANCE);
        let overlays = state.join("overlays");
        let content = overlays.join(self.overlay);
        let build_prefix = format!(".{}.", self.overlay);
        let specs = [
            sys.host_path(format!("/etc/left4me/instances/{INSTANCE}.toml")),
            sys.host_path(format!("/etc/left4me/overlays/{}.toml", self.overlay)),
        ];
        let skip = |path: &Path| {
            path.starts_with(&instance)
                || path.starts_with(&content)
                || (path.parent() == Some(overlays.as_path())
                    && path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&build_prefix)))
                || specs.iter().any(|spec| path == spec)
        };
        let roots = [
            state.clone(),
            sys.host_path("/srv/canary"),
            sys.host_path("/var/lib/left4me-admin/canary"),
            sys.host_path("/etc/left4me"),
        ];
        Snapshot::take(&roots, &skip).context("snapshot the canaries")
    }

    /// Runs `verb` (a `left4mectl` argv) while the attacker races, records what happened and
    /// requires that every try on a root-owned dir was refused; returns the verb's output.
    fn attacked(&mut self, round: usize, verb: &[&str]) -> Result<Output> {
        let (out, attack) = self.race(verb)?;
        self.swaps += attack.swaps;
        self.plants += attack.plants;
        self.refused += attack.refused;
        self.verdicts.push(format!(
            "round {round}: `left4mectl {}` {} [{}]",
            verb.join(" "),
            if out.status.success() {
                "ok".to_owned()
            } else {
                format!("refused ({})", first_line(&text(&out)))
            },
            attack.counts
        ));
        ensure!(
            attack.findings.is_empty(),
            "round {round} of `left4mectl {}`: the game user could change root's dirs:\n{}",
            verb.join(" "),
            attack.findings.join("\n")
        );
        Ok(out)
    }

    /// Runs `verb` while the attacker races; the verb's output and what the attacker did.
    fn race(&self, verb: &[&str]) -> Result<(Output, Attack)> {
        let sys = &self.sys;
        let stop = sys.host_path(STOP_FILE);
        let _ = std::fs::remove_file(&stop);
        let mut argv: Vec<String> = AS_GAME_USER.iter().map(|s| s.to_string()).collect();
        argv.extend([
            ATTACKER.to_owned(),
            STATE_DIR.to_owned(),
            INSTANCE.to_owned(),
            self.overlay.to_owned(),
            STOP_FILE.to_owned(),
        ]);
        argv.extend(attack_targets());
        let mut child = sys
            .command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start the attacker")?;
        let mut stdout = BufReader::new(child.stdout.take().context("attacker stdout")?);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        if first.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("the attacker did not start: {first:?} {err}");
        }
        let out = ctl(sys, verb);
        std::fs::write(&stop, "")?;
        let waited = wait_with_deadline(&mut child, Instant::now() + Duration::from_secs(60))?;
        if waited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the attacker did not stop within 60 s");
        }
        let mut rest = String::new();
        stdout.read_to_string(&mut rest)?;
        let _ = std::fs::remove_file(&stop);
        Ok((out?, parse_attack(&rest)?))
    }

    /// Nothing outside the instance changed, and no overlay mount is stale.
    fn check(&self, round: usize, verb: &str) -> Result<()> {
        let changes = self.before.changes(&self.snapshot()?);
        ensure!(
            changes.is_empty(),
            "round {round} of {verb}: outside the instance, root changed:\n{}",
            changes.join("\n")
        );
        let stale = stale_mounts(&self.sys)?;
        ensure!(
            stale.is_empty(),
            "round {round} of {verb}: stale overlay mounts: {stale:?}"
        );
        Ok(())
    }

    /// Says what happened, requires that the attack ran, powers off.
    fn finish(self, verb: &str) -> Result<()> {
        for line in &self.verdicts {
            report(&format!("{verb}: {line}"));
        }
        report(&format!(
            "{verb}: {} swaps, {} plants, {} tries on root's dirs refused with EACCES; \
             nothing outside the instance changed",
            self.swaps, self.plants, self.refused
        ));
        ensure!(
            self.swaps > 0 && self.plants > 0 && self.refused > 0,
            "{verb}: the attacker never raced ({} swaps, {} plants, {} refused):\n{}",
            self.swaps,
            self.plants,
            self.refused,
            self.verdicts.join("\n")
        );
        self.sys.shutdown()?;
        Ok(())
    }
}

/// Where the attacker's symlinks point: every canary.
fn attack_targets() -> Vec<String> {
    vec![
        "/srv/canary".to_owned(),
        "/srv/canary/sub".to_owned(),
        "/etc/left4me".to_owned(),
        "/var/lib/left4me-admin/canary".to_owned(),
        format!("{STATE_DIR}/runtime/{OTHER}"),
        format!("{STATE_DIR}/installation"),
        format!("{STATE_DIR}/overlays/{KEEP_OVERLAY}"),
    ]
}

fn parse_attack(output: &str) -> Result<Attack> {
    let mut lines = output.lines();
    let counts = lines
        .next()
        .context("no report from the attacker")?
        .to_owned();
    let field = |key: &str| -> u64 {
        counts
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    Ok(Attack {
        swaps: field("swaps"),
        plants: field("plants"),
        refused: field("refused"),
        counts: counts.clone(),
        findings: lines.map(str::to_owned).collect(),
    })
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// `left4mectl create race` with the attacked overlay.
fn create_instance(sys: &BootedSystem) -> Result<()> {
    let overlay_arg = format!("overlays/{INSTANCE_OVERLAY}");
    ctl_ok(
        sys,
        &[
            "create",
            INSTANCE,
            "--port",
            "27015",
            "--overlay",
            &overlay_arg,
        ],
    )?;
    Ok(())
}

/// `runtime/NAME` as prepare lays it out (root's, with the game user's `upper`, `work`,
/// `merged`), with a game tree in `upper`; for rounds that do not start the game.
fn runtime_by_hand(sys: &BootedSystem, name: &str) -> Result<()> {
    let dir = format!("{STATE_DIR}/runtime/{name}");
    sys.run_ok([
        "sh",
        "-c",
        &format!(
            "install -d -m 0755 -o root -g root {STATE_DIR}/runtime {dir} && \
             install -d -m 0755 -o left4me -g left4me {dir}/upper {dir}/merged && \
             install -d -m 0700 -o left4me -g left4me {dir}/work"
        ),
    ])?;
    game_tree_in(sys, &format!("{dir}/upper"))
}

/// Writes [`GAME_TREE`] into `dir` as the game user.
fn game_tree_in(sys: &BootedSystem, dir: &str) -> Result<()> {
    let mut argv = AS_GAME_USER.to_vec();
    let script = format!("cd {dir} && {GAME_TREE}");
    argv.extend(["sh", "-c", &script]);
    sys.run_ok(argv)?;
    Ok(())
}

/// Overlay mounts in PID 1's namespace (tagged `left4me:` or beneath the state dir) that do
/// not belong to a running instance at its `runtime/NAME/merged`.
fn stale_mounts(sys: &BootedSystem) -> Result<Vec<String>> {
    let path = format!("/proc/{}/mountinfo", sys.pid());
    let mountinfo = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let mut stale = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (target, fstype) = (fields[4], fields.get(dash + 1).copied().unwrap_or(""));
        let source = fields.get(dash + 2).copied().unwrap_or("");
        if fstype != "overlay" || !(source.starts_with("left4me:") || target.starts_with(STATE_DIR))
        {
            continue;
        }
        let name = PathBuf::from(target)
            .strip_prefix(format!("{STATE_DIR}/runtime"))
            .ok()
            .and_then(|rest| {
                let mut parts = rest.iter();
                let name = parts.next()?.to_string_lossy().into_owned();
                (parts.next()?.to_str() == Some("merged") && parts.next().is_none()).then_some(name)
            });
        let running = match &name {
            Some(name) => state(sys, name)?.starts_with("active/"),
            None => false,
        };
        if !running {
            stale.push(format!("{source} on {target}"));
        }
    }
    Ok(stale)
}

fn reset_failed(sys: &BootedSystem) -> Result<()> {
    sys.run([
        "systemctl",
        "reset-failed",
        &format!("left4me-server@{INSTANCE}.service"),
    ])?;
    Ok(())
}

/// Starts the instance, unattacked (it must come up), and writes a game tree in its upper dir.
fn start(sys: &BootedSystem) -> Result<()> {
    ctl_ok(sys, &["start", INSTANCE])?;
    game_tree_in(sys, &format!("{STATE_DIR}/runtime/{INSTANCE}/upper"))
}

/// A runtime dir to remove: of the running instance in even rounds, laid out by hand (the
/// instance stopped) in odd ones.
fn runtime_for_round(sys: &BootedSystem, round: usize) -> Result<()> {
    if round.is_multiple_of(2) {
        start(sys)
    } else {
        runtime_by_hand(sys, INSTANCE)
    }
}

#[test]
fn booted_root_race_start() -> Result<()> {
    let mut race = Race::set_up("race-start", INSTANCE_OVERLAY)?;
    runtime_by_hand(&race.sys, INSTANCE)?;
    for round in 0..START_ROUNDS {
        race.attacked(round, &["start", INSTANCE])?;
        race.check(round, "start")?;
        ctl_ok(&race.sys, &["stop", INSTANCE])?;
        reset_failed(&race.sys)?;
        race.check(round, "the stop after start")?;
    }
    race.finish("start")
}

#[test]
fn booted_root_race_stop() -> Result<()> {
    let mut race = Race::set_up("race-stop", INSTANCE_OVERLAY)?;
    for round in 0..START_ROUNDS {
        start(&race.sys)?;
        race.attacked(round, &["stop", INSTANCE])?;
        race.check(round, "stop")?;
        reset_failed(&race.sys)?;
    }
    race.finish("stop")
}

#[test]
fn booted_root_race_reset() -> Result<()> {
    let mut race = Race::set_up("race-reset", INSTANCE_OVERLAY)?;
    for round in 0..REMOVE_ROUNDS {
        runtime_for_round(&race.sys, round)?;
        race.attacked(round, &["reset", INSTANCE])?;
        race.check(round, "reset")?;
        reset_failed(&race.sys)?;
    }
    race.finish("reset")
}

#[test]
fn booted_root_race_delete() -> Result<()> {
    let mut race = Race::set_up("race-delete", INSTANCE_OVERLAY)?;
    for round in 0..REMOVE_ROUNDS {
        let spec = race
            .sys
            .host_path(format!("/etc/left4me/instances/{INSTANCE}.toml"));
        if !spec.exists() {
            create_instance(&race.sys)?;
        }
        runtime_for_round(&race.sys, round)?;
        race.attacked(round, &["delete", INSTANCE, "--yes"])?;
        race.check(round, "delete")?;
        reset_failed(&race.sys)?;
    }
    race.finish("delete")
}

#[test]
fn booted_root_race_overlay_build() -> Result<()> {
    let mut race = Race::set_up("race-build", "bov")?;
    ctl_ok(
        &race.sys,
        &[
            "overlay",
            "create",
            "bov",
            "--no-network",
            "--script",
            BUILD_SCRIPT,
        ],
    )?;
    for round in 0..BUILD_ROUNDS {
        race.attacked(round, &["overlay", "build", "bov"])?;
        race.check(round, "overlay build")?;
    }
    race.finish("overlay build")
}

#[test]
fn booted_root_race_overlay_rm() -> Result<()> {
    let mut race = Race::set_up("race-rm", "rmov")?;
    for round in 0..REMOVE_ROUNDS {
        let spec = race.sys.host_path("/etc/left4me/overlays/rmov.toml");
        if !spec.exists() {
            ctl_ok(&race.sys, &["overlay", "create", "rmov"])?;
        }
        make_overlay(&race.sys, "rmov", &[("left4dead2/addons/rm.vpk", "rm\n")])?;
        game_tree_in(&race.sys, &format!("{STATE_DIR}/overlays/rmov"))?;
        race.attacked(round, &["overlay", "rm", "rmov", "--yes"])?;
        race.check(round, "overlay rm")?;
    }
    race.finish("overlay rm")
}

/// The upgrade step closes the old hole: on an install from before the ownership rule (state
/// dir and root's working dirs the game user's) the attacker can rename `runtime` and
/// `overlays` and plant links next to them; after `systemd-tmpfiles --create left4me.conf`
/// (what `make install` runs) every such try fails with EACCES, and the tree is exactly as a
/// fresh install has it.
#[test]
fn booted_root_race_upgrade_closes_the_old_hole() -> Result<()> {
    let race = Race::set_up("race-upgrade", INSTANCE_OVERLAY)?;
    let old_layout = format!(
        "cd {STATE_DIR} && chown left4me:left4me . installation overlays workshop_cache \
         runtime && chmod 0750 . installation overlays workshop_cache"
    );
    race.sys.run_ok(["sh", "-c", &old_layout])?;
    let (_, before) = race.race(&["list"])?;
    for hole in [
        "rename /var/lib/left4me/runtime",
        "rename /var/lib/left4me/overlays",
    ] {
        ensure!(
            before
                .findings
                .iter()
                .any(|f| f.starts_with(&format!("HOLE {hole}"))),
            "on the old layout the attacker should {hole}: {:?}",
            before.findings
        );
    }
    race.sys
        .run_ok(["systemd-tmpfiles", "--create", "left4me.conf"])?;
    let (_, after) = race.race(&["list"])?;
    ensure!(
        after.findings.is_empty() && after.refused > 0 && after.swaps > 0,
        "after the upgrade step: {} {:?}",
        after.counts,
        after.findings
    );
    race.check(0, "the upgrade")?;
    report(&format!(
        "upgrade: old layout [{}] {} holes; after systemd-tmpfiles [{}] none",
        before.counts,
        before.findings.len(),
        after.counts
    ));
    race.sys.shutdown()?;
    Ok(())
}
