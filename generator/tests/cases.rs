//! Fixture cases in the style of zram-generator: each `tests/NN-name/` holds a config dir
//! `config/` (absent for "missing config dir"), the exact expected output tree `run.expected/`,
//! the expected log lines `log.expected` and exit status `status.expected`; optional `cpus`
//! sets the host's CPU count. `@CONFIG@` in expected files stands for the case's config path.
//! A symbolic link compares as `-> TARGET` (and is one in `run.expected/`).
//! Adding a case is adding a folder. `OVERWRITE=1 cargo test` rewrites the expectations.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use left4me_generator::{Logger, Outcome, generate};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// Every file under `root` by relative path, with its contents.
fn read_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, format!("-> {}", target.display()));
            } else if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write_tree(root: &Path, tree: &BTreeMap<String, String>) {
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).unwrap();
    fs::write(root.join(".gitkeep"), "").unwrap();
    for (rel, text) in tree {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match text.strip_prefix("-> ") {
            Some(target) => std::os::unix::fs::symlink(target, path).unwrap(),
            None => fs::write(path, text).unwrap(),
        }
    }
}

struct Run {
    tree: BTreeMap<String, String>,
    log: String,
    status: u8,
}

fn run_case(case: &Path) -> Run {
    let out = std::env::temp_dir().join(format!(
        "left4me-generator-{}-{}",
        case.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let cpus = fs::read_to_string(case.join("cpus")).map_or(1, |c| c.trim().parse().unwrap());
    let config = case.join("config");
    let mut log = Logger::Memory(Vec::new());
    let outcome = generate(&config, None, &out, cpus, &mut log);
    let Logger::Memory(lines) = log else {
        unreachable!()
    };
    let config_text = config.to_string_lossy();
    let placeholder = |text: &str| {
        let text = text.replace(&*config_text, "@CONFIG@");
        // A config path with a space is quoted in unit settings (spec's `unit_word`, tested
        // there); the expected files hold the plain form, so a checkout anywhere compares equal.
        if config_text.contains(' ') {
            unquote_config_words(&text)
        } else {
            text
        }
    };
    let tree = read_tree(&out)
        .into_iter()
        .map(|(rel, text)| (rel, placeholder(&text)))
        .collect();
    fs::remove_dir_all(&out).unwrap();
    Run {
        tree,
        log: lines.iter().map(|l| placeholder(l) + "\n").collect(),
        status: match outcome {
            Outcome::AllWritten => 0,
            Outcome::SomeRefused | Outcome::Failed => 1,
        },
    }
}

/// `"@CONFIG@…"` and `"-@CONFIG@…"` words without their quotes.
fn unquote_config_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let (before, quoted) = rest.split_at(start);
        out.push_str(before);
        let inner = &quoted[1..];
        match inner.find('"') {
            Some(end) if inner[..end].trim_start_matches('-').starts_with("@CONFIG@") => {
                out.push_str(&inner[..end]);
                rest = &inner[end + 1..];
            }
            _ => {
                out.push('"');
                rest = inner;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn generator_cases() {
    let overwrite = std::env::var_os("OVERWRITE").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected at least 10 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let run = run_case(case);
        if overwrite {
            write_tree(&case.join("run.expected"), &run.tree);
            fs::write(case.join("log.expected"), &run.log).unwrap();
            fs::write(case.join("status.expected"), format!("{}\n", run.status)).unwrap();
            continue;
        }
        let mut expected_tree = read_tree(&case.join("run.expected"));
        expected_tree.remove(".gitkeep");
        let expected_log = fs::read_to_string(case.join("log.expected")).unwrap_or_default();
        let expected_status: u8 = fs::read_to_string(case.join("status.expected"))
            .unwrap_or_else(|_| panic!("{name}: status.expected is missing"))
            .trim()
            .parse()
            .unwrap();
        if run.tree != expected_tree {
            failures.push(format!(
                "{name}: output tree differs\n--- expected\n{expected_tree:#?}\n+++ actual\n{:#?}",
                run.tree
            ));
        }
        if run.log != expected_log {
            failures.push(format!(
                "{name}: log differs\n--- expected\n{expected_log}+++ actual\n{}",
                run.log
            ));
        }
        if run.status != expected_status {
            failures.push(format!(
                "{name}: status {} != expected {expected_status}",
                run.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
