//! The waiting loop's decisions against a scripted fleet.

use super::*;

/// Instances with scripted player counts: each `players` call pops the next count.
#[derive(Default)]
struct Scripted {
    versions: BTreeMap<String, Option<String>>,
    target: Option<String>,
    players: BTreeMap<String, Vec<Players>>,
    acts: Vec<(String, Action)>,
    broken: Vec<String>,
    /// Restart fine, but keep running the old version.
    stuck: Vec<String>,
    announced: Vec<String>,
    /// Announcements fail (no RCON).
    mute: bool,
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
            s.script(
                name,
                &players
                    .iter()
                    .map(|&n| Players::Count(n))
                    .collect::<Vec<_>>(),
            );
        }
        s
    }

    fn script(&mut self, name: &str, players: &[Players]) {
        self.players.insert(name.to_owned(), players.to_vec());
    }

    fn restarts(&self) -> Vec<&str> {
        self.acts.iter().map(|(n, _)| n.as_str()).collect()
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
    fn players(&mut self, names: &[String]) -> anyhow::Result<Vec<Players>> {
        Ok(names
            .iter()
            .map(|name| {
                let counts = self.players.get_mut(name).unwrap();
                if counts.len() > 1 {
                    counts.remove(0)
                } else {
                    counts[0]
                }
            })
            .collect())
    }
    fn act(&mut self, name: &str, action: Action) -> anyhow::Result<()> {
        self.acts.push((name.to_owned(), action));
        if self.broken.iter().any(|b| b == name) {
            anyhow::bail!("{name} did not start");
        }
        if !self.stuck.iter().any(|s| s == name) {
            self.versions.insert(name.to_owned(), self.target.clone());
        }
        Ok(())
    }
    fn announce(&mut self, name: &str, message: &str) -> anyhow::Result<()> {
        if self.mute {
            anyhow::bail!("no RCON");
        }
        self.announced.push(format!("{name}: {message}"));
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
    assert_eq!(outcome.acted, ["a", "b"]);
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
    assert_eq!(fleet.restarts(), ["two", "one"]);
    assert_eq!(outcome.acted, ["two", "one"]);
    assert!(outcome.left.is_empty());
    assert!(matches!(&events[0], Event::Busy { name, players: Some(2), .. } if name == "one"));
    assert!(matches!(&events[1], Event::Acted { name, .. } if name == "two"));
}

#[test]
fn when_empty_reports_who_is_still_on_the_old_version_after_max_wait() {
    let mut fleet = Scripted::new("B", &[("one", "A", &[3]), ("two", "B", &[0])]);
    let (outcome, _) = run(rollout(RestartPolicy::WhenEmpty, 20), &mut fleet);
    assert!(fleet.acts.is_empty(), "{:?}", fleet.acts);
    assert_eq!(
        outcome.left,
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
    assert_eq!(fleet.restarts(), ["a", "b"]);
    assert_eq!(outcome.acted, ["a", "b"]);

    let mut fleet = Scripted::new("B", &[("a", "A", &[0])]);
    let (outcome, _) = run(rollout(RestartPolicy::Never, 0), &mut fleet);
    assert!(fleet.acts.is_empty());
    assert_eq!(outcome.left.len(), 1);
}

#[test]
fn an_instance_a_restart_does_not_move_fails_instead_of_looping() {
    let mut fleet = Scripted::new("B", &[("a", "A", &[0])]);
    fleet.stuck.push("a".into());
    let (outcome, _) = run(rollout(RestartPolicy::Now, 0), &mut fleet);
    assert_eq!(fleet.restarts(), ["a"]);
    assert_eq!(outcome.failed, ["a"]);
}

#[test]
fn a_failed_restart_is_reported_once_and_not_retried() {
    let mut fleet = Scripted::new("B", &[("a", "A", &[0]), ("b", "A", &[0])]);
    fleet.broken.push("a".into());
    let (outcome, events) = run(rollout(RestartPolicy::WhenEmpty, 50), &mut fleet);
    assert_eq!(fleet.restarts(), ["a", "b"]);
    assert_eq!(outcome.failed, ["a"]);
    assert_eq!(outcome.acted, ["b"]);
    assert!(matches!(&events[0], Event::Failed { name, .. } if name == "a"));
}

#[test]
fn an_instance_that_stops_meanwhile_is_dropped_not_waited_for() {
    let mut fleet = Scripted::new("B", &[("a", "A", &[2])]);
    let mut events = Vec::new();
    let waiting = lifecycle(Action::Restart, 10_000, AtDeadline::Act, None);
    let mut round = 0;
    let mut select = |fleet: &mut dyn Fleet, _: &Outcome| -> anyhow::Result<Vec<Candidate>> {
        round += 1;
        // Stopped from the outside after two rounds.
        let running = fleet.running()?;
        Ok(running
            .into_iter()
            .filter(|_| round <= 2)
            .map(|running| Candidate {
                running,
                wait: true,
            })
            .collect())
    };
    let outcome = waiting
        .run(&mut fleet, &mut select, &mut |e| events.push(e.clone()))
        .unwrap();
    assert_eq!(outcome.dropped, ["a"]);
    assert!(fleet.acts.is_empty());
    assert!(matches!(events.last(), Some(Event::Dropped { name }) if name == "a"));
}

/// The settings of `restart|stop NAME… --when-empty`, polling every millisecond.
fn lifecycle(
    action: Action,
    max_wait_ms: u64,
    at_deadline: AtDeadline,
    announce: Option<&str>,
) -> Waiting {
    Waiting {
        action,
        max_wait: Duration::from_millis(max_wait_ms),
        poll: Duration::from_millis(1),
        at_deadline,
        announce: announce.map(str::to_owned),
        act_on_stopped: true,
    }
}

/// `names`, each until it has been acted on, as `restart|stop --when-empty` selects them.
fn by_name(
    names: &[&str],
) -> impl FnMut(&mut dyn Fleet, &Outcome) -> anyhow::Result<Vec<Candidate>> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    move |_, outcome| {
        Ok(names
            .iter()
            .filter(|n| !outcome.acted.contains(n))
            .map(|n| Candidate {
                running: Running::named(n),
                wait: true,
            })
            .collect())
    }
}

fn wait_for(waiting: &Waiting, fleet: &mut Scripted, names: &[&str]) -> (Outcome, Vec<Event>) {
    let mut events = Vec::new();
    let mut select = by_name(names);
    let outcome = waiting
        .run(fleet, &mut select, &mut |e| events.push(e.clone()))
        .unwrap();
    (outcome, events)
}

#[test]
fn each_instance_is_acted_on_as_soon_as_it_is_empty_not_all_at_once() {
    let mut fleet = Scripted::new("-", &[("a", "-", &[1, 1, 1, 1, 1, 0]), ("b", "-", &[2, 0])]);
    let waiting = lifecycle(Action::Stop, 10_000, AtDeadline::Act, None);
    let (outcome, _) = wait_for(&waiting, &mut fleet, &["a", "b"]);
    assert_eq!(fleet.restarts(), ["b", "a"]);
    assert!(fleet.acts.iter().all(|(_, a)| *a == Action::Stop));
    assert_eq!(outcome.acted, ["b", "a"]);
    assert!(outcome.forced.is_empty());
}

#[test]
fn an_instance_that_does_not_answer_is_not_empty() {
    let mut fleet = Scripted::default();
    fleet.script(
        "a",
        &[Players::NoAnswer, Players::NoAnswer, Players::Count(0)],
    );
    let waiting = lifecycle(Action::Restart, 10_000, AtDeadline::Act, None);
    let (_, events) = wait_for(&waiting, &mut fleet, &["a"]);
    let busy: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Busy { players, .. } => Some(*players),
            _ => None,
        })
        .collect();
    assert_eq!(busy, [None, None]);
    assert_eq!(fleet.restarts(), ["a"]);
}

#[test]
fn a_stopped_instance_is_acted_on_at_once() {
    let mut fleet = Scripted::default();
    fleet.script("a", &[Players::NotRunning]);
    let waiting = lifecycle(Action::Restart, 0, AtDeadline::Leave, Some("bye"));
    let (outcome, events) = wait_for(&waiting, &mut fleet, &["a"]);
    assert_eq!(outcome.acted, ["a"]);
    assert!(fleet.announced.is_empty(), "nobody to tell: {events:?}");
}

#[test]
fn a_stopped_instance_is_dropped_when_asked_to() {
    let mut fleet = Scripted::default();
    fleet.script("a", &[Players::Count(1), Players::NotRunning]);
    let waiting = Waiting {
        act_on_stopped: false,
        ..lifecycle(Action::Restart, 10_000, AtDeadline::Act, None)
    };
    let (outcome, events) = wait_for(&waiting, &mut fleet, &["a"]);
    assert!(fleet.acts.is_empty());
    assert_eq!(outcome.dropped, ["a"]);
    assert!(matches!(events.last(), Some(Event::Dropped { .. })));
}

#[test]
fn max_wait_then_act_announces_again_and_says_it_was_forced() {
    let mut fleet = Scripted::new("-", &[("a", "-", &[3])]);
    let waiting = lifecycle(Action::Restart, 30, AtDeadline::Act, Some("restart soon"));
    let (outcome, events) = wait_for(&waiting, &mut fleet, &["a"]);
    assert_eq!(outcome.acted, ["a"]);
    assert_eq!(outcome.forced, ["a"]);
    assert_eq!(fleet.announced, ["a: restart soon", "a: restart soon"]);
    let announced: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            Event::Announced { again, .. } => Some(*again),
            _ => None,
        })
        .collect();
    assert_eq!(announced, [false, true]);
    assert!(matches!(
        events.last(),
        Some(Event::Acted { forced: true, .. })
    ));
}

#[test]
fn max_wait_or_skip_leaves_the_busy_one_and_acts_on_the_empty_one() {
    let mut fleet = Scripted::new("-", &[("a", "-", &[3]), ("b", "-", &[1, 0])]);
    let waiting = lifecycle(Action::Stop, 30, AtDeadline::Leave, None);
    let (outcome, _) = wait_for(&waiting, &mut fleet, &["a", "b"]);
    assert_eq!(outcome.acted, ["b"]);
    assert_eq!(outcome.left.len(), 1);
    assert_eq!(outcome.left[0].name, "a");
    assert_eq!(outcome.left[0].players, Some(3));
}

#[test]
fn a_failed_announcement_is_a_warning_and_the_wait_goes_on() {
    let mut fleet = Scripted::new("-", &[("a", "-", &[1, 0])]);
    fleet.mute = true;
    let waiting = lifecycle(Action::Restart, 10_000, AtDeadline::Act, Some("hi"));
    let (outcome, events) = wait_for(&waiting, &mut fleet, &["a"]);
    assert_eq!(outcome.acted, ["a"]);
    assert!(events.iter().any(|e| matches!(e, Event::Warning { .. })));
}

#[test]
fn the_time_left_counts_down() {
    let mut fleet = Scripted::new("-", &[("a", "-", &[1, 1, 0])]);
    let waiting = lifecycle(Action::Restart, 60_000, AtDeadline::Act, None);
    let (_, events) = wait_for(&waiting, &mut fleet, &["a"]);
    let left: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            Event::Busy { left, .. } => *left,
            _ => None,
        })
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left[0] >= left[1] && left[0] <= Duration::from_secs(60));

    // No limit: no time left to tell.
    let mut fleet = Scripted::new("-", &[("a", "-", &[1, 0])]);
    let forever = Waiting {
        max_wait: Duration::MAX,
        ..waiting
    };
    let (_, events) = wait_for(&forever, &mut fleet, &["a"]);
    assert!(matches!(&events[0], Event::Busy { left: None, .. }));
}

#[test]
fn a_game_that_does_not_answer_is_not_announced_to_until_it_has_players() {
    let mut fleet = Scripted::default();
    fleet.script(
        "a",
        &[
            Players::NoAnswer,
            Players::Count(2),
            Players::Count(2),
            Players::Count(0),
        ],
    );
    let waiting = lifecycle(Action::Restart, 10_000, AtDeadline::Act, Some("hi"));
    let (outcome, _) = wait_for(&waiting, &mut fleet, &["a"]);
    assert_eq!(fleet.announced, ["a: hi"]);
    assert_eq!(outcome.acted, ["a"]);
}
