//! Benchmark of `left4mectl history` over 10,000 revisions (issue 12, target ≤ 50 ms): fills a
//! throwaway admin dir's spec history through [`History::record`] (50 instances × 200
//! revisions, the last of each matching its spec file, so the run's scan of the config dir finds
//! nothing new), then times the verb as an operator runs it — the whole process, output to a
//! pipe — for every revision, one instance's, `--json`, and `-n 1` (the cost of any run: start,
//! open, the scan of the config dir).
//!
//! Usage: left4me-bench-history PATH/TO/left4mectl [RUNS]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use left4me_history::{Change, History, Kind};

const INSTANCES: usize = 50;
const REVISIONS_EACH: usize = 200;
const TARGET: Duration = Duration::from_millis(50);

fn spec_text(instance: usize, version: usize) -> String {
    format!(
        "# left4me instance 'srv{instance}', created by left4mectl.\n\
         blueprint = \"coop\"\nport = {}\nmap = \"c{}m1_hotel\"\nmaxplayers = 8\n\
         config = 'hostname \"Server {instance}, edit {version}\"'\n",
        27015 + instance,
        1 + version % 13
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ctl = PathBuf::from(args.next().unwrap_or_else(|| {
        eprintln!("usage: left4me-bench-history PATH/TO/left4mectl [RUNS]");
        std::process::exit(2)
    }));
    let runs: usize = args
        .next()
        .map_or(20, |r| r.parse().expect("RUNS is a number"));
    let root = std::env::temp_dir().join(format!("left4me-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (etc, admin) = (root.join("etc"), root.join("admin"));
    std::fs::create_dir_all(etc.join("instances")).expect("config dir");
    std::fs::create_dir_all(root.join("state")).expect("state dir");

    let started = Instant::now();
    let history = History::open(&admin).expect("open the history");
    for version in 0..REVISIONS_EACH {
        for instance in 0..INSTANCES {
            let name = format!("srv{instance}");
            let file = etc.join("instances").join(format!("{name}.toml"));
            let old = (version > 0).then(|| spec_text(instance, version - 1));
            let new = spec_text(instance, version);
            history
                .record(&Change {
                    kind: Kind::Instance,
                    name: &name,
                    file: &file,
                    old: old.as_deref(),
                    new: Some(&new),
                    verb: "set",
                    message: (version % 10 == 0).then_some("routine change"),
                })
                .expect("record a revision");
            if version + 1 == REVISIONS_EACH {
                std::fs::write(&file, &new).expect("write the spec");
            }
        }
    }
    drop(history);
    let total = INSTANCES * REVISIONS_EACH;
    println!(
        "filled {total} revisions ({INSTANCES} instances x {REVISIONS_EACH}) in {:.1?}",
        started.elapsed()
    );

    let mut worst = Duration::ZERO;
    for (label, args) in [
        ("history (all 10,000)", &["history"][..]),
        ("history srv7 (200)", &["history", "srv7"][..]),
        ("history --json (all)", &["history", "--json"][..]),
        ("history -n 1 (fixed)", &["history", "-n", "1"][..]),
    ] {
        let mut times: Vec<Duration> = (0..runs).map(|_| time(&ctl, &root, args)).collect();
        times.sort();
        let median = times[times.len() / 2];
        worst = worst.max(median);
        println!(
            "{label:<22} median {:>6.1} ms  min {:>6.1} ms  max {:>6.1} ms  ({runs} runs)",
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    let verdict = if worst <= TARGET { "met" } else { "MISSED" };
    println!("target {} ms: {verdict}", ms(TARGET));
    if worst > TARGET {
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One run of `left4mectl ARGS` against the bench dirs, its whole output read.
fn time(ctl: &Path, root: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new(ctl)
        .env("LEFT4ME_CONFIG_DIR", root.join("etc"))
        .env("LEFT4ME_STATE_DIR", root.join("state"))
        .env("LEFT4ME_ADMIN_DIR", root.join("admin"))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run left4mectl");
    let took = started.elapsed();
    assert!(out.status.success(), "left4mectl {args:?} failed");
    assert!(
        out.stdout.len() > 100,
        "left4mectl {args:?} printed nothing"
    );
    took
}
