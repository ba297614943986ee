//! `edit` and `blueprint edit`, driven by scripted editors. The "Edit again?" question is only
//! asked on a terminal, so those tests give left4mectl a pseudo-terminal as stdin.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::process::Stdio;

use common::{Fixture, INSTANCE_VS1, Run};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

/// An editor that replaces the port line of the file it is given with `port = $PORT`.
const SET_PORT: &str = "sed -i \"s/^port = .*/port = $PORT/\" \"$1\"\n";

/// An editor whose first run writes an invalid port and every later run a valid one.
fn invalid_then_fixed(fx: &Fixture) -> std::path::PathBuf {
    let count = fx.path("editor-runs");
    fx.script(
        "editor",
        &format!(
            "echo run >> {count}\n\
             if [ \"$(wc -l < {count})\" -eq 1 ]; then port=80; else port=27021; fi\n\
             sed -i \"s/^port = .*/port = $port/\" \"$1\"\n",
            count = count.display()
        ),
    )
}

fn editor_runs(fx: &Fixture) -> usize {
    fs::read_to_string(fx.path("editor-runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Hidden drafts left next to the specs.
fn drafts(fx: &Fixture) -> Vec<String> {
    fs::read_dir(fx.path("etc/instances"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_valid_edit_is_installed() {
    let fx = Fixture::standard();
    let editor = fx.script("editor", SET_PORT);
    let output = fx
        .command(&["edit", "vs1"])
        .env("EDITOR", &editor)
        .env("PORT", "27021")
        .output()
        .unwrap();
    let run = Run::from(output, &fx);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "updated instance vs1 ([ROOT]/etc/instances/vs1.toml)\n\
         not reloading systemd (--no-reload); run `systemctl daemon-reload` to apply the change\n"
    );
    assert_eq!(
        fx.read("etc/instances/vs1.toml"),
        "port = 27021\nmaxplayers = 8\n"
    );
    assert!(drafts(&fx).is_empty(), "{:?}", drafts(&fx));
}

#[test]
fn the_editor_works_on_a_hidden_copy() {
    let fx = Fixture::standard();
    let seen = fx.path("seen");
    let editor = fx.script(
        "editor",
        &format!("basename \"$1\" > {0}; cat \"$1\" >> {0}\n", seen.display()),
    );
    let run = fx.run_with_editor(&editor, &["edit", "vs1"]);
    run.assert_ok();
    assert_eq!(run.stdout, "no changes to instance vs1\n");
    let seen = fs::read_to_string(seen).unwrap();
    let (name, text) = seen.split_once('\n').unwrap();
    assert!(name.starts_with(".vs1.toml."), "{name}");
    assert_eq!(text, INSTANCE_VS1);
    assert!(drafts(&fx).is_empty());
}

#[test]
fn visual_wins_over_editor_and_editor_may_have_arguments() {
    let fx = Fixture::standard();
    let editor = fx.script(
        "editor",
        "shift\nsed -i 's/^maxplayers = .*/maxplayers = 2/' \"$1\"\n",
    );
    let output = fx
        .command(&["edit", "vs1"])
        .env("VISUAL", format!("{} --some-flag", editor.display()))
        .env("EDITOR", "false")
        .output()
        .unwrap();
    Run::from(output, &fx).assert_ok();
    assert_eq!(
        fx.read("etc/instances/vs1.toml"),
        "port = 27020\nmaxplayers = 2\n"
    );
}

#[test]
fn an_invalid_edit_without_a_terminal_is_refused() {
    let fx = Fixture::standard();
    let editor = fx.script("editor", SET_PORT);
    let before = fx.tree();
    let output = fx
        .command(&["edit", "vs1"])
        .env("EDITOR", &editor)
        .env("PORT", "27015")
        .output()
        .unwrap();
    let run = Run::from(output, &fx);
    run.assert_refused(
        "error: [ROOT]/etc/instances/vs1.toml: key 'port': 27015 is already used by instance 'coop1'",
    );
    assert_eq!(run.stdout, "");
    assert_eq!(fx.tree(), before, "nothing installed, no draft left");
}

#[test]
fn a_failing_editor_changes_nothing() {
    let fx = Fixture::standard();
    let before = fx.tree();
    let editor = fx.script("editor", "echo 'port = 1' > \"$1\"\nexit 3\n");
    let run = fx.run_with_editor(&editor, &["edit", "vs1"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(run.stderr.contains("failed (exit status: 3)"), "{run:#?}");
    assert_eq!(fx.tree(), before);
}

#[test]
fn editing_a_missing_instance_is_refused() {
    let fx = Fixture::standard();
    let editor = fx.script("editor", "exit 0\n");
    let run = fx.run_with_editor(&editor, &["edit", "nope"]);
    run.assert_refused("no instance 'nope'");
}

#[test]
fn a_change_made_meanwhile_is_not_overwritten() {
    let fx = Fixture::standard();
    let spec = fx.path("etc/instances/vs1.toml");
    let editor = fx.script(
        "editor",
        &format!(
            "sed -i 's/^maxplayers = .*/maxplayers = 2/' \"$1\"\necho 'port = 27022' > {}\n",
            spec.display()
        ),
    );
    let run = fx.run_with_editor(&editor, &["edit", "vs1"]);
    run.assert_refused("vs1.toml was changed by someone else while you edited it");
    assert_eq!(fx.read("etc/instances/vs1.toml"), "port = 27022\n");
    let kept = drafts(&fx);
    assert_eq!(kept.len(), 1, "the edit is kept: {kept:?}");
    assert!(run.stderr.contains(&kept[0]), "{run:#?}");
    let draft = fs::read_to_string(fx.path("etc/instances").join(&kept[0])).unwrap();
    assert_eq!(draft, "port = 27020\nmaxplayers = 2\n");
}

#[test]
fn blueprint_edit_refuses_a_change_that_breaks_an_instance() {
    let fx = Fixture::standard();
    let editor = fx.script(
        "editor",
        "sed -i 's/^memory_max = .*/memory_max = \"2G\"\\nmemory_high = \"3G\"/' \"$1\"\n",
    );
    let before = fx.tree();
    let run = fx.run_with_editor(&editor, &["blueprint", "edit", "coop"]);
    run.assert_refused(
        "[ROOT]/etc/blueprints/coop.toml: this change would make 1 instance invalid: instance 'coop1' (key 'resources.memory_high'",
    );
    assert_eq!(fx.tree(), before);
    let editor = fx.script(
        "editor",
        "sed -i 's/^maxplayers = .*/maxplayers = 6/' \"$1\"\n",
    );
    fx.run_with_editor(&editor, &["blueprint", "edit", "coop"])
        .assert_ok();
    assert!(
        fx.read("etc/blueprints/coop.toml")
            .contains("maxplayers = 6\n")
    );
}

/// Runs `edit vs1` with a pseudo-terminal as stdin, typing `answers` into it.
fn edit_on_a_terminal(fx: &Fixture, editor: &std::path::Path, answers: &str) -> Run {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave_path = ptsname(&master, Vec::new()).unwrap();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_path.to_str().unwrap())
        .unwrap();
    let mut master = File::from(master);
    // The terminal buffers the typed line until left4mectl reads it.
    master.write_all(answers.as_bytes()).unwrap();
    let output = fx
        .command(&["edit", "vs1"])
        .env("EDITOR", editor)
        .stdin(Stdio::from(slave))
        .output()
        .unwrap();
    // Drain the echo so nothing blocks; the child has exited, so the read ends with EIO.
    let mut echo = Vec::new();
    let _ = master.read_to_end(&mut echo);
    Run::from(output, fx)
}

#[test]
fn an_invalid_edit_on_a_terminal_can_be_fixed() {
    let fx = Fixture::standard();
    let editor = invalid_then_fixed(&fx);
    let run = edit_on_a_terminal(&fx, &editor, "y\n");
    run.assert_ok();
    assert_eq!(
        run.stderr,
        "error: [ROOT]/etc/instances/vs1.toml: key 'port': 80 is outside the host's port_range 27000-27999 (see host.toml)\n\
         Edit again? [Y/n] "
    );
    assert_eq!(editor_runs(&fx), 2);
    assert_eq!(
        fx.read("etc/instances/vs1.toml"),
        "port = 27021\nmaxplayers = 8\n"
    );
    assert!(drafts(&fx).is_empty());
}

#[test]
fn an_invalid_edit_on_a_terminal_can_be_abandoned() {
    let fx = Fixture::standard();
    let editor = invalid_then_fixed(&fx);
    let before = fx.tree();
    let run = edit_on_a_terminal(&fx, &editor, "n\n");
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(
        run.stderr.ends_with(
            "Edit again? [Y/n] error: edit abandoned; [ROOT]/etc/instances/vs1.toml is unchanged\n"
        ),
        "{run:#?}"
    );
    assert_eq!(editor_runs(&fx), 1);
    assert_eq!(fx.tree(), before);
}
