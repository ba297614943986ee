//! `overlay refresh [NAME…] [--json]`: the nightly refresh (left4me-overlay-refresh.service).
//! Rebuilds the named overlays, or every overlay whose definition refreshes (workshop overlays
//! unless `refresh = "never"`, script overlays with `refresh = "daily"`), one after the other;
//! one failure does not stop the others.

use left4me_spec::{OverlayKind, list_names};
use serde::Serialize;

use super::build::{self, Mode};
use super::{check_overlay_name, load_def};
use crate::Ctx;
use crate::error::{EXIT_OK, EXIT_RUNTIME, UsageError};
use crate::output::{self, emit};

/// One overlay's refresh, for `--json`.
#[derive(Debug, Serialize)]
struct Refreshed {
    name: String,
    kind: &'static str,
    /// `built` (a script overlay), `published`, `unchanged` or `failed`.
    outcome: String,
    /// Why it failed.
    error: Option<String>,
}

/// `overlay refresh [NAME…] [--json]`.
pub fn refresh(ctx: &Ctx, names: &[String], json: bool) -> anyhow::Result<u8> {
    let catalog = ctx.catalog()?;
    if json {
        output::progress_to_stderr();
    }
    let mut done = Vec::new();
    let chosen: Vec<String> = if names.is_empty() {
        let mut chosen = Vec::new();
        for (name, _) in list_names(&catalog.layout.overlay_defs_dir())? {
            match load_def(&catalog, &name) {
                Ok(def) if def.kind.refreshes() => chosen.push(name),
                Ok(_) => {}
                // A definition that does not load may be one that refreshes: say so.
                Err(err) => {
                    eprintln!("left4mectl: overlay {name}: not refreshed: {err:#}");
                    done.push(Refreshed {
                        name,
                        kind: "?",
                        outcome: "failed".into(),
                        error: Some(format!("{err:#}")),
                    });
                }
            }
        }
        chosen
    } else {
        for name in names {
            check_overlay_name(name)?;
            if let OverlayKind::Manual = load_def(&catalog, name)?.kind {
                return Err(UsageError::new(format!(
                    "overlay {name} is a manual overlay: nothing refreshes it"
                ))
                .into());
            }
        }
        names.to_vec()
    };
    if chosen.is_empty() && done.is_empty() && !json {
        emit(&format!(
            "no overlay to refresh: no workshop overlay, and no script overlay with refresh = \
             \"daily\", in {}\n",
            catalog.layout.overlay_defs_dir().display()
        ))?;
    }
    for name in &chosen {
        let kind = load_def(&catalog, name).map_or("?", |def| def.kind.name());
        let (outcome, error) = match build::build_outcome(ctx, name, Mode::Run) {
            Ok(outcome) => (outcome, None),
            Err(err) => {
                eprintln!("left4mectl: overlay {name}: {err:#}");
                ("failed".to_owned(), Some(format!("{err:#}")))
            }
        };
        done.push(Refreshed {
            name: name.clone(),
            kind,
            outcome,
            error,
        });
    }
    let failed = done.iter().filter(|r| r.error.is_some()).count();
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&done)?))?;
    } else if !done.is_empty() {
        emit(&format!(
            "refreshed {} overlay(s): {} failed\n",
            done.len(),
            failed
        ))?;
    }
    Ok(if failed > 0 { EXIT_RUNTIME } else { EXIT_OK })
}
