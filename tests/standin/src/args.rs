//! The srcds command line: `-flag [value]` switches and `+command [values]` console commands.
//!
//! Like srcds, an unknown `-flag` (with the value after it, when the next word is not itself a
//! switch) or `+command` is kept, not refused: `-flag`s are logged, `+command value` pairs become
//! cvars. What the stand-in needs is checked: `-game`, `-port`, `+map` and `-norestart` (the
//! toolkit must pass it, so that srcds_run execs srcds_linux and stays one process).

use std::net::Ipv4Addr;
use std::time::Duration;

/// What the command line asks of the stand-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// `-game`: the game directory below the root, e.g. `left4dead2`.
    pub game: String,
    /// `-port`: UDP port of the game and of queries; TCP port of RCON.
    pub port: u16,
    /// `+clientport`: UDP port of the engine's client socket; default 27005.
    pub client_port: u16,
    /// Off with `-nohltv`: the engine opens its SourceTV socket.
    pub sourcetv: bool,
    /// `+tv_port`: UDP port of SourceTV; default 27020.
    pub tv_port: u16,
    /// `-strictportbind`: a port in use is fatal instead of a move to the next one.
    pub strict_port_bind: bool,
    /// `+ip` (or `-ip`): address to bind; default 0.0.0.0.
    pub ip: Ipv4Addr,
    /// `+map`.
    pub map: String,
    /// `+maxplayers` (or `-maxplayers`); default 8.
    pub max_players: u8,
    /// `+standin_bots N`: bots on the server.
    pub bots: u8,
    /// `+standin_players N`: human players on the server.
    pub humans: u8,
    /// `-insecure`: not VAC secured.
    pub insecure: bool,
    /// Off with `-standin_nochallenge`: A2S_INFO is answered without a challenge.
    pub info_challenge: bool,
    /// `-standin_split`: every reply is sent as a split (multi-packet) reply.
    pub split: bool,
    /// `+standin_start_delay SECONDS`: queries are not answered before then.
    pub start_delay: Duration,
    /// `+standin_hang_after SECONDS`: stop answering queries then, keep running.
    pub hang_after: Option<Duration>,
    /// `+standin_crash_after SECONDS`: die by SIGSEGV then.
    pub crash_after: Option<Duration>,
    /// `+standin_wedge_after SECONDS`: stop answering and stop reacting to SIGINT/SIGTERM then.
    pub wedge_after: Option<Duration>,
    /// `-standin_die_on_stop`: on SIGINT/SIGTERM, die by that signal instead of exiting 0.
    pub die_on_stop: bool,
    /// Other `+name value` commands, in command line order: cvars set before server.cfg runs.
    pub cvars: Vec<(String, String)>,
    /// Other `-flag [value]` switches and stray words, kept as srcds keeps them.
    pub kept: Vec<String>,
}

/// A command line the stand-in cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("missing {what}")]
    Missing { what: &'static str },
    #[error("{arg} needs a value")]
    NoValue { arg: String },
    #[error("invalid {arg} value {value:?}: {reason}")]
    Invalid {
        arg: String,
        value: String,
        reason: String,
    },
}

/// One-line summary of the command line, for the usage message.
pub const USAGE: &str = "usage: srcds_run -game DIR -norestart -port PORT [+ip ADDR] +map MAP \
[+maxplayers N] [+clientport PORT] [+tv_port PORT | -nohltv] [-strictportbind] [-standin_nochallenge] [-standin_split] [+standin_bots N] [+standin_players N] \
[+standin_start_delay S] [+standin_hang_after S] [+standin_crash_after S] \
[+standin_wedge_after S] [-standin_die_on_stop] [other -flags and +cvar values]";

fn is_switch(word: &str) -> bool {
    let negative_number = word.len() > 1 && word[1..].starts_with(|c: char| c.is_ascii_digit());
    (word.starts_with('-') && !negative_number) || word.starts_with('+')
}

fn number<T: std::str::FromStr>(arg: &str, value: &str) -> Result<T, ArgsError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ArgsError::Invalid {
        arg: arg.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn seconds(arg: &str, value: &str) -> Result<Duration, ArgsError> {
    let secs: f64 = number(arg, value)?;
    Duration::try_from_secs_f64(secs).map_err(|e| ArgsError::Invalid {
        arg: arg.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// Parse the arguments after argv\[0\].
pub fn parse(words: &[String]) -> Result<Args, ArgsError> {
    let mut game = None;
    let mut port = None;
    let mut map = None;
    let mut norestart = false;
    let mut args = Args {
        game: String::new(),
        port: 0,
        client_port: crate::net::DEFAULT_CLIENT_PORT,
        sourcetv: true,
        tv_port: crate::net::DEFAULT_TV_PORT,
        strict_port_bind: false,
        ip: Ipv4Addr::UNSPECIFIED,
        map: String::new(),
        max_players: 8,
        bots: 0,
        humans: 0,
        insecure: false,
        info_challenge: true,
        split: false,
        start_delay: Duration::ZERO,
        hang_after: None,
        crash_after: None,
        wedge_after: None,
        die_on_stop: false,
        cvars: Vec::new(),
        kept: Vec::new(),
    };
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        // The words up to the next switch are this switch's values.
        let values_end = words[i..]
            .iter()
            .position(|w| is_switch(w))
            .map_or(words.len(), |n| i + n);
        if let Some(command) = word.strip_prefix('+') {
            let value = words[i..values_end].join(" ");
            i = values_end;
            let need = || {
                if value.is_empty() {
                    Err(ArgsError::NoValue { arg: word.clone() })
                } else {
                    Ok(value.as_str())
                }
            };
            match command.to_ascii_lowercase().as_str() {
                "map" => map = Some(need()?.to_owned()),
                "ip" => args.ip = number(word, need()?)?,
                "clientport" => args.client_port = number(word, need()?)?,
                "tv_port" => args.tv_port = number(word, need()?)?,
                "maxplayers" => args.max_players = number(word, need()?)?,
                "standin_bots" => args.bots = number(word, need()?)?,
                "standin_players" => args.humans = number(word, need()?)?,
                "standin_start_delay" => args.start_delay = seconds(word, need()?)?,
                "standin_hang_after" => args.hang_after = Some(seconds(word, need()?)?),
                "standin_crash_after" => args.crash_after = Some(seconds(word, need()?)?),
                "standin_wedge_after" => args.wedge_after = Some(seconds(word, need()?)?),
                name => args.cvars.push((name.to_owned(), value)),
            }
        } else if word.starts_with('-') && is_switch(word) {
            let value = (i < values_end).then(|| words[i].clone());
            let mut take = || {
                i += 1;
                value
                    .clone()
                    .ok_or(ArgsError::NoValue { arg: word.clone() })
            };
            match word.to_ascii_lowercase().as_str() {
                "-game" => game = Some(take()?),
                "-port" => port = Some(take()?),
                "-ip" => args.ip = number(word, &take()?)?,
                "-maxplayers" => args.max_players = number(word, &take()?)?,
                "-norestart" => norestart = true,
                "-nohltv" => args.sourcetv = false,
                "-strictportbind" => args.strict_port_bind = true,
                "-insecure" => args.insecure = true,
                "-standin_nochallenge" => args.info_challenge = false,
                "-standin_split" => args.split = true,
                "-standin_die_on_stop" => args.die_on_stop = true,
                _ => {
                    args.kept.push(word.clone());
                    if let Some(value) = value {
                        i += 1;
                        args.kept.push(value);
                    }
                }
            }
        } else {
            args.kept.push(word.clone());
        }
    }
    args.game = game.ok_or(ArgsError::Missing { what: "-game" })?;
    let port = port.ok_or(ArgsError::Missing { what: "-port" })?;
    args.port = number("-port", &port)?;
    if args.port == 0 {
        return Err(ArgsError::Invalid {
            arg: "-port".into(),
            value: port,
            reason: "port 0 is not a port".into(),
        });
    }
    args.map = map.ok_or(ArgsError::Missing { what: "+map" })?;
    if !norestart {
        return Err(ArgsError::Missing {
            what: "-norestart (without it srcds_run loops and restarts srcds_linux itself)",
        });
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_toolkit_command_line() {
        let args = parse(&words(
            "-game left4dead2 -norestart -port 27015 +ip 0.0.0.0 +map c1m1_hotel \
             +maxplayers 4 -tickrate 60 +sv_gravity -100 +standin_bots 2 -nohltv stray",
        ))
        .unwrap();
        assert_eq!(args.game, "left4dead2");
        assert_eq!(args.port, 27015);
        assert_eq!(args.ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(args.map, "c1m1_hotel");
        assert_eq!(args.max_players, 4);
        assert_eq!(args.bots, 2);
        assert_eq!(args.cvars, vec![("sv_gravity".into(), "-100".into())]);
        assert_eq!(args.kept, words("-tickrate 60 stray"));
        assert!(!args.sourcetv && !args.strict_port_bind);
        assert_eq!((args.client_port, args.tv_port), (27005, 27020));
        let args = parse(&words(
            "-game g -norestart -strictportbind -port 27015 +clientport 27115 +tv_port 27215 +map m",
        ))
        .unwrap();
        assert!(args.sourcetv && args.strict_port_bind);
        assert_eq!((args.client_port, args.tv_port), (27115, 27215));
        assert!(args.info_challenge && !args.split);
    }

    #[test]
    fn parses_the_standin_switches() {
        let args = parse(&words(
            "-norestart -game g -port 1 +map m -standin_nochallenge -standin_split \
             +standin_start_delay 0.5 +standin_hang_after 2 +standin_crash_after 3 \
             +standin_wedge_after 4 +standin_players 3 -insecure +hostname Two Words",
        ))
        .unwrap();
        assert!(!args.info_challenge && args.split && args.insecure);
        assert_eq!(args.start_delay, Duration::from_millis(500));
        assert_eq!(args.hang_after, Some(Duration::from_secs(2)));
        assert_eq!(args.crash_after, Some(Duration::from_secs(3)));
        assert_eq!(args.wedge_after, Some(Duration::from_secs(4)));
        assert_eq!(args.humans, 3);
        assert_eq!(args.cvars, vec![("hostname".into(), "Two Words".into())]);
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let err = |line| parse(&words(line)).unwrap_err();
        assert_eq!(
            err("-game g -norestart +map m"),
            ArgsError::Missing { what: "-port" }
        );
        assert_eq!(
            err("-game g -norestart -port +map m"),
            ArgsError::NoValue {
                arg: "-port".into()
            }
        );
        assert!(matches!(
            err("-game g -norestart -port 70000 +map m"),
            ArgsError::Invalid { .. }
        ));
        assert!(matches!(
            err("-game g -norestart -port 0 +map m"),
            ArgsError::Invalid { .. }
        ));
        assert_eq!(
            err("-game g -norestart -port 1"),
            ArgsError::Missing { what: "+map" }
        );
        assert_eq!(
            err("-norestart -port 1 +map m"),
            ArgsError::Missing { what: "-game" }
        );
        assert!(
            err("-game g -port 1 +map m")
                .to_string()
                .contains("-norestart")
        );
        assert!(matches!(
            err("-game g -norestart -port 1 +map m +standin_crash_after soon"),
            ArgsError::Invalid { .. }
        ));
        assert!(matches!(
            err("-game g -norestart -port 1 +map m +ip nowhere"),
            ArgsError::Invalid { .. }
        ));
    }
}
