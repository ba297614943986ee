//! The workshop overlay figures of issue 10 ("Benchmarks"), measured inside a throwaway booted
//! systemd with left4me installed and the stand-in Steam Web API and file server
//! (`left4me-workshop-standin`) on 192.0.2.11:80 in the system's own network namespace: the
//! real resolution, the real download sandbox (curl in a `left4me-workshop-*` unit), the real
//! cache and publish.
//!
//! - **(a) a 200-item collection**: the first `overlay build`, then unchanged `overlay refresh`
//!   runs. For each: the wall time of the command (as an operator sees it, through `nsenter`),
//!   the API round-trip time the build reports (`resolved … ms of API round trips`), the time
//!   beyond it (what the toolkit itself spends: cache checks, the tree, the comparison, the
//!   state file), and the bytes of files the stand-in served (an unchanged refresh: none).
//! - **(b) ten workshop overlays sharing the same 50 items** (4 MiB each; real campaigns are
//!   larger still): the disk the cache and the ten overlays take together (`du`, hard links
//!   counted once) against the items' own bytes, as a ratio; and what ten copies would take.
//!
//! The stand-in answers from memory on the same machine, so the API figures are far below a
//! real Steam's; the time beyond them is what the figures are for. No thresholds: it prints.
//! Run it with `bench/workshop.sh` (root).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use left4me_tests::workshop::{FakeWorkshop, api_time_ms, job_time_ms};
use left4me_tests::{BootedSystem, STATE_DIR};
use left4me_workshop_standin::fixture::{BIG_COLLECTION, Fixture, Item};
use left4me_workshop_standin::vpk;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Items in the collection of (a).
const COLLECTION_ITEMS: u64 = 200;
/// Unchanged refreshes measured after the first build.
const REFRESHES: usize = 5;
/// Overlays and the items they share, for (b).
const OVERLAYS: usize = 10;
const SHARED_ITEMS: u64 = 50;
const SHARED_ITEM_BYTES: usize = 4 << 20;
/// The first id of (b)'s items (apart from the collection's).
const SHARED_FIRST: u64 = 5_000_000_001;

/// `left4mectl ARGS…` inside; must succeed. Returns (stdout+stderr, wall time).
fn ctl(sys: &BootedSystem, args: &[&str]) -> Result<(String, Duration)> {
    let mut argv = vec!["left4mectl"];
    argv.extend_from_slice(args);
    let started = Instant::now();
    let out = sys.run_timeout(argv, Duration::from_secs(600))?;
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("`left4mectl {}` failed:\n{text}", args.join(" ")).into());
    }
    Ok((text, took))
}

/// One build or refresh of `big`: prints its figures, returns the bytes served during it.
fn measured(sys: &BootedSystem, ws: &FakeWorkshop<'_>, label: &str, args: &[&str]) -> Result<u64> {
    let bytes = ws.file_bytes();
    let (out, took) = ctl(sys, args)?;
    let served = ws.file_bytes() - bytes;
    let api =
        api_time_ms(&out).ok_or_else(|| format!("no `ms of API round trips` line in:\n{out}"))?;
    let job = job_time_ms(&out).ok_or_else(|| format!("no job time in:\n{out}"))?;
    let total = took.as_secs_f64() * 1000.0;
    println!(
        "  {label}: {total:.0} ms in all, {api:.1} ms of API round trips, {:.0} ms beyond them \
         ({job:.0} ms the content job: cache, download, tree, publish); {served} bytes of files \
         served",
        total - api
    );
    Ok(served)
}

/// (a): the 200-item collection.
fn collection(sys: &BootedSystem, ws: &FakeWorkshop<'_>) -> Result<()> {
    println!("(a) a workshop overlay of one {COLLECTION_ITEMS}-item collection:");
    ctl(
        sys,
        &[
            "overlay",
            "create",
            "big",
            "--collection",
            &BIG_COLLECTION.to_string(),
        ],
    )?;
    measured(sys, ws, "first build", &["overlay", "build", "big"])?;
    // For scale: a verb that only reads the definition and the state file.
    let (_, show) = ctl(sys, &["overlay", "show", "big"])?;
    // What every good build runs after the job (`systemctl enable --now` of the timer).
    let started = Instant::now();
    sys.run_ok([
        "systemctl",
        "enable",
        "--now",
        "left4me-overlay-refresh.timer",
    ])?;
    let enable = started.elapsed();
    println!(
        "  for scale, through nsenter: `left4mectl overlay show big` {:.0} ms, `systemctl \
         enable --now left4me-overlay-refresh.timer` (the first good build runs it; later \
         ones only ask systemd) {:.0} ms",
        show.as_secs_f64() * 1000.0,
        enable.as_secs_f64() * 1000.0
    );
    let mut served = 0;
    for run in 1..=REFRESHES {
        served += measured(
            sys,
            ws,
            &format!("unchanged refresh {run}"),
            &["overlay", "refresh", "big"],
        )?;
    }
    println!("  bytes downloaded by the {REFRESHES} unchanged refreshes: {served}");
    if served != 0 {
        return Err("an unchanged refresh downloaded files".into());
    }
    // (b) starts from an empty cache.
    ctl(sys, &["overlay", "rm", "big", "--yes"])?;
    ctl(sys, &["overlay", "gc"])?;
    Ok(())
}

/// `du -s` of the cache and the overlays together (one `du`, so a file linked from both is
/// counted once), with `extra` options; bytes.
fn du(sys: &BootedSystem, extra: &[&str]) -> Result<u64> {
    let cache = format!("{STATE_DIR}/workshop_cache");
    let overlays = format!("{STATE_DIR}/overlays");
    let mut argv = vec!["du", "-s", "-B1"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&[&cache, &overlays]);
    let out = sys.run_stdout(argv)?;
    let mut total = 0;
    for line in out.lines() {
        let field = line.split_whitespace().next().unwrap_or("");
        total += field
            .parse::<u64>()
            .map_err(|_| format!("du said {line:?}"))?;
    }
    Ok(total)
}

/// (b): ten overlays of the same 50 items.
fn shared(sys: &BootedSystem, ws: &FakeWorkshop<'_>) -> Result<()> {
    let ids: Vec<u64> = (SHARED_FIRST..SHARED_FIRST + SHARED_ITEMS).collect();
    let payload: Vec<u8> = (0..SHARED_ITEM_BYTES)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let items_bytes: u64 = ws.with_fixture(|fixture| {
        ids.iter()
            .map(|&id| {
                let mut item = Item::new(id, &format!("Shared Item {}", id - SHARED_FIRST + 1));
                item.versions[0].bytes =
                    vpk::build(&[(&format!("maps/shared_{id}.bsp"), &payload)]);
                let size = item.versions[0].file_size();
                fixture.add_item(item);
                size
            })
            .sum()
    });
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let before = ws.file_bytes();
    let started = Instant::now();
    for n in 1..=OVERLAYS {
        let name = format!("shared{n}");
        ctl(sys, &["overlay", "create", &name, "--workshop", &list])?;
        ctl(sys, &["overlay", "build", &name])?;
    }
    let took = started.elapsed();
    let downloaded = ws.file_bytes() - before;
    let disk = du(sys, &[])?;
    let apparent = du(sys, &["--apparent-size"])?;
    let copies = du(sys, &["--apparent-size", "--count-links"])?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "(b) {OVERLAYS} workshop overlays of the same {SHARED_ITEMS} items ({} KiB each):",
        SHARED_ITEM_BYTES / 1024
    );
    println!(
        "  the items: {:.2} MiB; downloaded once: {:.2} MiB; {OVERLAYS} creates and builds in \
         {:.1} s",
        mib(items_bytes),
        mib(downloaded),
        took.as_secs_f64()
    );
    println!(
        "  workshop_cache + overlays on disk (du, links counted once): {:.2} MiB allocated = \
         {:.3} x the items; {:.2} MiB apparent = {:.3} x",
        mib(disk),
        disk as f64 / items_bytes as f64,
        mib(apparent),
        apparent as f64 / items_bytes as f64
    );
    println!(
        "  with every link counted as a copy (what {OVERLAYS} copies would take, and the \
         cache's): {:.2} MiB = {:.2} x the items",
        mib(copies),
        copies as f64 / items_bytes as f64
    );
    Ok(())
}

fn bench() -> Result<()> {
    let started = Instant::now();
    let sys = BootedSystem::builder()
        .name("bench-workshop")
        .install_project(true)
        .command_timeout(Duration::from_secs(600))
        .boot()?;
    println!(
        "booted with left4me installed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The overlays' parent must be root's before a build (as tmpfiles.d says on a new install).
    let overlays = format!("{STATE_DIR}/overlays");
    sys.run_ok(["chown", "root:root", STATE_DIR, &overlays])?;
    sys.run_ok(["chmod", "0755", STATE_DIR, &overlays])?;
    let ws = FakeWorkshop::start(&sys, Fixture::collection_of(COLLECTION_ITEMS))?;
    collection(&sys, &ws)?;
    shared(&sys, &ws)?;
    drop(ws);
    sys.shutdown()?;
    Ok(())
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
