//! The whole pipeline against the recording double: no systemd, but root (privileged: the state
//! dir and `overlays/` must be root's, and the build dir is handed to the game user, `nobody`).

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use super::*;
use crate::job::{JobKind, Limits, NetworkPolicy};
use crate::ledger::{Ledger, LedgerStatus};
use crate::testing::{Call, RecordingRunner, Scenario, TempDir, current_ids, test_host};
use crate::{OverlayDirs, Profile};

/// One fixture at a time: a child another test's thread forks (the seeding `cp`) holds a copy
/// of every descriptor until it execs, the overlay's lock among them, and a second run of the
/// same fixture would find its overlay busy.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A host under a temp dir, with its passwd file, and a job of overlay `maps`.
struct Fixture {
    _serial: std::sync::MutexGuard<'static, ()>,
    dir: TempDir,
    host: Host,
    job: Job,
    game: Ids,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        assert_eq!(
            current_ids().uid,
            0,
            "privileged test: run as root (make test does, as CI does)"
        );
        let serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = TempDir::new(&format!("pipeline-{tag}"));
        fs::create_dir(dir.path().join("state")).unwrap();
        let game = Ids {
            uid: 65534,
            gid: 65534,
        };
        let host = test_host(dir.path(), &dir.path().join("state"), game, game);
        let job = Job {
            kind: JobKind::OverlayBuild,
            name: "maps".into(),
            command: ["/bin/bash", "-c", "echo $OVERLAY"]
                .map(OsString::from)
                .to_vec(),
            profile: Profile::Script,
            network: NetworkPolicy::Off,
            limits: Limits {
                memory_max: "4G".into(),
                tasks_max: 512,
                timeout: "1h".into(),
            },
            output: OverlayDirs::new(&dir.path().join("state"), "maps"),
            game_user: "game".into(),
            sandbox_user: "sandbox".into(),
        };
        Fixture {
            _serial: serial,
            dir,
            host,
            job,
            game,
        }
    }

    /// `overlays/maps` with one file, owned by the game user (`overlays/` is root's).
    fn with_content(self, text: &str) -> Self {
        let current = self.job.output.current();
        fs::create_dir_all(&current).unwrap();
        fs::write(current.join("v"), text).unwrap();
        for path in [&current, &current.join("v")] {
            std::os::unix::fs::lchown(path, Some(self.game.uid), Some(self.game.gid)).unwrap();
        }
        self
    }

    fn scenario(&self, mut scenario: Scenario) -> RecordingRunner {
        scenario.owner = Some(self.game);
        RecordingRunner::new(scenario)
    }

    /// Runs the job; the events as text.
    fn run(
        &self,
        runner: &RecordingRunner,
        stop: &Stop,
    ) -> (Result<Report, JobError>, Vec<String>) {
        let plan = self.job.plan(&self.host).unwrap();
        let mut events = Vec::new();
        let mut progress = |event: Event<'_>| events.push(format!("{event:?}"));
        let report = run(&self.job, &plan, &self.host, runner, stop, &mut progress);
        (report, events)
    }

    fn content(&self) -> String {
        fs::read_to_string(self.job.output.current().join("v")).unwrap_or_default()
    }

    fn ledger(&self) -> Vec<crate::Record> {
        Ledger::open(&self.host.database, false)
            .unwrap()
            .unwrap()
            .jobs(None, 10)
            .unwrap()
    }

    /// The hidden build and old dirs left behind.
    fn leftovers(&self) -> usize {
        let overlays = self.job.output.open(false).unwrap().unwrap();
        let (builds, olds) = overlays.leftovers().unwrap();
        builds.len() + olds.len()
    }
}

fn started_args(runner: &RecordingRunner) -> Vec<OsString> {
    runner
        .calls()
        .into_iter()
        .find_map(|call| match call {
            Call::Start(args) => Some(args),
            _ => None,
        })
        .expect("systemd-run was started")
}

#[test]
fn success_publishes_and_records() {
    let fx = Fixture::new("ok").with_content("1");
    let mut scenario = Scenario::exiting(&["downloading", "done"], 0);
    scenario.files = vec![("v".into(), "2".into()), ("sub/new".into(), "abc".into())];
    let runner = fx.scenario(scenario);
    let (report, events) = fx.run(&runner, &Stop::new());
    let report = report.unwrap();
    assert_eq!(report.status, Status::Succeeded);
    assert_eq!(fx.content(), "2");
    assert_eq!(
        fs::read_to_string(fx.job.output.current().join("sub/new")).unwrap(),
        "abc"
    );
    assert_eq!(report.bytes_written, 4);
    assert_eq!(report.log_tail, ["downloading", "done"]);
    assert_eq!(report.summary.lines, ["Service runtime: 12ms"]);
    // The replaced content was retired at once: no instance mounts it.
    assert!(matches!(&report.retired[..], [Retired::Removed(_)]));
    assert_eq!(fx.leftovers(), 0);
    assert!(
        events.iter().any(|e| e.starts_with("Starting(")),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e.contains("text: \"done\"")));

    let args = started_args(&runner);
    let at = |flag: &str| args.iter().position(|a| a == flag).unwrap();
    assert_eq!(args[at("--profile") + 1], "script");
    assert!(args.iter().any(|a| a == "--no-network"));
    assert!(args.iter().any(|a| a == "echo $$OVERLAY"));
    assert!(Path::new(&args[at("--output") + 1]).starts_with(fx.job.output.overlays()));

    let rows = fx.ledger();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, report.ledger_id);
    assert_eq!(rows[0].status, LedgerStatus::Success);
    assert_eq!(rows[0].exit_status, Some(0));
    assert_eq!(rows[0].result.as_deref(), Some("success"));
    assert_eq!(rows[0].log_tail, "downloading\ndone");
    assert_eq!(rows[0].unit, report.unit);
}

#[test]
fn failure_leaves_the_content_unchanged() {
    let fx = Fixture::new("fail").with_content("1");
    let mut scenario = Scenario::exiting(&["curl: (22) 404"], 3);
    scenario.files = vec![("v".into(), "broken".into())];
    let runner = fx.scenario(scenario);
    let report = fx.run(&runner, &Stop::new()).0.unwrap();
    assert_eq!(report.status, Status::Failed(Failure::Exit(3)));
    assert_eq!(fx.content(), "1");
    assert_eq!(fx.leftovers(), 0, "the build dir is removed");
    let row = &fx.ledger()[0];
    assert_eq!(row.status, LedgerStatus::Failed);
    assert_eq!(row.exit_status, Some(3));
    assert_eq!(row.detail, "the script exited with status 3");
}

#[test]
fn an_interrupted_job_stops_its_unit() {
    let fx = Fixture::new("stop").with_content("1");
    let stop = Stop::new();
    let mut scenario = Scenario::exiting(&["working"], 143);
    scenario.stop = Some(stop.clone());
    scenario.files = vec![("v".into(), "half".into())];
    let runner = fx.scenario(scenario);
    let report = fx.run(&runner, &stop).0.unwrap();
    assert_eq!(report.status, Status::Interrupted);
    assert!(runner.calls().contains(&Call::Stop(report.unit.clone())));
    assert_eq!(fx.content(), "1");
    assert_eq!(fx.leftovers(), 0);
    assert_eq!(fx.ledger()[0].status, LedgerStatus::Interrupted);
}

#[test]
fn an_output_refused_by_the_check_is_not_published() {
    let fx = Fixture::new("refused").with_content("1");
    let mut scenario = Scenario::exiting(&[], 0);
    scenario.files = vec![
        ("v".into(), "2".into()),
        ("shadow".into(), "->/etc/shadow".into()),
    ];
    let runner = fx.scenario(scenario);
    let report = fx.run(&runner, &Stop::new()).0.unwrap();
    let Status::Failed(Failure::Refused(problems)) = &report.status else {
        panic!("{:?}", report.status);
    };
    assert!(
        problems[0].contains("shadow -> /etc/shadow is absolute"),
        "{problems:?}"
    );
    assert_eq!(fx.content(), "1");
    assert_eq!(fx.leftovers(), 0);
    let row = &fx.ledger()[0];
    assert_eq!(row.status, LedgerStatus::Failed);
    assert!(
        row.detail
            .starts_with("the output was refused: symlink shadow")
    );
}

#[test]
fn first_build_creates_the_content_and_the_ledger_keeps_every_run() {
    let fx = Fixture::new("rows");
    let mut ok = Scenario::exiting(&[], 0);
    ok.files = vec![("v".into(), "1".into())];
    let first = fx.run(&fx.scenario(ok.clone()), &Stop::new()).0.unwrap();
    assert_eq!(first.status, Status::Succeeded);
    assert!(first.retired.is_empty(), "nothing was replaced");
    assert_eq!(fx.content(), "1");
    fx.run(&fx.scenario(Scenario::exiting(&[], 1)), &Stop::new())
        .0
        .unwrap();
    ok.files = vec![("v".into(), "3".into())];
    fx.run(&fx.scenario(ok), &Stop::new()).0.unwrap();
    assert_eq!(fx.content(), "3");
    let statuses: Vec<LedgerStatus> = fx.ledger().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            LedgerStatus::Success,
            LedgerStatus::Failed,
            LedgerStatus::Success
        ]
    );
}

#[test]
fn preflight_refusals_change_nothing() {
    let fx = Fixture::new("preflight").with_content("1");
    let mut not_root = Scenario::exiting(&[], 0);
    not_root.may_start_units = false;
    let err = fx.run(&fx.scenario(not_root), &Stop::new()).0.unwrap_err();
    assert!(matches!(err, JobError::Preflight(PreflightError::NotRoot)));

    let mut earlier = Scenario::exiting(&[], 0);
    earlier.loaded_units = vec!["left4me-build-maps-0a1b2c3d.service".into()];
    let runner = fx.scenario(earlier);
    let err = fx.run(&runner, &Stop::new()).0.unwrap_err();
    assert!(
        err.to_string()
            .contains("still runs as left4me-build-maps-0a1b2c3d.service"),
        "{err}"
    );
    assert_eq!(
        runner.calls(),
        [Call::LoadedUnits("left4me-build-maps-*.service".into())]
    );

    let mut ghost = fx.job.clone();
    ghost.sandbox_user = "ghost".into();
    let plan = ghost.plan(&fx.host).unwrap();
    let err = run(
        &ghost,
        &plan,
        &fx.host,
        &fx.scenario(Scenario::exiting(&[], 0)),
        &Stop::new(),
        &mut |_: Event<'_>| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("no user 'ghost'"), "{err}");
    assert_eq!(fx.content(), "1");
    assert!(!fx.host.database.exists() || fx.ledger().is_empty());
}

#[test]
fn a_networked_job_gets_its_resolver_for_the_run_only() {
    let mut fx = Fixture::new("net");
    fs::write(&fx.host.etc_resolv_conf, "nameserver 10.0.0.53\n").unwrap();
    fx.job.network = NetworkPolicy::Public { ports: vec![443] };
    let plan = fx.job.plan(&fx.host).unwrap();
    let resolver = plan.resolver.clone().unwrap();
    assert_eq!(
        resolver.plan.exceptions,
        ["10.0.0.53".parse::<std::net::IpAddr>().unwrap()]
    );
    let runner = fx.scenario(Scenario::exiting(&[], 0));
    let report = run(
        &fx.job,
        &plan,
        &fx.host,
        &runner,
        &Stop::new(),
        &mut |_: Event<'_>| {},
    )
    .unwrap();
    assert_eq!(report.status, Status::Succeeded);
    assert!(!resolver.path.exists(), "removed after the run");
    let args = started_args(&runner);
    assert!(
        args.iter()
            .any(|a| a.to_string_lossy().starts_with("BindReadOnlyPaths="))
    );
    let at = args.iter().position(|a| a == "--allow-port").unwrap();
    assert_eq!(args[at + 1], "443");
    drop(fx.dir);
}

/// A canary dir outside the state dir: `canary/.maps.build-0a0a0a0a/keep`,
/// `canary/.maps.old-0b0b0b0b/keep` and `canary/keep`, shaped like what a build would remove.
fn plant_canary(fx: &Fixture) -> std::path::PathBuf {
    let canary = fx.dir.path().join("canary");
    for dir in [".maps.build-0a0a0a0a", ".maps.old-0b0b0b0b", "maps"] {
        fs::create_dir_all(canary.join(dir)).unwrap();
        fs::write(canary.join(dir).join("keep"), "keep me").unwrap();
    }
    fs::write(canary.join("keep"), "keep me").unwrap();
    canary
}

fn canary_intact(canary: &Path) -> bool {
    [
        ".maps.build-0a0a0a0a/keep",
        ".maps.old-0b0b0b0b/keep",
        "maps/keep",
        "keep",
    ]
    .iter()
    .all(|f| fs::read_to_string(canary.join(f)).is_ok_and(|t| t == "keep me"))
}

#[test]
fn an_overlays_dir_swapped_for_a_symlink_is_refused_before_any_removal() {
    let fx = Fixture::new("swapped");
    let canary = plant_canary(&fx);
    std::os::unix::fs::symlink(&canary, fx.job.output.overlays()).unwrap();
    let runner = fx.scenario(Scenario::exiting(&[], 0));
    let err = fx.run(&runner, &Stop::new()).0.unwrap_err();
    assert!(err.to_string().contains("overlays"), "{err}");
    assert!(
        canary_intact(&canary),
        "the build removed the canary's dirs"
    );
    assert!(
        !runner.calls().iter().any(|c| matches!(c, Call::Start(_))),
        "nothing ran"
    );
}

#[test]
fn stale_and_old_dirs_are_removed_without_following_links_in_them() {
    let fx = Fixture::new("links").with_content("1");
    let canary = plant_canary(&fx);
    let overlays = fx.job.output.overlays();
    // What the game user may leave in dirs it owns: links where directories were.
    fs::create_dir(overlays.join(".maps.build-0a0a0a0a")).unwrap();
    std::os::unix::fs::symlink(&canary, overlays.join(".maps.build-0a0a0a0a/sub")).unwrap();
    fs::create_dir(overlays.join(".maps.old-0b0b0b0b")).unwrap();
    std::os::unix::fs::symlink(&canary, overlays.join(".maps.old-0b0b0b0b/sub")).unwrap();
    std::os::unix::fs::symlink(&canary, overlays.join(".maps.old-0c0c0c0c")).unwrap();
    // The content links out too: the seeding copies the link, never what it points to; the
    // check refuses it, and the refused build dir is removed without following it.
    std::os::unix::fs::symlink(&canary, fx.job.output.current().join("out")).unwrap();
    let mut scenario = Scenario::exiting(&[], 0);
    scenario.files = vec![("v".into(), "2".into())];
    let (report, events) = fx.run(&fx.scenario(scenario), &Stop::new());
    let report = report.unwrap();
    assert!(
        matches!(&report.status, Status::Failed(Failure::Refused(p)) if p[0].starts_with("symlink out ->")),
        "{:?}",
        report.status
    );
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events[0].starts_with("StaleBuildRemoved"), "{events:?}");
    assert!(canary_intact(&canary));
    assert_eq!(fx.content(), "1");
    assert_eq!(fx.leftovers(), 0);
}

#[test]
fn the_seed_copies_as_the_game_user_even_when_it_cannot_reach_overlays() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let fx = Fixture::new("seed").with_content("1");
    fs::create_dir_all(fx.job.output.current().join("left4dead2/addons")).unwrap();
    fs::write(
        fx.job.output.current().join("left4dead2/addons/a.vpk"),
        "vpk",
    )
    .unwrap();
    for p in ["left4dead2", "left4dead2/addons", "left4dead2/addons/a.vpk"] {
        std::os::unix::fs::lchown(
            fx.job.output.current().join(p),
            Some(fx.game.uid),
            Some(fx.game.gid),
        )
        .unwrap();
    }
    // Root's alone: the copy reaches both dirs through the descriptors it inherits.
    fs::set_permissions(fx.job.output.overlays(), fs::Permissions::from_mode(0o700)).unwrap();
    let mut scenario = Scenario::exiting(&[], 0);
    scenario.files = vec![("v".into(), "2".into())];
    let mut events = Vec::new();
    let plan = fx.job.plan(&fx.host).unwrap();
    let report = run(
        &fx.job,
        &plan,
        &fx.host,
        &fx.scenario(scenario),
        &Stop::new(),
        &mut |event: Event<'_>| {
            if let Event::Starting(start) = event {
                events.push(start.seeded.clone());
            }
        },
    )
    .unwrap();
    assert_eq!(report.status, Status::Succeeded);
    assert!(
        matches!(&events[..], [Seeded::From { stats, .. }] if stats.files == 2 && stats.bytes == 4),
        "{events:?}"
    );
    let copied = fx.job.output.current().join("left4dead2/addons/a.vpk");
    assert_eq!(fs::read_to_string(&copied).unwrap(), "vpk");
    assert_eq!(fs::metadata(&copied).unwrap().uid(), fx.game.uid);
}

#[test]
fn a_build_that_exhausts_the_inodes_fails_and_changes_nothing() {
    let fx = Fixture::new("inodes");
    let state = fx.dir.path().join("state");
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "nr_inodes=2000,mode=0755",
            "left4me-test",
        ])
        .arg(&state)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs on {}", state.display());
    let fx = fx.with_content("1");
    let mut scenario = Scenario::exiting(&[], 0);
    scenario.files = (0..1600)
        .map(|i| (format!("empty/{i}").into(), String::new()))
        .collect();
    let report = fx.run(&fx.scenario(scenario), &Stop::new()).0;
    let leftovers = fx.leftovers();
    let content = fx.content();
    let unmounted = std::process::Command::new("umount")
        .arg("--lazy")
        .arg(&state)
        .status()
        .unwrap();
    let report = report.unwrap();
    assert!(
        matches!(
            report.status,
            Status::Failed(Failure::InodesRanLow { .. } | Failure::InodesLeftLow { .. })
        ),
        "{:?}",
        report.status
    );
    assert!(report.status.detail().contains("inodes"));
    assert_eq!(content, "1");
    assert_eq!(leftovers, 0, "the build dir was removed");
    assert_eq!(fx.ledger()[0].status, LedgerStatus::Failed);
    assert!(unmounted.success());
}

#[test]
fn a_busy_overlay_is_refused_before_anything_changes() {
    let fx = Fixture::new("busy").with_content("1");
    fs::create_dir(fx.job.output.overlays().join(".maps.build-0a0a0a0a")).unwrap();
    // `overlay rm maps` (or another build) holds the overlay.
    let _held = fx.job.output.lock(&fx.host.locks_dir).unwrap();
    let runner = fx.scenario(Scenario::exiting(&[], 0));
    let err = fx.run(&runner, &Stop::new()).0.unwrap_err();
    assert!(
        matches!(&err, JobError::Preflight(p) if p.is_usage()),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "overlay maps is busy: another left4me process is working on it; try again when it is \
         done"
    );
    assert_eq!(fx.leftovers(), 1, "the stale build dir is not touched");
    assert_eq!(fx.content(), "1");
    assert!(runner.calls().is_empty());
}
