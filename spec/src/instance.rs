//! Instance specs (`instances/NAME.toml`), blueprints (`blueprints/NAME.toml`) and the
//! effective spec that results from merging the two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::SpecError;
use crate::host::HostConfig;
use crate::overlay::OverlayRef;
use crate::ports::{PORT_KEYS, PortKeys, Ports};
use crate::schedule::{Schedule, ScheduleKeys};
use crate::toml_fields::{Fields, parse_document};
use crate::values::{CpuList, Duration, Size};
pub use left4me_contract::MAX_LAYERS;
use left4me_contract::game::MAX_CHAIN;

/// The shortest watchdog period (`health.watchdog`) a spec may ask for, in microseconds.
pub const MIN_WATCHDOG_USEC: u64 = 1_000_000;

use left4me_contract::check_name;

pub const DEFAULT_MAP: &str = "c1m1_hotel";
pub const DEFAULT_READY_TIMEOUT: &str = "5min";
pub const DEFAULT_WATCHDOG: &str = "60s";

/// `[resources]`: each key maps to the systemd directive named in its comment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resources {
    /// `CPUAffinity=`
    pub cpu_affinity: Option<CpuList>,
    /// `MemoryHigh=`
    pub memory_high: Option<Size>,
    /// `MemoryMax=`
    pub memory_max: Option<Size>,
    /// `TasksMax=`
    pub tasks_max: Option<u32>,
    /// `Nice=`
    pub nice: Option<i8>,
}

impl Resources {
    /// The limits that are set, as `(spec key, systemd directive, value)`.
    pub fn entries(&self) -> Vec<(&'static str, &'static str, String)> {
        let text = |v: &dyn std::fmt::Display| v.to_string();
        [
            (
                "cpu_affinity",
                "CPUAffinity",
                self.cpu_affinity.as_ref().map(|v| text(v)),
            ),
            (
                "memory_high",
                "MemoryHigh",
                self.memory_high.as_ref().map(|v| text(v)),
            ),
            (
                "memory_max",
                "MemoryMax",
                self.memory_max.as_ref().map(|v| text(v)),
            ),
            ("tasks_max", "TasksMax", self.tasks_max.map(|v| text(&v))),
            ("nice", "Nice", self.nice.map(|v| text(&v))),
        ]
        .into_iter()
        .filter_map(|(key, directive, value)| Some((key, directive, value?)))
        .collect()
    }
}

/// `[health]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    /// `TimeoutStartSec=`: how long the game may take to answer its first query.
    pub ready_timeout: Option<Duration>,
    /// `WatchdogSec=`; `0` turns the watchdog off.
    pub watchdog: Option<Duration>,
}

/// The settings a blueprint and an instance share (everything but `port` and `blueprint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Settings {
    pub map: Option<String>,
    pub maxplayers: Option<u8>,
    pub args: Vec<String>,
    pub overlays: Vec<OverlayRef>,
    /// `game_version`: the game version (an id in `game/versions`) pinned instead of the
    /// current one.
    pub game_version: Option<String>,
    pub config: Option<String>,
    pub resources: Resources,
    pub health: Health,
    /// `[schedule]`: scheduled restarts.
    pub schedule: ScheduleKeys,
}

const SETTINGS_KEYS: [&str; 9] = [
    "map",
    "maxplayers",
    "args",
    "overlays",
    "game_version",
    "config",
    "resources",
    "health",
    "schedule",
];

impl Settings {
    fn read(fields: &mut Fields<'_>) -> Result<Self, SpecError> {
        let file = fields.file();
        let map = fields.string("map")?;
        if let Some(map) = &map {
            check_map(map).map_err(|why| fields.error("map", why))?;
        }
        let maxplayers = fields.integer_in("maxplayers", 1..=32)?;
        let args = match fields.array("args")? {
            None => Vec::new(),
            Some(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    toml::Value::String(arg)
                        if !arg.is_empty() && !arg.contains(['\0', '\n', '\r']) =>
                    {
                        Ok(arg)
                    }
                    other => Err(fields.error(
                        &format!("args[{i}]"),
                        format!("expected a non-empty one-line string, found {other}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        let overlays = match fields.array("overlays")? {
            None => Vec::new(),
            Some(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    OverlayRef::from_value(file, &fields.key(&format!("overlays[{i}]")), item)
                })
                .collect::<Result<_, _>>()?,
        };
        let game_version = fields.string("game_version")?;
        if let Some(id) = &game_version
            && !left4me_contract::game::is_valid_version_id(id)
        {
            return Err(fields.error(
                "game_version",
                format!(
                    "'{}' is not a game version id; write a Steam build id as listed by \
                     `left4mectl game versions`, e.g. \"12345678\" or \"12345678-2\"",
                    id.escape_debug()
                ),
            ));
        }
        let config = fields.string("config")?;
        if config.as_deref().is_some_and(|c| c.contains('\0')) {
            return Err(fields.error("config", "contains a NUL byte"));
        }
        if config.as_deref().is_some_and(sets_rcon_password) {
            return Err(fields.error("config", RCON_PASSWORD_KEPT_BY_ROOT));
        }
        if let Some(i) = args.iter().position(|arg| {
            arg.strip_prefix('+')
                .is_some_and(|cvar| cvar.eq_ignore_ascii_case("rcon_password"))
        }) {
            return Err(fields.error(&format!("args[{i}]"), RCON_PASSWORD_KEPT_BY_ROOT));
        }
        let mut resources = Resources::default();
        let resource_keys = [
            "cpu_affinity",
            "memory_high",
            "memory_max",
            "tasks_max",
            "nice",
        ];
        if let Some(mut table) = fields.table("resources", &resource_keys)? {
            resources.cpu_affinity = table.parsed("cpu_affinity", CpuList::parse)?;
            resources.memory_high = table.parsed("memory_high", Size::parse)?;
            resources.memory_max = table.parsed("memory_max", Size::parse)?;
            resources.tasks_max = table.integer_in("tasks_max", 1..=4_194_304)?;
            resources.nice = table.integer_in("nice", -20..=19)?;
        }
        let mut health = Health::default();
        if let Some(mut table) = fields.table("health", &["ready_timeout", "watchdog"])? {
            health.ready_timeout = table.parsed("ready_timeout", Duration::parse)?;
            if health.ready_timeout.as_ref().is_some_and(Duration::is_zero) {
                return Err(table.error(
                    "ready_timeout",
                    "0 would wait forever; write \"infinity\" if that is meant",
                ));
            }
            health.watchdog = table.parsed("watchdog", Duration::parse)?;
            if health
                .watchdog
                .as_ref()
                .is_some_and(|w| w.as_micros().is_none())
            {
                return Err(table.error("watchdog", "write \"0\" to turn the watchdog off"));
            }
            if health
                .watchdog
                .as_ref()
                .and_then(Duration::as_micros)
                .is_some_and(|us| us != 0 && us < MIN_WATCHDOG_USEC)
            {
                return Err(table.error(
                    "watchdog",
                    "is shorter than 1s: the supervisor queries the game once a period, so a \
                     shorter one restarts a healthy server; use at least \"1s\", or \"0\" to \
                     turn the watchdog off",
                ));
            }
        }
        let schedule = ScheduleKeys::read(fields)?;
        Ok(Settings {
            map,
            maxplayers,
            args,
            overlays,
            game_version,
            config,
            resources,
            health,
            schedule,
        })
    }

    /// Merges `self` (a blueprint) under `over` (an instance): scalars of `over` win, lists and
    /// config are the blueprint's then the instance's, tables merge key by key.
    fn merged_under(self, over: Settings) -> Settings {
        let config = match (self.config, over.config) {
            (Some(base), Some(top)) => Some(join_config(&base, &top)),
            (base, top) => top.or(base),
        };
        Settings {
            map: over.map.or(self.map),
            maxplayers: over.maxplayers.or(self.maxplayers),
            args: [self.args, over.args].concat(),
            overlays: [self.overlays, over.overlays].concat(),
            game_version: over.game_version.or(self.game_version),
            config,
            resources: Resources {
                cpu_affinity: over.resources.cpu_affinity.or(self.resources.cpu_affinity),
                memory_high: over.resources.memory_high.or(self.resources.memory_high),
                memory_max: over.resources.memory_max.or(self.resources.memory_max),
                tasks_max: over.resources.tasks_max.or(self.resources.tasks_max),
                nice: over.resources.nice.or(self.resources.nice),
            },
            health: Health {
                ready_timeout: over.health.ready_timeout.or(self.health.ready_timeout),
                watchdog: over.health.watchdog.or(self.health.watchdog),
            },
            schedule: self.schedule.merged_under(over.schedule),
        }
    }
}

fn join_config(base: &str, top: &str) -> String {
    let mut joined = base.to_owned();
    if !joined.is_empty() && !joined.ends_with('\n') {
        joined.push('\n');
    }
    joined.push_str(top);
    joined
}

fn check_map(map: &str) -> Result<(), String> {
    let valid = !map.is_empty()
        && map.len() <= 64
        && map
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a map name; use letters, digits, '_', '-' and '.', e.g. \"c1m1_hotel\"",
            map.escape_debug()
        ))
    }
}

/// A blueprint file: shared settings several instances inherit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blueprint {
    pub name: String,
    pub file: PathBuf,
    pub settings: Settings,
}

impl Blueprint {
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Self, SpecError> {
        check_name(name).map_err(|why| SpecError::file(file, format!("file name: {why}")))?;
        let table = parse_document(file, text)?;
        for &key in ["port", "blueprint"].iter().chain(&PORT_KEYS) {
            if table.contains_key(key) {
                return Err(SpecError::invalid(
                    file,
                    key,
                    "a blueprint cannot set this; set it in each instance",
                ));
            }
        }
        let mut fields = Fields::new(file, "", table, &SETTINGS_KEYS)?;
        let settings = Settings::read(&mut fields)?;
        Ok(Blueprint {
            name: name.to_owned(),
            file: file.to_path_buf(),
            settings,
        })
    }
}

/// One instance file as written, before its blueprint is merged in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceFile {
    pub name: String,
    pub file: PathBuf,
    pub blueprint: Option<String>,
    pub port: u16,
    /// `client_port`, `sourcetv`, `tv_port` (instance-only, like `port`).
    pub ports: PortKeys,
    pub settings: Settings,
}

impl InstanceFile {
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Self, SpecError> {
        check_name(name).map_err(|why| SpecError::file(file, format!("file name: {why}")))?;
        let table = parse_document(file, text)?;
        let known: Vec<&str> = ["blueprint", "port"]
            .iter()
            .chain(&PORT_KEYS)
            .chain(&SETTINGS_KEYS)
            .copied()
            .collect();
        let mut fields = Fields::new(file, "", table, &known)?;
        let blueprint = fields.string("blueprint")?;
        if let Some(blueprint) = &blueprint {
            check_name(blueprint).map_err(|why| fields.error("blueprint", why))?;
        }
        let port = fields.integer_in("port", 1..=65535)?.ok_or_else(|| {
            fields.error(
                "port",
                "missing; every instance needs a port, e.g. port = 27015",
            )
        })?;
        let ports = PortKeys::read(&mut fields)?;
        let settings = Settings::read(&mut fields)?;
        Ok(InstanceFile {
            name: name.to_owned(),
            file: file.to_path_buf(),
            blueprint,
            port,
            ports,
            settings,
        })
    }
}

/// The effective spec of an instance: blueprint merged, defaults filled in, fully validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub name: String,
    /// The instance's spec file.
    pub file: PathBuf,
    pub blueprint: Option<String>,
    /// The game port: UDP (players, queries) and TCP (RCON).
    pub port: u16,
    /// UDP: the engine's client socket (`+clientport`); default `port + 100`.
    pub client_port: u16,
    /// UDP: SourceTV (`+tv_port`), `Some` exactly when SourceTV is on; default `port + 200`.
    pub tv_port: Option<u16>,
    pub map: String,
    pub maxplayers: Option<u8>,
    pub args: Vec<String>,
    /// Lowest first: a later entry wins over an earlier one.
    pub overlays: Vec<OverlayRef>,
    /// The game version pinned by `game_version` (the instance's, else its blueprint's);
    /// `None`: the version current at each start.
    pub game_version: Option<String>,
    /// The file that set `game_version` (the instance's or the blueprint's), for messages.
    pub game_version_file: Option<PathBuf>,
    /// The blueprint's config then the instance's.
    pub config: String,
    pub resources: Resources,
    pub ready_timeout: Duration,
    pub watchdog: Duration,
    /// `[schedule]`: when to restart it; `None` without the table.
    pub schedule: Option<Schedule>,
}

impl Instance {
    /// Every port this instance's srcds binds.
    pub fn ports(&self) -> Ports {
        Ports {
            game: self.port,
            client: self.client_port,
            tv: self.tv_port,
        }
    }

    /// Merges `blueprint` (which must be the one `file` names) into `file` and checks the
    /// rules that need the whole picture: host port range, layer count, repeated layers and
    /// aliases, memory limits.
    pub fn resolve(
        file: InstanceFile,
        blueprint: Option<&Blueprint>,
        host: &HostConfig,
    ) -> Result<Self, SpecError> {
        debug_assert_eq!(
            file.blueprint.as_deref(),
            blueprint.map(|b| b.name.as_str())
        );
        let path = file.file;
        let invalid = |key: &str, why: String| SpecError::invalid(&path, key, why);
        let (lo, hi) = host.port_range;
        if !(lo..=hi).contains(&file.port) {
            return Err(invalid(
                "port",
                format!(
                    "{} is outside the host's port_range {lo}-{hi} (see host.toml)",
                    file.port
                ),
            ));
        }
        let game_version_file = match (&file.settings.game_version, blueprint) {
            (Some(_), _) => Some(path.clone()),
            (None, Some(b)) if b.settings.game_version.is_some() => Some(b.file.clone()),
            _ => None,
        };
        let ports = Ports::resolve(&path, file.port, &file.ports, host)?;
        let settings = match blueprint {
            Some(blueprint) => blueprint.settings.clone().merged_under(file.settings),
            None => file.settings,
        };
        // The game below them is `installation/` or a version's chain of up to MAX_CHAIN layers.
        if settings.overlays.len() + MAX_CHAIN > MAX_LAYERS {
            return Err(invalid(
                "overlays",
                format!(
                    "{} overlays plus up to {MAX_CHAIN} game layers exceed the kernel's limit of {MAX_LAYERS} layers",
                    settings.overlays.len()
                ),
            ));
        }
        let mut seen_paths = HashMap::new();
        let mut seen_aliases = HashMap::new();
        for (i, overlay) in settings.overlays.iter().enumerate() {
            if let Some(first) = seen_paths.insert(overlay.path.as_str(), i) {
                return Err(invalid(
                    "overlays",
                    format!(
                        "'{}' is listed twice (entries {first} and {i}, counting the blueprint's overlays first)",
                        overlay.path
                    ),
                ));
            }
            if let Some(alias) = &overlay.alias
                && let Some(first) = seen_aliases.insert(alias.as_str(), i)
            {
                return Err(invalid(
                    "overlays",
                    format!(
                        "alias '{alias}' is used twice (entries {first} and {i}, counting the blueprint's overlays first)"
                    ),
                ));
            }
        }
        let res = &settings.resources;
        if let (Some(high), Some(max)) = (&res.memory_high, &res.memory_max)
            && high.exceeds(max)
        {
            return Err(invalid(
                "resources.memory_high",
                format!(
                    "{high} is above resources.memory_max {max}; MemoryHigh must not exceed MemoryMax"
                ),
            ));
        }
        let schedule = settings.schedule.resolve(|key, why| invalid(key, why))?;
        let default = |text| Duration::parse(text).expect("valid default");
        Ok(Instance {
            name: file.name,
            blueprint: file.blueprint,
            port: file.port,
            client_port: ports.client,
            tv_port: ports.tv,
            map: settings.map.unwrap_or_else(|| DEFAULT_MAP.to_owned()),
            maxplayers: settings.maxplayers,
            args: settings.args,
            overlays: settings.overlays,
            game_version: settings.game_version,
            game_version_file,
            config: settings.config.unwrap_or_default(),
            resources: settings.resources,
            ready_timeout: settings
                .health
                .ready_timeout
                .unwrap_or_else(|| default(DEFAULT_READY_TIMEOUT)),
            watchdog: settings
                .health
                .watchdog
                .unwrap_or_else(|| default(DEFAULT_WATCHDOG)),
            schedule,
            file: path,
        })
    }
}

/// Why a spec may not set `rcon_password` (DESIGN §10: never in specs or argv).
const RCON_PASSWORD_KEPT_BY_ROOT: &str = "sets rcon_password; left4me keeps each instance's \
    RCON password root-only and hands it to the game itself: remove it here and use \
    `left4mectl rcon-password NAME` (or --rotate)";

/// Whether console text runs `rcon_password`: a statement (lines, split at `;`) whose first
/// word, quoted or not, is that cvar in any case, as the Source console reads it.
fn sets_rcon_password(config: &str) -> bool {
    config
        .lines()
        .flat_map(|line| line.split(';'))
        .any(|statement| {
            let word = statement.trim_start().trim_start_matches('"');
            let end = word
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(word.len());
            word[..end].eq_ignore_ascii_case("rcon_password")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(text: &str) -> Result<InstanceFile, SpecError> {
        InstanceFile::parse(
            "coop1",
            Path::new("/etc/left4me/instances/coop1.toml"),
            text,
        )
    }

    fn blueprint(text: &str) -> Blueprint {
        Blueprint::parse("coop", Path::new("/etc/left4me/blueprints/coop.toml"), text).unwrap()
    }

    fn resolve(inst: &str, bp: Option<&str>) -> Result<Instance, SpecError> {
        let bp = bp.map(blueprint);
        Instance::resolve(instance(inst)?, bp.as_ref(), &HostConfig::default())
    }

    const DESIGN_EXAMPLE: &str = r#"
blueprint = "coop"
port = 27015
map = "c1m1_hotel"
maxplayers = 8
args = ["-tickrate", "60"]
overlays = [
  "overlays/sourcemod",
  { path = "overlays/tickrate", alias = "tickrate" },
]
config = """
hostname "Coop #1"
sv_consistency 0
"""

[resources]
cpu_affinity = "2-3"
memory_high = "1.5G"
memory_max = "2G"
tasks_max = 256
nice = -5

[health]
ready_timeout = "5min"
watchdog = "60s"
"#;

    #[test]
    fn the_design_example_parses() {
        let file = instance(DESIGN_EXAMPLE).unwrap();
        assert_eq!(file.blueprint.as_deref(), Some("coop"));
        assert_eq!(file.port, 27015);
        let s = &file.settings;
        assert_eq!(s.maxplayers, Some(8));
        assert_eq!(s.args, ["-tickrate", "60"]);
        assert_eq!(s.overlays.len(), 2);
        assert_eq!(s.overlays[1].alias.as_deref(), Some("tickrate"));
        assert_eq!(
            s.config.as_deref(),
            Some("hostname \"Coop #1\"\nsv_consistency 0\n")
        );
        assert_eq!(s.resources.nice, Some(-5));
        assert_eq!(s.resources.tasks_max, Some(256));
        assert_eq!(s.health.watchdog.as_ref().unwrap().to_string(), "60s");
    }

    #[test]
    fn a_spec_never_holds_the_rcon_password() {
        for config in [
            "rcon_password secret",
            "hostname x\n  RCON_PASSWORD \"secret\"",
            "sv_cheats 0; rcon_password secret",
            "\"rcon_password\" \"secret\"",
        ] {
            let text = format!("port = 27015\nconfig = {}", toml::Value::from(config));
            let err = instance(&text).unwrap_err().to_string();
            assert!(
                err.contains("'config': sets rcon_password"),
                "{config:?}: {err}"
            );
            assert!(err.contains("left4mectl rcon-password"), "{err}");
        }
        let err =
            instance("port = 27015\nargs = [\"-tickrate\", \"60\", \"+rcon_password\", \"x\"]")
                .unwrap_err()
                .to_string();
        assert!(err.contains("key 'args[2]': sets rcon_password"), "{err}");
        // Other cvars that merely start alike, and comments, are fine.
        instance(
            "port = 27015\nconfig = \"rcon_passwordx 1\\n// rcon_password\\nsv_rcon_banpenalty 5\"",
        )
        .unwrap();
    }

    #[test]
    fn defaults_fill_in() {
        let inst = resolve("port = 27015", None).unwrap();
        assert_eq!(inst.map, DEFAULT_MAP);
        assert_eq!(inst.ready_timeout.to_string(), DEFAULT_READY_TIMEOUT);
        assert_eq!(inst.watchdog.to_string(), DEFAULT_WATCHDOG);
        assert!(inst.overlays.is_empty() && inst.args.is_empty() && inst.config.is_empty());
    }

    #[test]
    fn blueprint_merge_rules() {
        let bp = r#"
map = "c2m1_highway"
maxplayers = 4
args = ["-tickrate", "100"]
overlays = ["overlays/base", { path = "overlays/cfgs", alias = "cfgs" }]
config = "sv_cheats 0"
[resources]
memory_max = "3G"
nice = 0
[health]
watchdog = "30s"
"#;
        let inst = r#"
blueprint = "coop"
port = 27016
maxplayers = 8
args = ["+sv_lan", "0"]
overlays = ["overlays/extra"]
config = "hostname x\n"
[resources]
nice = -5
"#;
        let merged = resolve(inst, Some(bp)).unwrap();
        assert_eq!(
            merged.map, "c2m1_highway",
            "blueprint scalar when instance is silent"
        );
        assert_eq!(merged.maxplayers, Some(8), "instance scalar wins");
        assert_eq!(merged.args, ["-tickrate", "100", "+sv_lan", "0"]);
        let paths: Vec<_> = merged.overlays.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["overlays/base", "overlays/cfgs", "overlays/extra"]);
        assert_eq!(merged.config, "sv_cheats 0\nhostname x\n");
        assert_eq!(merged.resources.nice, Some(-5));
        assert_eq!(merged.resources.memory_max.unwrap().to_string(), "3G");
        assert_eq!(merged.watchdog.to_string(), "30s");
        assert_eq!(merged.ready_timeout.to_string(), DEFAULT_READY_TIMEOUT);
    }

    #[test]
    fn game_version_pins_come_from_the_instance_before_the_blueprint() {
        let bp = "game_version = \"100\"\n";
        let merged = resolve("blueprint = \"coop\"\nport = 27016\n", Some(bp)).unwrap();
        assert_eq!(merged.game_version.as_deref(), Some("100"));
        assert_eq!(
            merged.game_version_file.as_deref(),
            Some(Path::new("/etc/left4me/blueprints/coop.toml"))
        );
        let inst = "blueprint = \"coop\"\nport = 27016\ngame_version = \"200-2\"\n";
        let merged = resolve(inst, Some(bp)).unwrap();
        assert_eq!(merged.game_version.as_deref(), Some("200-2"));
        assert_eq!(
            merged.game_version_file.as_deref(),
            Some(Path::new("/etc/left4me/instances/coop1.toml"))
        );
        let plain = resolve("port = 27016\n", None).unwrap();
        assert_eq!((plain.game_version, plain.game_version_file), (None, None));
        let err = resolve("port = 27016\ngame_version = \"1-1\"\n", None).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("game_version"));
        assert!(err.reason.contains("not a game version id"), "{err}");
    }

    #[test]
    fn blueprints_cannot_set_port_or_blueprint() {
        for text in [
            "port = 1",
            "blueprint = 'x'",
            "client_port = 28000",
            "sourcetv = true",
            "tv_port = 27020",
        ] {
            let err = Blueprint::parse("b", Path::new("/b.toml"), text).unwrap_err();
            assert!(err.reason.contains("cannot set"), "{err}");
        }
    }

    #[test]
    fn every_bad_value_names_its_key() {
        for (text, key) in [
            ("", "port"),
            ("port = 'x'", "port"),
            ("port = 70000", "port"),
            ("port = 80", "port"),
            ("port = 27015\nmapp = 'x'", "mapp"),
            ("port = 27015\nmap = 'c1m1 hotel'", "map"),
            ("port = 27015\nmaxplayers = 0", "maxplayers"),
            ("port = 27015\ngame_version = '01'", "game_version"),
            ("port = 27015\ngame_version = 12345678", "game_version"),
            ("port = 27015\ngame_version = '../1'", "game_version"),
            ("port = 27015\nblueprint = 'Bad'", "blueprint"),
            ("port = 27015\nargs = ['a', '']", "args[1]"),
            ("port = 27015\nargs = 'x'", "args"),
            ("port = 27015\noverlays = ['/etc']", "overlays[0]"),
            (
                "port = 27015\noverlays = ['overlays/a', 'overlays/a']",
                "overlays",
            ),
            (
                "port = 27015\noverlays = [{path='overlays/a',alias='x'},{path='overlays/b',alias='x'}]",
                "overlays",
            ),
            (
                "port = 27015\n[resources]\ncpu_affinity = 'all'",
                "resources.cpu_affinity",
            ),
            (
                "port = 27015\n[resources]\nmemory_max = '2 GB'",
                "resources.memory_max",
            ),
            (
                "port = 27015\n[resources]\nmemory_high = '3G'\nmemory_max = '2G'",
                "resources.memory_high",
            ),
            (
                "port = 27015\n[resources]\ntasks_max = 0",
                "resources.tasks_max",
            ),
            ("port = 27015\n[resources]\nnice = -21", "resources.nice"),
            ("port = 27015\n[resources]\nswap = 1", "resources.swap"),
            (
                "port = 27015\n[health]\nready_timeout = 'soon'",
                "health.ready_timeout",
            ),
            (
                "port = 27015\n[health]\nready_timeout = '0'",
                "health.ready_timeout",
            ),
            (
                "port = 27015\n[health]\nwatchdog = 'infinity'",
                "health.watchdog",
            ),
            (
                "port = 27015\n[health]\nwatchdog = '1us'",
                "health.watchdog",
            ),
            (
                "port = 27015\n[health]\nwatchdog = '999ms'",
                "health.watchdog",
            ),
            ("port = 27015\nhealth = 5", "health"),
        ] {
            let err = resolve(text, None).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{text:?}: {err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn watchdog_floor_is_one_second() {
        for ok in ["0", "1s", "1000ms", "60s"] {
            let text = format!("port = 27015\n[health]\nwatchdog = '{ok}'");
            assert!(resolve(&text, None).is_ok(), "{ok}");
        }
    }

    #[test]
    fn layer_limit_counts_the_game_layers() {
        let overlays = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("'overlays/o{i}'")).collect();
            format!("port = 27015\noverlays = [{}]", list.join(","))
        };
        assert_eq!(
            resolve(&overlays(MAX_LAYERS - MAX_CHAIN), None)
                .unwrap()
                .overlays
                .len(),
            496
        );
        let err = resolve(&overlays(MAX_LAYERS - MAX_CHAIN + 1), None).unwrap_err();
        assert!(err.reason.contains("limit of 500 layers"), "{err}");
    }

    #[test]
    fn file_names_are_checked() {
        let err = InstanceFile::parse("Bad", Path::new("/i/Bad.toml"), "port = 27015").unwrap_err();
        assert!(err.reason.starts_with("file name:"), "{err}");
    }
}
