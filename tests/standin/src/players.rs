//! Simulated players: who is on the server, since when, with what score.
//!
//! Tests say who should be on the server (`players N` and `player NAME [SCORE]` in
//! `<game>/standin.control`, `+standin_players N` on the command line); the [`Roster`] turns each
//! new wish into joins and leaves, keeping the connect time of every player who stays, the way a
//! real server keeps a client's connection across other clients coming and going. A2S_PLAYER and
//! the console's `status` read the roster.

use std::time::{Duration, Instant};

/// One human player on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// The engine's user id: unique for the server's life, never reused.
    pub userid: u32,
    pub name: String,
    pub score: i32,
    /// When the player connected.
    pub joined: Instant,
}

impl Player {
    /// How long the player has been connected at `now`.
    pub fn connected(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.joined)
    }
}

/// Who should be on the server: `anonymous` players named `Player 1`.. (score = their number),
/// then each named player, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub anonymous: u8,
    pub named: Vec<(String, i32)>,
}

impl Wanted {
    /// Every wanted player as (name, score), at most 255 of them (the A2S count is one byte).
    pub fn entries(&self) -> Vec<(String, i32)> {
        (1..=self.anonymous)
            .map(|n| (format!("Player {n}"), i32::from(n)))
            .chain(self.named.iter().cloned())
            .take(usize::from(u8::MAX))
            .collect()
    }
}

/// The players on the server now.
#[derive(Debug, Clone)]
pub struct Roster {
    players: Vec<Player>,
    next_userid: u32,
}

impl Roster {
    /// An empty server whose next player gets user id `first_userid` (the engine numbers every
    /// client, bots included, from 2 on a dedicated server).
    pub fn new(first_userid: u32) -> Self {
        Self {
            players: Vec::new(),
            next_userid: first_userid,
        }
    }

    pub fn players(&self) -> &[Player] {
        &self.players
    }

    /// How many humans are on (at most 255).
    pub fn count(&self) -> u8 {
        u8::try_from(self.players.len()).unwrap_or(u8::MAX)
    }

    /// Make the roster match `wanted` at `now`: players who stay keep their user id and connect
    /// time (their score is updated), the others leave, newcomers join. Returns one log line per
    /// join or leave.
    pub fn update(&mut self, wanted: &Wanted, now: Instant) -> Vec<String> {
        let mut old: Vec<Option<Player>> = self.players.drain(..).map(Some).collect();
        let mut events = Vec::new();
        for (name, score) in wanted.entries() {
            let kept = old
                .iter_mut()
                .find(|p| p.as_ref().is_some_and(|p| p.name == name))
                .and_then(Option::take);
            let player = match kept {
                Some(player) => Player { score, ..player },
                None => {
                    let userid = self.next_userid;
                    self.next_userid += 1;
                    events.push(format!("player joined: {name:?} (userid {userid})"));
                    Player {
                        userid,
                        name,
                        score,
                        joined: now,
                    }
                }
            };
            self.players.push(player);
        }
        for gone in old.into_iter().flatten() {
            events.push(format!(
                "player left: {:?} (userid {})",
                gone.name, gone.userid
            ));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_who_stays_and_numbers_newcomers() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let mut roster = Roster::new(2);
        let events = roster.update(
            &Wanted {
                anonymous: 1,
                named: vec![("Alice".into(), 3)],
            },
            t0,
        );
        assert_eq!(events.len(), 2);
        let ids: Vec<_> = roster.players().iter().map(|p| p.userid).collect();
        assert_eq!(ids, [2, 3]);

        let events = roster.update(
            &Wanted {
                anonymous: 0,
                named: vec![("Alice".into(), 7), ("Bob".into(), 0)],
            },
            t1,
        );
        assert_eq!(
            events,
            [
                "player joined: \"Bob\" (userid 4)",
                "player left: \"Player 1\" (userid 2)"
            ]
        );
        let alice = &roster.players()[0];
        assert_eq!((alice.userid, alice.score, alice.joined), (3, 7, t0));
        assert_eq!(alice.connected(t1), Duration::from_secs(5));
        assert_eq!(roster.players()[1].joined, t1);
        assert_eq!(roster.count(), 2);
    }
}
