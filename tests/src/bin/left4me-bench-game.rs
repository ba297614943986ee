//! The game benchmark (issue 9, "Benchmarks"), measured inside a throwaway booted systemd with
//! left4me installed, the stand-in SteamCMD as host.toml's `steamcmd` and the stand-in Steam on
//! 192.0.2.10:80 inside the system's network namespace (as in tests/tests/booted_game.rs).
//!
//! The game is a synthetic install of `LEFT4ME_BENCH_GAME_BYTES` bytes (default 2 GiB) in 2000
//! files plus the stand-in server as `srcds_run`; each next build changes 5 % of the bytes (two
//! thirds rewritten files, one third new files, as many bytes of files removed). The depot
//! stores only seeds: the bytes are generated while the fake Steam sends them. The first
//! install is unthrottled; every update downloads at 50 MiB/s (`throttle=` in the stand-in's
//! `steam_standin.cfg` in SteamCMD's home).
//!
//! 1. **Player-visible downtime per instance** during an update, with two instances running.
//!    A thread per instance, inside the system's network namespace, sends A2S_INFO to
//!    127.0.0.1:PORT every 20 ms; a query not answered within 100 ms counts as unanswered (on
//!    loopback an answer takes well under a millisecond; a query the stopping server swallows
//!    would otherwise hold the poller for the whole timeout). An outage starts when the first
//!    unanswered query is sent and ends when the first answered query after it returns; the
//!    figure is the sum of the outages (their count is printed when it is not 1), within about
//!    20 ms (100 ms when the stopping server swallowed a query). Measured for a
//!    plain `left4mectl restart` (the instance's stop+start, the target), for left4me's
//!    `game update --restart now` (download while the instances run, then one restart each),
//!    and for the sequence peers use: `left4mectl stop`, `game update --restart never`,
//!    `left4mectl start`. The download time is printed for scale: from SteamCMD's first
//!    `(0x61) downloading` line to its next line in another state, as `left4mectl` printed them.
//! 2. **Disk used by the new version**: `bytes` of `game versions --json` (measured by the store
//!    at publish) and `du -sb` of `game/versions/ID/tree`, against the changed bytes computed
//!    from the depot's two builds (the rewritten and the new files; removed files cost a
//!    whiteout). Target ≤ 1.1.
//! 3. **Time to publish after the download ends**: from the moment SteamCMD's last output line
//!    reached this program (read live from `left4mectl`'s stdout, which prints each SteamCMD line
//!    as it comes and flushes) to the modification time of the new `game/current` (written by the
//!    store to a temp file, fsync'd and renamed over the old one: its mtime is the instant of the
//!    publish, less the rename). Both are the same kernel clock (CLOCK_REALTIME), so the
//!    difference holds everything in between: the unit's end, the sandbox's teardown, the
//!    appmanifest check, removing the work dir, measuring the delta and the renames. Also printed:
//!    from the SteamCMD unit's end (systemd's `Deactivated successfully` journal line) to the
//!    same mtime. Target ≤ 1 s.
//!
//! The booted system lives on tmpfs, and tmpfs pages are charged to the writer's cgroup and
//! cannot be reclaimed: SteamCMD's unit (`MemoryMax=2G`) would be killed writing a 2 GiB game.
//! So the state dir is, as on a real host, a disk file system: a sparse ext4 image in
//! `/var/tmp` on a loop device, mounted over `/var/lib/left4me` inside the system (its files
//! copied over first). The bench reads it through `/proc/PID/root` of the system's PID 1, and
//! removes the image and the loop device at the end.
//!
//! No thresholds are asserted: it prints figures. Run it with `bench/game.sh` (root).

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use left4me_steamcmd_standin::{Depot, DepotFile, cfg_text, next_build, synthetic_tree};
use left4me_tests::steam::{FakeSteam, STEAM_URL, base_files};
use left4me_tests::{BootedSystem, STATE_DIR};
use serde_json::Value;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The size of the game install unless `LEFT4ME_BENCH_GAME_BYTES` says otherwise.
const DEFAULT_BYTES: u64 = 2 << 30;
const FILES: usize = 2000;
/// The share of the bytes each update changes.
const CHANGED: f64 = 0.05;
/// The download rate of updates, bytes per second.
const THROTTLE: u64 = 50 << 20;
/// How often each instance is asked, and how long one query may take.
const POLL: Duration = Duration::from_millis(20);
const QUERY_TIMEOUT: Duration = Duration::from_millis(100);
const INSTANCES: [(&str, u16); 2] = [("coop1", 27015), ("coop2", 27016)];
const BUILDS: [u64; 3] = [9_200_001, 9_200_002, 9_200_003];
/// The apparent size of the state dir's ext4 image (sparse: only what is written takes room).
const IMAGE_BYTES: u64 = 64 << 30;

/// A sparse ext4 image on a loop device, removed (and the device detached) on drop.
struct DiskImage {
    image: PathBuf,
    device: String,
}

impl DiskImage {
    fn create() -> Result<DiskImage> {
        let image = PathBuf::from(format!(
            "/var/tmp/left4me-bench-game-{}.img",
            std::process::id()
        ));
        std::fs::File::create(&image)?.set_len(IMAGE_BYTES)?;
        let mut disk = DiskImage {
            image,
            device: String::new(),
        };
        run_host(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&disk.image),
        )?;
        let device = run_host(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&disk.image),
        )?;
        disk.device = device.trim().to_owned();
        Ok(disk)
    }

    /// Mounts the image over the state dir inside `sys`, with the state dir's files.
    fn mount_state_dir(&self, sys: &BootedSystem) -> Result<()> {
        let script = format!(
            "set -e; mkdir -p /run/bench-state; mount {dev} /run/bench-state; \
             cp -a {STATE_DIR}/. /run/bench-state/; umount /run/bench-state; \
             rmdir /run/bench-state; mount {dev} {STATE_DIR}",
            dev = self.device
        );
        sys.run_ok(["sh", "-c", &script])?;
        Ok(())
    }
}

impl Drop for DiskImage {
    fn drop(&mut self) {
        if !self.device.is_empty() {
            // Detaches at once, or when the last mount of it goes (autoclear).
            let _ = Command::new("losetup").args(["-d", &self.device]).status();
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Runs a host command; its stdout, or an error with its stderr.
fn run_host(command: &mut Command) -> Result<String> {
    let out = command.output()?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The path of `inside` as the system's PID 1 sees it (its mounts included).
fn inside(sys: &BootedSystem, inside: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root{inside}", sys.pid()))
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

/// A build: the files every stand-in build has, then the synthetic tree.
fn game_files(build: u64, synthetic: &[DepotFile]) -> Result<Vec<DepotFile>> {
    let mut files = base_files(build)?;
    files.extend_from_slice(synthetic);
    Ok(files)
}

/// The bytes of the files of `new` that `old` lacks or holds otherwise (content or mode):
/// (rewritten, added).
fn changed_bytes(old: &[DepotFile], new: &[DepotFile]) -> (u64, u64) {
    let old: std::collections::HashMap<&str, &DepotFile> =
        old.iter().map(|f| (f.path.as_str(), f)).collect();
    let (mut rewritten, mut added) = (0, 0);
    for file in new {
        match old.get(file.path.as_str()) {
            None => added += file.content.len(),
            Some(was) if was.content != file.content || was.mode != file.mode => {
                rewritten += file.content.len();
            }
            Some(_) => {}
        }
    }
    (rewritten, added)
}

/// One A2S_INFO query: when it was sent, when it ended, whether it was answered.
#[derive(Debug, Clone, Copy)]
struct Sample {
    sent: Instant,
    ended: Instant,
    answered: bool,
}

/// Asks 127.0.0.1:`port` every [`POLL`] until `stop`; runs inside the system's netns.
fn poll(port: u16, stop: &AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let answered =
            left4me_a2s::query_info((Ipv4Addr::LOCALHOST, port).into(), QUERY_TIMEOUT).is_ok();
        let ended = Instant::now();
        samples.push(Sample {
            sent,
            ended,
            answered,
        });
        if let Some(rest) = (sent + POLL).checked_duration_since(Instant::now()) {
            thread::sleep(rest);
        }
    }
    samples
}

/// The outages in `samples`: from the first unanswered query's sending to the end of the first
/// answered one after it. Fails when the instance was down at the start or the end.
fn outages(name: &str, samples: &[Sample]) -> Result<Vec<Duration>> {
    let first = samples.first().ok_or("no A2S samples")?;
    if !first.answered {
        return Err(format!("{name} did not answer A2S_INFO before the measurement").into());
    }
    let mut found = Vec::new();
    let mut down_since = None;
    for sample in samples {
        match (sample.answered, down_since) {
            (false, None) => down_since = Some(sample.sent),
            (true, Some(since)) => {
                found.push(sample.ended - since);
                down_since = None;
            }
            _ => {}
        }
    }
    if down_since.is_some() {
        return Err(format!("{name} did not answer A2S_INFO again after the measurement").into());
    }
    Ok(found)
}

/// Runs `action` while every instance is asked every [`POLL`]; returns its result and the
/// outages of each instance, in [`INSTANCES`] order.
fn downtime_during<T>(
    sys: &BootedSystem,
    action: impl FnOnce() -> Result<T>,
) -> Result<(T, Vec<Vec<Duration>>)> {
    let stop = Arc::new(AtomicBool::new(false));
    thread::scope(|scope| {
        let pollers: Vec<_> = INSTANCES
            .iter()
            .map(|&(_, port)| {
                let stop = Arc::clone(&stop);
                scope.spawn(move || sys.in_netns(move || poll(port, &stop)))
            })
            .collect();
        // Some answered queries before the action, some after it.
        thread::sleep(Duration::from_millis(200));
        let result = action();
        thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for (poller, (name, _)) in pollers.into_iter().zip(INSTANCES) {
            let samples = poller.join().map_err(|_| "an A2S poller panicked")??;
            all.push(outages(name, &samples)?);
        }
        Ok((result?, all))
    })
}

/// A line `left4mectl` printed and when it reached this program.
struct Line {
    at: SystemTime,
    text: String,
}

/// What one `left4mectl` printed: when it started and ended, its stdout lines.
struct Lines {
    started: SystemTime,
    ended: SystemTime,
    lines: Vec<Line>,
}

/// `left4mectl ARGS…` inside, its stdout read live (each line stamped on arrival); fails
/// when it fails.
fn ctl_lines(sys: &BootedSystem, args: &[&str]) -> Result<Lines> {
    let started = SystemTime::now();
    let mut argv = vec!["left4mectl"];
    argv.extend_from_slice(args);
    let mut child = sys
        .command(&argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = Vec::new();
    for text in BufReader::new(stdout).lines() {
        lines.push(Line {
            at: SystemTime::now(),
            text: text?,
        });
    }
    let status = child.wait()?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let out: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        return Err(format!(
            "`{}` failed ({status}):\n{}\n{errors}",
            argv.join(" "),
            out.join("\n")
        )
        .into());
    }
    Ok(Lines {
        started,
        ended: SystemTime::now(),
        lines,
    })
}

fn ctl(sys: &BootedSystem, args: &[&str]) -> Result<String> {
    let mut argv = vec!["left4mectl"];
    argv.extend_from_slice(args);
    Ok(sys.run_stdout(argv)?)
}

/// Whether `left4mectl`'s line is one of SteamCMD's (the printer puts `[   1.2s] ` before
/// each).
fn steamcmd_line(text: &str) -> bool {
    text.starts_with('[') && text.contains("s] ")
}

/// What the lines of one `game update` say: how long the download took and when SteamCMD's
/// first and last lines came.
struct UpdateRun {
    download: Duration,
    first_line: SystemTime,
    last_line: SystemTime,
    out: Lines,
}

fn update_run(out: Lines) -> Result<UpdateRun> {
    let steam: Vec<&Line> = out
        .lines
        .iter()
        .filter(|l| steamcmd_line(&l.text))
        .collect();
    let first = steam
        .iter()
        .position(|l| l.text.contains("downloading"))
        .ok_or("SteamCMD printed no `downloading` line")?;
    let after = steam[first..]
        .iter()
        .find(|l| !l.text.contains("downloading"))
        .ok_or("SteamCMD printed nothing after downloading")?;
    let download = after.at.duration_since(steam[first].at)?;
    Ok(UpdateRun {
        download,
        first_line: steam[0].at,
        last_line: steam.last().ok_or("no SteamCMD lines")?.at,
        out,
    })
}

/// The modification time of `game/current`.
fn current_mtime(sys: &BootedSystem) -> Result<SystemTime> {
    Ok(std::fs::metadata(inside(sys, &format!("{STATE_DIR}/game/current")))?.modified()?)
}

fn current(sys: &BootedSystem) -> Result<String> {
    Ok(
        std::fs::read_to_string(inside(sys, &format!("{STATE_DIR}/game/current")))?
            .trim()
            .to_owned(),
    )
}

fn journal_cursor(sys: &BootedSystem) -> Result<String> {
    let out = sys.run_stdout(["journalctl", "-n", "0", "--show-cursor", "-q"])?;
    Ok(out.trim().trim_start_matches("-- cursor: ").to_owned())
}

/// When systemd last reported a SteamCMD unit (`left4me-game-update-…`) ended, since `cursor`.
fn steamcmd_unit_end(sys: &BootedSystem, cursor: &str) -> Result<SystemTime> {
    let out = sys.run_stdout([
        "journalctl",
        "_PID=1",
        "--after-cursor",
        cursor,
        "-o",
        "json",
        "--output-fields=MESSAGE",
    ])?;
    let mut end = None;
    for line in out.lines() {
        let entry: Value = serde_json::from_str(line)?;
        let message = entry["MESSAGE"].as_str().unwrap_or("");
        if message.starts_with("left4me-game-update-") && message.contains("Deactivated") {
            let micros: u64 = entry["__REALTIME_TIMESTAMP"]
                .as_str()
                .ok_or("a journal entry without a time")?
                .parse()?;
            end = Some(UNIX_EPOCH + Duration::from_micros(micros));
        }
    }
    end.ok_or_else(|| "no `left4me-game-update-…: Deactivated` line in the journal".into())
}

/// Seconds from `from` to `to`, negative when `to` came first.
fn secs_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Each instance's downtime, e.g. `coop1 0.41 s, coop2 0.40 s`.
fn per_instance(outages: &[Vec<Duration>]) -> String {
    INSTANCES
        .iter()
        .zip(outages)
        .map(|((name, _), found)| {
            let total: f64 = found.iter().map(Duration::as_secs_f64).sum();
            match found.len() {
                1 => format!("{name} {total:.2} s"),
                0 => format!("{name} never down"),
                n => format!("{name} {total:.2} s in {n} outages"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `VERB coop1 coop2`.
fn with_names(verb: &str) -> Vec<&str> {
    let mut args = vec![verb];
    args.extend(INSTANCES.iter().map(|(name, _)| *name));
    args
}

/// A new build in the depot, on branch `public`.
fn publish_build(depot: &Depot, build: u64, files: &[DepotFile]) -> Result<()> {
    depot.add_build("public", build, files)?;
    depot.set_branch("public", build, None)?;
    Ok(())
}

/// Figures 2 and 3 (and the download, for scale) of the version a `game update` published.
struct VersionFigures {
    id: String,
    how: String,
    /// `bytes` of `game versions --json`, and `du -sb` of its tree.
    bytes: u64,
    du: u64,
    /// (rewritten, added) bytes between the two builds.
    changed: (u64, u64),
    /// Seconds from SteamCMD's last line, and from its unit's end, to `game/current`'s mtime.
    publish_after_line: f64,
    publish_after_unit: f64,
    /// Seconds since `left4mectl game update` started: SteamCMD's first and last lines,
    /// `current` replaced, the command's end.
    first_line: f64,
    last_line: f64,
    published: f64,
    ended: f64,
    download: f64,
}

impl VersionFigures {
    fn measure(
        sys: &BootedSystem,
        run: &UpdateRun,
        cursor: &str,
        changed: (u64, u64),
    ) -> Result<Self> {
        let published = current_mtime(sys)?;
        let id = current(sys)?;
        let versions: Value = serde_json::from_str(&ctl(sys, &["game", "versions", "--json"])?)?;
        let row = versions
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == id.as_str()))
            .ok_or_else(|| format!("version {id} is not in `game versions --json`"))?;
        let tree = format!("{STATE_DIR}/game/versions/{id}/tree");
        let du = sys
            .run_stdout(["du", "-sb", &tree])?
            .split_whitespace()
            .next()
            .ok_or("du printed nothing")?
            .parse()?;
        let since = |at: SystemTime| secs_between(run.out.started, at);
        Ok(VersionFigures {
            how: row["how"].as_str().unwrap_or("?").to_owned(),
            bytes: row["bytes"].as_u64().ok_or("a version without bytes")?,
            du,
            changed,
            publish_after_line: secs_between(run.last_line, published),
            publish_after_unit: secs_between(steamcmd_unit_end(sys, cursor)?, published),
            first_line: since(run.first_line),
            last_line: since(run.last_line),
            published: since(published),
            ended: since(run.out.ended),
            download: run.download.as_secs_f64(),
            id,
        })
    }

    fn print_timeline(&self, who: &str) {
        println!(
            "     {who}'s `game update` ({}): SteamCMD's lines from {:.2} s to {:.2} s (download \
             {:.2} s), current replaced at {:.2} s, command done at {:.2} s",
            self.id, self.first_line, self.last_line, self.download, self.published, self.ended
        );
    }

    fn print_disk(&self) {
        let total = self.changed.0 + self.changed.1;
        println!(
            "     version {} ({}): {} (`game versions`), {} (`du -sb` of its tree) for {} \
             changed ({} rewritten + {} new): ratio {:.3} / {:.3}",
            self.id,
            self.how,
            mb(self.bytes),
            mb(self.du),
            mb(total),
            mb(self.changed.0),
            mb(self.changed.1),
            self.bytes as f64 / total as f64,
            self.du as f64 / total as f64,
        );
    }

    fn print_publish(&self) {
        println!(
            "     version {}: SteamCMD's last line → game/current {:.3} s; SteamCMD unit's end → \
             game/current {:.3} s",
            self.id, self.publish_after_line, self.publish_after_unit
        );
    }
}

fn bench() -> Result<()> {
    let total: u64 = match std::env::var("LEFT4ME_BENCH_GAME_BYTES") {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("LEFT4ME_BENCH_GAME_BYTES={text}: not a number of bytes"))?,
        Err(_) => DEFAULT_BYTES,
    };
    // Declared before the system, so dropped after it.
    let disk = DiskImage::create()?;
    let sys = BootedSystem::builder()
        .name("bench-game")
        .install_project(true)
        .command_timeout(Duration::from_secs(1800))
        .boot()?;
    disk.mount_state_dir(&sys)?;

    // The builds: A, B = A with 5 % changed, C = B with 5 % changed.
    let generated = Instant::now();
    let synth_a = synthetic_tree(total, FILES, 1);
    let synth_b = next_build(&synth_a, CHANGED, 2);
    let synth_c = next_build(&synth_b, CHANGED, 3);
    let [a, b, c] = BUILDS;
    let (files_a, files_b, files_c) = (
        game_files(a, &synth_a)?,
        game_files(b, &synth_b)?,
        game_files(c, &synth_c)?,
    );
    let depot_dir = sys.base_dir().join("depot");
    let depot = Depot::create(&depot_dir)?;
    publish_build(&depot, a, &files_a)?;
    let generated = generated.elapsed();
    let steam = FakeSteam::start(&sys, Depot::open(&depot_dir), None)?;
    println!(
        "inside a booted systemd 252 (2 shared cores), state dir on ext4; a game of {:.2} GiB in \
         {FILES} files (depot made in {:.1} s); each update changes {:.0} % of the bytes and \
         downloads at {} MiB/s",
        total as f64 / f64::from(1u32 << 30),
        generated.as_secs_f64(),
        CHANGED * 100.0,
        THROTTLE >> 20,
    );

    let started = Instant::now();
    ctl_lines(&sys, &["game", "install"])?;
    println!(
        "  `game install` of build {a} (unthrottled): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(
        inside(
            &sys,
            &format!("{STATE_DIR}/game/steamcmd/steam_standin.cfg"),
        ),
        cfg_text(STEAM_URL, Some(THROTTLE)),
    )?;
    for (name, port) in INSTANCES {
        ctl(&sys, &["create", name, "--port", &port.to_string()])?;
    }
    let names: Vec<&str> = INSTANCES.iter().map(|(n, _)| *n).collect();
    ctl(&sys, &with_names("start"))?;

    // The target: one plain restart of each instance (one after the other, as the rollout).
    let ((), restart) = downtime_during(&sys, || {
        for name in &names {
            ctl(&sys, &["restart", name])?;
        }
        Ok(())
    })?;

    // left4me: the download while the instances run, then one restart each.
    publish_build(&depot, b, &files_b)?;
    let cursor = journal_cursor(&sys)?;
    let (run, ours) = downtime_during(&sys, || {
        update_run(ctl_lines(&sys, &["game", "update", "--restart", "now"])?)
    })?;
    let rollout: Vec<&str> = run
        .out
        .lines
        .iter()
        .filter(|l| l.text.starts_with("restarted "))
        .map(|l| l.text.as_str())
        .collect();
    let rollout = rollout.join("; ");
    let ours_figures =
        VersionFigures::measure(&sys, &run, &cursor, changed_bytes(&files_a, &files_b))?;

    // Peers: stop, update, start.
    publish_build(&depot, c, &files_c)?;
    let cursor = journal_cursor(&sys)?;
    let (run, peers) = downtime_during(&sys, || {
        ctl(&sys, &with_names("stop"))?;
        let run = update_run(ctl_lines(&sys, &["game", "update", "--restart", "never"])?)?;
        ctl(&sys, &with_names("start"))?;
        Ok(run)
    })?;
    let peers_figures =
        VersionFigures::measure(&sys, &run, &cursor, changed_bytes(&files_b, &files_c))?;

    println!(
        "  1. player-visible downtime per instance during an update (A2S_INFO every 20 ms from \
         inside; target for left4me: one restart, ≤ the instance's stop+start, independent of \
         the download size):"
    );
    println!(
        "     a plain `left4mectl restart` (the instance's stop+start): {}",
        per_instance(&restart)
    );
    println!(
        "     left4me, `game update --restart now` with the instances running: {}",
        per_instance(&ours)
    );
    println!(
        "     peers, `stop` → `game update --restart never` → `start`: {}",
        per_instance(&peers)
    );
    ours_figures.print_timeline("left4me");
    println!("       its rollout said: {rollout}");
    peers_figures.print_timeline("peers");
    println!("  2. disk used by the new version (target ≤ 1.1 × the changed bytes):");
    ours_figures.print_disk();
    peers_figures.print_disk();
    println!("  3. time to publish after the download ends (target ≤ 1 s):");
    ours_figures.print_publish();
    peers_figures.print_publish();

    ctl(&sys, &with_names("stop"))?;
    drop(steam);
    sys.shutdown()?;
    Ok(())
}
