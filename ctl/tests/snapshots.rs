//! Help, output and error snapshots, in the style of cargo's testsuite: each case runs the
//! binary against the standard fixture and compares the whole transcript (command, exit status,
//! stdout, stderr) with a file exactly. A changed message shows in review.
//!
//! The `--help` of every command is snapshotted, in `tests/snapshots/help/PATH.txt` (`PATH` is
//! the command's words joined by `-`, `left4mectl` for the top level); the commands come from
//! clap's own tree, so a new verb gets a snapshot without being listed here. The other cases
//! are listed in [`CASES`] and stored as `tests/snapshots/NAME.txt`.
//!
//! Regenerate after an intended change with:
//!     SNAPSHOTS=overwrite cargo test -p left4mectl --test snapshots

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use common::{Fixture, Run};
use left4mectl::Cli;

/// (snapshot name, setup, arguments). Setup writes extra files into the standard fixture.
type Case = (&'static str, fn(&Fixture), &'static [&'static str]);

fn none(_: &Fixture) {}

fn bad_specs(fx: &Fixture) {
    fx.write("etc/instances/dup.toml", "port = 27015\n");
    fx.write(
        "etc/instances/orphan.toml",
        "blueprint = 'gone'\nport = 27030\nmap = 'c4m1_milltown_a'\n",
    );
    fx.write("etc/blueprints/broken.toml", "maxplayers = 'many'\n");
    fx.write(
        "etc/overlays/maps.toml",
        "kind = 'script'\nscript = 'true'\n",
    );
}

const CASES: &[Case] = &[
    ("help-short", none, &["-h"]),
    ("show", none, &["show", "coop1"]),
    ("show-json", none, &["show", "coop1", "--json"]),
    ("list", bad_specs, &["list"]),
    ("list-json", bad_specs, &["list", "--json"]),
    ("render", none, &["render", "coop1"]),
    ("render-json", none, &["render", "coop1", "--json"]),
    ("validate-all-bad", bad_specs, &["validate"]),
    ("validate-all-verbose", none, &["-v", "validate"]),
    ("blueprint-show", none, &["blueprint", "show", "coop"]),
    (
        "blueprint-show-json",
        none,
        &["blueprint", "show", "coop", "--json"],
    ),
    ("blueprint-list", bad_specs, &["blueprint", "list"]),
    (
        "blueprint-list-json",
        bad_specs,
        &["blueprint", "list", "--json"],
    ),
    (
        "error-create-bad-name",
        none,
        &["create", "Coop_1", "--port", "27016"],
    ),
    (
        "error-create-duplicate-port",
        none,
        &["create", "coop2", "--port", "27015"],
    ),
    (
        "error-create-port-out-of-range",
        none,
        &["create", "coop2", "--port", "26000"],
    ),
    (
        "error-create-missing-blueprint",
        none,
        &["create", "coop2", "--port", "27016", "--blueprint", "pvp"],
    ),
    (
        "error-create-exists",
        none,
        &["create", "vs1", "--port", "27016"],
    ),
    ("error-create-missing-port", none, &["create", "coop2"]),
    (
        "error-set-unknown-key",
        none,
        &["set", "coop1", "maps=c1m1_hotel"],
    ),
    ("error-set-empty-value", none, &["set", "coop1", "map="]),
    (
        "error-set-unset-missing",
        none,
        &["set", "vs1", "--unset", "map"],
    ),
    (
        "error-set-bad-duration",
        none,
        &["set", "vs1", "health.ready_timeout=soon"],
    ),
    ("error-show-missing", none, &["show", "coop9"]),
    (
        "error-blueprint-breaks-instance",
        none,
        &["blueprint", "set", "coop", "resources.memory_high=3G"],
    ),
    (
        "error-validate-missing-file",
        none,
        &["validate", "nowhere/x.toml"],
    ),
    (
        "set",
        none,
        &["set", "coop1", "map=c1m2_streets", "resources.nice=-5"],
    ),
];

fn transcript(args: &[&str], run: &Run) -> String {
    format!(
        "$ left4mectl {}\n? {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        run.status,
        run.stdout,
        run.stderr
    )
}

/// Compares the transcript of `args` (run after `setup`) with `file`, or writes it there when
/// `overwrite`; returns the difference, if any.
fn check(file: &Path, setup: fn(&Fixture), args: &[&str], overwrite: bool) -> Option<String> {
    let fx = Fixture::standard();
    setup(&fx);
    // --no-reload is given by the fixture; leave it out of the transcript.
    let actual = transcript(args, &fx.run(args));
    if overwrite {
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, &actual).unwrap();
        return None;
    }
    match fs::read_to_string(file) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => Some(format!(
            "--- {}: expected\n{expected}\n--- actual\n{actual}",
            file.display()
        )),
        Err(err) => Some(format!(
            "--- {}: cannot read it ({err}); the transcript is\n{actual}",
            file.display()
        )),
    }
}

/// Fails with every difference, saying how to accept an intended change.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ; if the change is intended, run \
         `SNAPSHOTS=overwrite cargo test -p left4mectl --test snapshots` and review the diff\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Refuses files in `dir` that no case wrote.
fn assert_no_stale(dir: &Path, known: &[String]) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            known.contains(&name),
            "stale snapshot {}: remove it",
            entry.path().display()
        );
    }
}

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn overwrite() -> bool {
    std::env::var("SNAPSHOTS").as_deref() == Ok("overwrite")
}

#[test]
fn snapshots() {
    let dir = snapshot_dir();
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|(name, setup, args)| {
            check(&dir.join(format!("{name}.txt")), *setup, args, overwrite())
        })
        .collect();
    assert_no_failures(&failures);
    if !overwrite() {
        let known: Vec<String> = CASES.iter().map(|(n, _, _)| format!("{n}.txt")).collect();
        assert_no_stale(&dir, &known);
    }
}

/// The words of every command below `command` (itself first), as typed after `left4mectl`.
fn command_paths(command: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(path.clone());
    for sub in command.get_subcommands() {
        let mut below = path.clone();
        below.push(sub.get_name().to_owned());
        command_paths(sub, below, out);
    }
}

#[test]
fn help_of_every_command() {
    let cli = Cli::command();
    let mut paths = Vec::new();
    command_paths(&cli, Vec::new(), &mut paths);
    let leaves = paths
        .iter()
        .filter(|path| {
            let mut command = &cli;
            for word in path.iter() {
                command = command.find_subcommand(word).unwrap();
            }
            !command.has_subcommands()
        })
        .count();
    // 14 instance and lifecycle verbs, 5 blueprint verbs, 7 overlay verbs; a new verb adds one.
    assert!(
        leaves >= 26,
        "only {leaves} leaf commands found in {paths:?}"
    );
    let dir = snapshot_dir().join("help");
    let mut known = Vec::new();
    let mut failures = Vec::new();
    for path in &paths {
        let name = if path.is_empty() {
            "left4mectl".to_owned()
        } else {
            path.join("-")
        };
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        failures.extend(check(
            &dir.join(format!("{name}.txt")),
            none,
            &args,
            overwrite(),
        ));
        known.push(format!("{name}.txt"));
    }
    assert_no_failures(&failures);
    if !overwrite() {
        assert_no_stale(&dir, &known);
    }
}
