//! `left4mectl players NAME`, and the A2S queries every verb that counts players shares: the
//! PLAYERS column of `list`, the waits of `restart|stop --when-empty` and of `game update
//! --restart when-empty`.
//!
//! The game answers on its own port on the loopback address (the supervisor asks the same way
//! for readiness). Several instances are asked at once, one thread each, so one that does not
//! answer costs the others nothing and `list` of 50 instances takes one timeout at most.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use left4me_a2s::{A2sClient, A2sError, Info, Player};
use serde::Serialize;

use crate::Ctx;
use crate::change::{SpecKind, check_spec_name, missing};
use crate::error::EXIT_OK;
use crate::output::{emit, table};
use crate::systemd::{self, unit_name};

/// How long `list` and `players` wait for a game's answer (on loopback a running game answers
/// in well under a millisecond; one changing maps may not answer for seconds).
pub const LIST_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PlayersError {
    #[error(
        "{name} is not running ({state}): no players to list; `left4mectl start {name}` starts it"
    )]
    NotRunning { name: String, state: String },
    #[error(
        "{name} is {state} but its game does not answer A2S_PLAYER on {addr}: {source}; \
         `left4mectl status {name}` says what it is doing"
    )]
    NoAnswer {
        name: String,
        state: String,
        addr: SocketAddr,
        #[source]
        source: A2sError,
    },
}

/// The game's address for queries: its port on the loopback address.
pub fn game_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The human players of an A2S_INFO answer: its players minus its bots.
pub fn humans(info: &Info) -> u8 {
    info.players.saturating_sub(info.bots)
}

/// A2S_INFO of each of `ports`, in order, all asked at once; each within `timeout`.
pub fn query_infos(ports: &[u16], timeout: Duration) -> Vec<Result<Info, A2sError>> {
    std::thread::scope(|scope| {
        let asked: Vec<_> = ports
            .iter()
            .map(|&port| scope.spawn(move || A2sClient::connect(game_addr(port), timeout)?.info()))
            .collect();
        asked
            .into_iter()
            .zip(ports)
            .map(|(thread, &port)| {
                thread.join().unwrap_or_else(|_| {
                    Err(A2sError::Timeout {
                        addr: game_addr(port),
                        timeout,
                    })
                })
            })
            .collect()
    })
}

/// The PLAYERS column of `list` and its JSON fields: humans and the player limit, from
/// A2S_INFO; `null` when the instance is not running or does not answer.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PlayerCount {
    /// Human players (bots are not counted).
    pub players: Option<u8>,
    pub max_players: Option<u8>,
}

impl PlayerCount {
    /// `2/8`, or `-`.
    pub fn cell(&self) -> String {
        match (self.players, self.max_players) {
            (Some(n), Some(max)) => format!("{n}/{max}"),
            _ => "-".into(),
        }
    }
}

/// The player counts of `instances` (port, whether its unit is active), in order; only active
/// ones are asked, all at once.
pub fn counts(instances: &[(Option<u16>, bool)]) -> Vec<PlayerCount> {
    let asked: Vec<u16> = instances
        .iter()
        .filter_map(|&(port, active)| port.filter(|_| active))
        .collect();
    let mut answers = query_infos(&asked, LIST_TIMEOUT).into_iter();
    instances
        .iter()
        .map(|&(port, active)| {
            if port.is_none() || !active {
                return PlayerCount::default();
            }
            match answers.next() {
                Some(Ok(info)) => PlayerCount {
                    players: Some(humans(&info)),
                    max_players: Some(info.max_players),
                },
                _ => PlayerCount::default(),
            }
        })
        .collect()
}

/// One player, as `players --json` prints it.
#[derive(Debug, Serialize)]
struct PlayerRow {
    name: String,
    score: i32,
    /// Time connected, whole seconds.
    seconds: u64,
}

/// `1:02:03` of whole seconds.
fn format_hms(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The table of `players`, then the count line.
fn players_text(players: &[Player], info: Option<&Info>) -> String {
    let rows: Vec<Vec<String>> = players
        .iter()
        .map(|p| {
            vec![
                if p.name.is_empty() {
                    "(connecting)".to_owned()
                } else {
                    left4me_contract::printable::text(std::ffi::OsStr::new(&p.name)).to_string()
                },
                p.score.to_string(),
                format_hms(p.duration.max(0.0) as u64),
            ]
        })
        .collect();
    let mut text = if rows.is_empty() {
        String::new()
    } else {
        table(&["NAME", "SCORE", "TIME"], &rows)
    };
    text.push_str(&match info {
        Some(info) => format!(
            "{} human player(s), {} bot(s), {} max\n",
            humans(info),
            info.bots,
            info.max_players
        ),
        None => format!("{} player(s)\n", players.len()),
    });
    text
}

/// `players NAME [--json]`: A2S_PLAYER of the instance's game.
pub fn players(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<u8> {
    check_spec_name(SpecKind::Instance, name)?;
    let catalog = ctx.catalog()?;
    let instance = match catalog.get(name) {
        Some(Ok(instance)) => instance,
        Some(Err(err)) => return Err(err.clone().into()),
        None => {
            let file = catalog.layout.instance_file(name);
            return Err(missing(SpecKind::Instance, name, &file).into());
        }
    };
    let state = if systemd::systemd_running() {
        let unit = systemd::show_one(&unit_name(name))?;
        if matches!(unit.active_state.as_str(), "inactive" | "failed") {
            return Err(PlayersError::NotRunning {
                name: name.to_owned(),
                state: unit.describe(),
            }
            .into());
        }
        unit.describe()
    } else {
        "running".to_owned()
    };
    let addr = game_addr(instance.port);
    let no_answer = |source| PlayersError::NoAnswer {
        name: name.to_owned(),
        state: state.clone(),
        addr,
        source,
    };
    let client = A2sClient::connect(addr, LIST_TIMEOUT).map_err(no_answer)?;
    let list = client.players().map_err(no_answer)?;
    if json {
        let rows: Vec<PlayerRow> = list
            .iter()
            .map(|p| PlayerRow {
                name: p.name.clone(),
                score: p.score,
                seconds: p.duration.max(0.0) as u64,
            })
            .collect();
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else {
        let info = client.info().ok();
        emit(&players_text(&list, info.as_ref()))?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player(name: &str, score: i32, duration: f32) -> Player {
        Player {
            index: 0,
            name: name.into(),
            score,
            duration,
        }
    }

    #[test]
    fn players_are_a_table_then_a_count() {
        let list = [player("Ellis", 12, 3725.9), player("", 0, 4.0)];
        let text = players_text(&list, None);
        assert_eq!(
            text,
            "NAME          SCORE  TIME\nEllis         12     1:02:05\n(connecting)  0      0:00:04\n2 player(s)\n"
        );
        assert_eq!(players_text(&[], None), "0 player(s)\n");
    }

    #[test]
    fn counts_and_cells() {
        assert_eq!(format_hms(0), "0:00:00");
        assert_eq!(format_hms(36_000 + 61), "10:01:01");
        assert_eq!(PlayerCount::default().cell(), "-");
        let count = PlayerCount {
            players: Some(2),
            max_players: Some(8),
        };
        assert_eq!(count.cell(), "2/8");
        // Not running, or no port: not asked, no thread.
        let none = counts(&[(Some(1), false), (None, true)]);
        assert!(none.iter().all(|c| c.players.is_none()));
    }

    #[test]
    fn queries_run_at_once() {
        // Two silent servers: asked in parallel, the pair takes one timeout, not two.
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ports = [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ];
        let started = std::time::Instant::now();
        let answers = query_infos(&ports, Duration::from_millis(300));
        assert!(answers.iter().all(Result::is_err));
        assert!(
            started.elapsed() < Duration::from_millis(590),
            "{:?}",
            started.elapsed()
        );
    }
}
