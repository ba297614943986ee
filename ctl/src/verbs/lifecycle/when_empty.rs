//! `restart NAME… --when-empty` and `stop NAME… --when-empty`: wait until nobody plays on each
//! instance (its A2S player count, bots not counted, is 0), then restart or stop it as
//! `restart`/`stop` do — each on its own as soon as it is empty. The loop is
//! [`crate::rollout::Waiting`], the one `game update --restart when-empty` uses; this module
//! is its view of the host ([`UnitFleet`]) and what the operator sees.
//!
//! Poll interval: [`POLL`] (250 ms). One A2S_INFO query on loopback is four datagrams (request,
//! challenge, request, answer) and a few microseconds of the game's time between two frames;
//! 4 queries a second per waiting instance cost nothing measurable, while the reaction after
//! the last player leaves is at most one interval plus one query — a quarter of the second we
//! allow, so the restart itself still starts well within it.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use left4me_spec::{Catalog, Duration as SpecDuration};

use super::{Starting, start_units, stop_units};
use crate::Ctx;
use crate::change::{SpecKind, missing};
use crate::error::UsageError;
use crate::output::{emit, format_span};
use crate::rollout::{
    Action, AtDeadline, Candidate, Event, Fleet, Outcome, Players, Running, Waiting,
};
use crate::systemd::{self, unit_name};
use crate::verbs::players::{humans, query_infos};
use crate::verbs::rcon::Target;

/// How often waiting instances are asked for their players (see the module's doc).
pub const POLL: Duration = Duration::from_millis(250);
/// How long one player count may take before the instance counts as not answering; short, so
/// that one hung instance does not hold up the others' reaction.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an announcement over RCON may take (connect, auth, the `say`).
const RCON_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest announcement: srcds cuts chat lines at 127 characters.
const MAX_ANNOUNCE: usize = 127;

/// Exit status: `--max-wait` passed and an instance was acted on with players still on it.
pub const EXIT_FORCED: u8 = 3;
/// Exit status: `--max-wait --or-skip` passed and an instance was left as it was.
pub const EXIT_SKIPPED: u8 = 4;

/// `--when-empty [--max-wait D] [--announce MSG] [--or-skip]`, checked.
#[derive(Debug, Clone)]
pub struct WhenEmpty {
    pub max_wait: Duration,
    pub at_deadline: AtDeadline,
    pub announce: Option<String>,
}

impl WhenEmpty {
    /// Checks the options; `Ok(None)` without `--when-empty`.
    pub fn from_args(args: &crate::cli::WhenEmptyArgs) -> Result<Option<Self>, UsageError> {
        if !args.when_empty {
            return Ok(None);
        }
        let max_wait = match &args.max_wait {
            None => Duration::MAX,
            Some(text) => {
                let span = SpecDuration::parse(text)
                    .map_err(|e| UsageError::new(format!("--max-wait: {e}")))?;
                span.as_micros()
                    .map_or(Duration::MAX, Duration::from_micros)
            }
        };
        if let Some(message) = &args.announce {
            check_announcement(message)?;
            if !rustix::process::geteuid().is_root() {
                return Err(UsageError::new(
                    "--announce reads the instances' RCON passwords, which only root may read: \
                     run it as root (sudo)",
                ));
            }
        }
        Ok(Some(WhenEmpty {
            max_wait,
            at_deadline: if args.or_skip {
                AtDeadline::Leave
            } else {
                AtDeadline::Act
            },
            announce: args.announce.clone(),
        }))
    }
}

/// The announcement goes into the game's console as `say "MSG"`: a `"` would end the quoted
/// text early (and let the rest run as commands after a `;`), a control character would end
/// the line.
fn check_announcement(message: &str) -> Result<(), UsageError> {
    if message.trim().is_empty() {
        return Err(UsageError::new("--announce: the message is empty"));
    }
    if message.chars().any(|c| c == '"' || c.is_control()) {
        return Err(UsageError::new(
            "--announce: the message may not contain '\"' or control characters (it is said \
             with `say \"MSG\"` in the game's console); use ' instead",
        ));
    }
    if message.len() > MAX_ANNOUNCE {
        return Err(UsageError::new(format!(
            "--announce: the message is {} bytes; the game shows at most {MAX_ANNOUNCE}",
            message.len()
        )));
    }
    Ok(())
}

/// The instances named on the command line, as the waiting loop sees them: their units, their
/// games' answers on the loopback address, `restart`/`stop` as the verbs do, `say` over RCON.
struct UnitFleet<'a> {
    ctx: &'a Ctx,
    ports: BTreeMap<String, u16>,
    /// A progress line is on the terminal (cleared before the verbs print).
    progress: &'a std::cell::Cell<bool>,
}

/// Clears the progress line, if one is on the terminal.
fn clear_progress(progress: &std::cell::Cell<bool>) {
    if progress.replace(false) {
        eprint!("\r\x1b[K");
    }
}

impl Fleet for UnitFleet<'_> {
    fn running(&mut self) -> anyhow::Result<Vec<Running>> {
        let names: Vec<String> = self.ports.keys().cloned().collect();
        Ok(active(&names)?
            .into_iter()
            .zip(&names)
            .filter(|(active, _)| *active)
            .map(|(_, name)| Running::named(name))
            .collect())
    }

    fn players(&mut self, names: &[String]) -> anyhow::Result<Vec<Players>> {
        let ports: Vec<u16> = names.iter().map(|n| self.ports[n]).collect();
        let mut players: Vec<Players> = query_infos(&ports, QUERY_TIMEOUT)
            .into_iter()
            .map(|answer| answer.map_or(Players::NoAnswer, |info| Players::Count(humans(&info))))
            .collect();
        // Only those that did not answer may have stopped: one `systemctl show` for them.
        let silent: Vec<usize> = (0..names.len())
            .filter(|&i| players[i] == Players::NoAnswer)
            .collect();
        if !silent.is_empty() {
            let units: Vec<String> = silent.iter().map(|&i| unit_name(&names[i])).collect();
            for (&i, state) in silent.iter().zip(systemd::show(&units)?) {
                if matches!(state.active_state.as_str(), "inactive" | "failed") {
                    players[i] = Players::NotRunning;
                }
            }
        }
        Ok(players)
    }

    fn act(&mut self, name: &str, action: Action) -> anyhow::Result<()> {
        clear_progress(self.progress);
        let names = [name.to_owned()];
        match action {
            Action::Restart => {
                // Deliberate, as the rollout's: not to use up the unit's start limit
                // (StartLimitBurst=), which `reset-failed` re-arms.
                systemd::systemctl(&["reset-failed", &unit_name(name)])?;
                start_units(self.ctx, &names, Starting::Restart)?
            }
            Action::Stop => stop_units(self.ctx, &names)?,
        };
        Ok(())
    }

    fn announce(&mut self, name: &str, message: &str) -> anyhow::Result<()> {
        say(self.ctx, name, message)
    }
}

/// Whether each unit of `names` is active.
pub fn active(names: &[String]) -> anyhow::Result<Vec<bool>> {
    let units: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
    Ok(systemd::show(&units)?
        .iter()
        .map(|state| state.active_state == "active")
        .collect())
}

/// `say "MESSAGE"` on instance `name`'s console, over RCON (the `rcon` verb's connection:
/// its port on the loopback address, the password root keeps).
fn say(ctx: &Ctx, name: &str, message: &str) -> anyhow::Result<()> {
    let target = Target::resolve(ctx, "restart|stop --announce", name, RCON_TIMEOUT)?;
    target
        .connect()?
        .exec(&format!("say \"{message}\""))
        .map_err(|err| target.explain(err))?;
    Ok(())
}

/// Seconds, rounded up: `(1s left)` until the time is over.
fn whole_secs(span: Duration) -> u64 {
    span.as_millis().div_ceil(1000) as u64
}

/// What the operator sees while the loop runs: on a terminal one progress line, redrawn
/// (`coop1: 2 players, waiting (3min 12s left)`); otherwise one line per change.
struct Printer<'a> {
    terminal: bool,
    progress: &'a std::cell::Cell<bool>,
    /// The instances waited for, and what each last said.
    waiting: BTreeMap<String, (Option<u8>, Option<Duration>)>,
}

impl Printer<'_> {
    fn describe(players: Option<u8>) -> String {
        match players {
            Some(1) => "1 player".into(),
            Some(n) => format!("{n} players"),
            None => "not answering queries".into(),
        }
    }

    fn line(&mut self, text: &str) {
        clear_progress(self.progress);
        let _ = emit(&format!("{text}\n"));
    }

    fn redraw(&mut self) {
        let parts: Vec<String> = self
            .waiting
            .iter()
            .map(|(name, (players, _))| format!("{name}: {}", Self::describe(*players)))
            .collect();
        let left = self
            .waiting
            .values()
            .filter_map(|(_, left)| *left)
            .min()
            .map_or(String::new(), |l| {
                format!(" ({} left)", format_span(whole_secs(l)))
            });
        eprint!("\r{}, waiting{left}\x1b[K", parts.join("; "));
        let _ = std::io::stderr().flush();
        self.progress.set(true);
    }

    fn event(&mut self, action: Action, event: &Event) {
        match event {
            Event::Busy {
                name,
                players,
                left,
            } => {
                let before = self.waiting.insert(name.clone(), (*players, *left));
                if self.terminal {
                    self.redraw();
                } else if before.map(|(p, _)| p) != Some(*players) {
                    let left = left.map_or(String::new(), |l| {
                        format!(" ({} left)", format_span(whole_secs(l)))
                    });
                    self.line(&format!(
                        "{name}: {}, waiting{left}",
                        Self::describe(*players)
                    ));
                }
            }
            Event::Announced { name, again } => {
                let when = if *again { " again" } else { "" };
                self.line(&format!("{name}: announced{when}"));
            }
            Event::Warning { text, .. } => {
                clear_progress(self.progress);
                eprintln!("warning: {text}");
            }
            Event::Acted { name, forced, .. } => {
                self.waiting.remove(name);
                if *forced {
                    self.line(&format!(
                        "{name}: {} after --max-wait although players were still on it",
                        action.past()
                    ));
                }
            }
            Event::Dropped { name } => {
                self.waiting.remove(name);
                self.line(&format!("{name}: no longer running: left alone"));
            }
            Event::Failed { name, error } => {
                self.waiting.remove(name);
                clear_progress(self.progress);
                eprintln!("{name} did not {}: {error}", action.verb());
            }
        }
    }
}

/// Waits for each of `names` to empty, then `action`s it. `if_running`: instances that are
/// not active are left alone (before and during the wait). Returns the exit status.
pub fn run(
    ctx: &Ctx,
    catalog: &Catalog,
    names: &[String],
    action: Action,
    when: &WhenEmpty,
    if_running: bool,
) -> anyhow::Result<u8> {
    let mut ports = BTreeMap::new();
    for name in names {
        match catalog.get(name) {
            Some(Ok(instance)) => ports.insert(name.clone(), instance.port),
            Some(Err(err)) => {
                return Err(anyhow::Error::new(err.clone()).context(format!(
                    "cannot wait for {name} to empty: its spec is invalid, so its port is \
                     unknown; fix it with `left4mectl edit {name}`, or {} it without --when-empty",
                    action.verb()
                )));
            }
            None => {
                let file = catalog.layout.instance_file(name);
                return Err(missing(SpecKind::Instance, name, &file).into());
            }
        };
    }
    let progress = std::cell::Cell::new(false);
    let mut fleet = UnitFleet {
        ctx,
        ports,
        progress: &progress,
    };
    let waiting = Waiting {
        action,
        max_wait: when.max_wait,
        poll: POLL,
        at_deadline: when.at_deadline,
        announce: when.announce.clone(),
        act_on_stopped: !if_running,
    };
    let mut printer = Printer {
        terminal: std::io::stderr().is_terminal(),
        progress: &progress,
        waiting: BTreeMap::new(),
    };
    let mut select = |_: &mut dyn Fleet, outcome: &Outcome| -> anyhow::Result<Vec<Candidate>> {
        Ok(names
            .iter()
            .filter(|n| !outcome.acted.contains(n))
            .map(|n| Candidate {
                running: Running::named(n),
                wait: true,
            })
            .collect())
    };
    let outcome = waiting.run(&mut fleet, &mut select, &mut |e| printer.event(action, e))?;
    if progress.get() {
        eprintln!();
    }
    for left in &outcome.left {
        let players = Printer::describe(left.players);
        emit(&format!(
            "{}: {players} after --max-wait: not {} (--or-skip)\n",
            left.name,
            action.past()
        ))?;
    }
    if !outcome.failed.is_empty() {
        return Err(anyhow::anyhow!(
            "{} of {} instances did not {} (see above)",
            outcome.failed.len(),
            names.len(),
            action.verb()
        ));
    }
    Ok(if !outcome.left.is_empty() {
        EXIT_SKIPPED
    } else if !outcome.forced.is_empty() {
        EXIT_FORCED
    } else {
        crate::error::EXIT_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_cannot_break_out_of_say() {
        assert!(check_announcement("Restart in 5 minutes; sorry!").is_ok());
        assert!(check_announcement("a\" ; quit").is_err());
        assert!(check_announcement("two\nlines").is_err());
        assert!(check_announcement("  ").is_err());
        assert!(check_announcement(&"x".repeat(MAX_ANNOUNCE + 1)).is_err());
    }

    #[test]
    fn a_poll_reacts_well_within_a_second() {
        assert!(POLL + QUERY_TIMEOUT < Duration::from_secs(1));
    }
}
