//! Overlays: references to content layers in instance specs, and overlay definitions
//! (`overlays/NAME.toml`) that say how a layer's content is made.

use std::path::Path;

use serde::Serialize;
use toml::Value;

use crate::error::SpecError;
use crate::layout::check_plain_path_chars;
use crate::toml_fields::{Fields, parse_document};
use crate::values::{Duration, Size};
use left4me_contract::{LAYER_ROOTS, check_name};

/// One entry of an instance's `overlays` list: a bare path or `{ path, alias }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverlayRef {
    /// Relative to the state dir, beneath one of [`LAYER_ROOTS`]; checked lexically here and
    /// again against the file system (symlinks) when the overlay is mounted.
    pub path: String,
    /// When set, the layer's `left4dead2/cfg/server.cfg` is staged as
    /// `server_overlay_<alias>.cfg` and executed before the instance's own config.
    pub alias: Option<String>,
}

impl OverlayRef {
    /// Reads one list entry; `key` is its place for error messages (`overlays[2]`).
    pub(crate) fn from_value(file: &Path, key: &str, value: Value) -> Result<Self, SpecError> {
        let (path, alias) = match value {
            Value::String(path) => (path, None),
            Value::Table(table) => {
                let mut fields = Fields::new(file, key, table, &["path", "alias"])?;
                let path = fields.string("path")?.ok_or_else(|| {
                    fields.error("path", "missing; write { path = \"overlays/NAME\" }")
                })?;
                let alias = fields.string("alias")?;
                if let Some(alias) = &alias {
                    check_name(alias).map_err(|why| fields.error("alias", why))?;
                }
                (path, alias)
            }
            other => {
                return Err(SpecError::invalid(
                    file,
                    key,
                    format!(
                        "expected a path string or {{ path, alias }} table, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        check_layer_path(&path).map_err(|why| SpecError::invalid(file, key, why))?;
        Ok(OverlayRef { path, alias })
    }
}

/// The lexical rules for a layer path: relative, normal components only, beneath a layer root.
pub(crate) fn check_layer_path(path: &str) -> Result<(), String> {
    let fail = |why: &str| {
        Err(format!(
            "'{}' {why}; write a path relative to the state dir such as \"overlays/sourcemod\"",
            path.escape_debug()
        ))
    };
    if path.starts_with('/') {
        return fail("is absolute");
    }
    check_plain_path_chars(path).or_else(|why| fail(&why))?;
    let components: Vec<&str> = path.split('/').collect();
    if components
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return fail("has an empty, '.' or '..' component");
    }
    if !LAYER_ROOTS.contains(&components[0]) || components.len() < 2 {
        return fail("is not beneath installation/, overlays/ or workshop_cache/");
    }
    Ok(())
}

/// How an overlay's content is made: `overlays/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverlayDef {
    pub name: String,
    #[serde(flatten)]
    pub kind: OverlayKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OverlayKind {
    /// Content is put into `overlays/NAME` by hand.
    Manual,
    /// Content is built by a script in the sandbox.
    Script {
        script: String,
        /// `false`: no network at all during the build.
        network: bool,
        /// TCP ports the script may connect to.
        allow_ports: Vec<u16>,
        limits: ScriptLimits,
        /// Whether the nightly `overlay refresh` rebuilds it (default: never).
        refresh: Refresh,
    },
    /// Steam Workshop items, resolved with the Steam Web API and downloaded into the cache
    /// (DESIGN §9); the content is `left4dead2/addons/ID.vpk` for each item.
    Workshop {
        /// Published file ids of items.
        items: Vec<u64>,
        /// Published file ids of collections (nested ones are followed).
        collections: Vec<u64>,
        /// Ids left out, whichever collection brings them.
        exclude: Vec<u64>,
        /// Whether the nightly `overlay refresh` rebuilds it (default: daily).
        refresh: Refresh,
    },
}

/// Whether `left4mectl overlay refresh` (the nightly `left4me-overlay-refresh.timer`) rebuilds
/// an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    Daily,
    Never,
}

impl Refresh {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresh::Daily => "daily",
            Refresh::Never => "never",
        }
    }
}

/// The most ids one list of a workshop overlay may hold.
pub const MAX_WORKSHOP_IDS: usize = 10_000;

impl OverlayKind {
    /// `manual`, `script` or `workshop`, as the definition says.
    pub fn name(&self) -> &'static str {
        match self {
            OverlayKind::Manual => "manual",
            OverlayKind::Script { .. } => "script",
            OverlayKind::Workshop { .. } => "workshop",
        }
    }

    /// Whether the nightly refresh rebuilds it.
    pub fn refreshes(&self) -> bool {
        match self {
            OverlayKind::Manual => false,
            OverlayKind::Script { refresh, .. } | OverlayKind::Workshop { refresh, .. } => {
                *refresh == Refresh::Daily
            }
        }
    }
}

/// Resource limits of one script build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptLimits {
    pub memory_max: Size,
    pub tasks_max: u32,
    pub timeout: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            memory_max: Size::parse("4G").expect("valid default"),
            tasks_max: 512,
            timeout: Duration::parse("1h").expect("valid default"),
        }
    }
}

impl OverlayDef {
    /// Parses `overlays/NAME.toml`.
    pub fn parse(name: &str, file: &Path, text: &str) -> Result<Self, SpecError> {
        check_name(name).map_err(|why| SpecError::file(file, why))?;
        let table = parse_document(file, text)?;
        const SCRIPT_KEYS: [&str; 4] = ["script", "network", "allow_ports", "limits"];
        const WORKSHOP_KEYS: [&str; 3] = ["items", "collections", "exclude"];
        let known: Vec<&str> = ["kind", "refresh"]
            .into_iter()
            .chain(SCRIPT_KEYS)
            .chain(WORKSHOP_KEYS)
            .collect();
        let mut fields = Fields::new(file, "", table, &known)?;
        let kind = fields.string("kind")?;
        let (foreign, owner): (&[&str], &str) = match kind.as_deref() {
            Some("manual") => (&known[1..], "script and workshop overlays"),
            Some("script") => (&WORKSHOP_KEYS, "workshop overlays"),
            Some("workshop") => (&SCRIPT_KEYS, "script overlays"),
            Some(other) => {
                return Err(fields.error(
                    "kind",
                    format!("'{other}' is not a kind; use \"manual\", \"script\" or \"workshop\""),
                ));
            }
            None => {
                return Err(fields.error(
                    "kind",
                    "missing; set kind = \"manual\", \"script\" or \"workshop\"",
                ));
            }
        };
        if let Some(key) = foreign.iter().find(|k| fields.take(k).is_some()) {
            return Err(fields.error(key, format!("only {owner} have this key")));
        }
        let kind = match kind.as_deref() {
            Some("script") => Self::script_kind(&mut fields)?,
            Some("workshop") => Self::workshop_kind(&mut fields)?,
            _ => OverlayKind::Manual,
        };
        Ok(OverlayDef {
            name: name.to_owned(),
            kind,
        })
    }

    fn script_kind(fields: &mut Fields<'_>) -> Result<OverlayKind, SpecError> {
        let script = fields
            .string("script")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                fields.error(
                    "script",
                    "missing or empty; a script overlay needs a script",
                )
            })?;
        if script.contains('\0') {
            return Err(fields.error("script", "contains a NUL byte"));
        }
        let network = fields.boolean("network")?.unwrap_or(true);
        let allow_ports = match fields.array("allow_ports")? {
            None => vec![80, 443],
            Some(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Integer(port @ 1..=65535) => Ok(port as u16),
                    other => Err(fields.error(
                        "allow_ports",
                        format!("expected TCP port numbers 1-65535, found {other}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        let mut limits = ScriptLimits::default();
        if let Some(mut table) = fields.table("limits", &["memory_max", "tasks_max", "timeout"])? {
            if let Some(size) = table.parsed("memory_max", Size::parse)? {
                limits.memory_max = size;
            }
            if let Some(tasks) = table.integer_in("tasks_max", 1..=1_000_000)? {
                limits.tasks_max = tasks;
            }
            if let Some(timeout) = table.parsed("timeout", Duration::parse)? {
                if timeout.is_zero() || timeout.as_micros().is_none() {
                    return Err(table.error("timeout", "a build needs a finite time limit"));
                }
                limits.timeout = timeout;
            }
        }
        Ok(OverlayKind::Script {
            script,
            network,
            allow_ports,
            limits,
            refresh: refresh(fields, Refresh::Never)?,
        })
    }

    fn workshop_kind(fields: &mut Fields<'_>) -> Result<OverlayKind, SpecError> {
        let items = workshop_ids(fields, "items")?;
        let collections = workshop_ids(fields, "collections")?;
        let exclude = workshop_ids(fields, "exclude")?;
        if items.is_empty() && collections.is_empty() {
            return Err(fields.error(
                "items",
                "a workshop overlay needs items or collections, e.g. items = [123456789]",
            ));
        }
        Ok(OverlayKind::Workshop {
            items,
            collections,
            exclude,
            refresh: refresh(fields, Refresh::Daily)?,
        })
    }
}

/// The `refresh` key: "daily" or "never", `default` when missing.
fn refresh(fields: &mut Fields<'_>, default: Refresh) -> Result<Refresh, SpecError> {
    match fields.string("refresh")?.as_deref() {
        None => Ok(default),
        Some("daily") => Ok(Refresh::Daily),
        Some("never") => Ok(Refresh::Never),
        Some(other) => Err(fields.error(
            "refresh",
            format!(
                "'{}' is not a refresh; use \"daily\" or \"never\"",
                other.escape_debug()
            ),
        )),
    }
}

/// A list of published file ids: positive TOML integers or strings of digits (as the Steam
/// Web API and workshop URLs write them), without repeats.
fn workshop_ids(fields: &mut Fields<'_>, key: &str) -> Result<Vec<u64>, SpecError> {
    let Some(values) = fields.array(key)? else {
        return Ok(Vec::new());
    };
    if values.len() > MAX_WORKSHOP_IDS {
        return Err(fields.error(
            key,
            format!("{} ids; at most {MAX_WORKSHOP_IDS}", values.len()),
        ));
    }
    let mut ids: Vec<u64> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let id = match &value {
            Value::Integer(n) if *n > 0 => Some(*n as u64),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok().filter(|&n| n > 0)
            }
            _ => None,
        };
        let Some(id) = id else {
            return Err(fields.error(
                &format!("{key}[{i}]"),
                format!(
                    "expected a workshop id (the number after ?id= in the item's URL), found {value}"
                ),
            ));
        };
        if ids.contains(&id) {
            return Err(fields.error(&format!("{key}[{i}]"), format!("{id} is listed twice")));
        }
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/left4me/overlays/maps.toml";

    fn entry(value: Value) -> Result<OverlayRef, SpecError> {
        OverlayRef::from_value(Path::new("/x.toml"), "overlays[0]", value)
    }

    #[test]
    fn bare_and_aliased_entries() {
        let bare = entry(Value::String("overlays/sourcemod".into())).unwrap();
        assert_eq!(
            bare,
            OverlayRef {
                path: "overlays/sourcemod".into(),
                alias: None
            }
        );
        let table: toml::Table =
            toml::from_str("path = 'overlays/tr'\nalias = 'tickrate'").unwrap();
        let aliased = entry(Value::Table(table)).unwrap();
        assert_eq!(aliased.alias.as_deref(), Some("tickrate"));
    }

    #[test]
    fn layer_paths_must_stay_beneath_a_layer_root() {
        for good in [
            "overlays/a",
            "overlays/a/b",
            "workshop_cache/123",
            "installation/sub",
        ] {
            assert!(check_layer_path(good).is_ok(), "{good}");
        }
        for bad in [
            "/overlays/a",
            "overlays",
            "overlays/",
            "overlays/../etc",
            "overlays/./a",
            "overlays//a",
            "runtime/x/upper",
            // The game's versions are the supervisor's to stack (game_version), never an
            // overlay.
            "game/versions/1/tree",
            "game/steamcmd",
            "etc/passwd",
            "overlays/a,b",
            "overlays/a:b",
            "overlays/a b",
            "overlays/a\\b",
            "",
        ] {
            let why = check_layer_path(bad).unwrap_err();
            assert!(why.contains("overlays/sourcemod"), "{bad}: {why}");
        }
    }

    #[test]
    fn bad_alias_and_unknown_key_are_named() {
        let table: toml::Table =
            toml::from_str("path = 'overlays/a'\nalias = 'Bad Alias'").unwrap();
        let err = entry(Value::Table(table)).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("overlays[0].alias"));
        let table: toml::Table = toml::from_str("path = 'overlays/a'\nname = 'x'").unwrap();
        let err = entry(Value::Table(table)).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("overlays[0].name"));
        let err = entry(Value::Integer(3)).unwrap_err();
        assert!(err.reason.contains("found integer"), "{err}");
    }

    #[test]
    fn script_overlay_with_defaults_and_limits() {
        let def = OverlayDef::parse(
            "maps",
            Path::new(FILE),
            "kind = 'script'\nscript = 'true'\n",
        )
        .unwrap();
        let OverlayKind::Script {
            network,
            allow_ports,
            limits,
            ..
        } = def.kind
        else {
            panic!("not a script overlay");
        };
        assert!(network);
        assert_eq!(allow_ports, [80, 443]);
        assert_eq!(limits, ScriptLimits::default());

        let text = "kind = 'script'\nscript = 'true'\nnetwork = false\nallow_ports = [8080]\n\
                    [limits]\nmemory_max = '1G'\ntasks_max = 64\ntimeout = '10min'\n";
        let def = OverlayDef::parse("maps", Path::new(FILE), text).unwrap();
        let OverlayKind::Script {
            network,
            allow_ports,
            limits,
            ..
        } = def.kind
        else {
            panic!("not a script overlay");
        };
        assert!(!network);
        assert_eq!(allow_ports, [8080]);
        assert_eq!(limits.tasks_max, 64);
        assert_eq!(limits.timeout.to_string(), "10min");
    }

    #[test]
    fn workshop_overlay() {
        let text = "kind = 'workshop'\nitems = [123456789, '42']\ncollections = [987]\n\
                    exclude = [42]\n";
        let def = OverlayDef::parse("camps", Path::new(FILE), text).unwrap();
        assert_eq!(
            def.kind,
            OverlayKind::Workshop {
                items: vec![123456789, 42],
                collections: vec![987],
                exclude: vec![42],
                refresh: Refresh::Daily,
            }
        );
        assert!(def.kind.refreshes());
        assert_eq!(def.kind.name(), "workshop");
        let never = "kind = 'workshop'\ncollections = [987]\nrefresh = 'never'\n";
        let def = OverlayDef::parse("camps", Path::new(FILE), never).unwrap();
        assert!(!def.kind.refreshes());
        let script =
            OverlayDef::parse("maps", Path::new(FILE), "kind = 'script'\nscript = 'x'").unwrap();
        assert!(!script.kind.refreshes());
        let daily = "kind = 'script'\nscript = 'x'\nrefresh = 'daily'";
        assert!(
            OverlayDef::parse("maps", Path::new(FILE), daily)
                .unwrap()
                .kind
                .refreshes()
        );
    }

    #[test]
    fn workshop_overlay_errors() {
        let parse = |text: &str| OverlayDef::parse("camps", Path::new(FILE), text).unwrap_err();
        for (text, key) in [
            ("kind = 'workshop'", "items"),
            ("kind = 'workshop'\nitems = []", "items"),
            ("kind = 'workshop'\nitems = [0]", "items[0]"),
            ("kind = 'workshop'\nitems = [1, -2]", "items[1]"),
            ("kind = 'workshop'\nitems = ['12a']", "items[0]"),
            ("kind = 'workshop'\nitems = [5, 5]", "items[1]"),
            ("kind = 'workshop'\nitems = 5", "items"),
            ("kind = 'workshop'\nitems = [1]\nscript = 'x'", "script"),
            (
                "kind = 'workshop'\nitems = [1]\nrefresh = 'hourly'",
                "refresh",
            ),
            ("kind = 'script'\nscript = 'x'\nitems = [1]", "items"),
            ("kind = 'manual'\nrefresh = 'daily'", "refresh"),
            ("kind = 'manual'\ncollections = [1]", "collections"),
        ] {
            assert_eq!(parse(text).key.as_deref(), Some(key), "{text}");
        }
        assert!(
            parse("kind = 'workshop'\nitems = ['x']")
                .reason
                .contains("?id=")
        );
    }

    #[test]
    fn overlay_definition_errors() {
        let parse = |text: &str| OverlayDef::parse("maps", Path::new(FILE), text).unwrap_err();
        assert_eq!(parse("").key.as_deref(), Some("kind"));
        assert!(
            parse("kind = 'magic'")
                .reason
                .contains("\"manual\", \"script\" or \"workshop\"")
        );
        assert_eq!(parse("kind = 'script'").key.as_deref(), Some("script"));
        assert_eq!(
            parse("kind = 'manual'\nscript = 'x'").key.as_deref(),
            Some("script")
        );
        assert_eq!(
            parse("kind = 'script'\nscript = 'x'\nallow_ports = [0]")
                .key
                .as_deref(),
            Some("allow_ports")
        );
        assert_eq!(
            parse("kind = 'script'\nscript = 'x'\n[limits]\ntimeout = '0'")
                .key
                .as_deref(),
            Some("limits.timeout")
        );
    }
}
