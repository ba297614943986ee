//! The reaction of `left4mectl restart --when-empty` after the last player leaves (issue 11,
//! "Benchmarks": target ≤ 1 s), measured inside a throwaway booted systemd with left4me
//! installed and the stand-in game server as the game.
//!
//! Each run: the stand-in reports 1 player (its control file says `players 1`), `restart
//! coop1 --when-empty` is started and left waiting for a second and a bit (the bit spread over
//! the 250 ms poll interval from run to run), then the control file says `players 0`. From then on a thread inside the system's network namespace asks A2S_INFO every
//! 5 ms, to see the moment the game first reports 0 players. The restart begins when the unit
//! leaves `active` (systemd's `ActiveExitTimestampMonotonic`, the same CLOCK_MONOTONIC as this
//! program's). Two figures per run:
//!
//! - **reaction**: from the game's first answer with 0 players to the restart's beginning —
//!   what left4mectl adds (its poll interval, 250 ms, plus one query and `systemctl`);
//! - from the control file's write to the restart's beginning, which also holds the stand-in's
//!   own delay (it reads the control file every 200 ms; a real server knows at once).
//!
//! No thresholds are asserted: it prints figures. Run it with `bench/when_empty.sh` (root).

use std::net::Ipv4Addr;
use std::process::{ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use left4me_tests::{BootedSystem, STATE_DIR, release_binary};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const RUNS: usize = 8;
const PORT: u16 = 27015;
const POLL: Duration = Duration::from_millis(5);

fn monotonic_us() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

fn ctl(sys: &BootedSystem, args: &[&str]) -> Result<String> {
    let mut argv = vec!["left4mectl"];
    argv.extend_from_slice(args);
    Ok(sys.run_stdout(argv)?)
}

fn set_players(sys: &BootedSystem, players: u8) -> Result<u64> {
    let control = format!(
        "/proc/{}/root{STATE_DIR}/runtime/coop1/merged/left4dead2/standin.control",
        sys.pid()
    );
    std::fs::write(control, format!("players {players}\n"))?;
    Ok(monotonic_us())
}

/// Asks every [`POLL`], from inside the system's network namespace (one entry for the whole
/// loop), until the game answers with `n` human players; the monotonic time of that answer.
fn first_answer_with(sys: &BootedSystem, n: u8, timeout: Duration) -> Result<u64> {
    let found = sys.in_netns(move || {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let humans = left4me_a2s::query_info(
                (Ipv4Addr::LOCALHOST, PORT).into(),
                Duration::from_millis(100),
            )
            .ok()
            .map(|i| i.players - i.bots);
            if humans == Some(n) {
                return Some(monotonic_us());
            }
            thread::sleep(POLL);
        }
        None
    })?;
    found.ok_or_else(|| format!("the game did not report {n} players within {timeout:?}").into())
}

fn active_exit(sys: &BootedSystem) -> Result<u64> {
    Ok(sys
        .run_stdout([
            "systemctl",
            "show",
            "-p",
            "ActiveExitTimestampMonotonic",
            "--value",
            "left4me-server@coop1.service",
        ])?
        .trim()
        .parse()?)
}

/// One run: (reaction after the game's first empty answer, after the control file's write),
/// in milliseconds.
fn run_once(sys: &BootedSystem, run: usize) -> Result<(f64, f64)> {
    set_players(sys, 1)?;
    first_answer_with(sys, 1, Duration::from_secs(10))?;
    let waiting = sys
        .command(["left4mectl", "restart", "coop1", "--when-empty"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Spread the players' leaving over the poll interval: a fixed delay would meet the poll
    // at the same phase every run.
    thread::sleep(Duration::from_millis(1000 + (run as u64 * 97) % 250));
    let written = set_players(sys, 0)?;
    let empty = first_answer_with(sys, 0, Duration::from_secs(10))?;
    let out = waiting.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "restart --when-empty failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let exit = active_exit(sys)?;
    if exit < written {
        return Err("the restart began before the players left".into());
    }
    let ms = |from: u64| (exit as f64 - from as f64) / 1000.0;
    Ok((ms(empty), ms(written)))
}

fn summary(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "min {:.0} ms, median {:.0} ms, max {:.0} ms",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

fn bench() -> Result<()> {
    let sys = BootedSystem::builder()
        .name("bench-when-empty")
        .install_project(true)
        .command_timeout(Duration::from_secs(120))
        .boot()?;
    sys.install_game_tree(&release_binary("srcds-standin"))?;
    ctl(&sys, &["create", "coop1", "--port", &PORT.to_string()])?;
    ctl(&sys, &["start", "coop1"])?;
    let (mut reaction, mut from_write) = (Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let (after_empty, after_write) = run_once(&sys, run)?;
        println!(
            "  run {run}: restart began {after_empty:.0} ms after the game first reported 0 \
             players ({after_write:.0} ms after the control file's write)"
        );
        reaction.push(after_empty);
        from_write.push(after_write);
    }
    println!(
        "restart --when-empty reaction after the last player leaves ({RUNS} runs, poll 250 ms, \
         target ≤ 1 s): {}",
        summary(&mut reaction)
    );
    println!(
        "  from the stand-in's control file (adds its 200 ms read period): {}",
        summary(&mut from_write)
    );
    ctl(&sys, &["stop", "coop1"])?;
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
