//! Every port a real srcds binds, and the rules that keep the ports of two instances apart.
//!
//! A Source dedicated server opens (docs/ports.md has the sources):
//! - UDP on the game port (`-port`): players and A2S queries;
//! - TCP on the same port: the RCON listener;
//! - UDP on the client port (`+clientport`, engine default 27005, so shared by every instance
//!   on a host unless set);
//! - UDP on the SourceTV port (`+tv_port`, engine default 27020) unless started with `-nohltv`.
//!
//! The instance keys `client_port`, `sourcetv` and `tv_port` set them; left out, the client port
//! is `port + 100` and the SourceTV port `port + 200` ([`CLIENT_PORT_OFFSET`],
//! [`TV_PORT_OFFSET`]), so instances on consecutive game ports (27015, 27016, …, up to 100 of
//! them) never collide. Every port number of an instance is unique across the host's instances.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::error::SpecError;
use crate::host::HostConfig;
use crate::toml_fields::Fields;

/// `client_port` when the spec leaves it out: `port + CLIENT_PORT_OFFSET`.
pub const CLIENT_PORT_OFFSET: u16 = 100;
/// `tv_port` when SourceTV is on and the spec leaves it out: `port + TV_PORT_OFFSET`.
pub const TV_PORT_OFFSET: u16 = 200;
/// The lowest client or SourceTV port: the unprivileged game user cannot bind below it.
pub const MIN_EXTRA_PORT: u16 = 1024;

/// The port keys of an instance file besides `port`. Instance-only, like `port`: each reserves
/// port numbers on the host.
pub(crate) const PORT_KEYS: [&str; 3] = ["client_port", "sourcetv", "tv_port"];

/// `client_port`, `sourcetv` and `tv_port` as an instance file writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortKeys {
    pub client_port: Option<u16>,
    pub sourcetv: Option<bool>,
    pub tv_port: Option<u16>,
}

impl PortKeys {
    pub(crate) fn read(fields: &mut Fields<'_>) -> Result<Self, SpecError> {
        let range = i64::from(MIN_EXTRA_PORT)..=65535;
        Ok(PortKeys {
            client_port: fields.integer_in("client_port", range.clone())?,
            sourcetv: fields.boolean("sourcetv")?,
            tv_port: fields.integer_in("tv_port", range)?,
        })
    }
}

/// A transport protocol of a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Tcp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        })
    }
}

/// One socket srcds binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bind {
    pub protocol: Protocol,
    pub port: u16,
    /// What the socket is for: `game`, `rcon`, `client` or `sourcetv`.
    pub role: &'static str,
}

impl Bind {
    /// The `SocketBindAllow=` rule that allows exactly this bind: `udp:27015`.
    pub fn allow_rule(&self) -> String {
        format!("{}:{}", self.protocol, self.port)
    }
}

/// Every port an instance's srcds binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ports {
    /// UDP (game, queries) and TCP (RCON).
    pub game: u16,
    /// UDP: the engine's client socket.
    pub client: u16,
    /// UDP: SourceTV, when it is on.
    pub tv: Option<u16>,
}

impl Ports {
    /// Fills in the defaults and checks the ports of one instance: SourceTV's port lies in the
    /// host's `port_range` like the game port (both are reached from outside); the client port
    /// only needs to be unprivileged; no two of them are the same number.
    pub(crate) fn resolve(
        file: &Path,
        port: u16,
        keys: &PortKeys,
        host: &HostConfig,
    ) -> Result<Self, SpecError> {
        let invalid = |key: &str, why: String| SpecError::invalid(file, key, why);
        let derived = |key: &str, offset: u16| {
            port.checked_add(offset).ok_or_else(|| {
                invalid(
                    key,
                    format!("its default, port + {offset}, is beyond 65535; set {key} explicitly"),
                )
            })
        };
        let client = match keys.client_port {
            Some(client) => client,
            None => derived("client_port", CLIENT_PORT_OFFSET)?,
        };
        let sourcetv = keys.sourcetv.unwrap_or(false);
        let tv = match (sourcetv, keys.tv_port) {
            (false, Some(_)) => {
                return Err(invalid(
                    "tv_port",
                    "is set but SourceTV is off; add sourcetv = true or remove tv_port".into(),
                ));
            }
            (false, None) => None,
            (true, Some(tv)) => Some(tv),
            (true, None) => Some(derived("tv_port", TV_PORT_OFFSET)?),
        };
        if let Some(tv) = tv {
            let (lo, hi) = host.port_range;
            if !(lo..=hi).contains(&tv) {
                let how = match keys.tv_port {
                    Some(_) => String::new(),
                    None => format!(" (the default, port + {TV_PORT_OFFSET})"),
                };
                return Err(invalid(
                    "tv_port",
                    format!(
                        "{tv}{how} is outside the host's port_range {lo}-{hi} (see host.toml); SourceTV is reached from outside like the game port: set tv_port inside the range"
                    ),
                ));
            }
        }
        let ports = Ports {
            game: port,
            client,
            tv,
        };
        let numbers = ports.numbers();
        for (i, (key, number)) in numbers.iter().enumerate() {
            if let Some((other, _)) = numbers[..i].iter().find(|(_, n)| n == number) {
                return Err(invalid(
                    key,
                    format!("{number} is this instance's {other} already; every port must differ"),
                ));
            }
        }
        if client < MIN_EXTRA_PORT {
            return Err(invalid(
                "client_port",
                format!(
                    "{client} (the default, port + {CLIENT_PORT_OFFSET}) is below {MIN_EXTRA_PORT}; set client_port"
                ),
            ));
        }
        Ok(ports)
    }

    /// The port numbers with the key that sets each, game port first.
    pub fn numbers(&self) -> Vec<(&'static str, u16)> {
        let mut numbers = vec![("port", self.game), ("client_port", self.client)];
        numbers.extend(self.tv.map(|tv| ("tv_port", tv)));
        numbers
    }

    /// Every socket srcds binds, in the order the engine opens them (RCON last).
    pub fn binds(&self) -> Vec<Bind> {
        let udp = |port, role| Bind {
            protocol: Protocol::Udp,
            port,
            role,
        };
        let mut binds = vec![udp(self.game, "game"), udp(self.client, "client")];
        binds.extend(self.tv.map(|tv| udp(tv, "sourcetv")));
        binds.push(Bind {
            protocol: Protocol::Tcp,
            port: self.game,
            role: "rcon",
        });
        binds
    }

    /// The first number this instance shares with `other`: (this key, number, other's key).
    pub fn clash(&self, other: &Ports) -> Option<(&'static str, u16, &'static str)> {
        let theirs = other.numbers();
        self.numbers().into_iter().find_map(|(key, number)| {
            theirs
                .iter()
                .find(|(_, n)| *n == number)
                .map(|(their_key, _)| (key, number, *their_key))
        })
    }

    /// The srcds arguments that set these ports: `-port P +clientport C` then `+tv_port T
    /// +tv_enable 1` when SourceTV is on, else `-nohltv` (which keeps the engine from opening
    /// its SourceTV socket at all).
    pub fn srcds_args(&self) -> Vec<String> {
        let mut args = vec![
            "-port".to_owned(),
            self.game.to_string(),
            "+clientport".to_owned(),
            self.client.to_string(),
        ];
        match self.tv {
            Some(tv) => args.extend([
                "+tv_port".to_owned(),
                tv.to_string(),
                "+tv_enable".to_owned(),
                "1".to_owned(),
            ]),
            None => args.push("-nohltv".to_owned()),
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(port: u16, keys: PortKeys) -> Result<Ports, SpecError> {
        Ports::resolve(Path::new("/i/a.toml"), port, &keys, &HostConfig::default())
    }

    #[test]
    fn defaults_follow_the_game_port() {
        let ports = resolve(27015, PortKeys::default()).unwrap();
        assert_eq!((ports.game, ports.client, ports.tv), (27015, 27115, None));
        let tv = resolve(
            27015,
            PortKeys {
                sourcetv: Some(true),
                ..PortKeys::default()
            },
        )
        .unwrap();
        assert_eq!(tv.tv, Some(27215));
        let rules: Vec<String> = tv.binds().iter().map(Bind::allow_rule).collect();
        assert_eq!(rules, ["udp:27015", "udp:27115", "udp:27215", "tcp:27015"]);
        assert_eq!(
            tv.srcds_args().join(" "),
            "-port 27015 +clientport 27115 +tv_port 27215 +tv_enable 1"
        );
        assert_eq!(
            ports.srcds_args().join(" "),
            "-port 27015 +clientport 27115 -nohltv"
        );
    }

    #[test]
    fn twenty_consecutive_instances_never_collide() {
        let all: Vec<Ports> = (27015..27035)
            .map(|port| {
                resolve(
                    port,
                    PortKeys {
                        sourcetv: Some(true),
                        ..PortKeys::default()
                    },
                )
                .unwrap()
            })
            .collect();
        let mut numbers: Vec<u16> = all
            .iter()
            .flat_map(|p| p.numbers().into_iter().map(|(_, n)| n))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 60);
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_eq!(a.clash(b), None);
            }
        }
    }

    #[test]
    fn clashes_name_both_keys() {
        let a = resolve(27015, PortKeys::default()).unwrap();
        let b = resolve(27115, PortKeys::default()).unwrap();
        assert_eq!(b.clash(&a), Some(("port", 27115, "client_port")));
    }

    #[test]
    fn bad_ports_are_refused_with_the_key() {
        let cases = [
            (
                27015,
                PortKeys {
                    tv_port: Some(27020),
                    ..PortKeys::default()
                },
                "tv_port",
                "SourceTV is off",
            ),
            (
                27015,
                PortKeys {
                    client_port: Some(27015),
                    ..PortKeys::default()
                },
                "client_port",
                "this instance's port",
            ),
            (
                27015,
                PortKeys {
                    sourcetv: Some(true),
                    tv_port: Some(28500),
                    ..PortKeys::default()
                },
                "tv_port",
                "outside the host's port_range",
            ),
            (
                27900,
                PortKeys {
                    sourcetv: Some(true),
                    ..PortKeys::default()
                },
                "tv_port",
                "the default, port + 200",
            ),
            (65500, PortKeys::default(), "client_port", "beyond 65535"),
        ];
        for (port, keys, key, why) in cases {
            let err = resolve(port, keys).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{err}");
            assert!(err.reason.contains(why), "{err}");
        }
    }
}
