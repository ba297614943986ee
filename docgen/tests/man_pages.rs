//! Every man page renders without a warning at 80 columns, as Debian's `man` shows it
//! (`MANWIDTH=80 man --warnings -l PAGE`): the pages generated from left4mectl's clap tree
//! (one per command, none missing) and the hand-written ones in `man/`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Renders `page`; returns the warnings (empty when clean). Panics when `man` cannot run.
fn warnings(page: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("LANG", "C.UTF-8")
        .output()
        .expect("run man (apt install man-db; .ci/run installs it)");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!("man exited with {}", out.status));
    }
    if out.stdout.is_empty() {
        text.push_str("man rendered nothing");
    }
    text
}

fn pages_in(dir: &Path) -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "1" | "5" | "7" | "8"))
        })
        .collect();
    pages.sort();
    pages
}

fn assert_clean(pages: &[PathBuf]) {
    let bad: Vec<String> = pages
        .iter()
        .filter_map(|page| {
            let w = warnings(page);
            (!w.is_empty()).then(|| format!("{}:\n{w}", page.display()))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "man pages with warnings:\n{}",
        bad.join("\n")
    );
}

#[test]
fn generated_pages_cover_every_command_and_render_cleanly() {
    let out = std::env::temp_dir().join(format!("left4me-docgen-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_left4me-docgen"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let pages = pages_in(&out.join("man/man1"));
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "left4mectl.1",
        "left4mectl-start.1",
        "left4mectl-blueprint-create.1",
        "left4mectl-game-update.1",
        "left4mectl-overlay-build.1",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }
    assert_clean(&pages);
    for script in [
        "completions/bash/left4mectl",
        "completions/zsh/_left4mectl",
        "completions/fish/left4mectl.fish",
    ] {
        let text = std::fs::read_to_string(out.join(script)).unwrap();
        assert!(text.contains("LEFT4MECTL_COMPLETE"), "{script}: {text}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn hand_written_pages_render_cleanly() {
    let pages = pages_in(&workspace().join("man"));
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "left4me-generator.8",
            "left4me-sandbox.8",
            "left4me-supervisor.8",
            "left4me.7",
            "left4me.toml.5"
        ]
    );
    assert_clean(&pages);
}
