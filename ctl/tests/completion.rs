//! Shell completion as a user meets it: bash sources the script `left4mectl` prints for
//! `LEFT4MECTL_COMPLETE=bash` (the same text `make install` installs), then its completion
//! function is called the way bash calls it for `left4mectl start <TAB>`, with the built
//! `left4mectl` first on `PATH` and a fixture config dir in `LEFT4ME_CONFIG_DIR`. fish
//! completes with its own `complete -C`; zsh's function runs with `_describe` and `compdef`
//! (parts of its completion system, which needs a terminal) replaced by ones that print.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Fixture};

/// Runs bash: source the completion script, complete `words` (the last one being typed), print
/// one candidate per line.
fn complete(fx: &Fixture, words: &[&str]) -> Vec<String> {
    let script_file = script(fx, "bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let body = format!(
        r#"set -u
source "$1"
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
complete -p left4mectl >/dev/null
_clap_complete_left4mectl left4mectl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" ")
    );
    let script_file = script_file.display().to_string();
    run_shell(fx, "bash", &["-c", &body, "bash", &script_file])
}

/// The script `left4mectl` prints for `shell`, written to the fixture.
fn script(fx: &Fixture, shell: &str) -> std::path::PathBuf {
    let out = Command::new(BIN)
        .env("LEFT4MECTL_COMPLETE", shell)
        .output()
        .expect("run left4mectl for its completion script");
    assert!(out.status.success(), "{out:?}");
    let path = fx.path(&format!("left4mectl.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Runs `shell ARGS…` with the built left4mectl on `PATH` and the fixture's config dir;
/// returns stdout's lines, without zsh's descriptions (`value:description`).
fn run_shell(fx: &Fixture, shell: &str, args: &[&str]) -> Vec<String> {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let out = Command::new(shell)
        .args(args)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("HOME", fx.path(""))
        .env("LEFT4ME_CONFIG_DIR", fx.config_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shell} (apt install zsh fish; .ci/run does): {e}"));
    assert!(
        out.status.success(),
        "{shell} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split(['\t', ':']).next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn fish_and_zsh_offer_the_instances_too() {
    let fx = fixture();
    let fish = script(&fx, "fish");
    let got = run_shell(
        &fx,
        "fish",
        &[
            "--no-config",
            "-c",
            &format!("source {}; complete -C 'left4mectl start '", fish.display()),
        ],
    );
    assert_eq!(names(&got), ["coop1", "coop2", "vs1"], "fish: {got:?}");

    let zsh = script(&fx, "zsh");
    let body = format!(
        "compdef() {{ : }}\n\
         _describe() {{ print -l -- \"${{(@P)${{@[-1]}}}}\" }}\n\
         source {}\n\
         words=(left4mectl start '')\n\
         CURRENT=3\n\
         _clap_dynamic_completer_left4mectl\n",
        zsh.display()
    );
    let got = run_shell(&fx, "zsh", &["-f", "-c", &body]);
    assert_eq!(names(&got), ["coop1", "coop2", "vs1"], "zsh: {got:?}");
}

fn names(candidates: &[String]) -> Vec<&str> {
    candidates
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with('-'))
        .collect()
}

fn fixture() -> Fixture {
    let fx = Fixture::standard();
    fx.write("etc/instances/coop2.toml", "port = 27016\n");
    // Not a valid name: never offered.
    fx.write("etc/instances/Bad Name.toml", "port = 27017\n");
    fx.write("etc/overlays/maps.toml", "kind = 'manual'\n");
    fx
}

#[test]
fn start_tab_offers_the_instances_of_the_config_dir() {
    let fx = fixture();
    let got = complete(&fx, &["left4mectl", "start", ""]);
    assert_eq!(names(&got), ["coop1", "coop2", "vs1"], "{got:?}");
    let got = complete(&fx, &["left4mectl", "start", "co"]);
    assert_eq!(names(&got), ["coop1", "coop2"], "{got:?}");
}

#[test]
fn blueprint_and_overlay_verbs_offer_their_own_names() {
    let fx = fixture();
    let got = complete(&fx, &["left4mectl", "blueprint", "show", ""]);
    assert_eq!(names(&got), ["coop"], "{got:?}");
    let got = complete(&fx, &["left4mectl", "overlay", "build", ""]);
    assert_eq!(names(&got), ["maps"], "{got:?}");
    let got = complete(&fx, &["left4mectl", "create", "new1", "--blueprint", ""]);
    assert_eq!(names(&got), ["coop"], "{got:?}");
    let got = complete(
        &fx,
        &["left4mectl", "create", "new1", "--overlay", "overlays/m"],
    );
    assert_eq!(names(&got), ["overlays/maps"], "{got:?}");
}

#[test]
fn verbs_complete_and_a_new_name_is_not_guessed() {
    let fx = fixture();
    let got = complete(&fx, &["left4mectl", "sta"]);
    assert_eq!(names(&got), ["start", "status"], "{got:?}");
    let got = complete(&fx, &["left4mectl", "create", ""]);
    assert!(
        names(&got).is_empty(),
        "create offered existing names: {got:?}"
    );
}
