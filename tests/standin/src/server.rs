//! The stand-in's life: start like srcds_run, run the cfg chain, answer queries, obey faults.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::addons;
use crate::args::{self, Args};
use crate::cfg::{self, CfgRun};
use crate::console::{BOT_NAMES, Console, World};
use crate::control::Control;
use crate::net;
use crate::players::Roster;
use crate::rcon::{self, RconServer};
use crate::reply::{self, PlayerRow, Request, ServerInfo};
use crate::signals::{self, StopSignals};

/// The "signal" name `serve_until_stopped` returns after `quit` or `exit` at the console.
const QUIT: &str = "console quit";
/// How often `<game>/standin.control` is read.
const CONTROL_PERIOD: Duration = Duration::from_millis(200);
/// Datagrams served per wake-up, so a flood cannot starve signal handling.
const MAX_DATAGRAMS_PER_WAKE: usize = 64;
/// Lines of /proc/self/status copied to the log.
const STATUS_KEYS: [&str; 9] = [
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
];

/// `<root>/<game>/standin.log` (appended to) and stdout, one line per event.
#[derive(Debug)]
struct Log {
    file: File,
}

impl Log {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the log {}", path.display()))?;
        Ok(Self { file })
    }

    fn line(&mut self, text: &str) {
        // A log that cannot be written must not stop the server, as with srcds's console log.
        let _ = writeln!(self.file, "{text}");
        println!("{text}");
    }
}

/// The directory srcds_run would `cd` to: the one holding argv\[0\].
fn game_root(argv0: &str, cwd: &Path) -> anyhow::Result<PathBuf> {
    let exe = if argv0.contains('/') {
        cwd.join(argv0)
    } else {
        std::env::current_exe().context("cannot find my own executable")?
    };
    match exe.parent() {
        Some(root) => Ok(root.to_path_buf()),
        None => bail!("argv[0] {argv0:?} has no directory"),
    }
}

/// Per-peer challenges derived from a per-process secret, as srcds does.
#[derive(Debug)]
struct Challenges {
    secret: u64,
}

impl Challenges {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        let from_urandom = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        let secret = match from_urandom {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ u64::from(std::process::id())
            }
        };
        Self { secret }
    }

    fn for_peer(&self, peer: SocketAddr) -> [u8; 4] {
        let ip = match peer {
            SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped().octets(),
            SocketAddr::V6(v6) => v6.ip().octets(),
        };
        // FNV-1a over secret, address and port.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .secret
            .to_le_bytes()
            .iter()
            .chain(&ip)
            .chain(&peer.port().to_le_bytes())
        {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let challenge = (hash ^ (hash >> 32)) as u32;
        // 0 and -1 mean "no challenge" to clients.
        match challenge {
            0 | u32::MAX => 1,
            c => c,
        }
        .to_le_bytes()
    }
}

/// What the server is doing at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Loading,
    Answering,
    Hung,
    /// Hung and deaf to SIGINT/SIGTERM (they stay pending).
    Wedged,
}

/// Run the stand-in with `argv` (argv\[0\] included) until a stop signal. Returns an
/// [`args::ArgsError`] (exit status 2) for a bad command line.
pub fn run(argv: Vec<String>) -> anyhow::Result<()> {
    let args = args::parse(argv.get(1..).unwrap_or_default())?;
    let stop = StopSignals::open().context("cannot set up SIGINT/SIGTERM handling")?;
    let started = Instant::now();

    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let root = game_root(argv.first().map_or("", String::as_str), &cwd)?;
    // Like the srcds_run script: work from the game root.
    std::env::set_current_dir(&root)
        .with_context(|| format!("cannot change directory to {}", root.display()))?;
    let root = std::env::current_dir().context("cannot read the game root directory")?;
    let game_dir = root.join(&args.game);
    if !game_dir.is_dir() {
        bail!("game directory {} does not exist", game_dir.display());
    }
    let mut log = Log::open(&game_dir.join("standin.log"))?;
    log.line(&format!("srcds-standin pid={}", std::process::id()));
    log.line(&format!("argv={argv:?}"));
    log.line(&format!("cwd={}", cwd.display()));
    log.line(&format!("root={}", root.display()));
    log.line(&format!(
        "HOME={}",
        std::env::var("HOME").unwrap_or_else(|_| "(unset)".into())
    ));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if STATUS_KEYS
            .iter()
            .any(|key| line.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
        {
            log.line(&format!(
                "status {}",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    if !args.kept.is_empty() {
        log.line(&format!("kept arguments: {}", args.kept.join(" ")));
    }

    // Command line cvars first; server.cfg runs at map load and wins over them.
    let mut cmdline_cvars = BTreeMap::new();
    for (name, value) in &args.cvars {
        log.line(&format!("command line: +{name} {value}"));
        cmdline_cvars.insert(name.clone(), value.clone());
    }
    let CfgRun {
        cvars,
        finished,
        events,
    } = cfg::run_server_cfg(&game_dir.join("cfg"), cmdline_cvars);
    for event in &events {
        log.line(event);
    }
    let cfg_order = finished.join(",");
    log.line(&format!("cfg order: {cfg_order}"));

    let mut console = Console::new(cvars, args.map.clone(), game_dir.clone());
    // The map load mounts the add-ons (in the merged tree: every overlay's addons/).
    console.addons = addons::scan(&game_dir);
    for line in &console.addons {
        log.line(line);
    }
    let roster = Roster::new(2 + u32::from(args.bots));
    let info = server_info(&args, &console, &roster, &cfg_order);
    let mut sockets = match net::open(&args, &mut |line: &str| log.line(line)) {
        Ok(sockets) => sockets,
        Err(err) => {
            log.line(&err.to_string());
            return Err(err.into());
        }
    };
    let socket = sockets
        .server
        .try_clone()
        .context("cannot duplicate the server socket")?;
    socket
        .set_nonblocking(true)
        .context("cannot make the socket non-blocking")?;
    let bound = socket
        .local_addr()
        .context("cannot read the socket's address")?;
    log.line(&format!(
        "listening on udp {bound} (hostname {:?}, map {}, max players {})",
        info.name, info.map, info.max_players
    ));

    let rcon = match sockets.rcon.take() {
        Some(listener) => {
            Some(RconServer::new(listener).context("cannot make the RCON listener non-blocking")?)
        }
        None => None,
    };
    let mut server = Server {
        args,
        info,
        socket,
        _sockets: sockets,
        console,
        roster,
        rcon,
        cfg_order,
        started,
        challenges: Challenges::new(),
        split_id: 0,
        first_answers: BTreeSet::new(),
    };
    let signal = server.serve_until_stopped(&stop, &game_dir.join("standin.control"), &mut log)?;
    if server.args.die_on_stop && signal != QUIT {
        log.line(&format!("die by {signal}"));
        signals::die_by(signal);
    }
    log.line(&format!("quit on {signal}"));
    Ok(())
}

/// What A2S reports now: the cvars and map of the console, the players of the roster.
fn server_info(args: &Args, console: &Console, roster: &Roster, cfg_order: &str) -> ServerInfo {
    let cvar = |name: &str| console.cvars.get(name).cloned().unwrap_or_default();
    let mut rules: Vec<(String, String)> = console
        .cvars
        .iter()
        .filter(|(name, _)| !name.contains("password"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    rules.push(("standin_cfg_order".into(), cfg_order.to_owned()));
    ServerInfo {
        name: console
            .cvars
            .get("hostname")
            .cloned()
            .unwrap_or_else(|| "Left 4 Dead 2".into()),
        map: console.map.clone(),
        folder: args.game.clone(),
        port: args.port,
        max_players: args.max_players,
        humans: roster.count(),
        bots: args.bots,
        password: !cvar("sv_password").is_empty(),
        vac: !args.insecure,
        keywords: cvar("sv_tags"),
        rules,
    }
}

#[derive(Debug)]
struct Server {
    args: Args,
    info: ServerInfo,
    socket: UdpSocket,
    /// Every socket the server holds open (client, SourceTV) for as long as it runs.
    _sockets: net::Sockets,
    /// Cvars, map and commands, driven by RCON.
    console: Console,
    /// The simulated human players.
    roster: Roster,
    /// `None` when the RCON port could not be bound (the engine runs on without RCON).
    rcon: Option<RconServer>,
    cfg_order: String,
    started: Instant,
    challenges: Challenges,
    split_id: u32,
    first_answers: BTreeSet<&'static str>,
}

impl Server {
    /// Serve queries and obey faults until SIGINT or SIGTERM; returns the signal's name.
    fn serve_until_stopped(
        &mut self,
        stop: &StopSignals,
        control_path: &Path,
        log: &mut Log,
    ) -> anyhow::Result<&'static str> {
        let mut control = Control::default();
        let mut next_control = Instant::now();
        let mut last_mode = None;
        loop {
            let now = Instant::now();
            if now >= next_control {
                control.reread(control_path, &mut |line: &str| log.line(line));
                next_control = now + CONTROL_PERIOD;
                let events = self.roster.update(&control.wanted(self.args.humans), now);
                if !events.is_empty() {
                    events.iter().for_each(|event| log.line(event));
                    log.line(&format!("players: {}", self.roster.count()));
                    self.refresh_info();
                }
            }
            let elapsed = now - self.started;
            let reached = |at: Option<Duration>| at.is_some_and(|at| elapsed >= at);
            if control.crash || reached(self.args.crash_after) {
                log.line("crash: raising SIGSEGV");
                signals::crash();
            }
            let mode = if control.wedge || reached(self.args.wedge_after) {
                Mode::Wedged
            } else if control.hang || reached(self.args.hang_after) {
                Mode::Hung
            } else if elapsed < self.args.start_delay {
                Mode::Loading
            } else {
                Mode::Answering
            };
            if last_mode != Some(mode) {
                log.line(match mode {
                    Mode::Loading => "loading: not answering queries yet",
                    Mode::Answering => "answering queries",
                    Mode::Hung => "hang: not answering queries",
                    Mode::Wedged => "wedge: not answering queries, ignoring SIGINT and SIGTERM",
                });
                last_mode = Some(mode);
            }

            let timers = [
                Some(self.args.start_delay),
                self.args.hang_after,
                self.args.crash_after,
                self.args.wedge_after,
            ];
            let next_timer = timers
                .into_iter()
                .flatten()
                .filter(|&at| at > elapsed)
                .min();
            let mut wait = next_control.saturating_duration_since(now);
            if let Some(at) = next_timer {
                wait = wait.min(at - elapsed);
            }
            let answering = mode == Mode::Answering;
            let rcon_pending = answering && self.rcon.as_ref().is_some_and(RconServer::has_pending);
            if rcon_pending {
                wait = Duration::ZERO;
            }
            let mut fds = vec![
                (
                    (mode != Mode::Wedged).then(|| stop.as_fd().as_raw_fd()),
                    false,
                ),
                (answering.then(|| self.socket.as_raw_fd()), false),
            ];
            if let Some(rcon) = self.rcon.as_ref().filter(|_| answering) {
                fds.extend(rcon.poll_fds().into_iter().map(|(fd, out)| (Some(fd), out)));
            }
            let ready = poll(&fds, wait)?;
            if ready[0]
                && let Some(name) = stop.take().context("cannot read the signalfd")?
            {
                return Ok(name);
            }
            if ready[1] {
                self.answer_pending(log);
            }
            if rcon_pending || ready[2..].iter().any(|&r| r) {
                self.serve_rcon(log);
                if self.console.quit {
                    return Ok(QUIT);
                }
            }
        }
    }

    /// Rebuild what A2S reports from the console and the roster.
    fn refresh_info(&mut self) {
        self.info = server_info(&self.args, &self.console, &self.roster, &self.cfg_order);
    }

    /// Accept, read and answer RCON clients; then A2S reports what the commands changed.
    fn serve_rcon(&mut self, log: &mut Log) {
        let Some(rcon) = self.rcon.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut host = RconHost {
            console: &mut self.console,
            world: World {
                roster: &self.roster,
                bots: self.args.bots,
                max_players: self.args.max_players,
                addr: self
                    .socket
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from((self.args.ip, self.args.port))),
                vac: !self.args.insecure,
                now,
            },
            log,
        };
        rcon.service(&mut host, now);
        self.refresh_info();
    }

    /// Answer the queries waiting on the socket.
    fn answer_pending(&mut self, log: &mut Log) {
        let mut buf = [0u8; 2048];
        for _ in 0..MAX_DATAGRAMS_PER_WAKE {
            let (len, peer) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log.line(&format!("receive failed: {e}"));
                    return;
                }
            };
            let expected = self.challenges.for_peer(peer);
            let (kind, message) = match reply::parse_request(&buf[..len]) {
                Request::Other => continue,
                Request::Info(got) if !self.args.info_challenge || got == Some(expected) => {
                    ("A2S_INFO", reply::info_message(&self.info))
                }
                Request::Players(got) if got == expected => {
                    ("A2S_PLAYER", reply::players_message(&self.player_rows()))
                }
                Request::Rules(got) if got == expected => {
                    ("A2S_RULES", reply::rules_message(&self.info))
                }
                Request::Info(_) | Request::Players(_) | Request::Rules(_) => {
                    self.send(
                        &[0xFF, 0xFF, 0xFF, 0xFF],
                        &reply::challenge_message(expected),
                        peer,
                    );
                    continue;
                }
            };
            self.split_id = self.split_id.wrapping_add(1);
            for datagram in reply::datagrams(&message, self.args.split, self.split_id) {
                self.send(&[], &datagram, peer);
            }
            if self.first_answers.insert(kind) {
                log.line(&format!("first {kind} answered (to {peer})"));
            }
        }
    }

    /// A2S_PLAYER's rows: the humans of the roster, then the bots (score 0, on since start).
    fn player_rows(&self) -> Vec<PlayerRow> {
        let now = Instant::now();
        let humans = self.roster.players().iter().map(|p| PlayerRow {
            name: p.name.clone(),
            score: p.score,
            duration: p.connected(now).as_secs_f32(),
        });
        let uptime = now.saturating_duration_since(self.started).as_secs_f32();
        let bots = (0..usize::from(self.args.bots)).map(|n| PlayerRow {
            name: BOT_NAMES[n % BOT_NAMES.len()].to_owned(),
            score: 0,
            duration: uptime,
        });
        humans.chain(bots).collect()
    }

    fn send(&self, header: &[u8], body: &[u8], peer: SocketAddr) {
        // Like srcds, a reply that cannot be sent is dropped; the client asks again.
        let _ = self.socket.send_to(&[header, body].concat(), peer);
    }
}

/// The console as RCON sees it, for one round of [`RconServer::service`].
struct RconHost<'a> {
    console: &'a mut Console,
    world: World<'a>,
    log: &'a mut Log,
}

impl rcon::Host for RconHost<'_> {
    fn settings(&self) -> rcon::Settings {
        self.console.rcon_settings()
    }

    fn execute(&mut self, line: &str) -> rcon::Executed {
        let executed = self.console.execute(line, &self.world);
        for event in self.console.events.drain(..) {
            self.log.line(&event);
        }
        executed
    }

    fn value(&self, name: &str) -> Option<String> {
        self.console.value(name, &self.world)
    }

    fn log(&mut self, line: &str) {
        self.log.line(line);
    }
}

/// Wait up to `wait` for the descriptors given (`None` ones are left out; `true` also waits to
/// write); returns which are ready, in the same order.
fn poll(fds: &[(Option<i32>, bool)], wait: Duration) -> anyhow::Result<Vec<bool>> {
    let mut entries: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, write)| libc::pollfd {
            // A negative fd is skipped by poll(2).
            fd: fd.unwrap_or(-1),
            events: if write {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            },
            revents: 0,
        })
        .collect();
    let millis = wait.as_millis().clamp(1, 1000) as libc::c_int;
    // SAFETY: `entries` is a valid array of initialised pollfd structs, as long as the length
    // passed, that outlives the call.
    let n = unsafe { libc::poll(entries.as_mut_ptr(), entries.len() as libc::nfds_t, millis) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err).context("poll failed");
    }
    Ok(entries.iter().map(|e| e.revents != 0).collect())
}
