//! The overlay verbs: `overlay create|edit|show|list|rm` (and `build` and `jobs`, the job
//! verbs, in [`build`]).
//!
//! An overlay is a content layer instances stack over the game install. Its definition,
//! `/etc/left4me/overlays/NAME.toml`, says how its content (`<state_dir>/overlays/NAME`) is
//! made: by hand (`kind = "manual"`) or by a script built in the sandbox (`kind = "script"`).
//! Definitions are written like specs: validated first (`OverlayDef::parse`, the code
//! `left4mectl validate` runs), atomically, under the config dir's lock.

use std::path::{Path, PathBuf};

use left4me_history::Kind;
use left4me_spec::{Catalog, ErrorKind, Layout, OverlayDef, OverlayKind, SpecError, list_names};
use serde::Serialize;

use crate::Ctx;
use crate::cli::{OverlayCreateArgs, OverlayKindArg, RefreshArg};
use left4me_contract::passwd::{self, PASSWD};
use left4me_jobs::{
    CopyStats, Host, Ledger, OverlayDirs, Record, Warning, format_bytes, format_duration,
};

use crate::editor::{Edited, edit_until_valid};
use crate::error::{EXIT_OK, UsageError};
use crate::output::{emit, fields, format_utc, table};
use crate::store;

pub(crate) mod build;
mod refresh;
mod remove;
mod workshop;

pub use refresh::refresh;
pub use workshop::gc;

pub use remove::remove;

/// The host paths content jobs work with, from the layout.
pub(crate) fn job_host(layout: &Layout) -> Host {
    Host::new(layout.database(), layout.runtime_root(), layout.locks_dir())
}

/// Refuses a name that breaks the naming rule, naming the rule.
pub fn check_overlay_name(name: &str) -> Result<(), UsageError> {
    left4me_spec::check_name(name).map_err(|why| UsageError::new(format!("overlay name {why}")))
}

fn missing(name: &str, file: &Path) -> UsageError {
    UsageError::new(format!(
        "no overlay '{name}': {} does not exist; create it with `left4mectl overlay create {name}`",
        file.display()
    ))
}

fn read_error(file: &Path, err: &std::io::Error) -> SpecError {
    SpecError {
        kind: if err.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        },
        file: file.to_path_buf(),
        key: None,
        reason: format!("cannot read: {err}"),
    }
}

/// Reads and checks the definition of overlay `name`.
pub fn load_def(catalog: &Catalog, name: &str) -> anyhow::Result<OverlayDef> {
    check_overlay_name(name)?;
    let file = catalog.layout.overlay_def_file(name);
    let text = match left4me_spec::read_spec(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(missing(name, &file).into());
        }
        Err(err) => return Err(read_error(&file, &err).into()),
    };
    Ok(OverlayDef::parse(name, &file, &text)?)
}

/// A TOML string for `text`: a multi-line literal when it can be one (readable in an editor),
/// else a basic string with escapes.
fn toml_text(text: &str) -> String {
    let literal_ok = !text.contains("'''")
        && text
            .chars()
            .all(|c| c == '\n' || c == '\t' || !c.is_control());
    if literal_ok {
        let body = if text.ends_with('\n') {
            text.to_owned()
        } else {
            format!("{text}\n")
        };
        format!("'''\n{body}'''")
    } else {
        toml_edit::Value::from(text).to_string().trim().to_owned()
    }
}

/// How a new overlay's content is made, from `overlay create`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    Manual,
    Script(String),
    Workshop,
}

/// The text of a new definition.
pub fn render_def(name: &str, args: &OverlayCreateArgs, made: &Made) -> String {
    let mut text = format!(
        "# left4me overlay '{name}', created by left4mectl.\n\
         # Change it with `left4mectl overlay edit {name}`.\n"
    );
    let refresh = args.refresh.map(|r| match r {
        RefreshArg::Daily => "daily",
        RefreshArg::Never => "never",
    });
    match made {
        Made::Manual => {
            text.push_str(&format!(
                "# Its content is put into <state dir>/overlays/{name} by hand.\n\
                 kind = \"manual\"\n"
            ));
        }
        Made::Script(script) => {
            text.push_str(&format!(
                "# `left4mectl overlay build {name}` runs the script in the sandbox, with\n\
                 # /overlay (the content, seeded with the current one) as its working directory.\n\
                 kind = \"script\"\n"
            ));
            if let Some(refresh) = refresh {
                text.push_str(&format!("refresh = \"{refresh}\"\n"));
            }
            text.push_str(&format!("network = {}\n", !args.no_network));
            if !args.no_network {
                let ports: Vec<String> = if args.allow_ports.is_empty() {
                    vec!["80".into(), "443".into()]
                } else {
                    args.allow_ports.iter().map(u16::to_string).collect()
                };
                text.push_str(&format!("allow_ports = [{}]\n", ports.join(", ")));
            }
            text.push_str(&format!("script = {}\n", toml_text(script)));
            text.push_str(&format!(
                "\n[limits]\nmemory_max = {}\ntasks_max = {}\ntimeout = {}\n",
                toml_edit::Value::from(args.memory_max.as_deref().unwrap_or("4G")),
                args.tasks_max.unwrap_or(512),
                toml_edit::Value::from(args.timeout.as_deref().unwrap_or("1h")),
            ));
        }
        Made::Workshop => {
            let ids = |list: &[u64]| {
                let ids: Vec<String> = list.iter().map(u64::to_string).collect();
                format!("[{}]", ids.join(", "))
            };
            text.push_str(&format!(
                "# `left4mectl overlay build {name}` resolves the items and collections with the\n\
                 # Steam Web API and links each item as left4dead2/addons/ID.vpk; the nightly\n\
                 # refresh (left4me-overlay-refresh.timer) does it again when refresh = \"daily\".\n\
                 kind = \"workshop\"\n\
                 items = {}\n\
                 collections = {}\n\
                 exclude = {}\n\
                 refresh = \"{}\"\n",
                ids(&args.workshop),
                ids(&args.collections),
                ids(&args.exclude),
                refresh.unwrap_or("daily"),
            ));
        }
    }
    text
}

/// Creates `overlays/NAME` owned by the game user when it is missing (as root, through the
/// descriptor of `overlays/`, under the overlay's lock); says what it did, or why not.
fn ensure_content_dir(catalog: &Catalog, name: &str) -> String {
    let dir = catalog.layout.overlay_content(name);
    let setting = "game_user in /etc/left4me/host.toml";
    let game = match passwd::lookup(Path::new(PASSWD), &catalog.host.game_user, setting) {
        Ok(game) => game,
        Err(err) => return format!("content dir {} not created: {err}", dir.display()),
    };
    let dirs = OverlayDirs::new(&catalog.layout.state_dir, name);
    let created =
        dirs.lock(&catalog.layout.locks_dir())
            .and_then(|_lock| match dirs.open(false)? {
                Some(overlays) => overlays.create_content(game).map(Some),
                None => Ok(None),
            });
    match created {
        Ok(Some(true)) => format!(
            "created {}, owned by {}",
            dir.display(),
            catalog.host.game_user
        ),
        Ok(Some(false)) => format!("content {} exists", dir.display()),
        Ok(None) => format!(
            "content dir {} not created: {} does not exist (install left4me first)",
            dir.display(),
            dirs.overlays().display()
        ),
        Err(err) => format!("content dir not created: {err}"),
    }
}

/// What `overlay create`'s options make, or why they do not fit together.
fn made(args: &OverlayCreateArgs) -> anyhow::Result<Made> {
    let script = match (&args.script, &args.script_file) {
        (Some(script), None) => Some(script.clone()),
        (None, Some(file)) => Some(read_script_file(file)?),
        (None, None) => None,
        (Some(_), Some(_)) => unreachable!("clap makes them conflict"),
    };
    let workshop = !args.workshop.is_empty() || !args.collections.is_empty();
    let kind = args.kind.unwrap_or(match (&script, workshop) {
        (Some(_), _) => OverlayKindArg::Script,
        (None, true) => OverlayKindArg::Workshop,
        (None, false) => OverlayKindArg::Manual,
    });
    let script_options = args.no_network
        || !args.allow_ports.is_empty()
        || args.memory_max.is_some()
        || args.tasks_max.is_some()
        || args.timeout.is_some();
    let workshop_options = workshop || !args.exclude.is_empty();
    let refuse = |why: &str| Err(UsageError::new(why.to_owned()).into());
    match kind {
        _ if script.is_some() && kind != OverlayKindArg::Script => refuse(
            "only a script overlay has a script: drop --script/--script-file or use --kind script",
        ),
        OverlayKindArg::Manual | OverlayKindArg::Workshop if script_options => refuse(
            "--no-network, --allow-port, --memory-max, --tasks-max and --timeout are for script \
             overlays (--kind script)",
        ),
        OverlayKindArg::Manual | OverlayKindArg::Script if workshop_options => refuse(
            "--workshop, --collection and --exclude are for workshop overlays (--kind workshop)",
        ),
        OverlayKindArg::Manual if args.refresh.is_some() => refuse(
            "a manual overlay is never rebuilt: --refresh is for script and workshop overlays",
        ),
        OverlayKindArg::Manual => Ok(Made::Manual),
        OverlayKindArg::Script => match script {
            Some(script) => Ok(Made::Script(script)),
            None => {
                refuse("a script overlay needs its script: --script 'TEXT' or --script-file FILE")
            }
        },
        OverlayKindArg::Workshop if !workshop => refuse(
            "a workshop overlay needs items or collections: --workshop ID,… or --collection ID,… \
             (ids, or the items' workshop URLs)",
        ),
        OverlayKindArg::Workshop => Ok(Made::Workshop),
    }
}

/// `overlay create NAME …`.
pub fn create(ctx: &Ctx, args: &OverlayCreateArgs) -> anyhow::Result<u8> {
    let name = &args.name;
    check_overlay_name(name)?;
    let made = made(args)?;
    let text = render_def(name, args, &made);
    let lock = ctx.lock()?;
    let catalog = ctx.catalog()?;
    let file = catalog.layout.overlay_def_file(name);
    if file.exists() {
        return Err(store::StoreError::Exists { path: file }.into());
    }
    OverlayDef::parse(name, &file, &text)?;
    lock.write(Kind::Overlay, name, &file, None, &text, "overlay create")?;
    let (content, next) = match made {
        Made::Manual => (
            ensure_content_dir(&catalog, name),
            format!(
                "put its files into {}",
                catalog.layout.overlay_content(name).display()
            ),
        ),
        Made::Script(_) => (
            ensure_content_dir(&catalog, name),
            format!("build it with `left4mectl overlay build {name}`"),
        ),
        // Its content is root's tree of links, made by its first build.
        Made::Workshop => (
            format!(
                "its content {} is made by its builds",
                catalog.layout.overlay_content(name).display()
            ),
            format!("download its items with `left4mectl overlay build {name}`"),
        ),
    };
    emit(&format!(
        "created overlay {name} ({}); {content}; {next}\n",
        file.display()
    ))?;
    Ok(EXIT_OK)
}

fn read_script_file(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| anyhow::anyhow!("cannot read the script from stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| {
        UsageError::new(format!("cannot read --script-file {}: {e}", file.display())).into()
    })
}

/// `overlay edit NAME`: the editor loop of `left4mectl edit`, checked with `OverlayDef::parse`.
pub fn edit(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    load_def(&catalog, name).or_else(|err| match err.downcast_ref::<SpecError>() {
        // An invalid definition is what one edits to fix.
        Some(_) => Ok(OverlayDef {
            name: name.to_owned(),
            kind: OverlayKind::Manual,
        }),
        None => Err(err),
    })?;
    let file = catalog.layout.overlay_def_file(name);
    let original = store::read(&file)?;
    let check = |text: &str| -> anyhow::Result<()> {
        OverlayDef::parse(name, &file, text)?;
        Ok(())
    };
    let (text, draft) = match edit_until_valid(&file, &original, check, ctx.verbose)? {
        Edited::Unchanged => {
            emit(&format!("no changes to overlay {name}\n"))?;
            return Ok(EXIT_OK);
        }
        Edited::Changed { text, draft } => (text, draft),
    };
    let lock = ctx.lock()?;
    if store::read(&file)? != original {
        let kept = draft.keep();
        return Err(UsageError::new(format!(
            "{} was changed by someone else while you edited it; your version is kept in {}",
            file.display(),
            kept.display()
        ))
        .into());
    }
    lock.write(
        Kind::Overlay,
        name,
        &file,
        Some(&original),
        &text,
        "overlay edit",
    )?;
    drop(draft);
    emit(&format!("updated overlay {name} ({})\n", file.display()))?;
    Ok(EXIT_OK)
}

/// The instances and blueprints whose `overlays` list names `overlays/NAME` (or a path beneath
/// it), read from the files as written (valid or not): `instance coop1`, `blueprint coop`.
pub fn users(catalog: &Catalog, name: &str) -> Vec<String> {
    let layer = format!("overlays/{name}");
    let uses = |file: &Path| -> bool {
        let Ok(text) = left4me_spec::read_spec(file) else {
            return false;
        };
        let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
            return false;
        };
        let Some(list) = doc.get("overlays").and_then(|v| v.as_array()) else {
            return false;
        };
        list.iter().any(|entry| {
            let path = entry.as_str().or_else(|| {
                entry
                    .as_inline_table()
                    .and_then(|t| t.get("path"))
                    .and_then(|p| p.as_str())
            });
            path.is_some_and(|p| {
                let p = p.trim_end_matches('/');
                p == layer || p.starts_with(&format!("{layer}/"))
            })
        })
    };
    let mut out = Vec::new();
    for (noun, dir) in [
        ("instance", catalog.layout.instances_dir()),
        ("blueprint", catalog.layout.blueprints_dir()),
    ] {
        for (entry, _) in list_names(&dir).unwrap_or_default() {
            if uses(&dir.join(format!("{entry}.toml"))) {
                out.push(format!("{noun} {entry}"));
            }
        }
    }
    out
}

/// The ledger for reading, if there is one (a missing or unreadable one means no history).
pub(crate) fn read_ledger(catalog: &Catalog) -> Option<Ledger> {
    let ledger = Ledger::open(&catalog.layout.database(), false)
        .ok()
        .flatten()?;
    for path in ledger.removed_side_files() {
        eprintln!("warning: {}", Warning::ForeignLedgerFile(path.clone()));
    }
    Some(ledger)
}

/// `YYYY-MM-DD HH:MM:SS` UTC of a Unix millisecond time.
pub(crate) fn format_utc_ms(ms: i64) -> String {
    format_utc(ms.div_euclid(1000))
}

/// `success 2026-11-22 00:12:39 (12.3s)`.
fn job_line(job: &Record) -> String {
    let took = job
        .duration()
        .map_or_else(String::new, |d| format!(" ({})", format_duration(d)));
    format!("{} {}{took}", job.status, format_utc_ms(job.started_ms))
}

/// `overlay show NAME --json`.
#[derive(Debug, Serialize)]
struct OverlayJson<'a> {
    #[serde(flatten)]
    def: &'a OverlayDef,
    file: PathBuf,
    content: PathBuf,
    content_exists: bool,
    #[serde(skip)]
    usage: Result<Option<CopyStats>, String>,
    used_by: Vec<String>,
    last_build: Option<Record>,
    /// A workshop overlay's items at its last good build (`null` before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    workshop: Option<left4me_workshop::state::OverlayState>,
}

/// `overlay show NAME [--json]`.
pub fn show(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let def = load_def(&catalog, name)?;
    let content = catalog.layout.overlay_content(name);
    let last_build = read_ledger(&catalog).and_then(|l| l.last(name).ok().flatten());
    let shown = OverlayJson {
        def: &def,
        file: catalog.layout.overlay_def_file(name),
        content_exists: content.is_dir(),
        usage: OverlayDirs::new(&catalog.layout.state_dir, name)
            .content_usage()
            .map_err(|err| err.to_string()),
        content,
        used_by: users(&catalog, name),
        last_build,
        workshop: match def.kind {
            OverlayKind::Workshop { .. } => workshop::state_json(&catalog, name),
            _ => None,
        },
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&shown)?))?;
        return Ok(EXIT_OK);
    }
    let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let mut pairs = vec![
        ("overlay", name.to_owned()),
        ("file", shown.file.display().to_string()),
        (
            "content",
            match &shown.usage {
                Ok(Some(usage)) => format!(
                    "{} ({} in files)",
                    shown.content.display(),
                    format_bytes(usage.bytes)
                ),
                Ok(None) => format!("{} (missing)", shown.content.display()),
                Err(err) => format!("{} (size unknown: {err})", shown.content.display()),
            },
        ),
        ("used by", or_dash(shown.used_by.join(", "))),
    ];
    match &def.kind {
        OverlayKind::Manual => pairs.push(("kind", "manual: content is put in by hand".into())),
        OverlayKind::Script {
            script,
            network,
            allow_ports,
            limits,
            refresh,
        } => {
            pairs.push(("kind", "script".into()));
            pairs.push(("refresh", refresh.as_str().into()));
            let ports: Vec<String> = allow_ports.iter().map(u16::to_string).collect();
            pairs.push((
                "network",
                if *network {
                    format!("yes, TCP ports {}", ports.join(", "))
                } else {
                    "none".into()
                },
            ));
            pairs.push((
                "limits",
                format!(
                    "memory_max {}, tasks_max {}, timeout {}",
                    limits.memory_max, limits.tasks_max, limits.timeout
                ),
            ));
            pairs.push((
                "last build",
                shown.last_build.as_ref().map_or("never".into(), |job| {
                    format!("{}: {}", job_line(job), job.detail)
                }),
            ));
            pairs.push(("script", script.trim_end().to_owned()));
        }
        OverlayKind::Workshop {
            items,
            collections,
            exclude,
            refresh,
        } => {
            let ids = |list: &[u64]| {
                or_dash(
                    list.iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            };
            pairs.push(("kind", "workshop".into()));
            pairs.push(("refresh", refresh.as_str().into()));
            pairs.push(("items", ids(items)));
            pairs.push(("collections", ids(collections)));
            pairs.push(("exclude", ids(exclude)));
            pairs.push((
                "last download",
                shown.last_build.as_ref().map_or("never".into(), |job| {
                    format!("{}: {}", job_line(job), job.detail)
                }),
            ));
        }
    }
    let mut text = fields(&pairs);
    if let OverlayKind::Workshop { .. } = def.kind {
        text.push_str(&workshop::items_table(&catalog, name));
    }
    emit(&text)?;
    Ok(EXIT_OK)
}

/// One line of `overlay list`; `--json` prints these.
#[derive(Debug, Serialize)]
struct OverlayRow {
    name: String,
    file: String,
    kind: Option<String>,
    ok: bool,
    error: Option<String>,
    used_by: Vec<String>,
    content_exists: bool,
    last_build: Option<Record>,
}

/// `overlay list [--json]`.
pub fn list(ctx: &Ctx, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let layout = &catalog.layout;
    let ledger = read_ledger(&catalog);
    let rows: Vec<OverlayRow> = list_names(&layout.overlay_defs_dir())?
        .into_iter()
        .map(|(name, checked)| {
            let file = layout.overlay_def_file(&name);
            let def = checked.and_then(|()| {
                let text = left4me_spec::read_spec(&file).map_err(|e| read_error(&file, &e))?;
                OverlayDef::parse(&name, &file, &text)
            });
            OverlayRow {
                file: file.display().to_string(),
                kind: def.as_ref().ok().map(|d| d.kind.name().to_owned()),
                ok: def.is_ok(),
                error: def.as_ref().err().map(ToString::to_string),
                used_by: users(&catalog, &name),
                content_exists: layout.overlay_content(&name).is_dir(),
                last_build: ledger.as_ref().and_then(|l| l.last(&name).ok().flatten()),
                name,
            }
        })
        .collect();
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        emit(&format!(
            "no overlays in {}; create one with `left4mectl overlay create NAME`\n",
            layout.overlay_defs_dir().display()
        ))?;
        return Ok(EXIT_OK);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.name.clone(),
                row.kind.clone().unwrap_or_else(|| "-".into()),
                row.used_by.len().to_string(),
                if row.content_exists { "yes" } else { "no" }.into(),
                row.last_build.as_ref().map_or("-".into(), job_line),
                match &row.error {
                    None => "ok".into(),
                    Some(err) => format!("error: {err}"),
                },
            ]
        })
        .collect();
    emit(&table(
        &[
            "NAME",
            "KIND",
            "USERS",
            "CONTENT",
            "LAST BUILD",
            "DEFINITION",
        ],
        &cells,
    ))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> OverlayCreateArgs {
        OverlayCreateArgs {
            name: name.into(),
            kind: None,
            script: None,
            script_file: None,
            no_network: false,
            allow_ports: Vec::new(),
            memory_max: None,
            tasks_max: None,
            timeout: None,
            workshop: Vec::new(),
            collections: Vec::new(),
            exclude: Vec::new(),
            refresh: None,
        }
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_utc_ms(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc_ms(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(format_utc_ms(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn rendered_definitions_parse() {
        let file = Path::new("/etc/left4me/overlays/x.toml");
        let manual = render_def("sm", &args("sm"), &Made::Manual);
        assert_eq!(
            OverlayDef::parse("sm", file, &manual).unwrap().kind,
            OverlayKind::Manual
        );
        let mut a = args("maps");
        a.allow_ports = vec![8080];
        a.timeout = Some("10min".into());
        for script in [
            "set -e\ncurl -fsS http://x/ | tar -x\n",
            "no trailing newline",
            "has ''' quotes\n",
            "has a \r carriage return\n",
        ] {
            let text = render_def("maps", &a, &Made::Script(script.into()));
            let def = OverlayDef::parse("maps", file, &text).unwrap();
            let OverlayKind::Script {
                script: parsed,
                allow_ports,
                limits,
                network,
                ..
            } = def.kind
            else {
                panic!("not a script overlay: {text}");
            };
            let expected =
                if script.ends_with('\n') || script.contains("'''") || script.contains('\r') {
                    script.to_owned()
                } else {
                    format!("{script}\n")
                };
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(allow_ports, [8080]);
            assert_eq!(limits.timeout.to_string(), "10min");
            assert!(network);
        }
        let mut off = args("offline");
        off.no_network = true;
        let text = render_def("offline", &off, &Made::Script("true\n".into()));
        assert!(text.contains("network = false\n"));
        assert!(!text.contains("allow_ports"));
        OverlayDef::parse("offline", file, &text).unwrap();
    }
}

#[cfg(test)]
mod examples {
    use super::*;

    /// examples/NAME.toml is a valid script overlay whose script is examples/NAME.sh verbatim.
    #[test]
    fn examples_are_valid_and_embed_their_scripts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let def = OverlayDef::parse(stem, &path, &text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let OverlayKind::Script { script, .. } = def.kind else {
                panic!("{} is not a script overlay", path.display());
            };
            let sh = std::fs::read_to_string(path.with_extension("sh")).unwrap();
            assert_eq!(
                script,
                sh,
                "{} does not embed {stem}.sh verbatim",
                path.display()
            );
            checked += 1;
        }
        assert!(checked >= 2, "only {checked} examples");
    }

    /// The Metamod:Source + SourceMod recipes pass their offline test (a curl stand-in serves
    /// tarballs shaped like AlliedModders'; examples/test-recipes.sh).
    #[test]
    fn recipes_pass_their_offline_test() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/test-recipes.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} failed:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
