//! `left4mectl status NAME [--json]`: an instance's spec, unit state, game version, last exit
//! and journal, in one screen or one JSON object.

use serde::Serialize;

use super::{JOURNAL_LINES, start_limit_hit};
use crate::Ctx;
use crate::change::{SpecKind, check_spec_name, missing};
use crate::content_view;
use crate::error::EXIT_OK;
use crate::game_view::{GameView, GameViews, is_running};
use crate::output::{emit, fields, format_since, format_size, spec_problem, unix_now};
use crate::systemd::{self, LastExit, Live, UnitState, unit_name};

/// `status NAME --json`.
#[derive(Debug, Serialize)]
struct Status {
    name: String,
    unit: String,
    file: String,
    spec_ok: bool,
    /// Why the spec is refused (the generator skips it), naming the file.
    spec_error: Option<String>,
    load_state: String,
    /// `active (running)`, `failed (exit-code)`, … as in `list`.
    state: String,
    /// systemd refused to start it again after too many failed starts.
    start_limit_hit: bool,
    #[serde(flatten)]
    live: Live,
    /// The game version it runs and would run (`update_pending`).
    #[serde(flatten)]
    game: GameView,
    /// The overlays republished since it started ("content update pending"; a restart mounts
    /// them).
    content_pending: Vec<String>,
    last_exit: Option<LastExit>,
    /// The unit's settings are older than its spec; a restart applies the spec.
    need_daemon_reload: bool,
    /// The unit's last journal lines.
    journal: Vec<String>,
}

/// `status NAME [--json]`.
pub fn status(ctx: &Ctx, name: &str, json: bool) -> anyhow::Result<u8> {
    check_spec_name(SpecKind::Instance, name)?;
    let catalog = ctx.catalog()?;
    let file = catalog.layout.instance_file(name);
    let unit = unit_name(name);
    let state = systemd::show_one(&unit)?;
    // (the whole line naming the file, the line for the text output)
    let spec_error: Option<(String, String)> = match catalog.get(name) {
        Some(Ok(_)) => None,
        Some(Err(err)) => Some((
            err.to_string(),
            format!(
                "error: {}; the generator skips it: fix it with `left4mectl edit {name}`",
                spec_problem(err)
            ),
        )),
        // A unit still running (or enabled) after its spec was removed by hand is shown.
        None if state.active_state != "inactive" || state.enabled() => {
            let gone = missing(SpecKind::Instance, name, &file).to_string();
            Some((gone.clone(), gone))
        }
        None => return Err(missing(SpecKind::Instance, name, &file).into()),
    };
    let journal = systemd::journal_tail(&unit, JOURNAL_LINES, None)
        .unwrap_or_else(|err| vec![format!("(cannot read the journal: {err})")]);
    let views = GameViews::load(&catalog.layout.state_dir);
    let active = is_running(Some(&state.active_state));
    let game = match catalog.get(name) {
        Some(Ok(instance)) => views.of(instance, active),
        _ => views.running_only(name),
    };
    let status = Status {
        name: name.to_owned(),
        file: file.display().to_string(),
        spec_ok: spec_error.is_none(),
        spec_error: spec_error.as_ref().map(|(line, _)| line.clone()),
        load_state: state.load_state.clone(),
        state: state.describe(),
        start_limit_hit: start_limit_hit(&state, &journal),
        live: Live::from(&state),
        game,
        content_pending: content_view::pending_layers(&catalog.layout.state_dir, name, active),
        last_exit: state.last_exit.clone(),
        need_daemon_reload: state.need_daemon_reload,
        journal,
        unit,
    };
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&status)?))?;
    } else {
        let spec = spec_error.map_or_else(|| "ok".to_owned(), |(_, text)| text);
        emit(&describe_status(&status, &state, spec))?;
    }
    Ok(EXIT_OK)
}

fn describe_status(status: &Status, state: &UnitState, spec: String) -> String {
    let now = unix_now();
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut pairs = vec![
        ("instance", format!("{} ({})", status.name, status.file)),
        ("spec", spec),
        (
            "unit",
            format!(
                "{}, {}",
                status.unit,
                if state.enabled() {
                    "enabled (starts at boot)".to_owned()
                } else {
                    format!("{} (does not start at boot)", state.unit_file_state)
                }
            ),
        ),
        (
            "state",
            match state.since {
                Some(since) => format!("{} since {}", status.state, format_since(since, now)),
                None => status.state.clone(),
            },
        ),
        ("status", dash(state.status_text.clone())),
        (
            "game",
            status
                .game
                .describe(&status.name, is_running(Some(&state.active_state))),
        ),
        ("main pid", dash(state.main_pid.map(|p| p.to_string()))),
        ("memory", dash(state.memory_bytes.map(format_size))),
        ("restarts", state.restarts.to_string()),
        (
            "last exit",
            dash(state.last_exit.as_ref().map(|exit| match exit.at {
                Some(at) => format!("{}, {}", exit.describe(), format_since(at, now)),
                None => exit.describe(),
            })),
        ),
        (
            "result",
            if status.start_limit_hit {
                format!(
                    "start-limit-hit: systemd gave up after {} starts within {} (the last \
                     ended: {}); `left4mectl start {}` tries again",
                    state.start_limit_burst, state.start_limit_interval, state.result, status.name
                )
            } else {
                state.result.clone()
            },
        ),
    ];
    if let Some(pending) = content_view::describe(&status.content_pending) {
        pairs.push(("content", pending));
    }
    if status.need_daemon_reload {
        pairs.push((
            "note",
            format!(
                "the spec changed since systemd read it; `left4mectl restart {}` applies it",
                status.name
            ),
        ));
    }
    let mut text = fields(&pairs);
    text.push_str(&format!(
        "\njournal (last {JOURNAL_LINES} lines; all of it: `left4mectl logs {}`):\n",
        status.name
    ));
    for line in &status.journal {
        text.push_str(&format!("  {line}\n"));
    }
    text
}
