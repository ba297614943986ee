//! Workshop overlays (DESIGN §9): `overlay build NAME` resolves the definition's items and
//! collections with the Steam Web API (`left4me-workshop`), then the content job downloads what
//! the cache lacks and publishes the tree of links (`left4me_jobs::workshop`); the state file
//! `<admin dir>/workshop/NAME.json` keeps what the content holds for `overlay show`; and
//! `overlay gc` removes cache files no overlay uses.
//!
//! This module maps the definition and host.toml to those calls and prints what they did.

use std::path::Path;

use left4me_contract::printable;

use left4me_jobs::workshop::{self, GcReport, Outcome, WorkshopError, WorkshopJob, WorkshopReport};
use left4me_jobs::{Limits, Retired, Stop, SystemdRun, format_bytes, format_duration};
use left4me_spec::Catalog;
use left4me_workshop::api::Api;
use left4me_workshop::resolve::{Resolution, resolve};
use left4me_workshop::state::{self, OverlayState};
use left4me_workshop::{Item, ItemState};
use serde::Serialize;

use super::build::Printer;
use super::job_host;
use crate::Ctx;
use crate::error::{EXIT_OK, UsageError};
use crate::output::{emit, format_utc, progress, table};

/// The download unit's limits: curl needs little; a large collection takes its time.
fn download_limits() -> Limits {
    Limits {
        memory_max: "1G".into(),
        tasks_max: 64,
        timeout: "4h".into(),
    }
}

/// What one workshop build did, for `overlay build` and `overlay refresh --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// `published`, `unchanged` or `failed`.
    pub outcome: &'static str,
    /// The items linked into the content.
    pub items: usize,
    /// The items left out (removed upstream, banned, another game's, no file).
    pub left_out: usize,
    pub downloaded: usize,
    pub bytes_downloaded: u64,
    /// One line for people.
    pub summary: String,
}

/// The workshop definition's lists.
pub struct Lists<'a> {
    pub items: &'a [u64],
    pub collections: &'a [u64],
    pub exclude: &'a [u64],
}

/// Resolves the lists with the host's Steam Web API, printing its progress.
fn resolve_lists(catalog: &Catalog, name: &str, lists: &Lists<'_>) -> anyhow::Result<Resolution> {
    let api =
        Api::http(&catalog.host.steam_web_api)?.with_retry_notice(|line| eprintln!("  {line}"));
    progress(&format!(
        "overlay {name}: resolving {} item(s) and {} collection(s) with {}\n",
        lists.items.len(),
        lists.collections.len(),
        api.base()
    ))?;
    let mut say = |line: &str| {
        let _ = progress(&format!("  {line}\n"));
    };
    let resolution = resolve(
        &api,
        lists.items,
        lists.collections,
        lists.exclude,
        &mut say,
    )?;
    // The time the API took (round trips and backoff waits): what a refresh spends beyond it
    // is the toolkit's own (bench/workshop.sh reads this line).
    progress(&format!(
        "  resolved {} item(s) with {} API request(s), {:.1} ms of API round trips\n",
        resolution.items.len(),
        resolution.api_requests,
        resolution.api_time.as_secs_f64() * 1000.0
    ))?;
    for note in &resolution.notes {
        progress(&format!("  note: {note}\n"))?;
    }
    for item in resolution.items.iter().filter(|i| !i.state.is_ok()) {
        eprintln!(
            "warning: overlay {name}: item {} \"{}\" left out: {}",
            item.id,
            shown(&item.title),
            why_left_out(&item.state)
        );
    }
    Ok(resolution)
}

/// Why an item is not part of the content, for people.
fn why_left_out(state: &ItemState) -> String {
    match state {
        ItemState::Ok => "it is not".into(),
        ItemState::Removed { result } => {
            format!("removed upstream or private (Steam result {result})")
        }
        ItemState::Banned { reason } if reason.is_empty() => "banned".into(),
        ItemState::Banned { reason } => format!("banned ({})", shown(reason)),
        ItemState::WrongApp { app } => format!("an item of app {app}, not Left 4 Dead 2 (550)"),
        ItemState::NoFile { reason } => format!("no downloadable file ({})", shown(reason)),
    }
}

/// `overlay build NAME` of a workshop overlay; `dry_run` resolves and says what a build would
/// download, changing nothing.
pub fn build(
    ctx: &Ctx,
    catalog: &Catalog,
    name: &str,
    lists: &Lists<'_>,
    dry_run: bool,
) -> anyhow::Result<Built> {
    let resolution = resolve_lists(catalog, name, lists)?;
    let ok: Vec<&Item> = resolution
        .items
        .iter()
        .filter(|i| i.state.is_ok())
        .collect();
    if dry_run {
        return plan(catalog, name, &resolution, &ok);
    }
    let job = WorkshopJob {
        name: name.to_owned(),
        items: resolution.items.clone(),
        game_user: catalog.host.game_user.clone(),
        sandbox_user: catalog.host.sandbox_user.clone(),
        limits: download_limits(),
    };
    let host = job_host(&catalog.layout);
    let mut printer = Printer::new(name, ctx.verbose);
    let report = workshop::run(
        &job,
        &host,
        &catalog.layout.state_dir,
        &SystemdRun,
        &Stop::new(),
        &mut printer,
    )
    .map_err(job_error)?;
    let state_file = catalog.layout.workshop_state_file(name);
    if !matches!(report.outcome, Outcome::Failed(_)) {
        let previous = state::load(&state_file).ok().flatten();
        let now = OverlayState::from_resolution(name, &resolution, previous.as_ref());
        state::save(&state_file, &now)?;
    }
    Ok(built(
        name,
        &catalog.layout.overlay_content(name),
        &resolution,
        &report,
    ))
}

/// What a build would do, printed: the items to download and those the cache has.
fn plan(
    catalog: &Catalog,
    name: &str,
    resolution: &Resolution,
    ok: &[&Item],
) -> anyhow::Result<Built> {
    let cache = workshop::Cache::open(&catalog.layout.state_dir, false)?;
    let mut missing = Vec::new();
    for item in ok {
        let cached = match &cache {
            Some(cache) => cache.has(item.id, item.hcontent, item.file_size)?,
            None => false,
        };
        if !cached {
            missing.push(*item);
        }
    }
    let bytes: u64 = missing.iter().map(|i| i.file_size).sum();
    for item in &missing {
        progress(&format!(
            "  would download {} \"{}\" ({})\n",
            item.id,
            shown(&item.title),
            format_bytes(item.file_size)
        ))?;
    }
    let summary = format!(
        "overlay {name}: {} item(s), {} in the cache, {} to download ({}), {} left out; \
         nothing changed (--dry-run)",
        ok.len(),
        ok.len() - missing.len(),
        missing.len(),
        format_bytes(bytes),
        resolution.items.len() - ok.len()
    );
    Ok(Built {
        outcome: "dry-run",
        items: ok.len(),
        left_out: resolution.items.len() - ok.len(),
        downloaded: 0,
        bytes_downloaded: 0,
        summary,
    })
}

/// The build's result and its line for people.
fn built(name: &str, content: &Path, resolution: &Resolution, report: &WorkshopReport) -> Built {
    let ok = resolution.items.iter().filter(|i| i.state.is_ok()).count();
    let left_out = resolution.items.len() - ok;
    let took = format_duration(report.elapsed);
    let fetched = if report.downloaded.is_empty() {
        "nothing downloaded".to_owned()
    } else {
        format!(
            "downloaded {} file(s), {}",
            report.downloaded.len(),
            format_bytes(report.bytes_downloaded)
        )
    };
    let left = if left_out > 0 {
        format!(", {left_out} left out")
    } else {
        String::new()
    };
    let (outcome, summary) = match &report.outcome {
        Outcome::Published => (
            "published",
            format!(
                "overlay {name}: {ok} item(s){left}; {fetched}; published in {took}: {} holds \
                 the new content{}; running instances see it after their next restart",
                content.display(),
                retired_note(&report.retired)
            ),
        ),
        Outcome::Unchanged => (
            "unchanged",
            format!(
                "overlay {name}: {ok} item(s){left}; {fetched}; unchanged upstream, nothing \
                 published ({took})"
            ),
        ),
        Outcome::Failed(status) => {
            let mut why: Vec<String> = report
                .failed
                .iter()
                .chain(&report.refused)
                .map(|(id, reason)| format!("item {id}: {reason}"))
                .collect();
            if why.is_empty() {
                why.push(status.detail());
            }
            (
                "failed",
                format!(
                    "overlay {name}: build failed after {took}: {}; {} is unchanged (the files \
                     that did arrive stay in the cache; log: `left4mectl overlay jobs {name} \
                     --log -n 1`)",
                    why.join("; "),
                    content.display()
                ),
            )
        }
    };
    Built {
        outcome,
        items: ok,
        left_out,
        downloaded: report.downloaded.len(),
        bytes_downloaded: report.bytes_downloaded,
        summary,
    }
}

/// `; previous content removed` or kept while instances mount it.
fn retired_note(retired: &[Retired]) -> String {
    let kept: Vec<&str> = retired
        .iter()
        .flat_map(|r| match r {
            Retired::Kept { instances, .. } => instances.as_slice(),
            Retired::Removed(_) => &[],
        })
        .map(String::as_str)
        .collect();
    match kept.len() {
        0 => String::new(),
        // One instance "mounts", several "mount" (as script builds say it).
        n => format!(
            "; the previous content stays while {} still mount{} it",
            kept.join(", "),
            if n == 1 { "s" } else { "" }
        ),
    }
}

/// The item table of `overlay show NAME` for a workshop overlay, from its state file.
pub fn items_table(catalog: &Catalog, name: &str) -> String {
    let file = catalog.layout.workshop_state_file(name);
    let state = match state::load(&file) {
        Ok(Some(state)) => state,
        Ok(None) => {
            return format!(
                "\nno build yet: `left4mectl overlay build {name}` downloads the items\n"
            );
        }
        Err(err) => return format!("\nitems unknown: {err}\n"),
    };
    let cells: Vec<Vec<String>> = state
        .items
        .iter()
        .map(|record| {
            let item = &record.item;
            vec![
                item.id.to_string(),
                shown(&item.title),
                if item.state.is_ok() {
                    format_bytes(item.file_size)
                } else {
                    "-".into()
                },
                if item.time_updated > 0 {
                    format_utc(item.time_updated)
                } else {
                    "-".into()
                },
                state::display_state(record).to_owned(),
            ]
        })
        .collect();
    format!(
        "\nitems at the last build ({} UTC):\n{}",
        format_utc(i64::try_from(state.resolved_at).unwrap_or(i64::MAX)),
        table(&["ID", "TITLE", "SIZE", "UPDATED (UTC)", "STATE"], &cells)
    )
}

/// The state file's JSON, for `overlay show NAME --json` (`null` before the first build).
pub fn state_json(catalog: &Catalog, name: &str) -> Option<OverlayState> {
    state::load(&catalog.layout.workshop_state_file(name))
        .ok()
        .flatten()
}

/// `overlay gc --json`.
#[derive(Debug, Serialize)]
struct GcJson {
    dry_run: bool,
    /// Cache files no overlay links (removed, or with --dry-run to be removed).
    removed: Vec<GcFile>,
    removed_bytes: u64,
    /// Item dirs left empty.
    removed_dirs: Vec<String>,
    /// Leftovers of interrupted downloads.
    stale: Vec<String>,
    /// Old overlay content no instance mounts any more, retired first.
    retired: Vec<String>,
    /// The cache files that stay, linked by some overlay.
    kept_files: u64,
    kept_bytes: u64,
}

#[derive(Debug, Serialize)]
struct GcFile {
    path: String,
    bytes: u64,
}

impl From<&GcReport> for GcJson {
    fn from(report: &GcReport) -> Self {
        let paths =
            |list: &[std::path::PathBuf]| list.iter().map(|p| p.display().to_string()).collect();
        GcJson {
            dry_run: report.dry_run,
            removed: report
                .removed
                .iter()
                .map(|(path, bytes)| GcFile {
                    path: path.display().to_string(),
                    bytes: *bytes,
                })
                .collect(),
            removed_bytes: report.removed_bytes(),
            removed_dirs: paths(&report.removed_dirs),
            stale: paths(&report.stale),
            retired: paths(&report.retired),
            kept_files: report.kept.files,
            kept_bytes: report.kept.bytes,
        }
    }
}

/// `overlay gc [--dry-run] [--json]`.
pub fn gc(ctx: &Ctx, dry_run: bool, json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    let host = job_host(&catalog.layout);
    let report = workshop::gc(&catalog.layout.state_dir, &host, dry_run).map_err(job_error)?;
    if json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&GcJson::from(&report))?
        ))?;
        return Ok(EXIT_OK);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for path in &report.retired {
        emit(&format!(
            "{verb} {} (old content no instance mounts any more)\n",
            path.display()
        ))?;
    }
    for (path, bytes) in &report.removed {
        emit(&format!(
            "{verb} {} ({})\n",
            path.display(),
            format_bytes(*bytes)
        ))?;
    }
    for path in &report.stale {
        emit(&format!(
            "{verb} {} (left by an interrupted download)\n",
            path.display()
        ))?;
    }
    emit(&format!(
        "workshop cache {}: {verb} {} file(s), {}; {} file(s), {} in use stay\n",
        catalog.layout.workshop_cache().display(),
        report.removed.len(),
        format_bytes(report.removed_bytes()),
        report.kept.files,
        format_bytes(report.kept.bytes)
    ))?;
    Ok(EXIT_OK)
}

/// A workshop job's error: a busy overlay or cache is the operator's to wait for (exit 2).
fn job_error(err: WorkshopError) -> anyhow::Error {
    if err.is_usage() {
        UsageError::new(err.to_string()).into()
    } else {
        err.into()
    }
}

/// An untrusted text (a title from the API) on one line, control characters escaped.
fn shown(text: &str) -> String {
    printable::text(text.as_ref()).to_string()
}
