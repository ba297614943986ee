//! The server console that RCON drives: cvars and the commands the toolkit and its tests use,
//! printing what srcds prints (formats from the Source engine as published and real Left 4 Dead
//! server output; README.md beside this crate lists each and its source).
//!
//! Commands: `status`, `say`, `changelevel`/`map`, `cvarlist [PREFIX]`, `echo`, `quit`/`exit`,
//! the stand-in-only test hook `left4me_addons` (the add-ons mounted at map load);
//! `NAME VALUE` sets a cvar, `NAME` alone prints it; anything else is `Unknown command "NAME"`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cfg;
use crate::players::Roster;
use crate::rcon::{Executed, Settings};
use crate::reply::VERSION;

/// A made-up build number for `status` (the real one changes with every game update).
const BUILD: u32 = 9210;
/// The rate `status` shows for every simulated player (the L4D default `rate`).
const RATE: u32 = 30000;
/// Bot names, given in turn (the survivors).
pub const BOT_NAMES: [&str; 8] = [
    "Coach", "Ellis", "Nick", "Rochelle", "Bill", "Zoey", "Francis", "Louis",
];

/// Maps of the stock campaigns (c1–c14), which a real server loads from its VPKs, so they need
/// no `maps/NAME.bsp` in the game tree.
pub const STOCK_MAPS: &[&str] = &[
    "c1m1_hotel",
    "c1m2_streets",
    "c1m3_mall",
    "c1m4_atrium",
    "c2m1_highway",
    "c2m2_fairgrounds",
    "c2m3_coaster",
    "c2m4_barns",
    "c2m5_concert",
    "c3m1_plankcountry",
    "c3m2_swamp",
    "c3m3_shantytown",
    "c3m4_plantation",
    "c4m1_milltown_a",
    "c4m2_sugarmill_a",
    "c4m3_sugarmill_b",
    "c4m4_milltown_b",
    "c4m5_milltown_escape",
    "c5m1_waterfront",
    "c5m2_park",
    "c5m3_cemetery",
    "c5m4_quarter",
    "c5m5_bridge",
    "c6m1_riverbank",
    "c6m2_bedlam",
    "c6m3_port",
    "c7m1_docks",
    "c7m2_barge",
    "c7m3_port",
    "c8m1_apartment",
    "c8m2_subway",
    "c8m3_sewers",
    "c8m4_interior",
    "c8m5_rooftop",
    "c9m1_alleys",
    "c9m2_lots",
    "c10m1_caves",
    "c10m2_drainage",
    "c10m3_ranchhouse",
    "c10m4_mainstreet",
    "c10m5_houseboat",
    "c11m1_greenhouse",
    "c11m2_offices",
    "c11m3_garage",
    "c11m4_terminal",
    "c11m5_runway",
    "c12m1_hilltop",
    "c12m2_traintunnel",
    "c12m3_bridge",
    "c12m4_barn",
    "c12m5_cornfield",
    "c13m1_alpinecreek",
    "c13m2_southpinestream",
    "c13m3_memorialbridge",
    "c13m4_cutthroatcreek",
    "c14m1_junkyard",
    "c14m2_lighthouse",
];

/// One built-in cvar or command (from `cvars.txt`).
#[derive(Debug)]
struct Builtin {
    /// `None` for a command.
    default: Option<&'static str>,
    flags: &'static str,
    help: &'static str,
}

fn builtins() -> &'static BTreeMap<&'static str, Builtin> {
    static TABLE: OnceLock<BTreeMap<&'static str, Builtin>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("cvars.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let mut fields = line.splitn(4, '|');
                let name = fields.next()?;
                let default = fields.next()?;
                Some((
                    name,
                    Builtin {
                        default: (default != "cmd").then_some(default),
                        flags: fields.next()?,
                        help: fields.next()?,
                    },
                ))
            })
            .collect()
    })
}

/// What `status` reports about the server beyond the console's own state.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    pub roster: &'a Roster,
    pub bots: u8,
    pub max_players: u8,
    /// The game socket's address.
    pub addr: SocketAddr,
    pub vac: bool,
    /// The moment `status` describes.
    pub now: Instant,
}

/// The console: cvars, the current map, and what happened (for the log).
#[derive(Debug)]
pub struct Console {
    /// Cvars set (on the command line, by the cfg chain or at the console), by lower-case name.
    pub cvars: BTreeMap<String, String>,
    pub map: String,
    /// `<game>`: `changelevel` looks for `maps/NAME.bsp` below it.
    game_dir: PathBuf,
    /// Set by `quit`/`exit`.
    pub quit: bool,
    /// Lines for the server log, taken by the caller.
    pub events: Vec<String>,
    /// What `left4me_addons` prints: the add-ons mounted at map load (`addons::scan`).
    pub addons: Vec<String>,
}

impl Console {
    pub fn new(cvars: BTreeMap<String, String>, map: String, game_dir: PathBuf) -> Self {
        Self {
            cvars,
            map,
            game_dir,
            quit: false,
            events: Vec::new(),
            addons: Vec::new(),
        }
    }

    /// A cvar's value: set, or its built-in default.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.cvars
            .get(&name)
            .cloned()
            .or_else(|| builtins().get(name.as_str())?.default.map(String::from))
    }

    fn number(&self, name: &str) -> f64 {
        let value = self.get(name).unwrap_or_default();
        // Like atof: a leading number, else 0.
        let end = value
            .trim()
            .find(|c: char| !(c.is_ascii_digit() || ".-+".contains(c)))
            .unwrap_or(value.trim().len());
        value.trim()[..end].parse().unwrap_or(0.0)
    }

    /// The RCON settings, within the bounds srcds gives their cvars.
    pub fn rcon_settings(&self) -> Settings {
        let int = |name: &str, lo: f64, hi: f64| self.number(name).clamp(lo, hi) as u32;
        Settings {
            password: self.get("rcon_password").unwrap_or_default(),
            max_failures: int("sv_rcon_maxfailures", 1.0, 20.0),
            min_failures: int("sv_rcon_minfailures", 1.0, 20.0),
            min_failure_time: Duration::from_secs_f64(
                self.number("sv_rcon_minfailuretime").clamp(1.0, 1e9),
            ),
            ban_minutes: int("sv_rcon_banpenalty", 0.0, 1e9),
            whitelist: self.get("sv_rcon_whitelist_address").unwrap_or_default(),
            max_packet_size: self.number("sv_rcon_maxpacketsize").clamp(0.0, 1e9) as i32,
            max_packet_bans: self.number("sv_rcon_maxpacketbans") != 0.0,
        }
    }

    /// The value SERVERDATA_REQUESTVALUE reports: a cvar, or srcds's special names.
    pub fn value(&self, name: &str, world: &World) -> Option<String> {
        self.get(name)
            .or_else(|| match name.to_ascii_lowercase().as_str() {
                "map" => Some(self.map.clone()),
                "playercount" => Some(world.roster.count().to_string()),
                "maxplayers" => Some(world.max_players.to_string()),
                "gamedescription" => Some("L4D2".into()),
                _ => None,
            })
    }

    /// Run one console line (several commands may be separated by `;`).
    pub fn execute(&mut self, line: &str, world: &World) -> Executed {
        let mut executed = Executed::default();
        for words in cfg::commands(line) {
            let (head, args) = words.split_first().expect("commands are never empty");
            let name = head.to_ascii_lowercase();
            let prints = &mut executed.prints;
            match name.as_str() {
                "status" => prints.extend(self.status(world)),
                "say" if !args.is_empty() => {
                    let message = args.join(" ");
                    self.events.push(format!(
                        "\"Console<0><Console><Console>\" say \"{message}\""
                    ));
                    prints.push(format!("Console: {message}\n"));
                }
                "say" => {}
                "changelevel" | "map" => prints.extend(self.changelevel(&name, args)),
                "cvarlist" => prints.extend(self.cvarlist(args.first().map(String::as_str))),
                "echo" => prints.push(format!("{}\n", args.join(" "))),
                // Stand-in only (a test hook): the add-ons mounted at map load.
                "left4me_addons" => prints.extend(self.addons.iter().map(|l| format!("{l}\n"))),
                "quit" | "exit" => {
                    self.events.push(format!("{name} (console)"));
                    self.quit = true;
                }
                _ if self.get(&name).is_some() => {
                    if args.is_empty() {
                        prints.extend(self.describe(&name));
                    } else {
                        self.cvars.insert(name.clone(), args.join(" "));
                        executed.password_written |= name == "rcon_password";
                    }
                }
                _ if builtins().contains_key(name.as_str()) => {
                    // A real command the stand-in does not model: it does nothing here.
                    self.events.push(format!("console: {name} not modelled"));
                }
                _ => prints.push(format!("Unknown command \"{head}\"\n")),
            }
        }
        executed
    }

    fn changelevel(&mut self, command: &str, args: &[String]) -> Vec<String> {
        let Some(map) = args.first() else {
            return vec![if command == "map" {
                "No map specified\n".into()
            } else {
                "changelevel <levelname> : continue game on a new level\n".into()
            }];
        };
        let safe = !map.is_empty()
            && map
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !map.contains("..");
        let known = safe
            && (STOCK_MAPS.contains(&map.to_ascii_lowercase().as_str())
                || self
                    .game_dir
                    .join("maps")
                    .join(format!("{map}.bsp"))
                    .is_file());
        if !known {
            return vec![if command == "map" {
                format!("map load failed: {map} not found or invalid\n")
            } else {
                format!("changelevel failed: {map} not found\n")
            }];
        }
        self.events
            .push(format!("{command}: {} -> {map}", self.map));
        self.map = map.clone();
        Vec::new()
    }

    /// `"name" = "value" ( def. "default" )`, the flags and the help text, as the engine prints a
    /// cvar named alone.
    fn describe(&self, name: &str) -> Vec<String> {
        let value = self.get(name).unwrap_or_default();
        let Some(builtin) = builtins().get(name) else {
            return vec![format!("\"{name}\" = \"{value}\"\n")];
        };
        let mut lines = vec![format!(
            "\"{name}\" = \"{value}\" ( def. \"{}\" )\n",
            builtin.default.unwrap_or("")
        )];
        if !builtin.flags.is_empty() {
            lines.push(format!(" {}\n", builtin.flags.replace(", ", " ")));
        }
        if !builtin.help.is_empty() {
            lines.push(format!(" - {}\n", builtin.help));
        }
        lines
    }

    /// The engine's `cvarlist`: one line per cvar or command, `name : value : flags : help`.
    fn cvarlist(&self, prefix: Option<&str>) -> Vec<String> {
        let prefix = prefix.unwrap_or("").to_ascii_lowercase();
        let mut names: Vec<&str> = builtins().keys().copied().collect();
        names.extend(self.cvars.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        names.retain(|name| name.starts_with(&prefix));
        let mut lines = vec!["cvar list\n--------------\n".to_owned()];
        for name in &names {
            let builtin = builtins().get(name);
            let value = match builtin {
                Some(Builtin { default: None, .. }) => "cmd".to_owned(),
                _ => self.get(name).unwrap_or_default(),
            };
            let (flags, help) = builtin.map_or(("", ""), |b| (b.flags, b.help));
            lines.push(format!("{name:<40} : {value:<8} : {flags:<16} : {help}\n"));
        }
        lines.push(format!(
            "--------------\n{:3} total convars/concommands\n",
            names.len()
        ));
        lines
    }

    /// `status` as a Left 4 Dead 2 dedicated server prints it to its console (and so to RCON).
    fn status(&self, world: &World) -> Vec<String> {
        let humans = world.roster.count();
        let secure = if world.vac { "secure" } else { "insecure" };
        let hibernating = if humans == 0 {
            "hibernating"
        } else {
            "not hibernating"
        };
        let mut lines = vec![
            format!("hostname: {}\n", self.get("hostname").unwrap_or_default()),
            format!("version : {VERSION} {BUILD} {secure}  (unknown)\n"),
            format!("udp/ip  : {0} [ public {0} ]\n", world.addr),
            "os      : Linux Dedicated\n".to_owned(),
            format!("map     : {}\n", self.map),
            format!(
                "players : {humans} humans, {} bots ({} max) ({hibernating}) (unreserved)\n",
                world.bots, world.max_players
            ),
            "\n".to_owned(),
            "# userid name uniqueid connected ping loss state rate adr\n".to_owned(),
        ];
        for (slot, player) in world.roster.players().iter().enumerate() {
            let id = player.userid;
            lines.push(format!(
                "# {id:2} {} \"{}\" STEAM_1:{}:{} {} {} 0 active {RATE} 192.0.2.{}:27005\n",
                slot + 1,
                player.name,
                id % 2,
                1_000_000 + id,
                format_seconds(player.connected(world.now)),
                30 + (id * 7) % 40,
                id % 254 + 1,
            ));
        }
        for bot in 0..u32::from(world.bots) {
            let name = BOT_NAMES[bot as usize % BOT_NAMES.len()];
            lines.push(format!("#{:2} \"{name}\" BOT active\n", bot + 2));
        }
        lines.push("#end\n".to_owned());
        lines
    }
}

/// The engine's `COM_FormatSeconds`: `mm:ss`, or `h:mm:ss` from an hour on.
fn format_seconds(connected: Duration) -> String {
    let secs = connected.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes:02}:{seconds:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::players::Wanted;

    fn world(roster: &Roster, now: Instant) -> World<'_> {
        World {
            roster,
            bots: 1,
            max_players: 8,
            addr: "127.0.0.1:27015".parse().unwrap(),
            vac: true,
            now,
        }
    }

    fn console() -> Console {
        let cvars = BTreeMap::from([("hostname".to_owned(), "Coop #1".to_owned())]);
        Console::new(cvars, "c1m1_hotel".into(), "/nonexistent".into())
    }

    fn run(console: &mut Console, line: &str, world: &World) -> String {
        console.execute(line, world).prints.concat()
    }

    #[test]
    fn prints_status_like_srcds() {
        let t0 = Instant::now();
        let mut roster = Roster::new(3);
        roster.update(
            &Wanted {
                anonymous: 0,
                named: vec![("Alice".into(), 3), ("Bob".into(), 0)],
            },
            t0,
        );
        let now = t0 + Duration::from_secs(75);
        let mut console = console();
        let text = run(&mut console, "status", &world(&roster, now));
        let expected = "hostname: Coop #1\n\
            version : 2.2.4.3 9210 secure  (unknown)\n\
            udp/ip  : 127.0.0.1:27015 [ public 127.0.0.1:27015 ]\n\
            os      : Linux Dedicated\n\
            map     : c1m1_hotel\n\
            players : 2 humans, 1 bots (8 max) (not hibernating) (unreserved)\n\
            \n\
            # userid name uniqueid connected ping loss state rate adr\n\
            #  3 1 \"Alice\" STEAM_1:1:1000003 01:15 51 0 active 30000 192.0.2.4:27005\n\
            #  4 2 \"Bob\" STEAM_1:0:1000004 01:15 58 0 active 30000 192.0.2.5:27005\n\
            # 2 \"Coach\" BOT active\n\
            #end\n";
        assert_eq!(text, expected);
        assert_eq!(format_seconds(Duration::from_secs(3725)), "1:02:05");
    }

    #[test]
    fn sets_reads_and_refuses() {
        let roster = Roster::new(2);
        let now = Instant::now();
        let w = world(&roster, now);
        let mut console = console();
        assert_eq!(
            run(&mut console, "hostname", &w),
            "\"hostname\" = \"Coop #1\" ( def. \"Left 4 Dead 2\" )\n - Hostname for server.\n"
        );
        assert_eq!(
            run(
                &mut console,
                "hostname \"New name\"; sv_rcon_maxfailures 5",
                &w
            ),
            ""
        );
        assert_eq!(console.get("HOSTNAME").as_deref(), Some("New name"));
        assert_eq!(console.rcon_settings().max_failures, 5);
        assert_eq!(
            run(&mut console, "nosuch 1", &w),
            "Unknown command \"nosuch\"\n"
        );
        assert_eq!(
            run(&mut console, "say hello  there", &w),
            "Console: hello there\n"
        );
        assert_eq!(
            console.events,
            ["\"Console<0><Console><Console>\" say \"hello there\""]
        );
        assert!(console.execute("rcon_password x", &w).password_written);
        assert_eq!(console.rcon_settings().password, "x");
    }

    #[test]
    fn changes_level_to_known_maps_only() {
        let roster = Roster::new(2);
        let w = world(&roster, Instant::now());
        let mut console = console();
        assert_eq!(
            run(&mut console, "changelevel c9m9_nowhere", &w),
            "changelevel failed: c9m9_nowhere not found\n"
        );
        assert_eq!(
            run(&mut console, "changelevel ../../etc/passwd", &w),
            "changelevel failed: ../../etc/passwd not found\n"
        );
        assert_eq!(console.map, "c1m1_hotel");
        assert_eq!(run(&mut console, "changelevel c2m1_highway", &w), "");
        assert_eq!(console.map, "c2m1_highway");
    }

    #[test]
    fn lists_hundreds_of_cvars() {
        let roster = Roster::new(2);
        let w = world(&roster, Instant::now());
        let text = run(&mut console(), "cvarlist", &w);
        let lines = text.lines().count();
        assert!(lines > 200, "{lines} lines");
        assert!(
            text.len() > 3 * crate::rcon::MAX_CHUNK,
            "{} bytes",
            text.len()
        );
        assert!(text.contains("\nhostname                                 : Coop #1  : "));
        assert!(text.ends_with(" total convars/concommands\n"));
    }
}
