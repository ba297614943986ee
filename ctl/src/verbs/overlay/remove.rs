//! `left4mectl overlay rm NAME`: the definition, then the overlay's content, its stale build
//! dirs and its old content no mount uses.
//!
//! The content is removed as root, so only through the descriptor of `overlays/` opened beneath
//! the state dir (`left4me_jobs::content`): a symlink the game user puts in place of
//! `overlays/` or inside a content dir makes the removal refuse or stop at the link, never
//! follow it. The overlay's lock keeps a running `overlay build` and this verb apart.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use left4me_jobs::OverlayDirs;
use left4me_jobs::content::ContentError;
use left4me_jobs::publish::{self, Retired};
use left4me_spec::{OverlayDef, OverlayKind, SpecError};

use super::{load_def, users};
use crate::Ctx;
use crate::error::{EXIT_OK, UsageError};
use crate::output::emit;

/// A busy overlay is the operator's to wait for; anything else is an error of the host.
pub(crate) fn content_error(err: ContentError) -> anyhow::Error {
    if err.is_busy() {
        UsageError::new(format!("{err}; nothing was changed")).into()
    } else {
        err.into()
    }
}

/// `overlay rm NAME [--keep-content] [--yes]`.
pub fn remove(ctx: &Ctx, name: &str, keep_content: bool, yes: bool) -> anyhow::Result<u8> {
    let lock = ctx.lock()?;
    let catalog = ctx.catalog()?;
    let file = catalog.layout.overlay_def_file(name);
    let def = load_def(&catalog, name).or_else(|err| {
        if err.downcast_ref::<SpecError>().is_some() {
            Ok(OverlayDef {
                name: name.to_owned(),
                kind: OverlayKind::Manual,
            })
        } else {
            Err(err)
        }
    })?;
    let users = users(&catalog, name);
    if !users.is_empty() {
        return Err(UsageError::new(format!(
            "overlay {name} is used by {}: remove overlays/{name} from their overlays lists \
             first; nothing was changed",
            users.join(", ")
        ))
        .into());
    }
    let dirs = OverlayDirs::new(&catalog.layout.state_dir, name);
    let _overlay_lock = dirs
        .lock(&catalog.layout.locks_dir())
        .map_err(content_error)?;
    // Opened before anything changes: an `overlays/` that is a link or not root's refuses the
    // whole verb.
    let overlays = dirs.open(false)?;
    let runtime = catalog.layout.runtime_root();
    let mounted = publish::mounts_using(&dirs.current(), &runtime)?;
    if !mounted.is_empty() {
        let mut names: Vec<String> = mounted.into_iter().map(|m| m.instance).collect();
        names.sort();
        names.dedup();
        return Err(UsageError::new(format!(
            "overlay {name} is still mounted by {}: stop them first (`left4mectl stop {}`); \
             nothing was changed",
            names.join(", "),
            names.join(" ")
        ))
        .into());
    }
    let content = dirs.current();
    let has_content = match &overlays {
        Some(overlays) => overlays.dir().contains(name)?,
        None => false,
    };
    if !yes && !keep_content && has_content {
        confirm(name, &file, &content)?;
    }
    lock.remove(left4me_history::Kind::Overlay, name, &file, "overlay rm")?;
    let mut done = vec![format!("removed {}", file.display())];
    if let Some(overlays) = &overlays {
        let (builds, _) = overlays.leftovers()?;
        for build in builds {
            overlays.remove(&build)?;
        }
        for retired in publish::retire(overlays, &runtime)? {
            if let Retired::Removed(path) = retired {
                done.push(format!("removed {}", path.display()));
            }
        }
        if !keep_content && overlays.remove(name)? {
            done.push(format!("removed {}", content.display()));
        }
    }
    // Root's record of a workshop overlay's items (in root's own admin dir).
    let state_file = catalog.layout.workshop_state_file(name);
    if std::fs::remove_file(&state_file).is_ok() {
        done.push(format!("removed {}", state_file.display()));
    }
    if let OverlayKind::Workshop { .. } = def.kind {
        done.push("`left4mectl overlay gc` frees the cache files only it used".into());
    }
    emit(&format!("overlay {name}: {}\n", done.join(", ")))?;
    Ok(EXIT_OK)
}

fn confirm(name: &str, file: &Path, content: &Path) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError::new(format!(
            "not removing overlay {name} without confirmation: stdin is not a terminal; pass \
             --yes (or --keep-content to keep {})",
            content.display()
        ))
        .into());
    }
    eprint!(
        "Remove overlay {name}? This deletes {} and its content {}. [y/N] ",
        file.display(),
        content.display()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(UsageError::new(format!("not removing overlay {name}: not confirmed")).into())
    }
}
