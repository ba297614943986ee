//! Spec files that are not small regular files: every verb that reads one refuses it with one
//! error line naming the file, never hangs on a FIFO or reads a huge file (issue 14, defect 4).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Fixture, Run};

/// Runs `args` against `fx`, killing it if it takes longer than a few seconds (a hang on a
/// FIFO).
fn run_bounded(fx: &Fixture, args: &[&str]) -> Run {
    let mut child = fx
        .command(args)
        .env("EDITOR", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`left4mectl {}` hangs on a FIFO spec", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap(), fx)
}

fn fifo_fixture() -> Fixture {
    let fx = Fixture::standard();
    let file = fx.path("etc/instances/coop1.toml");
    std::fs::remove_file(&file).unwrap();
    let status = Command::new("mkfifo").arg(&file).status().unwrap();
    assert!(status.success());
    fx
}

#[test]
fn verbs_refuse_a_fifo_spec_without_hanging() {
    let fx = fifo_fixture();
    for args in [
        &["show", "coop1"][..],
        &["edit", "coop1"],
        &["set", "coop1", "map=c1m1_hotel"],
        &["validate"],
        &["validate", "[ROOT]/etc/instances/coop1.toml"],
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("[ROOT]", &fx.root.to_string_lossy()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_bounded(&fx, &args);
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(
            said.contains("[ROOT]/etc/instances/coop1.toml") && said.contains("FIFO"),
            "`left4mectl {}` does not name the FIFO: {run:#?}",
            args.join(" ")
        );
    }
}

#[test]
fn set_refuses_a_huge_spec() {
    let fx = Fixture::standard();
    let big = format!("port = 27015\n{}", "#".repeat(2 << 20));
    fx.write("etc/instances/big.toml", &big);
    let run = run_bounded(&fx, &["set", "big", "map=c1m1_hotel"]);
    assert_ne!(run.status, 0, "{run:#?}");
    assert!(
        run.stderr.contains("[ROOT]/etc/instances/big.toml") && run.stderr.contains("bytes"),
        "{run:#?}"
    );
}

#[test]
fn validate_shows_an_odd_file_name_on_one_line() {
    let fx = Fixture::standard();
    let odd = fx.path("etc/instances/a\nb\u{1b}[2J.toml");
    let run = fx.run(&["validate", odd.to_str().unwrap()]);
    run.assert_refused("no such file");
    assert!(!run.stderr.contains('\u{1b}'), "{run:#?}");
}
