//! The whole SteamCMD flow against the recording double (privileged: the state dir must be
//! root's, as on a real host): the two-pass workaround, retries, disk full, the rate limit,
//! a lie caught by the manifest check, the beta password kept out of every argv and row.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::job::Host;
use crate::ledger::{Ledger, LedgerStatus, Record};
use crate::stream::Stop;
use left4me_contract::Ids;

use crate::testing::{RecordingRunner, Scenario, TempDir, current_ids, test_host};

/// One fixture at a time (the ledger and the state dir are per fixture, but the double's
/// units all have the same names).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const ACF: &str = "steamapps/appmanifest_222860.acf";

fn manifest(build: u64, downloaded: u64) -> String {
    format!(
        "\"AppState\"\n{{\n\t\"appid\"\t\t\"222860\"\n\t\"StateFlags\"\t\t\"4\"\n\
         \t\"SizeOnDisk\"\t\t\"4000\"\n\t\"buildid\"\t\t\"{build}\"\n\
         \t\"BytesToDownload\"\t\t\"1000\"\n\t\"BytesDownloaded\"\t\t\"{downloaded}\"\n\
         \t\"BytesToStage\"\t\t\"4000\"\n\t\"BytesStaged\"\t\t\"4000\"\n}}\n"
    )
}

struct Fixture {
    _serial: std::sync::MutexGuard<'static, ()>,
    dir: TempDir,
    host: Host,
    job: GameJob,
}

impl Fixture {
    fn new(tag: &str, action: Action) -> Self {
        assert_eq!(
            current_ids().uid,
            0,
            "privileged test: run as root (make test does, as CI does)"
        );
        let serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = TempDir::new(&format!("steamcmd-{tag}"));
        let state = dir.path().join("state");
        let output = state.join("game/versions/.new-0a0b0c0d");
        let home = state.join("game/steamcmd");
        for d in [output.join("tree"), output.join("work"), home.clone()] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(home.join("steamcmd.sh"), "#!/bin/sh\n").unwrap();
        let host = test_host(
            dir.path(),
            &state,
            Ids {
                uid: 65534,
                gid: 65534,
            },
            Ids {
                uid: 65533,
                gid: 65533,
            },
        );
        let job = GameJob {
            action,
            login: Login::Anonymous,
            branch: "public".into(),
            beta_password: None,
            state_dir: state,
            output,
            lowers: Vec::new(),
            home,
            game_user: "game".into(),
            sandbox_user: "sandbox".into(),
            limits: crate::Limits {
                memory_max: "2G".into(),
                tasks_max: 256,
                timeout: "2h".into(),
            },
            expected_download: Some(0),
            expected_build: None,
            retry: RetryPolicy {
                attempts: 3,
                backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
                rate_limit_wait: Duration::ZERO,
                rate_limit_retries: 1,
            },
        };
        Fixture {
            _serial: serial,
            dir,
            host,
            job,
        }
    }

    /// A published version below the new layer, with its manifest.
    fn with_lower(mut self, build: u64) -> Self {
        let lower = self
            .job
            .state_dir
            .join(format!("game/versions/{build}/tree"));
        fs::create_dir_all(lower.join("steamapps")).unwrap();
        fs::write(lower.join(ACF), manifest(build, 1000)).unwrap();
        self.job.lowers = vec![lower];
        self
    }

    fn run(&self, runner: &RecordingRunner) -> (GameReport, Vec<String>) {
        let mut events = Vec::new();
        let mut progress = |event: GameEvent<'_>| events.push(format!("{event:?}"));
        let report = run(&self.job, &self.host, runner, &Stop::new(), &mut progress).unwrap();
        (report, events)
    }

    fn ledger(&self) -> Vec<Record> {
        Ledger::open(&self.host.database, false)
            .unwrap()
            .unwrap()
            .jobs(None, 100)
            .unwrap()
    }
}

/// A SteamCMD run printing `lines` and exiting with `status`, writing `files` (relative to
/// the staging dir).
fn steamcmd(lines: &[&str], status: i32, files: &[(&str, String)]) -> Scenario {
    let mut scenario = Scenario::exiting(lines, status);
    scenario.files = files
        .iter()
        .map(|(rel, text)| (PathBuf::from(rel), text.clone()))
        .collect();
    scenario
}

fn installed(build: u64) -> Scenario {
    steamcmd(
        &[
            " Update state (0x61) downloading, progress: 50.00 (500 / 1000)",
            "Success! App '222860' fully installed.",
        ],
        0,
        &[(&format!("tree/{ACF}"), manifest(build, 1000))],
    )
}

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// SteamCMD's own arguments (after the runner's `--`, past `steamcmd.sh`).
fn steamcmd_args(args: &[OsString]) -> Vec<String> {
    let args = strings(args);
    let at = args.iter().position(|a| a == "--").unwrap();
    assert_eq!(args[at + 1], STEAMCMD_IN_SANDBOX);
    args[at + 2..].to_vec()
}

fn has_pair(args: &[String], a: &str, b: &str) -> bool {
    args.windows(2).any(|w| w[0] == a && w[1] == b)
}

#[test]
fn privileged_anonymous_install_takes_the_two_pass_workaround() {
    let fx = Fixture::new("two-pass", Action::Install);
    let runner = RecordingRunner::sequence(vec![
        steamcmd(
            &["ERROR! Failed to install app '222860' (Invalid platform)"],
            8,
            &[],
        ),
        steamcmd(&["Success! App '222860' fully installed."], 0, &[]),
        installed(16407291),
    ]);
    let (report, events) = fx.run(&runner);
    assert_eq!(report.status, GameStatus::Succeeded, "{events:#?}");
    assert!(report.platform_workaround);
    assert_eq!(report.build_id, Some(16407291));
    assert_eq!(report.bytes_downloaded, 1000);
    let linux = |validate| Pass {
        platform: Some(Platform::Linux),
        validate,
    };
    let windows = Pass {
        platform: Some(Platform::Windows),
        validate: false,
    };
    assert_eq!(report.passes, [linux(true), windows, linux(true)]);
    let started = runner.started();
    assert_eq!(started.len(), 3);
    let second = steamcmd_args(&started[1]);
    assert!(has_pair(&second, "+@sSteamCmdForcePlatformType", "windows"));
    assert!(!second.contains(&"validate".to_owned()));
    let third = steamcmd_args(&started[2]);
    assert!(has_pair(&third, "+@sSteamCmdForcePlatformType", "linux"));
    assert_eq!(&third[third.len() - 2..], ["validate", "+quit"]);
    assert!(has_pair(&third, "+force_install_dir", "/overlay"));
    // The runner's side: owner root, the steamcmd profile, the home; the unit's x86 ABI.
    let all = strings(&started[2]);
    assert!(has_pair(&all, "--owner", "root"));
    assert!(has_pair(&all, "--profile", "steamcmd"));
    assert!(has_pair(&all, "--home", &fx.job.home.display().to_string()));
    assert!(all.contains(&"SystemCallArchitectures=native x86".to_owned()));
    assert!(all.contains(&"--slice=l4d2-build.slice".to_owned()));
    assert!(
        all.iter()
            .any(|a| a.starts_with("--unit=left4me-game-install-"))
    );
    assert!(events.iter().any(|e| e.starts_with("PlatformWorkaround")));
    assert!(events.iter().any(|e| e.starts_with("Download(")));
    // steamapps/ was made before the first run.
    assert!(fx.job.output.join("tree/steamapps").is_dir());
    let rows = fx.ledger();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .all(|r| r.kind == Some(crate::JobKind::GameInstall))
    );
    assert_eq!(rows[2].status, LedgerStatus::Failed);
    assert!(
        rows[2].detail.contains("Invalid platform"),
        "{}",
        rows[2].detail
    );
    assert_eq!(rows[0].status, LedgerStatus::Success);
    assert_eq!(report.ledger_id(), Some(rows[0].id));
}

#[test]
fn privileged_a_network_error_is_retried_and_an_update_reads_the_layers() {
    let fx = Fixture::new("retry", Action::Update).with_lower(100);
    let runner = RecordingRunner::sequence(vec![
        steamcmd(
            &["Error! App '222860' state is 0x602 after update job."],
            8,
            &[],
        ),
        installed(200),
    ]);
    let (report, events) = fx.run(&runner);
    assert_eq!(report.status, GameStatus::Succeeded, "{events:#?}");
    assert_eq!(report.runs(), 2);
    assert!(!report.platform_workaround);
    assert_eq!(report.build_id, Some(200));
    assert!(events.iter().any(|e| e.starts_with("Waiting")));
    let first = strings(&runner.started()[0]);
    assert!(has_pair(
        &first,
        "--lower",
        &fx.job.lowers[0].display().to_string()
    ));
    // An update does not validate and creates no steamapps/ over the lower's.
    assert!(!steamcmd_args(&runner.started()[0]).contains(&"validate".to_owned()));
    assert!(!fx.job.output.join("tree/steamapps").exists() || report.bytes_written > 0);
}

#[test]
fn privileged_an_update_that_changes_nothing_is_judged_by_the_lower_manifest() {
    let fx = Fixture::new("lower", Action::Update).with_lower(100);
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &["Success! App '222860' already up to date."],
        0,
        &[],
    )]);
    let (report, _) = fx.run(&runner);
    assert_eq!(report.status, GameStatus::Succeeded);
    assert_eq!(report.build_id, Some(100));
}

#[test]
fn privileged_disk_full_is_final_and_says_what_is_free() {
    let fx = Fixture::new("disk", Action::Install);
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &[
            " Update state (0x61) downloading, progress: 3.00 (10 / 100)",
            "Error! App '222860' state is 0x202 after update job.",
        ],
        8,
        &[],
    )]);
    let (report, _) = fx.run(&runner);
    let GameStatus::Failed(GameFailure::DiskFull { state, free }) = &report.status else {
        panic!("{:?}", report.status);
    };
    assert_eq!(*state, 0x202);
    assert!(*free > 0);
    assert_eq!(report.runs(), 1);
    assert!(report.verdict().contains("free"), "{}", report.verdict());
}

#[test]
fn privileged_a_rate_limit_waits_then_retries() {
    let fx = Fixture::new("rate", Action::Install);
    let runner = RecordingRunner::sequence(vec![
        steamcmd(
            &["Logging in user 'anonymous' to Steam Public...FAILED (Rate Limit Exceeded)"],
            5,
            &[],
        ),
        installed(7),
    ]);
    let (report, events) = fx.run(&runner);
    assert_eq!(report.status, GameStatus::Succeeded);
    assert_eq!(report.runs(), 2);
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Waiting") && e.contains("RateLimit"))
    );
    // A second rate limit after the one wait gives up.
    drop(fx);
    let fx = Fixture::new("rate2", Action::Install);
    let limited = steamcmd(
        &["FAILED login with result code Rate Limit Exceeded"],
        5,
        &[],
    );
    let runner = RecordingRunner::sequence(vec![limited.clone(), limited]);
    let (report, _) = fx.run(&runner);
    assert!(matches!(
        report.status,
        GameStatus::Failed(GameFailure::GaveUp { runs: 2, .. })
    ));
}

#[test]
fn privileged_a_success_line_over_a_half_done_download_is_caught() {
    let fx = Fixture::new("lie", Action::Install);
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &["Success! App '222860' fully installed."],
        0,
        &[(&format!("tree/{ACF}"), manifest(5, 400))],
    )]);
    let (report, _) = fx.run(&runner);
    let GameStatus::Failed(GameFailure::Manifest(problems)) = &report.status else {
        panic!("{:?}", report.status);
    };
    assert_eq!(problems.len(), 1);
    drop(fx);
    // A build other than the one a check found is caught too.
    let mut fx = Fixture::new("wrong-build", Action::Install);
    fx.job.expected_build = Some(6);
    let runner = RecordingRunner::sequence(vec![installed(5)]);
    let GameStatus::Failed(GameFailure::Manifest(problems)) = fx.run(&runner).0.status else {
        panic!("accepted");
    };
    assert_eq!(
        problems[0].to_string(),
        "build 5 was installed, build 6 was expected"
    );
    drop(fx);
    let fx = Fixture::new("lie2", Action::Install);
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &["Success! App '222860' fully installed."],
        0,
        &[(&format!("tree/{ACF}"), manifest(5, 400))],
    )]);
    let _ = fx.run(&runner);
    let row = &fx.ledger()[0];
    assert_eq!(row.status, LedgerStatus::Failed);
    assert!(
        row.detail.contains("400 of 1000 bytes downloaded"),
        "{}",
        row.detail
    );
    // And a run that claims success without a manifest at all.
    drop(fx);
    let fx = Fixture::new("nomanifest", Action::Install);
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &["Success! App '222860' fully installed."],
        0,
        &[],
    )]);
    assert_eq!(
        fx.run(&runner).0.status,
        GameStatus::Failed(GameFailure::NoManifest)
    );
}

#[test]
fn privileged_the_beta_password_is_in_no_argv_row_or_line() {
    let mut fx = Fixture::new("secret", Action::Validate);
    fx.job.login = Login::Account("operator".into());
    fx.job.branch = "last_stable".into();
    fx.job.beta_password = Some(Secret::new("hunter2-xyz"));
    let manifest_beta = manifest(9, 1000).replace(
        "}\n",
        "\t\"UserConfig\"\n\t{\n\t\t\"betakey\"\t\t\"last_stable\"\n\t}\n}\n",
    );
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &[
            "app_update 222860 -beta last_stable -betapassword hunter2-xyz validate",
            "Success! App '222860' fully installed.",
        ],
        0,
        &[(&format!("tree/{ACF}"), manifest_beta)],
    )]);
    let (report, events) = fx.run(&runner);
    assert_eq!(report.status, GameStatus::Succeeded, "{events:#?}");
    assert!(!format!("{fx:?}", fx = fx.job).contains("hunter2"));
    for args in runner.started() {
        let args = strings(&args);
        assert!(!args.iter().any(|a| a.contains("hunter2")), "{args:?}");
        assert!(
            args.iter()
                .any(|a| a.starts_with("/home/steamcmd/.left4me-run-"))
        );
        assert!(has_pair(&args, "+login", "operator"));
    }
    for row in fx.ledger() {
        assert!(!row.log_tail.contains("hunter2") && !row.detail.contains("hunter2"));
    }
    assert!(!report.log_tail.join("\n").contains("hunter2"));
    assert!(!events.iter().any(|e| e.contains("hunter2")));
    // The runscript was removed after the run.
    let left: Vec<_> = fs::read_dir(&fx.job.home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [OsString::from("steamcmd.sh")]);
    // An account is never given the anonymous workaround.
    drop(fx);
    let mut fx = Fixture::new("account", Action::Install);
    fx.job.login = Login::Account("operator".into());
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &["ERROR! Failed to install app '222860' (Invalid platform)"],
        8,
        &[],
    )]);
    let (report, _) = fx.run(&runner);
    assert!(!report.platform_workaround);
    assert_eq!(report.runs(), 1);
}

#[test]
fn privileged_check_reads_the_remote_build_after_dropping_the_cache() {
    let fx = Fixture::new("check", Action::Check);
    let cache = fx.job.home.join("appcache");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("appinfo.vdf"), "stale").unwrap();
    let info = [
        "AppID : 222860, change number : 26071946/0, last change : Thu Nov 28 10:00:00 2024",
        "\"222860\"",
        "{",
        "\t\"depots\"",
        "\t{",
        "\t\t\"branches\"",
        "\t\t{",
        "\t\t\t\"public\"",
        "\t\t\t{",
        "\t\t\t\t\"buildid\"\t\t\"16407291\"",
        "\t\t\t}",
        "\t\t}",
        "\t}",
        "}",
        "Unloading Steam API...OK",
    ];
    let runner = RecordingRunner::sequence(vec![steamcmd(&info, 0, &[])]);
    let (report, _) = fx.run(&runner);
    assert_eq!(report.status, GameStatus::Succeeded);
    assert_eq!(report.build_id, Some(16407291));
    assert!(!cache.join("appinfo.vdf").exists());
    let args = steamcmd_args(&runner.started()[0]);
    assert!(has_pair(&args, "+app_info_print", "222860"));
    assert!(!args.contains(&"+force_install_dir".to_owned()));
    assert_eq!(fx.ledger()[0].kind, Some(crate::JobKind::GameCheck));
    // Steam unreachable: a clear failure after the retries.
    drop(fx);
    let fx = Fixture::new("check-down", Action::Check);
    let runner = RecordingRunner::sequence(vec![steamcmd(
        &["ERROR! Timed out waiting for AppInfo update."],
        1,
        &[],
    )]);
    let (report, _) = fx.run(&runner);
    assert!(matches!(
        report.status,
        GameStatus::Failed(GameFailure::GaveUp { runs: 3, .. })
    ));
}

#[test]
fn privileged_an_interrupted_run_stops_its_unit_and_is_not_retried() {
    let fx = Fixture::new("stop", Action::Install);
    let stop = Stop::new();
    let mut scenario = steamcmd(
        &["Error! App '222860' state is 0x602 after update job."],
        8,
        &[],
    );
    scenario.stop = Some(stop.clone());
    let runner = RecordingRunner::sequence(vec![scenario]);
    let mut progress = |_: GameEvent<'_>| {};
    let report = run(&fx.job, &fx.host, &runner, &stop, &mut progress).unwrap();
    assert_eq!(report.status, GameStatus::Interrupted);
    assert_eq!(report.runs(), 1);
    assert!(
        runner
            .calls()
            .iter()
            .any(|c| matches!(c, crate::testing::Call::Stop(_)))
    );
    assert_eq!(fx.ledger()[0].status, LedgerStatus::Interrupted);
}

#[test]
fn privileged_no_room_refuses_before_anything_runs() {
    let mut fx = Fixture::new("room", Action::Install);
    fx.job.expected_download = Some(u64::MAX / 4);
    let runner = RecordingRunner::sequence(vec![installed(1)]);
    let mut progress = |_: GameEvent<'_>| {};
    let err = run(&fx.job, &fx.host, &runner, &Stop::new(), &mut progress).unwrap_err();
    assert!(matches!(err, GameJobError::NoRoom { .. }), "{err}");
    assert!(runner.started().is_empty());
    let _ = (fx.dir.path(), Path::new("/"));
}
