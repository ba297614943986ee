//! The spec history: every change a revision, none lost under concurrency, changes made
//! outside left4mectl recorded on the next run, `diff`, and `rollback` validated like any
//! change and bringing a deleted instance back.

mod common;
mod fakes;

use std::collections::BTreeSet;

use common::{Fixture, INSTANCE_COOP1, INSTANCE_VS1};
use fakes::{Fakes, STOPPED};
use left4me_history::History;
use serde_json::Value;

/// The revisions of `args` (`history … --json`), newest first.
fn revisions(fx: &Fixture, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["history", "--json"];
    all.extend_from_slice(args);
    let run = fx.run(&all);
    run.assert_ok();
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn field<'a>(rev: &'a Value, key: &str) -> &'a str {
    rev[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} of {rev}"))
}

#[test]
fn two_hundred_concurrent_sets_lose_no_edit_and_make_200_revisions() {
    let fx = Fixture::standard();
    let children: Vec<_> = (0..200)
        .map(|i| {
            fx.command(&[
                "set",
                "vs1",
                &format!("config=say {i}"),
                "-m",
                &format!("edit {i}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let revs = revisions(&fx, &["vs1"]);
    let sets: Vec<&Value> = revs.iter().filter(|r| field(r, "verb") == "set").collect();
    assert_eq!(sets.len(), 200, "one revision per set");
    assert_eq!(revs.len(), 201, "and the spec as it was found");
    let messages: BTreeSet<&str> = sets.iter().map(|r| field(r, "message")).collect();
    assert_eq!(messages.len(), 200);
    // Each revision starts from the text the one before left, so no set worked on a stale
    // copy, and each set's value is in the chain once.
    let history = History::open(&fx.path("admin")).unwrap();
    let mut previous: Option<String> = None;
    let mut configs = BTreeSet::new();
    for rev in revs.iter().rev() {
        let (_, texts) = history.get(rev["rev"].as_i64().unwrap()).unwrap().unwrap();
        assert_eq!(texts.old, previous, "revision {rev}");
        let new = texts.new.unwrap();
        configs.insert(
            new.lines()
                .find(|l| l.starts_with("config"))
                .map(str::to_owned),
        );
        previous = Some(new);
    }
    configs.remove(&None);
    assert_eq!(
        configs.len(),
        200,
        "every edit's value is in the chain once"
    );
    assert_eq!(Some(fx.read("etc/instances/vs1.toml")), previous);
}

#[test]
fn an_edit_outside_is_recorded_on_the_next_run() {
    let fx = Fixture::standard();
    fx.run(&["list"]).assert_ok();
    let first = revisions(&fx, &[]);
    assert_eq!(first.len(), 3, "coop, coop1 and vs1 as found: {first:#?}");
    assert!(first.iter().all(
        |r| field(r, "verb") == "changed outside left4mectl" && field(r, "action") == "created"
    ));
    fx.write("etc/instances/vs1.toml", "port = 27021\nmaxplayers = 8\n");
    std::fs::remove_file(fx.path("etc/blueprints/coop.toml")).unwrap();
    // `diff NAME` shows it before it is recorded…
    let run = fx.run(&["diff", "vs1"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("-port = 27020\n+port = 27021\n"),
        "{}",
        run.stdout
    );
    // …and any verb that reads specs records it, `show` here.
    fx.run(&["show", "vs1"]).assert_ok();
    let recorded = History::open(&fx.path("admin"))
        .unwrap()
        .list(Default::default(), None)
        .unwrap();
    assert_eq!(recorded.len(), 5, "recorded by `show`: {recorded:#?}");
    let vs1 = revisions(&fx, &["vs1"]);
    assert_eq!(vs1.len(), 2);
    assert_eq!(field(&vs1[0], "verb"), "changed outside left4mectl");
    assert_eq!(field(&vs1[0], "action"), "changed");
    let run = fx.run(&[
        "diff",
        "vs1",
        &vs1[1]["rev"].to_string(),
        &vs1[0]["rev"].to_string(),
    ]);
    run.assert_ok();
    assert!(
        run.stdout.contains("-port = 27020\n+port = 27021\n"),
        "{}",
        run.stdout
    );
    let coop = revisions(&fx, &["--blueprint", "coop"]);
    assert_eq!(field(&coop[0], "action"), "removed");
    // Recorded once: the next run finds nothing new.
    fx.run(&["list"]).assert_ok();
    assert_eq!(revisions(&fx, &[]).len(), 5);
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(fx.path(p)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!((mode("admin"), mode("admin/left4me.db")), (0o700, 0o600));
}

#[test]
fn set_records_who_verb_and_message_and_history_shows_them() {
    let fx = Fixture::standard();
    let run = fx.run(&[
        "set",
        "vs1",
        "map=c5m1_waterfront",
        "-m",
        "the league wants it",
    ]);
    run.assert_ok();
    let revs = revisions(&fx, &["vs1"]);
    assert_eq!(field(&revs[0], "verb"), "set");
    assert_eq!(field(&revs[0], "message"), "the league wants it");
    assert_eq!(revs[0]["uid"], rustix::process::getuid().as_raw());
    let run = fx.run(&["history", "vs1"]);
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("REV  TIME (UTC)"), "{}", run.stdout);
    assert!(lines[1].contains("instance vs1") && lines[1].contains("the league wants it"));
    let run = fx.run(&["diff", "vs1", &revs[1]["rev"].to_string()]);
    assert!(
        run.stdout.contains("+map = \"c5m1_waterfront\"\n"),
        "{}",
        run.stdout
    );
    let run = fx.run(&["diff", "coop1", &revs[0]["rev"].to_string()]);
    run.assert_refused("is of instance vs1, not of instance coop1");
}

#[test]
fn rollback_to_a_port_now_taken_is_refused_and_writes_nothing() {
    let fx = Fixture::standard();
    fx.run(&["set", "vs1", "port=27021"]).assert_ok();
    fx.run(&["set", "coop1", "port=27020"]).assert_ok();
    let revs = revisions(&fx, &["vs1"]);
    let old = revs.last().unwrap()["rev"].to_string();
    let before = revisions(&fx, &[]).len();
    fx.refused(&["rollback", "vs1", &old], "27020");
    assert_eq!(revisions(&fx, &[]).len(), before, "no revision recorded");
    assert_eq!(
        fx.read("etc/instances/vs1.toml"),
        "port = 27021\nmaxplayers = 8\n"
    );
    // Once the port is free again, the same rollback goes through.
    fx.run(&["set", "coop1", "port=27015"]).assert_ok();
    let run = fx.run(&["rollback", "vs1", &old, "-m", "back to the old port"]);
    run.assert_ok();
    assert_eq!(fx.read("etc/instances/vs1.toml"), INSTANCE_VS1);
    let revs = revisions(&fx, &["vs1"]);
    assert_eq!(field(&revs[0], "verb"), "rollback");
    assert_eq!(
        field(&revs[0], "message"),
        format!("back to the old port (back to revision {old})")
    );
}

#[test]
fn privileged_delete_then_rollback_restores_the_spec_and_the_trail_shows_it() {
    common::require_root();
    let f = Fakes::new();
    f.set("after-stop", STOPPED);
    f.run(&["delete", "coop1", "--yes"]).assert_ok();
    assert!(!f.fx.path("etc/instances/coop1.toml").exists());
    let revs = revisions(&f.fx, &["coop1"]);
    assert_eq!(field(&revs[0], "verb"), "delete");
    assert_eq!(field(&revs[0], "action"), "removed");
    let deleted = revs[0]["rev"].to_string();
    let found = revs[1]["rev"].to_string();
    let run = f.run(&["rollback", "coop1", &deleted]);
    run.assert_refused("removed instance coop1: roll back to a revision before it");
    let run = f.run(&["rollback", "coop1", &found]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("coop1 is back: start it with `left4mectl start coop1`")
    );
    assert_eq!(f.fx.read("etc/instances/coop1.toml"), INSTANCE_COOP1);
    let trail: Vec<(String, String)> = revisions(&f.fx, &["coop1"])
        .iter()
        .map(|r| (field(r, "verb").to_owned(), field(r, "action").to_owned()))
        .collect();
    let want = [
        ("rollback", "created"),
        ("delete", "removed"),
        ("changed outside left4mectl", "created"),
    ]
    .map(|(v, a)| (v.to_owned(), a.to_owned()));
    assert_eq!(trail, want);
}

#[test]
fn blueprint_changes_are_revisions_and_roll_back() {
    let fx = Fixture::standard();
    fx.refused(
        &["blueprint", "rm", "coop"],
        "blueprint coop is used by coop1",
    );
    fx.run(&["blueprint", "create", "spare", "--maxplayers", "8"])
        .assert_ok();
    fx.run(&["blueprint", "set", "spare", "maxplayers=6"])
        .assert_ok();
    fx.run(&["blueprint", "rm", "spare", "-m", "unused"])
        .assert_ok();
    assert!(!fx.path("etc/blueprints/spare.toml").exists());
    let spare = revisions(&fx, &["--blueprint", "spare"]);
    let trail: Vec<&str> = spare.iter().map(|r| field(r, "verb")).collect();
    assert_eq!(trail, ["blueprint rm", "blueprint set", "blueprint create"]);
    let set = spare[1]["rev"].to_string();
    let run = fx.run(&["rollback", "--blueprint", "spare", &set]);
    run.assert_ok();
    assert!(
        fx.read("etc/blueprints/spare.toml")
            .contains("maxplayers = 6")
    );
    assert_eq!(
        field(&revisions(&fx, &["--blueprint", "spare"])[0], "verb"),
        "blueprint rollback"
    );
}

#[test]
fn privileged_overlay_changes_are_revisions() {
    common::require_root();
    let fx = Fixture::standard();
    fx.run(&["overlay", "create", "maps"]).assert_ok();
    fx.run(&["overlay", "rm", "maps", "--yes"]).assert_ok();
    let maps = revisions(&fx, &["--overlay", "maps"]);
    let trail: Vec<(&str, &str)> = maps
        .iter()
        .map(|r| (field(r, "verb"), field(r, "action")))
        .collect();
    assert_eq!(
        trail,
        [("overlay rm", "removed"), ("overlay create", "created")]
    );
}
