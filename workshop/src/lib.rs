//! left4me workshop items (DESIGN §9): what a workshop overlay's items are, resolved through the
//! Steam Web API with no login and no key, and the check that a downloaded file is a VPK.
//!
//! - [`item`]: one workshop item as the API describes it, and its state for the operator;
//! - [`vpk`]: the VPK header check every downloaded file must pass.
//!
//! What this crate must not do: touch the state dir, start processes or print. The download of
//! the files (in the sandbox) and the cache are `left4me-jobs`' (`jobs::workshop`).

#![forbid(unsafe_code)]

pub mod item;
pub mod vpk;

pub use item::{Item, ItemState, WorkshopId};
