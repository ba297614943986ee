//! `history`, `diff` and `rollback`: the spec history (`left4me-history`) read and used.
//!
//! The revisions are recorded by every changing verb through `store::Recorder`; changes made
//! outside left4mectl are caught up with by [`crate::Ctx`] before a verb reads specs
//! ([`reads_specs`]). `rollback` is a change like `set`: it validates the old text against the
//! host and the other specs as they are now, under the config-dir lock, installs it and records
//! it.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use left4me_history::{Change, History, Kind, Revision};
use left4me_spec::{Layout, OverlayDef, check_name};
use similar::{DiffTag, TextDiff};

use crate::change::{SpecKind, peek};
use crate::cli::{SpecName, Verb};
use crate::error::{EXIT_OK, UsageError};
use crate::output::{emit, table};
use crate::store::{self, Replace};
use crate::systemd::live_states;
use crate::verbs::overlay::format_utc_ms;
use crate::{Ctx, reload};

/// Whether `verb` reads specs, so the changes made outside left4mectl are recorded first
/// (the changing verbs do it again under the lock, where it counts). Not `diff`: `diff NAME`
/// shows what was changed outside since the last revision, which recording it would hide.
pub fn reads_specs(verb: &Verb) -> bool {
    !matches!(verb, Verb::Logs { .. } | Verb::Diff { .. })
}

/// The spec `history` shows: an instance, `--blueprint B` or `--overlay O`; `None`: all.
pub fn target<'a>(
    name: &'a Option<String>,
    blueprint: &'a Option<String>,
    overlay: &'a Option<String>,
) -> Option<(Kind, &'a str)> {
    match (name, blueprint, overlay) {
        (Some(name), _, _) => Some((Kind::Instance, name)),
        (_, Some(name), _) => Some((Kind::Blueprint, name)),
        (_, _, Some(name)) => Some((Kind::Overlay, name)),
        _ => None,
    }
}

/// The kind and name `diff` and `rollback` work on, the name checked.
fn spec_of(spec: &SpecName) -> Result<(Kind, &str), UsageError> {
    let kind = match (spec.blueprint, spec.overlay) {
        (true, _) => Kind::Blueprint,
        (_, true) => Kind::Overlay,
        _ => Kind::Instance,
    };
    check_name(&spec.name).map_err(|why| UsageError::new(format!("{kind} name {why}")))?;
    Ok((kind, &spec.name))
}

/// The file of spec `name` of `kind` in the config dir.
fn spec_file(ctx: &Ctx, kind: Kind, name: &str) -> PathBuf {
    // Only the config-dir paths of this layout are used.
    let layout = Layout {
        config_dir: ctx.config_dir.clone(),
        state_dir: PathBuf::new(),
        admin_dir: ctx.admin_dir.clone(),
    };
    match kind {
        Kind::Instance => layout.instance_file(name),
        Kind::Blueprint => layout.blueprint_file(name),
        Kind::Overlay => layout.overlay_def_file(name),
        Kind::Host => layout.host_file(),
    }
}

/// `user`, `user (sudo alice)` or the uid.
fn who(rev: &Revision) -> String {
    let user = rev.user.clone().unwrap_or_else(|| rev.uid.to_string());
    match &rev.sudo_user {
        Some(sudo) => format!("{user} (sudo {sudo})"),
        None => user,
    }
}

/// `history [NAME | --blueprint B | --overlay O] [-n N] [--json]`.
pub fn history(
    ctx: &Ctx,
    target: Option<(Kind, &str)>,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<u8> {
    let history = History::open(&ctx.admin_dir)?;
    let filter = left4me_history::Filter {
        kind: target.map(|(kind, _)| kind),
        name: target.map(|(_, name)| name),
    };
    let revisions = history.list(filter, limit)?;
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&revisions)?))?;
        return Ok(EXIT_OK);
    }
    if revisions.is_empty() {
        let what = match target {
            Some((kind, name)) => format!("{kind} {name}"),
            None => "any spec".into(),
        };
        emit(&format!("no revisions of {what}\n"))?;
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = revisions
        .iter()
        .map(|rev| {
            vec![
                rev.rev.to_string(),
                format_utc_ms(rev.time_ms),
                format!("{} {}", rev.kind, rev.name),
                who(rev),
                rev.verb.clone(),
                format!("{:?}", rev.action).to_lowercase(),
                rev.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    emit(&table(
        &["REV", "TIME (UTC)", "SPEC", "WHO", "VERB", "DID", "MESSAGE"],
        &rows,
    ))?;
    Ok(EXIT_OK)
}

/// The text revision `rev` left spec `name` of `kind` with (`None`: it removed the spec),
/// refusing a revision of another spec.
fn text_at(history: &History, kind: Kind, name: &str, rev: i64) -> anyhow::Result<Option<String>> {
    let see = |what: String| {
        UsageError::new(format!(
            "{what}; see `left4mectl history{}`",
            history_args(kind, name)
        ))
    };
    let Some((revision, texts)) = history.get(rev)? else {
        return Err(see(format!("there is no revision {rev}")).into());
    };
    if (revision.kind, revision.name.as_str()) != (kind, name) {
        return Err(see(format!(
            "revision {rev} is of {} {}, not of {kind} {name}",
            revision.kind, revision.name
        ))
        .into());
    }
    Ok(texts.new)
}

/// The arguments of `left4mectl history` for spec `name` of `kind`.
fn history_args(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Instance => format!(" {name}"),
        Kind::Blueprint => format!(" --blueprint {name}"),
        Kind::Overlay => format!(" --overlay {name}"),
        Kind::Host => String::new(),
    }
}

/// The spec file's text now; `None` when there is none.
fn text_now(file: &Path) -> anyhow::Result<Option<String>> {
    match left4me_spec::read_spec(file) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(store::StoreError::Read {
            path: file.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// `diff NAME [REV [REV]]`.
pub fn diff(ctx: &Ctx, spec: &SpecName, revs: &[i64]) -> anyhow::Result<u8> {
    let (kind, name) = spec_of(spec)?;
    let history = History::open(&ctx.admin_dir)?;
    let file = spec_file(ctx, kind, name);
    let now = || -> anyhow::Result<(String, Option<String>)> {
        Ok((format!("{} (now)", file.display()), text_now(&file)?))
    };
    let at = |rev: i64| -> anyhow::Result<(String, Option<String>)> {
        Ok((
            format!("{kind} {name} revision {rev}"),
            text_at(&history, kind, name, rev)?,
        ))
    };
    let (from, to) = match revs {
        [] => {
            let Some((last, _)) = history.latest(kind, name)? else {
                return Err(UsageError::new(format!(
                    "no revisions of {kind} {name}; see `left4mectl history`"
                ))
                .into());
            };
            (at(last.rev)?, now()?)
        }
        [rev] => (at(*rev)?, now()?),
        [a, b] => (at(*a)?, at(*b)?),
        _ => unreachable!("clap takes at most two revisions"),
    };
    let text = unified(&from, &to);
    emit(&if std::io::stdout().is_terminal() {
        colour(&text)
    } else {
        text
    })?;
    Ok(EXIT_OK)
}

/// The unified diff of two labelled texts (`None`: no file, diffed as empty).
fn unified(
    (from_label, from): &(String, Option<String>),
    (to_label, to): &(String, Option<String>),
) -> String {
    let (from, to) = (from.as_deref().unwrap_or(""), to.as_deref().unwrap_or(""));
    let diff = TextDiff::from_lines(from, to);
    if diff.ops().iter().all(|op| op.tag() == DiffTag::Equal) {
        return String::new();
    }
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header(from_label, to_label)
        .missing_newline_hint(true)
        .to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// `text` with ANSI colours: headers bold, hunks cyan, removals red, additions green.
fn colour(text: &str) -> String {
    text.lines()
        .map(|line| {
            let code = if line.starts_with("---") || line.starts_with("+++") {
                "1"
            } else if line.starts_with("@@") {
                "36"
            } else if line.starts_with('-') {
                "31"
            } else if line.starts_with('+') {
                "32"
            } else {
                return format!("{line}\n");
            };
            format!("\x1b[{code}m{line}\x1b[0m\n")
        })
        .collect()
}

/// `rollback NAME REV [-m MSG]`.
pub fn rollback(ctx: &Ctx, spec: &SpecName, rev: i64) -> anyhow::Result<u8> {
    let (kind, name) = spec_of(spec)?;
    let lock = ctx.lock()?;
    let catalog = ctx.catalog()?;
    let file = spec_file(ctx, kind, name);
    let Some(text) = text_at(lock.history()?, kind, name, rev)? else {
        return Err(UsageError::new(format!(
            "revision {rev} removed {kind} {name}: roll back to a revision before it (see \
             `left4mectl history{}`), or delete it",
            history_args(kind, name)
        ))
        .into());
    };
    let current = text_now(&file)?;
    if current.as_deref() == Some(text.as_str()) {
        emit(&format!(
            "{kind} {name} is already as revision {rev} left it; nothing was changed\n"
        ))?;
        return Ok(EXIT_OK);
    }
    match kind {
        Kind::Instance => SpecKind::Instance.check(&catalog, name, &file, &text)?,
        Kind::Blueprint => SpecKind::Blueprint.check(&catalog, name, &file, &text)?,
        Kind::Overlay => drop(OverlayDef::parse(name, &file, &text)?),
        Kind::Host => unreachable!("rollback names an instance, a blueprint or an overlay"),
    }
    ctx.note(1, || format!("{} is valid; installing it", file.display()));
    let message = match &ctx.message {
        Some(message) => format!("{message} (back to revision {rev})"),
        None => format!("back to revision {rev}"),
    };
    let verb = match kind {
        Kind::Instance => "rollback".to_owned(),
        other => format!("{other} rollback"),
    };
    let new_rev = lock.install(
        &Change {
            kind,
            name,
            file: &file,
            old: current.as_deref(),
            new: Some(&text),
            verb: &verb,
            message: Some(&message),
        },
        if current.is_some() {
            Replace::Yes
        } else {
            Replace::No
        },
    )?;
    drop(lock);
    let reloaded = reload::daemon_reload(ctx.no_reload)?;
    emit(&format!(
        "rolled {kind} {name} back to revision {rev} ({}); recorded as revision {new_rev}\n\
         {reloaded}\n{}\n",
        file.display(),
        pick_up(ctx, kind, name, current.is_none())?
    ))?;
    Ok(EXIT_OK)
}

/// What it takes for the running servers to use a rolled-back spec.
fn pick_up(ctx: &Ctx, kind: Kind, name: &str, was_deleted: bool) -> anyhow::Result<String> {
    let affected: Vec<String> = match kind {
        Kind::Instance if was_deleted => {
            return Ok(format!(
                "{name} is back: start it with `left4mectl start {name}`"
            ));
        }
        Kind::Instance => vec![name.to_owned()],
        Kind::Blueprint => {
            let catalog = ctx.catalog()?;
            catalog
                .instances
                .iter()
                .map(|(instance, _)| instance)
                .filter(|instance| {
                    peek(&catalog.layout.instance_file(instance))
                        .blueprint
                        .as_deref()
                        == Some(name)
                })
                .cloned()
                .collect()
        }
        Kind::Overlay | Kind::Host => {
            return Ok(format!(
                "the next `left4mectl overlay build {name}` uses it"
            ));
        }
    };
    let names: Vec<&str> = affected.iter().map(String::as_str).collect();
    let Some(states) = live_states(&names) else {
        return Ok(
            "systemd is not running here: the change applies when the instances start".into(),
        );
    };
    let running: Vec<&str> = names
        .iter()
        .zip(&states)
        .filter(|(_, live)| {
            matches!(
                live.active_state.as_deref(),
                Some("active" | "activating" | "reloading")
            )
        })
        .map(|(name, _)| *name)
        .collect();
    Ok(if running.is_empty() {
        "no instance it affects is running: the change applies when they start".into()
    } else {
        format!(
            "running with the old spec: {}; restart to pick it up: `left4mectl restart {} \
             --when-empty`",
            running.join(", "),
            running.join(" ")
        )
    })
}
