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
//! The workshop tests (issue 10) run `overlay build` of a workshop overlay, each round
//! downloading an item updated on the stand-in Steam Web API, and `overlay gc`, with the
//! attacker also in the workshop cache's download dirs and every overlay it can write; after
//! each round the cache holds only root's 0444 files with exactly the stand-in's bytes, and gc
//! removed nothing linked. With `--poison` the attacker also writes into every download it can
//! open and holds it open: it can open none, since the download dir lies in a root-only build
//! dir (`booted_root_race_workshop_poisoned_download`).
//!
//! Whether the verb itself succeeded under attack is reported, not required: refusing is a
//! correct answer to an attack. A last test shows the attacker finding the old hole on an
//! install from before the ownership rule, and `systemd-tmpfiles --create` (the upgrade step of
//! `make install`) closing it. Needs root; run by `make test`.

mod booted_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use booted_support::{boot, builder, ctl, ctl_ok, make_overlay, report, state, text, write};
use left4me_tests::exec::wait_with_deadline;
use left4me_tests::{BootedSystem, STATE_DIR, Snapshot, require_root};
use left4me_workshop_standin::fixture::standard;
use left4me_workshop_standin::{Fixture, WorkshopServer};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

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
    /// The attacker races in the workshop cache and every overlay too (`--workshop`); the
    /// snapshot leaves out the cache (checked by [`check_cache`]) and the instance's overlay.
    workshop: bool,
    /// With `workshop`: the attacker also writes into the downloads it can open (`--poison`).
    poison: bool,
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
            workshop: false,
            poison: false,
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
        let cache = state.join("workshop_cache");
        let instance_overlay = overlays.join(INSTANCE_OVERLAY);
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
                || (self.workshop
                    && (path.starts_with(&cache) || path.starts_with(&instance_overlay)))
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
        argv.push(ATTACKER.to_owned());
        if self.workshop {
            argv.push("--workshop".to_owned());
        }
        if self.poison {
            argv.push("--poison".to_owned());
        }
        argv.extend([
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

/// The stand-in Steam Web API's address inside the booted system: a documentation address
/// (`booted_workshop` uses .11), on port 80 (one the download unit may connect to).
const WORKSHOP_HOST: &str = "192.0.2.12";
const WORKSHOP_URL: &str = "http://192.0.2.12:80";
/// The attacked workshop overlay, and one built once that the rounds must leave alone.
const WORKSHOP_OVERLAY: &str = "wov";
const WORKSHOP_KEEP: &str = "wkeep";
/// Rounds per workshop verb: each build downloads one updated item.
const WORKSHOP_ROUNDS: usize = 4;

/// A [`Race`] on a workshop overlay of the stand-in's good items (`Fixture::standard()`'s
/// `OK_1`..`OK_3`), served on [`WORKSHOP_HOST`]:80 inside the system's network namespace, and
/// a second workshop overlay of `OK_1` built once (a canary: its cache file must survive every
/// update and gc).
struct WorkshopRace {
    /// First: stopped before the system powers off.
    standin: Standin,
    race: Race,
}

/// The stand-in Steam Web API, stopped from inside the system's network namespace when
/// dropped (its stop connects to its own address, which only that namespace has; from
/// anywhere else the stop would wait forever).
struct Standin {
    server: Option<WorkshopServer>,
    netns: std::fs::File,
}

impl Drop for Standin {
    fn drop(&mut self) {
        let (server, netns) = (self.server.take(), &self.netns);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                match move_into_link_name_space(netns.as_fd(), Some(LinkNameSpaceType::Network)) {
                    Ok(()) => drop(server),
                    // Left running rather than waited for forever.
                    Err(_) => std::mem::forget(server),
                }
            });
        });
    }
}

impl WorkshopRace {
    fn set_up(test: &str) -> Result<WorkshopRace> {
        let mut race = Race::set_up(test, WORKSHOP_OVERLAY)?;
        race.workshop = true;
        race.sys.add_peer_address(&format!("{WORKSHOP_HOST}/32"))?;
        let listener = race
            .sys
            .in_netns(|| TcpListener::bind((WORKSHOP_HOST, 80)))?
            .context("bind the stand-in Steam Web API")?;
        let netns = format!("/proc/{}/ns/net", race.sys.pid());
        // Guarded at once: an error from here on must not leave it to a drop that waits.
        let standin = Standin {
            netns: std::fs::File::open(&netns).with_context(|| format!("open {netns}"))?,
            server: Some(WorkshopServer::serve(Fixture::standard(), listener)?),
        };
        let mut ws = WorkshopRace { standin, race };
        let base = ws.server().base_url();
        report(&format!("{test}: the stand-in Steam Web API on {base}"));
        ensure!(
            base.trim_end_matches('/') == WORKSHOP_URL,
            "the stand-in serves on {base}"
        );
        let sys = &ws.race.sys;
        write(
            sys,
            "/etc/left4me/host.toml",
            &format!("steam_web_api = \"{WORKSHOP_URL}\"\n"),
        )?;
        let ids = OK_ITEMS.map(|id| id.to_string()).join(",");
        ctl_ok(
            sys,
            &["overlay", "create", WORKSHOP_OVERLAY, "--workshop", &ids],
        )?;
        let first = OK_ITEMS[0].to_string();
        ctl_ok(
            sys,
            &["overlay", "create", WORKSHOP_KEEP, "--workshop", &first],
        )?;
        for name in [WORKSHOP_KEEP, WORKSHOP_OVERLAY] {
            ctl_ok(sys, &["overlay", "build", name])?;
            report(&format!("{test}: built {name}"));
        }
        ws.race.before = ws.race.snapshot()?;
        ws.check_cache(0, "the first builds")?;
        Ok(ws)
    }

    fn server(&self) -> &WorkshopServer {
        self.standin.server.as_ref().expect("served until dropped")
    }

    /// Publishes a new version of one of the overlay's items on the stand-in (the next build
    /// downloads it).
    fn update(&self, round: usize) -> Result<()> {
        let id = OK_ITEMS[round % OK_ITEMS.len()];
        self.server()
            .update_item(id)
            .with_context(|| format!("update item {id} on the stand-in"))?;
        Ok(())
    }

    /// The bytes the stand-in serves for version `hcontent` of item `id`.
    fn bytes_of(&self, id: u64, hcontent: u64) -> Option<Vec<u8>> {
        self.server().with_fixture(|f| {
            let item = f.items.get(&id)?;
            let version = item.versions.iter().find(|v| v.hcontent == hcontent)?;
            Some(version.bytes.clone())
        })
    }

    /// Whether `bytes` are those of some version of item `id`.
    fn is_a_version_of(&self, id: u64, bytes: &[u8]) -> bool {
        self.server().with_fixture(|f| {
            f.items
                .get(&id)
                .is_some_and(|item| item.versions.iter().any(|v| v.bytes == bytes))
        })
    }

    /// The cache holds only root's `ID/` dirs (0755) of root's regular files (0444), each
    /// `HCONTENT.vpk` byte for byte the stand-in's version `HCONTENT` of item `ID` (nothing
    /// planted was adopted, nothing changed after adoption); nothing of a download is left;
    /// every file of the workshop overlays' trees is a cache file with a version's bytes.
    /// Returns the cache files' inodes with their link counts.
    fn check_cache(&self, round: usize, verb: &str) -> Result<BTreeMap<u64, u64>> {
        let cache = self.race.sys.state_dir().join("workshop_cache");
        let mut problems = Vec::new();
        let mut inodes = BTreeMap::new();
        let meta = std::fs::symlink_metadata(&cache)?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o7777 != 0o755 {
            problems.push(format!("{}: not root's 0755 dir", cache.display()));
        }
        for entry in std::fs::read_dir(&cache)? {
            let entry = entry?;
            let (path, name) = (entry.path(), entry.file_name());
            let Some(id) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                problems.push(format!("{}: left behind", path.display()));
                continue;
            };
            let meta = std::fs::symlink_metadata(&path)?;
            if !meta.is_dir() || meta.uid() != 0 || meta.gid() != 0 || meta.mode() & 0o7777 != 0o755
            {
                problems.push(format!("{}: not root's 0755 dir", path.display()));
                continue;
            }
            for file in std::fs::read_dir(&path)? {
                let file = file?.path();
                let meta = std::fs::symlink_metadata(&file)?;
                let hcontent = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".vpk"))
                    .and_then(|h| h.parse::<u64>().ok());
                if !meta.is_file() || meta.uid() != 0 || meta.gid() != 0 {
                    problems.push(format!("{}: not root's regular file", file.display()));
                } else if meta.mode() & 0o7777 != 0o444 {
                    problems.push(format!("{}: mode {:o}", file.display(), meta.mode()));
                } else if hcontent.and_then(|h| self.bytes_of(id, h)) != Some(std::fs::read(&file)?)
                {
                    problems.push(format!(
                        "{}: not the stand-in's bytes of that version (planted content)",
                        file.display()
                    ));
                } else {
                    inodes.insert(meta.ino(), meta.nlink());
                }
            }
        }
        for overlay in [WORKSHOP_OVERLAY, WORKSHOP_KEEP] {
            for (id, meta, bytes) in self.tree(overlay)? {
                if !inodes.contains_key(&meta.ino()) || !self.is_a_version_of(id, &bytes) {
                    problems.push(format!(
                        "overlays/{overlay}: item {id} is not a cache file with a version's bytes"
                    ));
                }
            }
        }
        ensure!(
            problems.is_empty(),
            "round {round} of {verb}: the workshop cache:\n{}",
            problems.join("\n")
        );
        Ok(inodes)
    }

    /// The files of `overlays/NAME/left4dead2/addons`: item id, metadata, bytes.
    fn tree(&self, overlay: &str) -> Result<Vec<(u64, std::fs::Metadata, Vec<u8>)>> {
        let addons = self
            .race
            .sys
            .state_dir()
            .join("overlays")
            .join(overlay)
            .join("left4dead2/addons");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&addons).with_context(|| format!("{}", addons.display()))? {
            let path = entry?.path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .with_context(|| format!("{}: not ID.vpk", path.display()))?;
            files.push((id, std::fs::symlink_metadata(&path)?, std::fs::read(&path)?));
        }
        files.sort_by_key(|(id, _, _)| *id);
        Ok(files)
    }

    /// Stops the stand-in, then as [`Race::finish`].
    fn finish(self, verb: &str) -> Result<()> {
        let WorkshopRace { standin, race } = self;
        drop(standin);
        race.finish(verb)
    }
}

/// `Fixture::standard()`'s good items, the attacked overlay's.
const OK_ITEMS: [u64; 3] = [standard::OK_1, standard::OK_2, standard::OK_3];

/// `overlay build` of a workshop overlay, each round downloading an item updated on the
/// stand-in, while the attacker races in the download dir (`workshop_cache/.build-*`: swaps,
/// renames, planted links), every overlay dir the game user can write, and tries root's cache
/// dirs and files. After each
/// round: the checks of every verb, and the cache holds only root's 0444 files with the
/// stand-in's bytes.
#[test]
fn booted_root_race_workshop_build() -> Result<()> {
    workshop_build("race-workshop-build", false)
}

/// The same with the attacker writing into every download it can open and holding it open
/// (`--poison`). When the download dir `workshop_cache/.build-RUNID` was the game user's, a
/// process of the game user opened a download for writing and its bytes ended up in the
/// root-owned 0444 cache ("not the stand-in's bytes of that version"). The download dir now
/// lies in a root-only 0700 build dir (`.build-RUNID/out`) that only the runner, given
/// `CAP_DAC_READ_SEARCH` until it drops its capabilities, can reach.
#[test]
fn booted_root_race_workshop_poisoned_download() -> Result<()> {
    workshop_build("race-workshop-poison", true)
}

/// The rounds of the workshop build tests.
fn workshop_build(test: &str, poison: bool) -> Result<()> {
    let mut ws = WorkshopRace::set_up(test)?;
    ws.race.poison = poison;
    for round in 0..WORKSHOP_ROUNDS {
        ws.update(round)?;
        ws.race
            .attacked(round, &["overlay", "build", WORKSHOP_OVERLAY])?;
        ws.race.check(round, "workshop overlay build")?;
        ws.check_cache(round, "workshop overlay build")?;
    }
    ws.finish("workshop overlay build")
}

/// `overlay gc` under the same attack, each round after an (unattacked) build that replaced
/// one item's version: gc removes only cache files nothing links; the current tree's files and
/// the canary overlay's stay, byte for byte, and the canaries are untouched.
#[test]
fn booted_root_race_workshop_gc() -> Result<()> {
    let mut ws = WorkshopRace::set_up("race-workshop-gc")?;
    for round in 0..WORKSHOP_ROUNDS {
        ws.update(round)?;
        ctl_ok(&ws.race.sys, &["overlay", "build", WORKSHOP_OVERLAY])?;
        let before = ws.check_cache(round, "the build before gc")?;
        let current = ws.tree(WORKSHOP_OVERLAY)?;
        let unlinked = before.values().filter(|&&links| links == 1).count();
        let out = ws.race.attacked(round, &["overlay", "gc"])?;
        ws.race.check(round, "overlay gc")?;
        let after = ws.check_cache(round, "overlay gc")?;
        let now = ws.tree(WORKSHOP_OVERLAY)?;
        let same = |a: &[(u64, std::fs::Metadata, Vec<u8>)],
                    b: &[(u64, std::fs::Metadata, Vec<u8>)]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x.0 == y.0 && x.1.ino() == y.1.ino() && x.1.mode() == y.1.mode() && x.2 == y.2
                })
        };
        ensure!(
            same(&current, &now),
            "round {round} of overlay gc: the current tree of {WORKSHOP_OVERLAY} changed"
        );
        for (ino, links) in &before {
            ensure!(
                *links == 1 || after.contains_key(ino),
                "round {round} of overlay gc: a linked cache file (inode {ino}) was removed"
            );
        }
        if out.status.success() {
            ensure!(
                after.values().all(|&links| links > 1),
                "round {round}: gc succeeded but left unlinked cache files: {after:?}"
            );
        }
        report(&format!(
            "workshop gc round {round}: {unlinked} unlinked of {} cache files before, {} after",
            before.len(),
            after.len()
        ));
    }
    ws.finish("workshop overlay gc")
}
