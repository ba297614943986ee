//! left4me workshop items (DESIGN §9): what a workshop overlay's items are, resolved through the
//! Steam Web API with no login and no key, the record of each build, and the check that a
//! downloaded file is a VPK.
//!
//! - [`api`]: the Steam Web API client (`GetCollectionDetails`, `GetPublishedFileDetails`):
//!   the [`Transport`] trait and its HTTP implementation, batching, retries with backoff, and
//!   the typed, validated reading of the answers;
//! - [`resolve`](mod@resolve): an overlay's `items`, `collections` and `exclude` to its list of items
//!   (nested collections breadth-first, cycles noted, caps on depth and count);
//! - [`item`]: one workshop item as the API describes it, and its state for the operator;
//! - [`state`]: the per-overlay state file (`<admin_dir>/workshop/NAME.json`): each item with
//!   what changed since the last build and how its download went;
//! - [`vpk`]: the VPK header check every downloaded file must pass.
//!
//! What this crate must not do: touch the state dir, start processes or print (progress goes to
//! the caller's callback). The download of the files (in the sandbox) and the cache are
//! `left4me-jobs`' (`jobs::workshop`); only [`state::save`] writes a file, in root's admin dir.

#![forbid(unsafe_code)]

pub mod api;
pub mod item;
pub mod resolve;
pub mod state;
pub mod vpk;

#[cfg(test)]
mod testing;

pub use api::{
    Api, ApiError, ApiStats, HttpTransport, Response, RetryPolicy, Transport, TransportError,
};
pub use item::{Item, ItemState, WorkshopId};
pub use resolve::{CollectionInfo, Resolution, resolve};
pub use state::{Change, ItemRecord, OverlayState, StateError, display_state};
