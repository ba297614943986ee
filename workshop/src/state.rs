//! The per-overlay state file, `<admin_dir>/workshop/NAME.json`: what the last good build of a
//! workshop overlay (one that published or found nothing to change) resolved, and what changed
//! since the build before. `left4mectl overlay show` prints it; the next build compares with
//! it. A failed build writes none, so a change counts from the build that published it.
//!
//! JSON, `version` [`VERSION`]; written atomically (a temp file in the same dir, fsync,
//! rename, fsync of the dir), mode 0600 in a dir created 0700 (it lives in root's admin dir).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::item::{Item, ItemState, WorkshopId};
use crate::resolve::{CollectionInfo, Resolution};

/// The format version written and understood.
pub const VERSION: u32 = 1;

/// The largest state file read (10 000 items of about 1 KiB each, with room to spare).
const MAX_LEN: u64 = 64 << 20;

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a workshop overlay state file ({reason}): remove it; the next `left4mectl overlay build` writes a new one", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{} has format version {version}, this left4me reads version {VERSION}: remove it, or use the left4me that wrote it", path.display())]
    Version { path: PathBuf, version: u32 },
}

/// What the last build of one workshop overlay resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayState {
    /// [`VERSION`].
    pub version: u32,
    /// The overlay's name.
    pub overlay: String,
    /// When it was resolved, Unix seconds.
    pub resolved_at: u64,
    pub items: Vec<ItemRecord>,
    #[serde(default)]
    pub collections: Vec<CollectionInfo>,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One item of the state: what the API said and what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    #[serde(flatten)]
    pub item: Item,
    pub change: Change,
}

/// How an item differs from the state file before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Not in the previous state (or there was none).
    New,
    /// A new version of its file (`hcontent_file` changed).
    Updated,
    Unchanged,
}

impl OverlayState {
    /// The state of overlay `name` just resolved to `resolution`, each item's change judged
    /// against `previous`: new when it had no record there, updated when its file's version
    /// (`hcontent`) is not the one recorded, else unchanged.
    pub fn from_resolution(
        name: &str,
        resolution: &Resolution,
        previous: Option<&OverlayState>,
    ) -> OverlayState {
        let before: HashMap<WorkshopId, &ItemRecord> = previous
            .map(|p| p.items.iter().map(|r| (r.item.id, r)).collect())
            .unwrap_or_default();
        let items = resolution
            .items
            .iter()
            .map(|item| ItemRecord {
                change: change(item, before.get(&item.id).copied()),
                item: item.clone(),
            })
            .collect();
        OverlayState {
            version: VERSION,
            overlay: name.to_owned(),
            resolved_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            items,
            collections: resolution.collections.clone(),
            notes: resolution.notes.clone(),
        }
    }
}

fn change(item: &Item, old: Option<&ItemRecord>) -> Change {
    let Some(old) = old else {
        return Change::New;
    };
    if item.hcontent != 0 && item.hcontent != old.item.hcontent {
        Change::Updated
    } else {
        Change::Unchanged
    }
}

/// What `overlay show` prints in the STATE column for `record`.
pub fn display_state(record: &ItemRecord) -> &'static str {
    match (&record.item.state, record.change) {
        (ItemState::Removed { .. }, _) => "removed upstream",
        (ItemState::Banned { .. }, _) => "banned",
        (ItemState::WrongApp { .. }, _) => "wrong app",
        (ItemState::NoFile { .. }, _) => "no file",
        (ItemState::Ok, Change::Updated) => "updated",
        (ItemState::Ok, _) => "ok",
    }
}

/// Reads the state file at `path`; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<OverlayState>, StateError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io("open", path)(source)),
    };
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_LEN + 1), &mut text)
        .map_err(io("read", path))?;
    let malformed = |reason: String| StateError::Malformed {
        path: path.to_owned(),
        reason,
    };
    if text.len() as u64 > MAX_LEN {
        return Err(malformed(format!("larger than {MAX_LEN} bytes")));
    }
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned =
        serde_json::from_slice(&text).map_err(|err| malformed(err.to_string()))?;
    if versioned.version != VERSION {
        return Err(StateError::Version {
            path: path.to_owned(),
            version: versioned.version,
        });
    }
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|err| malformed(err.to_string()))
}

/// Writes `state` to `path` atomically, mode 0600, creating the parent dir (0700) when missing.
pub fn save(path: &Path, state: &OverlayState) -> Result<(), StateError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))?;
    let mut text = serde_json::to_vec_pretty(state).expect("the state serializes");
    text.push(b'\n');
    let name = path
        .file_name()
        .map_or("state".into(), |n| n.to_string_lossy());
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_new(&temp, &text)
        .and_then(|()| fs::rename(&temp, path).map_err(io("rename into place", path)));
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

/// Creates `temp` (0600; a stale one from a crashed run is replaced) with `text`, fsynced.
/// `create_new` (`O_EXCL`) never follows a link someone put there.
fn write_new(temp: &Path, text: &[u8]) -> Result<(), StateError> {
    match fs::remove_file(temp) {
        Ok(()) => {}
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(source) => return Err(io("remove", temp)(source)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(io("create", temp))?;
    file.write_all(text).map_err(io("write", temp))?;
    file.sync_all().map_err(io("fsync", temp))
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests;
