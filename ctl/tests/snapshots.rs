//! Help, output and error snapshots, in the style of cargo's testsuite: each case runs the
//! binary against the standard fixture and compares the whole transcript (command, exit status,
//! stdout, stderr) with `tests/snapshots/NAME.txt` exactly. A changed message shows in review.
//!
//! Regenerate after an intended change with:
//!     SNAPSHOTS=overwrite cargo test -p left4mectl --test snapshots

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Fixture, Run};

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
    ("help", none, &["--help"]),
    ("help-short", none, &["-h"]),
    ("help-create", none, &["create", "--help"]),
    ("help-edit", none, &["edit", "--help"]),
    ("help-set", none, &["set", "--help"]),
    ("help-show", none, &["show", "--help"]),
    ("help-list", none, &["list", "--help"]),
    ("help-validate", none, &["validate", "--help"]),
    ("help-render", none, &["render", "--help"]),
    ("help-blueprint", none, &["blueprint", "--help"]),
    (
        "help-blueprint-create",
        none,
        &["blueprint", "create", "--help"],
    ),
    (
        "help-blueprint-edit",
        none,
        &["blueprint", "edit", "--help"],
    ),
    ("help-blueprint-set", none, &["blueprint", "set", "--help"]),
    (
        "help-blueprint-show",
        none,
        &["blueprint", "show", "--help"],
    ),
    (
        "help-blueprint-list",
        none,
        &["blueprint", "list", "--help"],
    ),
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

#[test]
fn snapshots() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let overwrite = std::env::var("SNAPSHOTS").as_deref() == Ok("overwrite");
    let mut failures = Vec::new();
    for (name, setup, args) in CASES {
        let fx = Fixture::standard();
        setup(&fx);
        // --no-reload is given by the fixture; leave it out of the transcript.
        let actual = transcript(args, &fx.run(args));
        let file = dir.join(format!("{name}.txt"));
        if overwrite {
            fs::write(&file, &actual).unwrap();
            continue;
        }
        match fs::read_to_string(&file) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "--- {name}: expected ({})\n{expected}\n--- {name}: actual\n{actual}",
                file.display()
            )),
            Err(err) => failures.push(format!("--- {name}: cannot read {}: {err}", file.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ; if the change is intended, run \
         `SNAPSHOTS=overwrite cargo test -p left4mectl --test snapshots` and review the diff\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    if !overwrite {
        let known: Vec<String> = CASES.iter().map(|(n, _, _)| format!("{n}.txt")).collect();
        for entry in fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(known.contains(&name), "stale snapshot {name}: remove it");
        }
    }
}
