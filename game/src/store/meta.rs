//! `version.toml`: a version's metadata (docs/game.md "On disk").

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// Which verb made a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// A first install (a full tree).
    Install,
    /// An update: a delta over the parent's chain.
    Update,
    /// `validate`: SteamCMD checked every file (a delta holding what it repaired).
    Validate,
    /// A chain that grew to `MAX_CHAIN` copied into a full tree.
    Squash,
}

impl How {
    /// The word in `version.toml` and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            How::Install => "install",
            How::Update => "update",
            How::Validate => "validate",
            How::Squash => "squash",
        }
    }
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published version: its id (the directory name) and its `version.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    /// The Steam build id.
    pub build_id: u64,
    pub branch: String,
    /// The version this one is a delta over; `None` for a full tree.
    pub parent: Option<String>,
    /// Unix seconds of the publish.
    pub created: u64,
    /// Bytes of the regular files in `tree/` (what the version costs on disk beyond its
    /// parents), measured at publish.
    pub bytes: u64,
    pub how: How,
    /// Whether the anonymous "Invalid platform" two-pass workaround was taken.
    pub platform_workaround: bool,
}

/// The file's fields (the id is the directory's name).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    build_id: u64,
    branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    created: u64,
    bytes: u64,
    how: How,
    #[serde(default)]
    platform_workaround: bool,
}

/// Reads the `version.toml` of version `id` (at `path`, for messages).
pub(crate) fn parse(id: &str, path: &Path, text: &str) -> Result<Version, StoreError> {
    let file: MetadataFile = toml::from_str(text).map_err(|e| StoreError::Metadata {
        path: path.to_owned(),
        reason: e.message().to_owned(),
    })?;
    if let Some(parent) = &file.parent
        && !left4me_contract::game::is_valid_version_id(parent)
    {
        return Err(StoreError::Metadata {
            path: path.to_owned(),
            reason: format!("parent {parent:?} is not a version id"),
        });
    }
    Ok(Version {
        id: id.to_owned(),
        build_id: file.build_id,
        branch: file.branch,
        parent: file.parent,
        created: file.created,
        bytes: file.bytes,
        how: file.how,
        platform_workaround: file.platform_workaround,
    })
}

/// The `version.toml` text of `version` (at `path`, for messages).
pub(crate) fn render(version: &Version, path: &Path) -> Result<String, StoreError> {
    let file = MetadataFile {
        build_id: version.build_id,
        branch: version.branch.clone(),
        parent: version.parent.clone(),
        created: version.created,
        bytes: version.bytes,
        how: version.how,
        platform_workaround: version.platform_workaround,
    };
    // TOML's integers are 64-bit signed; the toml crate writes and reads a larger u64 too
    // (tested), and says so should it ever refuse one.
    let text = toml::to_string(&file).map_err(|e| StoreError::Metadata {
        path: path.to_owned(),
        reason: format!("cannot write build id {}: {e}", version.build_id),
    })?;
    Ok(format!(
        "# left4me game version {} (written at publish; never changed)\n{text}",
        version.id
    ))
}
