//! left4me-game: the game's versions (DESIGN §8, docs/game.md).
//!
//! - [`store`]: the immutable versions under `game/versions`, `game/current`, chains, staging
//!   and publish, gc — root's side, through `left4me-statedir` descriptors;
//! - [`steamcmd`]: what SteamCMD is told and what its output means (pure: no processes).

#![forbid(unsafe_code)]

pub mod steamcmd;
pub mod store;
