//! The game's versions in the state dir (DESIGN §8, docs/game.md): where they live, what may
//! name one, and how long a chain of deltas may grow.
//!
//! ```text
//! game/current                 "ID\n": the newest good version
//! game/versions/ID/tree        a version's layer (full tree or delta over its parent)
//! game/versions/ID/version.toml
//! game/versions/.new-JOB/      a version being made: tree/ (upper) and work/
//! game/steamcmd/               SteamCMD's home
//! game/sdk/sdk32, sdk/sdk64    steamclient.so for the game user's ~/.steam
//! ```

/// Left 4 Dead 2 Dedicated Server's Steam app id.
pub const APP_ID: u32 = 222860;

/// The state dir's directory of everything game-install related.
pub const GAME: &str = "game";

/// Beneath [`GAME`]: one directory per version.
pub const VERSIONS: &str = "versions";

/// Beneath [`GAME`]: the file naming the current version.
pub const CURRENT: &str = "current";

/// Beneath [`GAME`]: SteamCMD's home (and install, when left4me bootstrapped it).
pub const STEAMCMD_HOME: &str = "steamcmd";

/// Beneath [`GAME`]: the `steamcmd` client libraries the game server loads (`sdk32`, `sdk64`).
pub const SDK: &str = "sdk";

/// Beneath a version's directory: its layer.
pub const TREE: &str = "tree";

/// Beneath a version being made: overlayfs' work dir (removed before publishing).
pub const WORK: &str = "work";

/// Beneath a version's directory: its metadata.
pub const METADATA: &str = "version.toml";

/// The prefix of a version being made (`.new-JOB`), never mounted by an instance.
pub const STAGING_PREFIX: &str = ".new-";

/// The most layers one version may stack: a full tree and `MAX_CHAIN - 1` deltas. An update
/// whose parent's chain is this long is published squashed into a full tree.
pub const MAX_CHAIN: usize = 4;

/// Whether `id` may name a version: a Steam build id (1 to 20 digits, no leading zero unless it
/// is `0`), optionally followed by `-N` with N from 2 to 9999 (the same build published again).
pub fn is_valid_version_id(id: &str) -> bool {
    let (build, suffix) = match id.split_once('-') {
        Some((build, suffix)) => (build, Some(suffix)),
        None => (id, None),
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    let build_ok = digits(build, 20) && (build == "0" || !build.starts_with('0'));
    let suffix_ok = suffix.is_none_or(|s| {
        digits(s, 4) && !s.starts_with('0') && s.parse::<u16>().is_ok_and(|n| n >= 2)
    });
    build_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_build_ids_with_an_optional_republish_suffix() {
        for good in [
            "0",
            "12345678",
            "12345678-2",
            "1-9999",
            "18446744073709551615",
        ] {
            assert!(is_valid_version_id(good), "{good}");
        }
        for bad in [
            "",
            "-2",
            "1-",
            "1-1",
            "1-0",
            "1-02",
            "01",
            "1-10000",
            "a1",
            "1 ",
            "../1",
            "1/2",
            "1-2-3",
            "123456789012345678901",
            ".new-1",
        ] {
            assert!(!is_valid_version_id(bad), "{bad:?}");
        }
    }
}
