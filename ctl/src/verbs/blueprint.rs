//! The blueprint verbs: `left4mectl blueprint create`, `edit`, `set`, `show`, `list` and `rm`. The
//! rule that a blueprint change must not break an instance is spec's
//! [`Catalog::check_blueprint_text`], run by the changing verbs.

use left4me_history::Kind;
use left4me_spec::{Blueprint, Catalog, Settings, list_names, load_blueprint};
use serde::Serialize;

use crate::Ctx;
use crate::change::{self, NewSpec, SpecKind, check_spec_name, missing, peek};
use crate::cli::{BlueprintCreateArgs, SetArgs};
use crate::error::{EXIT_OK, UsageError};
use crate::output::{
    emit, fields, limits_line, or_dash, overlay_lines, quoted, spec_problem, table,
};

/// `blueprint create NAME …`.
pub fn create(ctx: &Ctx, args: &BlueprintCreateArgs) -> anyhow::Result<u8> {
    let text = NewSpec {
        map: args.map.as_deref(),
        maxplayers: args.layers.maxplayers,
        overlays: &args.layers.overlays,
        ..NewSpec::default()
    }
    .render(SpecKind::Blueprint, &args.name);
    change::create(ctx, SpecKind::Blueprint, &args.name, &text)
}

/// `blueprint edit NAME`.
pub fn edit(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    change::edit(ctx, SpecKind::Blueprint, name)
}

/// `blueprint set NAME KEY=VALUE… --unset KEY…`.
pub fn set(ctx: &Ctx, args: &SetArgs) -> anyhow::Result<u8> {
    change::set(ctx, SpecKind::Blueprint, args)
}

/// `blueprint rm NAME`: refused while an instance names it; the removal is a revision.
pub fn remove(ctx: &Ctx, name: &str) -> anyhow::Result<u8> {
    check_spec_name(SpecKind::Blueprint, name)?;
    let lock = ctx.lock()?;
    let catalog = ctx.catalog()?;
    let file = catalog.layout.blueprint_file(name);
    if !file.exists() {
        return Err(missing(SpecKind::Blueprint, name, &file).into());
    }
    let users = users(&catalog, name);
    if !users.is_empty() {
        return Err(UsageError::new(format!(
            "blueprint {name} is used by {}: change their blueprint first; nothing was changed",
            users.join(", ")
        ))
        .into());
    }
    lock.remove(Kind::Blueprint, name, &file, "blueprint rm")?;
    emit(&format!("removed blueprint {name} ({})\n", file.display()))?;
    change::finish(ctx)
}

/// The instances whose spec names blueprint `name`, valid or not, sorted.
fn users(catalog: &Catalog, name: &str) -> Vec<String> {
    catalog
        .instances
        .iter()
        .filter(|(instance, entry)| {
            let uses = match entry {
                Ok(valid) => valid.blueprint.clone(),
                Err(_) => peek(&catalog.layout.instance_file(instance)).blueprint,
            };
            uses.as_deref() == Some(name)
        })
        .map(|(instance, _)| instance.clone())
        .collect()
}

/// `blueprint show NAME --json`: the parsed blueprint and who uses it.
#[derive(Debug, Serialize)]
struct BlueprintJson<'a> {
    #[serde(flatten)]
    blueprint: &'a Blueprint,
    used_by: Vec<String>,
}

/// `blueprint show NAME [--json]`.
pub fn show(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<u8> {
    check_spec_name(SpecKind::Blueprint, name)?;
    let catalog = ctx.catalog()?;
    let blueprint = match load_blueprint(&catalog.layout, name) {
        Ok(blueprint) => blueprint,
        Err(err) if err.kind == left4me_spec::ErrorKind::NotFound => {
            return Err(missing(SpecKind::Blueprint, name, &err.file).into());
        }
        Err(err) => return Err(err.into()),
    };
    let used_by = users(&catalog, name);
    if json {
        let shown = BlueprintJson {
            blueprint: &blueprint,
            used_by,
        };
        emit(&format!("{}\n", serde_json::to_string_pretty(&shown)?))?;
        return Ok(EXIT_OK);
    }
    let mut pairs = vec![
        ("blueprint", blueprint.name.clone()),
        ("file", blueprint.file.display().to_string()),
        ("used by", or_dash(used_by.join(" "))),
    ];
    pairs.extend(settings_pairs(&blueprint.settings));
    emit(&fields(&pairs))?;
    Ok(EXIT_OK)
}

fn settings_pairs(settings: &Settings) -> Vec<(&'static str, String)> {
    let text = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    vec![
        ("map", text(settings.map.clone())),
        (
            "maxplayers",
            text(settings.maxplayers.map(|m| m.to_string())),
        ),
        ("args", or_dash(quoted(&settings.args))),
        ("overlays", or_dash(overlay_lines(&settings.overlays))),
        ("resources", or_dash(limits_line(&settings.resources))),
        (
            "ready_timeout",
            text(
                settings
                    .health
                    .ready_timeout
                    .as_ref()
                    .map(ToString::to_string),
            ),
        ),
        (
            "watchdog",
            text(settings.health.watchdog.as_ref().map(ToString::to_string)),
        ),
        ("config", text(settings.config.clone())),
    ]
}

/// One line of `blueprint list`; `--json` prints these as they are.
#[derive(Debug, Serialize)]
struct BlueprintRow {
    name: String,
    file: String,
    /// The instances that name this blueprint.
    instances: Vec<String>,
    ok: bool,
    error: Option<String>,
    #[serde(skip)]
    problem: Option<String>,
}

/// `blueprint list [--json]`.
pub fn list(ctx: &Ctx, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let layout = &catalog.layout;
    let rows: Vec<BlueprintRow> = list_names(&layout.blueprints_dir())?
        .into_iter()
        .map(|(name, checked)| {
            let file = layout.blueprint_file(&name);
            let result = checked.and_then(|()| load_blueprint(layout, &name).map(drop));
            BlueprintRow {
                instances: users(&catalog, &name),
                file: file.display().to_string(),
                ok: result.is_ok(),
                error: result.as_ref().err().map(ToString::to_string),
                problem: result.as_ref().err().map(spec_problem),
                name,
            }
        })
        .collect();
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
    } else if rows.is_empty() {
        emit(&format!(
            "no blueprints in {}; create one with `left4mectl blueprint create NAME`\n",
            layout.blueprints_dir().display()
        ))?;
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                vec![
                    row.name.clone(),
                    row.instances.len().to_string(),
                    row.problem
                        .as_ref()
                        .map_or("ok".into(), |p| format!("error: {p}")),
                ]
            })
            .collect();
        emit(&table(&["NAME", "INSTANCES", "SPEC"], &cells))?;
    }
    Ok(EXIT_OK)
}
