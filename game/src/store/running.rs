//! Which game version each instance runs, read back from PID 1's mount table (DESIGN §2: an
//! instance's mount is found by its source tag `left4me:NAME:…`, never by a path): the first
//! lower layer of the form `<state_dir>/game/versions/ID/tree`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use left4me_contract::game::{GAME, TREE, VERSIONS, is_valid_version_id};
use left4me_overlay::mountinfo::{self, MountInfoEntry};

use super::StoreError;

/// PID 1's mount table: the host's mount namespace, whatever namespace the caller is in.
const PID1_MOUNTINFO: &str = "/proc/1/mountinfo";

fn read_table() -> Result<Vec<MountInfoEntry>, StoreError> {
    let path = Path::new(PID1_MOUNTINFO);
    let text = std::fs::read(path).map_err(|e| StoreError::MountTable {
        path: path.to_owned(),
        reason: format!("{e} (run as root)"),
    })?;
    mountinfo::parse(&text).map_err(|e| StoreError::MountTable {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The version id of a lower layer path `<state_dir>/game/versions/ID/tree`, if it is one.
fn version_of(state_dir: &Path, lower: &Path) -> Option<String> {
    let rest = lower
        .strip_prefix(state_dir.join(GAME).join(VERSIONS))
        .ok()?;
    let mut parts = rest.components();
    let (Some(Component::Normal(id)), Some(Component::Normal(tree)), None) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id = id.to_str()?;
    (tree == TREE && is_valid_version_id(id)).then(|| id.to_owned())
}

/// The instance name of a left4me overlay mount (`left4me:NAME:FINGERPRINT`).
fn instance_of(entry: &MountInfoEntry) -> Option<&str> {
    if entry.fs_type != "overlay" {
        return None;
    }
    let rest = entry.source.strip_prefix("left4me:")?;
    let (name, _) = rest.split_once(':')?;
    left4me_contract::is_valid_name(name).then_some(name)
}

/// Each instance's running version: instance name → the version id of the first
/// `<state_dir>/game/versions/ID/tree` lower of its tagged overlay (the latest one mounted
/// when there are several). Instances on `installation/` or not mounted are absent.
pub fn running_versions(state_dir: &Path) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(running_versions_in(&read_table()?, state_dir))
}

/// [`running_versions`] over a parsed mount table.
pub fn running_versions_in(table: &[MountInfoEntry], state_dir: &Path) -> BTreeMap<String, String> {
    let mut running = BTreeMap::new();
    for entry in table {
        let Some(name) = instance_of(entry) else {
            continue;
        };
        let id = entry
            .overlay_layers()
            .lowerdirs
            .iter()
            .find_map(|lower| version_of(state_dir, lower));
        match id {
            Some(id) => running.insert(name.to_owned(), id),
            None => running.remove(name),
        };
    }
    running
}

/// Every version id any overlay in PID 1's mount table uses as a lower layer (instances, and
/// anything else mounted from the store), so nothing mounted is ever removed.
pub fn mounted_versions(state_dir: &Path) -> Result<BTreeSet<String>, StoreError> {
    Ok(mounted_in(&read_table()?, state_dir))
}

pub(crate) fn mounted_in(table: &[MountInfoEntry], state_dir: &Path) -> BTreeSet<String> {
    table
        .iter()
        .filter(|e| e.fs_type == "overlay")
        .flat_map(|e| e.overlay_layers().lowerdirs)
        .filter_map(|lower| version_of(state_dir, &lower))
        .collect()
}

/// For tests: `<state_dir>/game/versions/ID/tree`.
#[cfg(test)]
pub(crate) fn tree_path(state_dir: &Path, id: &str) -> std::path::PathBuf {
    state_dir.join(super::layer_path(id))
}
