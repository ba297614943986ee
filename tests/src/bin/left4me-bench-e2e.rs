//! The end-to-end benchmark (issue "End to end in a booted systemd"), measured inside a
//! throwaway booted systemd with left4me installed:
//!
//! - `left4mectl start` until active, minus the stand-in's own time from exec to its first
//!   answered query: the toolkit's start overhead;
//! - from the game's exit (its "quit on SIGINT" journal line) until cleanup has unmounted the
//!   overlay (the supervisor's "unmounted" line): the stop overhead;
//! - `systemctl daemon-reload` with 100 instance specs against none;
//! - `left4mectl list` with 100 instances.
//!
//! Timings inside the system come from a small Python timer run there (the same for every
//! figure) and from journal timestamps. Run it with `bench/e2e`.

use std::process::ExitCode;

use left4me_tests::{BootedSystem, release_binary};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const RUNS: usize = 11;

/// Runs argv `RUNS` times inside the system; prints nothing, returns the median in ms.
const TIMER: &str = r#"
import statistics, subprocess, sys, time
runs = int(sys.argv[1]); argv = sys.argv[2:]; samples = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(samples):.3f}")
"#;

fn median_ms(sys: &BootedSystem, runs: usize, argv: &[&str]) -> Result<f64> {
    let runs = runs.to_string();
    let mut full = vec!["/usr/bin/python3", "-c", TIMER, runs.as_str()];
    full.extend_from_slice(argv);
    Ok(sys.run_stdout(full)?.trim().parse()?)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Journal lines of the unit since `cursor` as (microsecond timestamp, message).
fn journal_since(sys: &BootedSystem, unit: &str, cursor: &str) -> Result<Vec<(u64, String)>> {
    let out = sys.run_stdout([
        "journalctl",
        "-u",
        unit,
        "--after-cursor",
        cursor,
        "-o",
        "json",
        "--output-fields=MESSAGE",
    ])?;
    let mut lines = Vec::new();
    for line in out.lines() {
        let field = |name: &str| -> Option<String> {
            let start = line.find(&format!("\"{name}\":\""))? + name.len() + 4;
            let end = start + line[start..].find('"')?;
            Some(line[start..end].to_owned())
        };
        if let (Some(at), Some(message)) = (field("__REALTIME_TIMESTAMP"), field("MESSAGE")) {
            lines.push((at.parse()?, message));
        }
    }
    Ok(lines)
}

fn cursor(sys: &BootedSystem) -> Result<String> {
    let out = sys.run_stdout(["journalctl", "-n", "0", "--show-cursor", "-q"])?;
    Ok(out.trim().trim_start_matches("-- cursor: ").to_owned())
}

fn at(lines: &[(u64, String)], needle: &str) -> Result<u64> {
    lines
        .iter()
        .find(|(_, m)| m.contains(needle))
        .map(|(t, _)| *t)
        .ok_or_else(|| format!("no journal line containing {needle:?}").into())
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<()> {
    let sys = BootedSystem::builder()
        .name("bench-e2e")
        .install_project(true)
        .boot()?;
    sys.install_game_tree(&release_binary("srcds-standin"))?;
    println!("inside a booted systemd 252 (2 shared cores; medians of {RUNS} runs)");
    let ctl = |args: &[&str]| -> Result<String> {
        let mut argv = vec!["left4mectl", "--no-reload"];
        argv.extend_from_slice(args);
        Ok(sys.run_stdout(argv)?)
    };

    // Start and stop overheads on one instance.
    ctl(&["create", "bench", "--port", "27015"])?;
    sys.run_ok(["systemctl", "daemon-reload"])?;
    let (mut start_overhead, mut start_total, mut stop_after_exit) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let before = cursor(&sys)?;
        let total = median_ms(&sys, 1, &["left4mectl", "start", "bench"])?;
        let lines = journal_since(&sys, "left4me-server@bench.service", &before)?;
        let game = (at(&lines, "first A2S_INFO answered")? - at(&lines, "srcds-standin pid=")?)
            as f64
            / 1000.0;
        start_total.push(total);
        start_overhead.push(total - game);

        let before = cursor(&sys)?;
        sys.run_ok(["left4mectl", "stop", "bench"])?;
        let lines = journal_since(&sys, "left4me-server@bench.service", &before)?;
        let quit = at(&lines, "quit on SIGINT")?;
        let unmounted = at(&lines, "unmounted /var/lib/left4me/runtime/bench/merged")?;
        stop_after_exit.push((unmounted.saturating_sub(quit)) as f64 / 1000.0);
    }
    println!(
        "  left4mectl start → active: {:.1} ms, of which the toolkit's overhead (minus the game's own time to answer): {:.1} ms   (target ≤ 50 ms)",
        median(start_total),
        median(start_overhead)
    );
    println!(
        "  stop: game exit → overlay unmounted: {:.1} ms   (target ≤ 100 ms; the seed needed ~500 ms)",
        median(stop_after_exit)
    );

    // 100 instance specs.
    for n in 0..100 {
        let name = format!("i{n:03}");
        let port = (27100 + n).to_string();
        ctl(&["create", &name, "--port", &port])?;
    }
    // Interleaved, so drift on a busy machine hits both sides alike: the specs moved away
    // (no instances) and back.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        sys.run_ok([
            "mv",
            "/etc/left4me/instances",
            "/etc/left4me/instances.away",
        ])?;
        without.push(median_ms(&sys, 1, &["systemctl", "daemon-reload"])?);
        sys.run_ok([
            "mv",
            "/etc/left4me/instances.away",
            "/etc/left4me/instances",
        ])?;
        with.push(median_ms(&sys, 1, &["systemctl", "daemon-reload"])?);
    }
    let (without, with) = (median(without), median(with));
    println!(
        "  systemctl daemon-reload: {without:.1} ms with no specs, {with:.1} ms with 101: {:+.1} ms   (target ≤ 20 ms more)",
        with - without
    );
    let list = median_ms(&sys, RUNS, &["left4mectl", "list"])?;
    println!("  left4mectl list with 101 instances: {list:.1} ms   (target ≤ 100 ms)");
    let list_json = median_ms(&sys, RUNS, &["left4mectl", "list", "--json"])?;
    println!("  left4mectl list --json with 101 instances: {list_json:.1} ms");
    sys.shutdown()?;
    Ok(())
}
