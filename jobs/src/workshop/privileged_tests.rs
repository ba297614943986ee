//! The workshop build and gc as root, with the recording double standing for systemd: its
//! "download" writes the files a real fetch (or a hostile one) would leave in the build dir.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use left4me_contract::Ids;
use left4me_workshop::{Item, ItemState};

use super::*;
use crate::ledger::{Ledger, LedgerStatus};
use crate::testing::{RecordingRunner, Scenario, TempDir, current_ids, test_host};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const GAME: Ids = Ids {
    uid: 65534,
    gid: 65534,
};

struct Fixture {
    _dir: TempDir,
    state: PathBuf,
    host: Host,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        assert_eq!(current_ids().uid, 0, "privileged test: run as root");
        let dir = TempDir::new(&format!("workshop-{tag}"));
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        let host = test_host(
            dir.path(),
            &state,
            GAME,
            Ids {
                uid: 65533,
                gid: 65533,
            },
        );
        Fixture {
            _dir: dir,
            state,
            host,
        }
    }

    fn job(&self, name: &str, items: &[Item]) -> WorkshopJob {
        WorkshopJob {
            name: name.into(),
            items: items.to_vec(),
            game_user: "game".into(),
            sandbox_user: "sandbox".into(),
            limits: Limits {
                memory_max: "1G".into(),
                tasks_max: 64,
                timeout: "1h".into(),
            },
        }
    }

    fn run(&self, items: &[Item], runner: &RecordingRunner) -> WorkshopReport {
        self.run_named("maps", items, runner)
    }

    fn run_named(&self, name: &str, items: &[Item], runner: &RecordingRunner) -> WorkshopReport {
        let mut progress = |_: crate::Event<'_>| {};
        run(
            &self.job(name, items),
            &self.host,
            &self.state,
            runner,
            &Stop::new(),
            &mut progress,
        )
        .unwrap()
    }

    fn cache_file(&self, item: &Item) -> PathBuf {
        self.state
            .join(format!("workshop_cache/{}/{}.vpk", item.id, item.hcontent))
    }

    fn addon(&self, id: u64) -> PathBuf {
        self.state
            .join(format!("overlays/maps/left4dead2/addons/{id}.vpk"))
    }

    fn entries(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.state.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn ledger_statuses(&self) -> Vec<LedgerStatus> {
        let ledger = Ledger::open(&self.host.database, false).unwrap().unwrap();
        ledger
            .jobs(Some("maps"), 100)
            .unwrap()
            .into_iter()
            .map(|r| r.status)
            .collect()
    }
}

/// A VPK (version 1) of exactly `size` bytes.
fn vpk(size: usize) -> Vec<u8> {
    let mut bytes = 0x55aa_1234u32.to_le_bytes().to_vec();
    bytes.extend(1u32.to_le_bytes());
    bytes.resize(size, 0x5a);
    bytes
}

fn item(id: u64, hcontent: u64, size: u64) -> Item {
    Item {
        id,
        title: format!("item {id}"),
        file_size: size,
        time_updated: 1_700_000_000,
        hcontent,
        file_url: format!("https://steamusercontent-a.akamaihd.net/ugc/{hcontent}/$HOME/"),
        state: ItemState::Ok,
    }
}

fn download_name(item: &Item) -> PathBuf {
    PathBuf::from(cache::download_name(item.id, item.hcontent))
}

/// A download run that leaves these files and exits with `status`.
fn fetch(status: i32, bytes: Vec<(PathBuf, Vec<u8>)>, files: Vec<(PathBuf, String)>) -> Scenario {
    Scenario {
        bytes,
        files,
        owner: Some(GAME),
        ..Scenario::exiting(&["left4me-fetch: item 1 (100 bytes)"], status)
    }
}

/// A download that fetches every item of `items` intact.
fn fetch_all(items: &[&Item]) -> Scenario {
    let bytes = items
        .iter()
        .map(|i| (download_name(i), vpk(i.file_size as usize)))
        .collect();
    fetch(0, bytes, Vec::new())
}

/// The download dir is the game user's, inside a build dir only root can enter: no process of
/// the game user can reach a download (to write it, and go on writing through the descriptor
/// after root adopted it, as `booted_root_race` did when the build dir was the game user's).
#[test]
fn privileged_the_download_dir_lies_in_a_build_dir_only_root_enters() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("build-dir");
    let cache = Cache::open(&fx.state, true).unwrap().unwrap();
    let out = cache.create_build("feedface", GAME).unwrap();
    let build = fx.state.join("workshop_cache/.build-feedface");
    assert_eq!(out.path(), build.join(cache::DOWNLOAD_DIR));
    let owner_mode = |path: &Path| {
        let meta = fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    };
    assert_eq!(owner_mode(&build), (0, 0, 0o700));
    assert_eq!(owner_mode(out.path()), (GAME.uid, GAME.gid, 0o755));
    assert_eq!(cache.clear_stale(false).unwrap(), vec![build]);
    assert!(fx.entries("workshop_cache").is_empty());
}

#[test]
fn privileged_adoption_refuses_bad_files_and_adopts_good_ones_root_owned_read_only() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("adopt");
    let good = item(101, 9001, 100);
    let link = item(102, 9002, 100);
    let hard = item(103, 9003, 100);
    let short = item(104, 9004, 100);
    let html = item(105, 9005, 100);
    let dir = item(106, 9006, 100);
    let lost = item(107, 9007, 100);
    let banned = Item {
        state: ItemState::Banned {
            reason: "spam".into(),
        },
        ..item(108, 9008, 100)
    };
    let mut page = b"<!DOCTYPE html><html>error</html>".to_vec();
    page.resize(100, b' ');
    let scenario = fetch(
        1,
        vec![
            (download_name(&good), vpk(100)),
            ("spare".into(), vpk(100)),
            (download_name(&short), vpk(60)),
            (download_name(&html), page),
            (download_name(&dir).join("inner"), vpk(100)),
        ],
        vec![
            (download_name(&link), "->/etc/passwd".into()),
            (download_name(&hard), "=>spare".into()),
        ],
    );
    let runner = RecordingRunner::new(scenario);
    let items = [
        good.clone(),
        link.clone(),
        hard.clone(),
        short.clone(),
        html.clone(),
        dir.clone(),
        lost.clone(),
        banned.clone(),
    ];
    let report = fx.run(&items, &runner);

    assert!(matches!(report.outcome, Outcome::Failed(_)), "{report:?}");
    assert_eq!(report.downloaded, vec![(101, 100)]);
    assert_eq!(report.bytes_downloaded, 100);
    assert_eq!(report.cached, 0);
    let reason = |id: u64| {
        report
            .refused
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, why)| why.clone())
            .unwrap_or_else(|| panic!("{id} not refused: {report:?}"))
    };
    assert!(reason(102).contains("symbolic link"), "{}", reason(102));
    assert!(reason(103).contains("2 hard links"), "{}", reason(103));
    assert_eq!(reason(104), "got 60 bytes, the API said 100");
    assert!(reason(105).contains("HTML"), "{}", reason(105));
    assert!(reason(106).contains("directory"), "{}", reason(106));
    assert_eq!(report.refused.len(), 5);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 107);
    assert!(report.failed[0].1.contains("overlay jobs maps"));

    // The good one is root's, read-only, one link; nothing else is in the cache.
    let meta = fs::symlink_metadata(fx.cache_file(&good)).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o444)
    );
    assert_eq!((meta.nlink(), meta.len()), (1, 100));
    assert_eq!(fx.entries("workshop_cache"), vec!["101"]);
    assert_eq!(
        fs::metadata("/etc/passwd").unwrap().uid(),
        0,
        "a link is never followed"
    );
    // Nothing published: a failed item fails the build.
    assert!(!fx.state.join("overlays/maps").exists());
    assert!(fx.entries("overlays").is_empty());
    // One unit, the fetch script with the data as arguments ($ doubled for systemd).
    let started = runner.started();
    assert_eq!(started.len(), 1);
    let args: Vec<String> = started[0]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        args.iter()
            .any(|a| a.starts_with("--unit=left4me-workshop-maps-"))
    );
    assert!(args.iter().any(|a| a == "--slice=l4d2-build.slice"));
    assert!(args.iter().any(|a| a == "left4me-fetch"));
    assert!(
        args.iter()
            .any(|a| a == "https://steamusercontent-a.akamaihd.net/ugc/9001/$$HOME/")
    );
    assert!(
        !args.iter().any(|a| a.contains("108")),
        "banned not fetched"
    );
    assert_eq!(fx.ledger_statuses(), vec![LedgerStatus::Failed]);

    // The next run fetches only what is still missing.
    let runner = RecordingRunner::new(fetch_all(&[&link, &hard, &short, &html, &dir, &lost]));
    let report = fx.run(&items, &runner);
    assert_eq!(report.outcome, Outcome::Published, "{report:?}");
    assert_eq!(report.cached, 1);
    assert_eq!(report.downloaded.len(), 6);
    let args = format!("{:?}", runner.started()[0]);
    assert!(
        !args.contains("9001"),
        "the cached item is not fetched again"
    );
    let mut addons = fx.entries("overlays/maps/left4dead2/addons");
    addons.sort();
    assert_eq!(addons.len(), 7, "{addons:?}");
    assert!(!addons.contains(&"108.vpk".to_owned()));
}

#[test]
fn privileged_tree_links_the_cache_publishes_changes_only_and_gc_removes_unlinked_files() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("tree");
    let a = item(201, 1, 64);
    let b1 = item(202, 2, 80);
    let b2 = item(202, 3, 90);

    // First build: both downloaded, linked, published.
    let runner = RecordingRunner::new(fetch_all(&[&a, &b1]));
    let report = fx.run(&[a.clone(), b1.clone()], &runner);
    assert_eq!(report.outcome, Outcome::Published);
    assert!(report.ledger_id.is_some());
    let cached = fs::metadata(fx.cache_file(&a)).unwrap();
    let linked = fs::metadata(fx.addon(201)).unwrap();
    assert_eq!((cached.dev(), cached.ino()), (linked.dev(), linked.ino()));
    assert_eq!(cached.nlink(), 2);
    for rel in [
        "overlays/maps",
        "overlays/maps/left4dead2",
        "overlays/maps/left4dead2/addons",
    ] {
        let meta = fs::symlink_metadata(fx.state.join(rel)).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755), "{rel}");
    }
    let content = fs::metadata(fx.state.join("overlays/maps")).unwrap().ino();

    // Same items again: nothing downloaded, no unit, nothing published.
    let runner = RecordingRunner::new(Scenario::exiting(&[], 0));
    let report = fx.run(&[a.clone(), b1.clone()], &runner);
    assert_eq!(report.outcome, Outcome::Unchanged);
    assert_eq!((report.ledger_id, report.cached), (None, 2));
    assert!(runner.started().is_empty());
    let now = fs::metadata(fx.state.join("overlays/maps")).unwrap().ino();
    assert_eq!(now, content);
    assert_eq!(fx.entries("overlays"), vec!["maps"]);

    // B updated upstream, but its download fails: the previous content stays.
    let runner = RecordingRunner::new(fetch(1, Vec::new(), Vec::new()));
    let report = fx.run(&[a.clone(), b2.clone()], &runner);
    assert!(matches!(report.outcome, Outcome::Failed(_)));
    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        fs::metadata(fx.state.join("overlays/maps")).unwrap().ino(),
        content
    );
    let b_now = fs::metadata(fx.addon(202)).unwrap().ino();
    assert_eq!(b_now, fs::metadata(fx.cache_file(&b1)).unwrap().ino());
    assert_eq!(fx.entries("workshop_cache"), vec!["201", "202"]);

    // Its download works: published, the old content retired (no mount uses it).
    let runner = RecordingRunner::new(fetch_all(&[&b2]));
    let report = fx.run(&[a.clone(), b2.clone()], &runner);
    assert_eq!(report.outcome, Outcome::Published);
    assert_eq!(report.downloaded, vec![(202, 90)]);
    assert!(
        matches!(&report.retired[..], [Retired::Removed(p)] if p.to_string_lossy().contains(".maps.old-")),
        "{:?}",
        report.retired
    );
    assert_eq!(fx.entries("overlays"), vec!["maps"]);
    assert_eq!(
        fs::metadata(fx.addon(202)).unwrap().ino(),
        fs::metadata(fx.cache_file(&b2)).unwrap().ino()
    );
    assert_eq!(fs::metadata(fx.cache_file(&b1)).unwrap().nlink(), 1);

    // Another tree links B1 (as old content a running instance still mounts, which is not
    // retired, does): gc keeps it. A stale build dir goes.
    let held = fx.state.join("overlays/still-mounted");
    fs::create_dir_all(&held).unwrap();
    fs::hard_link(fx.cache_file(&b1), held.join("202.vpk")).unwrap();
    fs::create_dir_all(fx.state.join("workshop_cache/.build-deadbeef")).unwrap();
    let kept = gc(&fx.state, &fx.host, false).unwrap();
    assert!(kept.removed.is_empty(), "{kept:?}");
    assert_eq!(
        kept.stale,
        vec![fx.state.join("workshop_cache/.build-deadbeef")]
    );
    assert_eq!(kept.kept.files, 3);
    assert!(fx.cache_file(&b1).exists());
    // Once that tree is gone, B1 is linked by nothing.
    fs::remove_file(held.join("202.vpk")).unwrap();

    let dry = gc(&fx.state, &fx.host, true).unwrap();
    assert_eq!(dry.removed, vec![(fx.cache_file(&b1), 80)]);
    assert!(fx.cache_file(&b1).exists(), "a dry run removes nothing");
    let done = gc(&fx.state, &fx.host, false).unwrap();
    assert_eq!(done.removed, vec![(fx.cache_file(&b1), 80)]);
    assert_eq!(done.removed_bytes(), 80);
    assert!(done.stale.is_empty());
    assert_eq!(done.kept.files, 2);
    assert!(!fx.cache_file(&b1).exists());
    assert!(fx.cache_file(&a).exists() && fx.cache_file(&b2).exists());
    assert_eq!(fx.entries("workshop_cache"), vec!["201", "202"]);
    assert_eq!(
        fx.ledger_statuses(),
        vec![
            LedgerStatus::Success,
            LedgerStatus::Failed,
            LedgerStatus::Success
        ]
    );
}

#[test]
fn privileged_gc_retires_unmounted_old_content_first_and_removes_empty_item_dirs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("gc");
    let a1 = item(301, 1, 32);
    let a2 = item(301, 2, 40);
    let c = item(302, 5, 50);
    let runner = RecordingRunner::new(fetch_all(&[&a1, &c]));
    assert_eq!(
        fx.run(&[a1.clone(), c.clone()], &runner).outcome,
        Outcome::Published
    );
    // An old content dir left by a publish whose instance has since stopped.
    let old = fx.state.join("overlays/.maps.old-0badc0de");
    fs::create_dir_all(old.join("left4dead2/addons")).unwrap();
    fs::hard_link(fx.cache_file(&a1), old.join("left4dead2/addons/301.vpk")).unwrap();
    let runner = RecordingRunner::new(fetch_all(&[&a2]));
    // The build retires the old content no mount uses.
    let report = fx.run(std::slice::from_ref(&a2), &runner);
    assert_eq!(report.outcome, Outcome::Published);
    assert!(!old.exists());
    assert_eq!(fx.entries("overlays"), vec!["maps"]);

    let done = gc(&fx.state, &fx.host, false).unwrap();
    let mut removed: Vec<PathBuf> = done.removed.iter().map(|(p, _)| p.clone()).collect();
    removed.sort();
    assert_eq!(removed, vec![fx.cache_file(&a1), fx.cache_file(&c)]);
    assert_eq!(done.removed_dirs, vec![fx.state.join("workshop_cache/302")]);
    assert_eq!(fx.entries("workshop_cache"), vec!["301"]);
    assert!(Path::new(&fx.cache_file(&a2)).exists());
}

#[test]
fn privileged_a_cache_dir_not_roots_or_a_link_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("owner");
    let cache = fx.state.join("workshop_cache");
    fs::create_dir(&cache).unwrap();
    std::os::unix::fs::chown(&cache, Some(GAME.uid), Some(GAME.gid)).unwrap();
    let err = Cache::open(&fx.state, true).unwrap_err();
    assert!(err.to_string().contains("not root"), "{err}");
    let err = gc(&fx.state, &fx.host, true).unwrap_err();
    assert!(err.to_string().contains("not root"), "{err}");
    // A link in its place is never followed.
    fs::remove_dir(&cache).unwrap();
    let elsewhere = fx.state.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &cache).unwrap();
    assert!(Cache::open(&fx.state, true).is_err());
    assert!(fs::symlink_metadata(&cache).unwrap().is_symlink());
}

#[test]
fn privileged_ten_overlays_share_one_copy_and_an_unchanged_refresh_of_200_items_downloads_nothing()
{
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("share");
    let items: Vec<Item> = (0..200).map(|n| item(400 + n, 7000 + n, 64)).collect();
    let refs: Vec<&Item> = items.iter().collect();
    let runner = RecordingRunner::new(fetch_all(&refs));
    let shared = &items[..50];
    for n in 0..10 {
        let report = fx.run_named(&format!("o{n}"), shared, &runner);
        assert_eq!(report.outcome, Outcome::Published);
        assert_eq!(report.cached, if n == 0 { 0 } else { 50 });
    }
    assert_eq!(
        runner.started().len(),
        1,
        "only the first overlay downloads"
    );
    assert_eq!(fs::metadata(fx.cache_file(&items[0])).unwrap().nlink(), 11);
    let cache = Cache::open(&fx.state, false).unwrap().unwrap();
    assert_eq!(cache.usage().unwrap().bytes, 50 * 64, "one copy on disk");

    let report = fx.run(&items, &runner);
    assert_eq!(report.outcome, Outcome::Published);
    let report = fx.run(&items, &runner);
    assert_eq!(report.outcome, Outcome::Unchanged);
    // Speed is the benchmark's (bench/workshop.sh), not a test's.
    assert_eq!((report.cached, report.bytes_downloaded), (200, 0));
}

#[test]
fn privileged_gc_dry_run_counts_what_retiring_old_content_would_free() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("gc-dry");
    let a1 = item(401, 1, 32);
    let a2 = item(401, 2, 40);
    let runner = RecordingRunner::new(fetch_all(&[&a1]));
    assert_eq!(
        fx.run(std::slice::from_ref(&a1), &runner).outcome,
        Outcome::Published
    );
    let runner = RecordingRunner::new(fetch_all(&[&a2]));
    assert_eq!(
        fx.run(std::slice::from_ref(&a2), &runner).outcome,
        Outcome::Published
    );
    // Old content a stopped instance had mounted (a publish retires it when it can; this one
    // is put back by hand): A1's only other link.
    let old = fx.state.join("overlays/.maps.old-0badc0de");
    fs::create_dir_all(old.join("left4dead2/addons")).unwrap();
    fs::hard_link(fx.cache_file(&a1), old.join("left4dead2/addons/401.vpk")).unwrap();

    let dry = gc(&fx.state, &fx.host, true).unwrap();
    assert_eq!(dry.removed, vec![(fx.cache_file(&a1), 32)]);
    assert_eq!(dry.retired, vec![old.clone()]);
    assert!(
        old.exists() && fx.cache_file(&a1).exists(),
        "a dry run removes nothing"
    );

    let done = gc(&fx.state, &fx.host, false).unwrap();
    assert_eq!(done.removed, dry.removed, "the dry run said what gc does");
    assert_eq!(done.retired, dry.retired);
    assert!(!old.exists() && !fx.cache_file(&a1).exists());
    assert!(fx.cache_file(&a2).exists());
}

#[test]
fn privileged_more_items_than_one_command_line_holds_download_in_several_units() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new("chunks");
    let items: Vec<Item> = (0..super::MAX_PER_DOWNLOAD as u64 + 1)
        .map(|n| item(600_000 + n, 1, 16))
        .collect();
    let refs: Vec<&Item> = items.iter().collect();
    let runner = RecordingRunner::new(fetch_all(&refs));
    let report = fx.run(&items, &runner);
    assert_eq!(report.outcome, Outcome::Published);
    assert_eq!(report.downloaded.len(), items.len());
    assert_eq!(runner.started().len(), 2, "two units");
    assert_eq!(
        fx.ledger_statuses(),
        vec![LedgerStatus::Success, LedgerStatus::Success]
    );
}
