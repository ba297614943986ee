//! Waiting for instances to empty, then acting on each: the one loop behind `game update
//! --restart …` (moving running instances onto a new game version) and `restart|stop NAME…
//! --when-empty`.
//!
//! [`Waiting::run`] is the loop. Each round it asks a selection who is still to be acted on,
//! asks the A2S player count (humans; bots do not count) of all of them at once, and acts on
//! the first one that is empty — then looks again at once, because acting (a restart waits for
//! the game to answer again) takes seconds in which the other counts go stale. An instance that
//! does not answer is not empty (it may be changing maps with players on it): it is asked
//! again. Instances with players are asked again every [`Waiting::poll`] until
//! [`Waiting::max_wait`] has passed; then each is acted on anyway ([`AtDeadline::Act`], after
//! the announcement is said again) or left as it is ([`AtDeadline::Leave`]).
//!
//! [`Rollout`] is the game update's use of it:
//!
//! - `when-empty`: each instance that runs an older version than a start would mount now is
//!   restarted as soon as it is empty; after `max_wait`, those still busy are reported as still
//!   on the old version.
//! - `now`: every such instance is restarted, one after the other.
//! - `never`: none is; each moves at its next restart.
//!
//! The steps that touch the host (which instances run what, counting players, acting, saying
//! something to the players) are the [`Fleet`] trait, so the decisions are tested without
//! systemd.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// When instances move onto a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartPolicy {
    /// Restart each instance as soon as nobody plays on it
    WhenEmpty,
    /// Restart every instance now, one by one
    Now,
    /// Restart none; each moves at its next restart
    Never,
}

/// A running instance and the version it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    /// The version it mounted (`None`: the hand-installed `installation/`).
    pub version: Option<String>,
    /// The version a start would mount now.
    pub target: Option<String>,
}

impl Running {
    /// An instance known by name only (`restart|stop --when-empty` care for no version).
    pub fn named(name: &str) -> Self {
        Running {
            name: name.to_owned(),
            version: None,
            target: None,
        }
    }

    fn behind(&self) -> bool {
        self.version != self.target
    }
}

/// An instance's players, as the fleet sees them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Players {
    /// The human players (A2S_INFO's players minus its bots).
    Count(u8),
    /// Its unit is active (or starting) but the game does not answer A2S_INFO.
    NoAnswer,
    /// Its unit is not active: nobody can be on it.
    NotRunning,
}

impl Players {
    /// The count, `None` when there is none to tell.
    pub fn count(self) -> Option<u8> {
        match self {
            Players::Count(n) => Some(n),
            _ => None,
        }
    }
}

/// What is done to an instance once it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Restart it (a stopped one is started) and wait until the game answers.
    Restart,
    /// Stop it (and disable it, as `left4mectl stop` does).
    Stop,
}

impl Action {
    /// `restart`, `stop`.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
        }
    }

    /// `restarted`, `stopped`.
    pub fn past(self) -> &'static str {
        match self {
            Action::Restart => "restarted",
            Action::Stop => "stopped",
        }
    }
}

/// What happens to an instance that still has players when `max_wait` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtDeadline {
    /// It is acted on anyway (the announcement, if any, is said again first).
    Act,
    /// It is left as it is ([`Outcome::left`]).
    Leave,
}

/// The host, as the waiting loop sees it.
pub trait Fleet {
    /// The instances whose units are active, with their running and target versions.
    fn running(&mut self) -> anyhow::Result<Vec<Running>>;
    /// The players of each of `names`, in order, asked all at once.
    fn players(&mut self, names: &[String]) -> anyhow::Result<Vec<Players>>;
    /// Carries out `action` on `name` and waits for its outcome.
    fn act(&mut self, name: &str, action: Action) -> anyhow::Result<()>;
    /// Says `message` to the players of `name` (`say` over RCON).
    fn announce(&mut self, name: &str, message: &str) -> anyhow::Result<()>;
}

/// An instance still to be acted on, as one round's selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub running: Running,
    /// Wait until it is empty (`false`: act at once, `game update --restart now`).
    pub wait: bool,
}

/// What happened to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// It was acted on, which took `downtime`; `forced`: `max_wait` had passed and it still
    /// had players (or did not answer).
    Acted {
        name: String,
        action: Action,
        from: Option<String>,
        to: Option<String>,
        downtime: Duration,
        forced: bool,
    },
    /// It has players (`None`: it did not answer); it is asked again later. `left`: the time
    /// until `max_wait` has passed (`None`: no limit).
    Busy {
        name: String,
        players: Option<u8>,
        left: Option<Duration>,
    },
    /// The announcement was said on it (`again`: right before a forced act).
    Announced { name: String, again: bool },
    /// Something went wrong that does not stop the wait (an announcement that failed).
    Warning { name: String, text: String },
    /// It no longer needs acting on (stopped, or its target changed, meanwhile).
    Dropped { name: String },
    /// Acting on it failed.
    Failed { name: String, error: String },
}

/// An instance left as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub name: String,
    pub version: Option<String>,
    pub target: Option<String>,
    /// Its players when last asked (`None`: not asked, or it did not answer).
    pub players: Option<u8>,
}

/// The end of a wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Acted on, in order (the forced ones too).
    pub acted: Vec<String>,
    /// Acted on although they still had players after `max_wait`.
    pub forced: Vec<String>,
    pub failed: Vec<String>,
    /// Left as they were: still busy after `max_wait` with [`AtDeadline::Leave`], or the
    /// policy was `never`.
    pub left: Vec<Behind>,
    /// No longer selected before they were acted on.
    pub dropped: Vec<String>,
}

impl Outcome {
    fn done(&self, name: &str) -> bool {
        self.failed.iter().any(|n| n == name)
            || self.left.iter().any(|b| b.name == name)
            || self.dropped.iter().any(|n| n == name)
    }
}

/// How a wait goes.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub action: Action,
    /// How long to wait for busy instances to empty (`Duration::MAX`: for ever).
    pub max_wait: Duration,
    /// How often busy instances are asked again.
    pub poll: Duration,
    pub at_deadline: AtDeadline,
    /// Said to each instance the first time it is found with players, and again right before
    /// a forced act.
    pub announce: Option<String>,
    /// Act on an instance found not running (`restart` starts it, `stop` disables it) instead
    /// of dropping it.
    pub act_on_stopped: bool,
}

/// One round's selection: the instances still to be acted on, given what was done so far.
pub type Select<'a> = dyn FnMut(&mut dyn Fleet, &Outcome) -> anyhow::Result<Vec<Candidate>> + 'a;

impl Waiting {
    /// Waits and acts until `select` has no one left; `event` hears each step as it happens.
    pub fn run(
        &self,
        fleet: &mut dyn Fleet,
        select: &mut Select<'_>,
        event: &mut dyn FnMut(&Event),
    ) -> anyhow::Result<Outcome> {
        let deadline = Instant::now().checked_add(self.max_wait);
        let mut outcome = Outcome::default();
        let mut last_players: BTreeMap<String, Option<u8>> = BTreeMap::new();
        let mut announced: BTreeSet<String> = BTreeSet::new();
        let mut selected: BTreeSet<String> = BTreeSet::new();
        'round: loop {
            let candidates: Vec<Candidate> = select(fleet, &outcome)?
                .into_iter()
                .filter(|c| !outcome.done(&c.running.name))
                .collect();
            let now: BTreeSet<String> = candidates.iter().map(|c| c.running.name.clone()).collect();
            for gone in selected.difference(&now) {
                if !outcome.acted.contains(gone) && !outcome.done(gone) {
                    event(&Event::Dropped { name: gone.clone() });
                    outcome.dropped.push(gone.clone());
                }
            }
            selected = now;
            if candidates.is_empty() {
                return Ok(outcome);
            }
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let asked: Vec<String> = candidates
                .iter()
                .filter(|c| c.wait && !outcome.acted.contains(&c.running.name))
                .map(|c| c.running.name.clone())
                .collect();
            let counts: BTreeMap<String, Players> = if asked.is_empty() {
                BTreeMap::new()
            } else {
                asked.iter().cloned().zip(fleet.players(&asked)?).collect()
            };
            let mut busy = false;
            for candidate in &candidates {
                let name = &candidate.running.name;
                // Acted on once already and still selected: acting does not change it.
                if outcome.acted.contains(name) {
                    event(&Event::Failed {
                        name: name.clone(),
                        error: format!(
                            "it still runs the old version after its {}",
                            self.action.verb()
                        ),
                    });
                    outcome.failed.push(name.clone());
                    continue;
                }
                let mut forced = false;
                if candidate.wait {
                    let players = counts.get(name).copied().unwrap_or(Players::NoAnswer);
                    last_players.insert(name.clone(), players.count());
                    if players == Players::NotRunning && !self.act_on_stopped {
                        event(&Event::Dropped { name: name.clone() });
                        outcome.dropped.push(name.clone());
                        continue;
                    }
                    if !matches!(players, Players::Count(0) | Players::NotRunning) {
                        if !expired {
                            busy = true;
                            // Said to players who can read it: not to a game that does
                            // not answer (a hung one would hold the loop for a timeout).
                            if matches!(players, Players::Count(_))
                                && announced.insert(name.clone())
                            {
                                self.say(fleet, name, false, event);
                            }
                            event(&Event::Busy {
                                name: name.clone(),
                                players: players.count(),
                                left,
                            });
                            continue;
                        }
                        if self.at_deadline == AtDeadline::Leave {
                            outcome.left.push(behind(candidate, &last_players));
                            continue;
                        }
                        forced = true;
                        self.say(fleet, name, true, event);
                    }
                }
                self.act(fleet, &candidate.running, forced, &mut outcome, event);
                // Acting took time: the other counts are stale, ask again at once.
                continue 'round;
            }
            if busy {
                let rest = deadline.map_or(self.poll, |d| {
                    self.poll.min(d.saturating_duration_since(Instant::now()))
                });
                std::thread::sleep(rest);
            }
        }
    }

    /// Says the announcement, if any, on `name`; a failure is a warning.
    fn say(&self, fleet: &mut dyn Fleet, name: &str, again: bool, event: &mut dyn FnMut(&Event)) {
        let Some(message) = &self.announce else {
            return;
        };
        match fleet.announce(name, message) {
            Ok(()) => event(&Event::Announced {
                name: name.to_owned(),
                again,
            }),
            Err(err) => event(&Event::Warning {
                name: name.to_owned(),
                text: format!("cannot announce on {name}: {err:#}"),
            }),
        }
    }

    fn act(
        &self,
        fleet: &mut dyn Fleet,
        instance: &Running,
        forced: bool,
        outcome: &mut Outcome,
        event: &mut dyn FnMut(&Event),
    ) {
        let name = &instance.name;
        let begun = Instant::now();
        match fleet.act(name, self.action) {
            Ok(()) => {
                event(&Event::Acted {
                    name: name.clone(),
                    action: self.action,
                    from: instance.version.clone(),
                    to: instance.target.clone(),
                    downtime: begun.elapsed(),
                    forced,
                });
                outcome.acted.push(name.clone());
                if forced {
                    outcome.forced.push(name.clone());
                }
            }
            Err(err) => {
                event(&Event::Failed {
                    name: name.clone(),
                    error: format!("{err:#}"),
                });
                outcome.failed.push(name.clone());
            }
        }
    }
}

fn behind(candidate: &Candidate, players: &BTreeMap<String, Option<u8>>) -> Behind {
    let r = &candidate.running;
    Behind {
        players: players.get(&r.name).copied().flatten(),
        name: r.name.clone(),
        version: r.version.clone(),
        target: r.target.clone(),
    }
}

/// One rollout's settings: `game update --restart POLICY --max-wait D`.
#[derive(Debug, Clone, Copy)]
pub struct Rollout {
    pub policy: RestartPolicy,
    /// How long `when-empty` waits for busy instances to empty.
    pub max_wait: Duration,
    /// How often busy instances are asked again.
    pub poll: Duration,
}

impl Rollout {
    /// Carries out the rollout; `event` hears each step as it happens. Instances still on an
    /// older version at the end are in [`Outcome::left`].
    pub fn run(
        &self,
        fleet: &mut dyn Fleet,
        event: &mut dyn FnMut(&Event),
    ) -> anyhow::Result<Outcome> {
        let behind_now = |fleet: &mut dyn Fleet| -> anyhow::Result<Vec<Running>> {
            Ok(fleet
                .running()?
                .into_iter()
                .filter(Running::behind)
                .collect())
        };
        if self.policy == RestartPolicy::Never {
            return Ok(Outcome {
                left: behind_now(fleet)?
                    .iter()
                    .map(|r| {
                        let candidate = Candidate {
                            running: r.clone(),
                            wait: false,
                        };
                        behind(&candidate, &BTreeMap::new())
                    })
                    .collect(),
                ..Outcome::default()
            });
        }
        let wait = self.policy == RestartPolicy::WhenEmpty;
        let waiting = Waiting {
            action: Action::Restart,
            max_wait: self.max_wait,
            poll: self.poll,
            at_deadline: AtDeadline::Leave,
            announce: None,
            act_on_stopped: false,
        };
        // Specs and mounts are read again each round: a pin changed meanwhile counts.
        let mut select = |fleet: &mut dyn Fleet, _: &Outcome| -> anyhow::Result<Vec<Candidate>> {
            Ok(behind_now(fleet)?
                .into_iter()
                .map(|running| Candidate { running, wait })
                .collect())
        };
        waiting.run(fleet, &mut select, event)
    }
}

#[cfg(test)]
mod tests;
