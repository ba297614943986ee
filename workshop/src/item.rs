//! One workshop item as the Steam Web API describes it (`GetPublishedFileDetails`), and the
//! state `left4mectl overlay show` reports for it.

use serde::{Deserialize, Serialize};

/// A published file id (an item's or a collection's): a decimal number in the API's strings.
pub type WorkshopId = u64;

/// Left 4 Dead 2's Steam app id: items of any other app are refused.
pub const L4D2_APP_ID: u32 = 550;

/// One item of an overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: WorkshopId,
    /// The title, as the API gives it (untrusted: print it with `printable`).
    pub title: String,
    /// `file_size`: what the download must measure exactly.
    pub file_size: u64,
    /// `time_updated`, Unix seconds.
    pub time_updated: i64,
    /// `hcontent_file`: the id of this version of the item's file; a new version has a new one.
    pub hcontent: u64,
    /// `file_url`: where the file is downloaded from (`http://` or `https://`).
    pub file_url: String,
    /// Flattened: `"state": "removed", "result": 9` in JSON.
    #[serde(flatten)]
    pub state: ItemState,
}

/// Whether an item can be part of the overlay, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemState {
    /// Resolved: it is downloaded (when not in the cache) and linked into the overlay.
    Ok,
    /// The API's `result` was not 1 (9: the item was deleted or made private).
    Removed { result: i64 },
    /// `banned` is set.
    Banned { reason: String },
    /// `consumer_app_id` is not 550.
    WrongApp { app: u64 },
    /// No usable `file_url`, `hcontent_file` or `file_size` (e.g. a collection given as an
    /// item, or a description that breaks the rules in `api`): `reason` says which.
    NoFile { reason: String },
}

impl ItemState {
    pub fn is_ok(&self) -> bool {
        matches!(self, ItemState::Ok)
    }
}
