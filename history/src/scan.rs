//! Finding changes made outside left4mectl: every spec file whose content hash differs from its
//! last revision's, or that appeared or disappeared since, gets a revision [`crate::OUTSIDE`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use left4me_spec::{Layout, read_spec};

use crate::{Change, History, HistoryError, Kind, OUTSIDE, hash};

/// A spec file found in the config dir.
struct Found {
    kind: Kind,
    name: String,
    /// `None`: there but not readable as a spec (a link, too big, not UTF-8); left alone.
    text: Option<String>,
}

/// Records a revision for every spec file under `config_dir` that changed since its last
/// revision without left4mectl; returns their numbers, oldest first. Run it under the
/// config-dir lock (see the crate doc).
pub fn scan(history: &History, config_dir: &Path) -> Result<Vec<i64>, HistoryError> {
    let found = spec_files(config_dir);
    let mut latest: BTreeMap<PathBuf, (Kind, String, Option<String>)> = history
        .latest_per_file()?
        .into_iter()
        // Only this config dir's files: a run against another one (LEFT4ME_CONFIG_DIR) must
        // not take the specs of /etc/left4me for removed.
        .filter(|(rev, _)| rev.file.starts_with(config_dir))
        .map(|(rev, hash)| (rev.file, (rev.kind, rev.name, hash)))
        .collect();
    let tx = history
        .conn
        .unchecked_transaction()
        .map_err(history.err())?;
    let mut recorded = Vec::new();
    let mut record = |kind, name: &str, file: &Path, old: Option<String>, new: Option<&str>| {
        // The old text is the last revision's; only read when something changed.
        recorded.push(history.record(&Change {
            kind,
            name,
            file,
            old: old.as_deref(),
            new,
            verb: OUTSIDE,
            message: None,
        })?);
        Ok::<_, HistoryError>(())
    };
    for (file, spec) in &found {
        let last = latest.remove(file);
        let Some(text) = &spec.text else { continue };
        let last_hash = last.as_ref().and_then(|(_, _, hash)| hash.as_deref());
        if last_hash == Some(hash(text).as_str()) {
            continue;
        }
        let old = match last {
            Some(_) => last_text(history, file)?,
            None => None,
        };
        record(spec.kind, &spec.name, file, old, Some(text))?;
    }
    // What is left was recorded once and is no longer there.
    for (file, (kind, name, hash)) in latest {
        if hash.is_some() {
            let old = last_text(history, &file)?;
            record(kind, &name, &file, old, None)?;
        }
    }
    tx.commit().map_err(history.err())?;
    Ok(recorded)
}

/// The new text of the last revision of `file`.
fn last_text(history: &History, file: &Path) -> Result<Option<String>, HistoryError> {
    history
        .conn
        .query_row(
            "SELECT new_text FROM spec_revisions JOIN spec_texts USING (rev) \
             WHERE file = ?1 ORDER BY rev DESC LIMIT 1",
            [file.to_string_lossy()],
            |row| row.get(0),
        )
        .map_err(history.err())
}

/// host.toml and the `*.toml` files (not hidden) of instances/, blueprints/ and overlays/.
fn spec_files(config_dir: &Path) -> BTreeMap<PathBuf, Found> {
    // Only the config-dir paths of this layout are used.
    let layout = Layout {
        config_dir: config_dir.to_path_buf(),
        state_dir: PathBuf::new(),
        admin_dir: PathBuf::new(),
    };
    let mut found = BTreeMap::new();
    let host = layout.host_file();
    if std::fs::symlink_metadata(&host).is_ok() {
        let text = read_spec(&host).ok();
        found.insert(
            host,
            Found {
                kind: Kind::Host,
                name: "host".into(),
                text,
            },
        );
    }
    for (kind, dir) in [
        (Kind::Instance, layout.instances_dir()),
        (Kind::Blueprint, layout.blueprints_dir()),
        (Kind::Overlay, layout.overlay_defs_dir()),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .filter(|n| !n.starts_with('.'))
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            let path = entry.path();
            let text = read_spec(&path).ok();
            found.insert(
                path,
                Found {
                    kind,
                    name: name.to_owned(),
                    text,
                },
            );
        }
    }
    found
}
