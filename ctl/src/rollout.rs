//! Moving running instances onto a new game version (`left4mectl game update --restart …`).
//!
//! An instance keeps the version it was started on until it restarts (DESIGN §8), so an update
//! costs a player nothing until the instance restarts. The rollout decides when that is:
//!
//! - `when-empty`: each instance that runs an older version than a start would mount now is
//!   restarted as soon as its A2S player count (humans; bots do not count) is 0 — an instance that
//!   does not answer is asked again, not restarted — one instance at a time; the others are asked again every [`Rollout::poll`] until [`Rollout::max_wait`] has
//!   passed, after which they are reported as still on the old version.
//! - `now`: every such instance is restarted, one after the other.
//! - `never`: none is; each moves at its next restart.
//!
//! The steps that touch the host (which instances run what, counting players, restarting) are
//! the [`Fleet`] trait, so the decisions are tested without systemd.

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
    fn behind(&self) -> bool {
        self.version != self.target
    }
}

/// The host, as the rollout sees it.
pub trait Fleet {
    /// The instances whose units are active, with their running and target versions.
    fn running(&mut self) -> anyhow::Result<Vec<Running>>;
    /// The human players on `name` now (A2S_INFO players minus bots); `None` when it does not
    /// answer.
    fn players(&mut self, name: &str) -> anyhow::Result<Option<u8>>;
    /// Restarts `name` and waits until its game answers again.
    fn restart(&mut self, name: &str) -> anyhow::Result<()>;
}

/// What happened to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// It was restarted onto `to`, which took `downtime` (stop + start).
    Moved {
        name: String,
        from: Option<String>,
        to: Option<String>,
        downtime: Duration,
    },
    /// It has players (`None`: it did not answer); it is asked again later.
    Busy { name: String, players: Option<u8> },
    /// Its restart failed.
    Failed { name: String, error: String },
}

/// An instance left on an old version, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub name: String,
    pub version: Option<String>,
    pub target: Option<String>,
    /// Its players when last asked (`None`: not asked, or it did not answer).
    pub players: Option<u8>,
}

/// The end of a rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub moved: Vec<String>,
    pub failed: Vec<String>,
    /// Still on an older version (with players, or the policy was `never`).
    pub behind: Vec<Behind>,
}

/// One rollout's settings.
#[derive(Debug, Clone, Copy)]
pub struct Rollout {
    pub policy: RestartPolicy,
    /// How long `when-empty` waits for busy instances to empty.
    pub max_wait: Duration,
    /// How often busy instances are asked again.
    pub poll: Duration,
}

impl Rollout {
    /// Carries out the rollout; `event` hears each step as it happens.
    pub fn run(
        &self,
        fleet: &mut dyn Fleet,
        event: &mut dyn FnMut(&Event),
    ) -> anyhow::Result<Outcome> {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        let mut last_players = std::collections::BTreeMap::new();
        loop {
            let pending: Vec<Running> = fleet
                .running()?
                .into_iter()
                .filter(|r| r.behind() && !outcome.failed.contains(&r.name))
                .collect();
            if pending.is_empty() || self.policy == RestartPolicy::Never {
                outcome.behind = behind(pending, &last_players);
                return Ok(outcome);
            }
            let mut busy = false;
            for instance in &pending {
                // Restarted once already and still behind: a restart does not move it.
                if outcome.moved.contains(&instance.name) {
                    event(&Event::Failed {
                        name: instance.name.clone(),
                        error: "it still runs the old version after its restart".into(),
                    });
                    outcome.failed.push(instance.name.clone());
                    continue;
                }
                if self.policy == RestartPolicy::WhenEmpty {
                    let players = fleet.players(&instance.name)?;
                    last_players.insert(instance.name.clone(), players);
                    // One that does not answer may be changing maps with players on it.
                    if players != Some(0) {
                        busy = true;
                        event(&Event::Busy {
                            name: instance.name.clone(),
                            players,
                        });
                        continue;
                    }
                }
                let begun = Instant::now();
                match fleet.restart(&instance.name) {
                    Ok(()) => {
                        event(&Event::Moved {
                            name: instance.name.clone(),
                            from: instance.version.clone(),
                            to: instance.target.clone(),
                            downtime: begun.elapsed(),
                        });
                        outcome.moved.push(instance.name.clone());
                    }
                    Err(err) => {
                        event(&Event::Failed {
                            name: instance.name.clone(),
                            error: format!("{err:#}"),
                        });
                        outcome.failed.push(instance.name.clone());
                    }
                }
            }
            // Nobody had to wait: look again at once (done, unless something changed).
            if !busy {
                continue;
            }
            if started.elapsed() >= self.max_wait {
                let left = fleet
                    .running()?
                    .into_iter()
                    .filter(|r| r.behind() && !outcome.failed.contains(&r.name))
                    .collect();
                outcome.behind = behind(left, &last_players);
                return Ok(outcome);
            }
            std::thread::sleep(
                self.poll
                    .min(self.max_wait.saturating_sub(started.elapsed())),
            );
        }
    }
}

fn behind(
    pending: Vec<Running>,
    players: &std::collections::BTreeMap<String, Option<u8>>,
) -> Vec<Behind> {
    pending
        .into_iter()
        .map(|r| Behind {
            players: players.get(&r.name).copied().flatten(),
            name: r.name,
            version: r.version,
            target: r.target,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Instances with scripted player counts: each `players` call pops the next count.
    #[derive(Default)]
    struct Scripted {
        versions: BTreeMap<String, Option<String>>,
        target: Option<String>,
        players: BTreeMap<String, Vec<u8>>,
        restarts: Vec<String>,
        broken: Vec<String>,
        /// Restart fine, but keep running the old version.
        stuck: Vec<String>,
    }

    impl Scripted {
        fn new(target: &str, instances: &[(&str, &str, &[u8])]) -> Self {
            let mut s = Scripted {
                target: Some(target.to_owned()),
                ..Default::default()
            };
            for (name, version, players) in instances {
                s.versions
                    .insert((*name).to_owned(), Some((*version).to_owned()));
                s.players.insert((*name).to_owned(), players.to_vec());
            }
            s
        }
    }

    impl Fleet for Scripted {
        fn running(&mut self) -> anyhow::Result<Vec<Running>> {
            Ok(self
                .versions
                .iter()
                .map(|(name, version)| Running {
                    name: name.clone(),
                    version: version.clone(),
                    target: self.target.clone(),
                })
                .collect())
        }
        fn players(&mut self, name: &str) -> anyhow::Result<Option<u8>> {
            let counts = self.players.get_mut(name).unwrap();
            Ok(Some(if counts.len() > 1 {
                counts.remove(0)
            } else {
                counts[0]
            }))
        }
        fn restart(&mut self, name: &str) -> anyhow::Result<()> {
            self.restarts.push(name.to_owned());
            if self.broken.iter().any(|b| b == name) {
                anyhow::bail!("{name} did not start");
            }
            if !self.stuck.iter().any(|s| s == name) {
                self.versions.insert(name.to_owned(), self.target.clone());
            }
            Ok(())
        }
    }

    fn rollout(policy: RestartPolicy, max_wait_ms: u64) -> Rollout {
        Rollout {
            policy,
            max_wait: Duration::from_millis(max_wait_ms),
            poll: Duration::from_millis(1),
        }
    }

    #[test]
    fn a_rollout_with_nobody_to_wait_for_ends_without_polling() {
        let mut fleet = Scripted::new("B", &[("a", "A", &[0]), ("b", "A", &[0])]);
        let slow = Rollout {
            poll: Duration::from_secs(3600),
            ..rollout(RestartPolicy::WhenEmpty, 3_600_000)
        };
        let started = std::time::Instant::now();
        let (outcome, _) = run(slow, &mut fleet);
        assert_eq!(outcome.moved, ["a", "b"]);
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    fn run(r: Rollout, fleet: &mut Scripted) -> (Outcome, Vec<Event>) {
        let mut events = Vec::new();
        let outcome = r.run(fleet, &mut |e| events.push(e.clone())).unwrap();
        (outcome, events)
    }

    #[test]
    fn when_empty_moves_the_empty_instance_at_once_and_the_busy_one_when_it_empties() {
        let mut fleet = Scripted::new("B", &[("one", "A", &[2, 2, 1, 0]), ("two", "A", &[0])]);
        let (outcome, events) = run(rollout(RestartPolicy::WhenEmpty, 10_000), &mut fleet);
        assert_eq!(fleet.restarts, ["two", "one"]);
        assert_eq!(outcome.moved, ["two", "one"]);
        assert!(outcome.behind.is_empty());
        assert!(matches!(&events[0], Event::Busy { name, players: Some(2) } if name == "one"));
        assert!(matches!(&events[1], Event::Moved { name, .. } if name == "two"));
    }

    #[test]
    fn when_empty_reports_who_is_still_on_the_old_version_after_max_wait() {
        let mut fleet = Scripted::new("B", &[("one", "A", &[3]), ("two", "B", &[0])]);
        let (outcome, _) = run(rollout(RestartPolicy::WhenEmpty, 20), &mut fleet);
        assert!(fleet.restarts.is_empty(), "{:?}", fleet.restarts);
        assert_eq!(
            outcome.behind,
            [Behind {
                name: "one".into(),
                version: Some("A".into()),
                target: Some("B".into()),
                players: Some(3),
            }]
        );
    }

    #[test]
    fn now_restarts_every_instance_behind_one_by_one_and_never_restarts_none() {
        let mut fleet = Scripted::new("B", &[("a", "A", &[5]), ("b", "A", &[1]), ("c", "B", &[0])]);
        let (outcome, _) = run(rollout(RestartPolicy::Now, 0), &mut fleet);
        assert_eq!(fleet.restarts, ["a", "b"]);
        assert_eq!(outcome.moved, ["a", "b"]);

        let mut fleet = Scripted::new("B", &[("a", "A", &[0])]);
        let (outcome, _) = run(rollout(RestartPolicy::Never, 0), &mut fleet);
        assert!(fleet.restarts.is_empty());
        assert_eq!(outcome.behind.len(), 1);
    }

    #[test]
    fn an_instance_a_restart_does_not_move_fails_instead_of_looping() {
        let mut fleet = Scripted::new("B", &[("a", "A", &[0])]);
        fleet.stuck.push("a".into());
        let (outcome, _) = run(rollout(RestartPolicy::Now, 0), &mut fleet);
        assert_eq!(fleet.restarts, ["a"]);
        assert_eq!(outcome.failed, ["a"]);
    }

    #[test]
    fn a_failed_restart_is_reported_once_and_not_retried() {
        let mut fleet = Scripted::new("B", &[("a", "A", &[0]), ("b", "A", &[0])]);
        fleet.broken.push("a".into());
        let (outcome, events) = run(rollout(RestartPolicy::WhenEmpty, 50), &mut fleet);
        assert_eq!(fleet.restarts, ["a", "b"]);
        assert_eq!(outcome.failed, ["a"]);
        assert_eq!(outcome.moved, ["b"]);
        assert!(matches!(&events[0], Event::Failed { name, .. } if name == "a"));
    }
}
