//! A workshop overlay's content: `overlays/NAME/left4dead2/addons/ID.vpk`, every file a hard
//! link of its cache file, every dir root's (0755), made through the `overlays/` descriptor.
//!
//! Hard links, not symbolic links: an instance's overlay stack then needs nothing outside
//! `overlays/` (its hardened unit never sees `workshop_cache/`), an item shared by many
//! overlays is one inode, and the link count is the reference count the cache's gc reads.
//!
//! The tree is built fresh as `.NAME.build-RUNID` and published like a script build's output
//! ([`crate::publish::publish_build`]); when the current content already has exactly the
//! names and inodes the new tree would have, nothing is built or published ("unchanged").

use std::collections::BTreeMap;

use left4me_contract::Ids;
use left4me_statedir::{Dir, EntryStat, FileType};
use left4me_workshop::Item;

use super::WorkshopError;
use super::cache::Cache;
use crate::content::Overlays;

/// The game dir and its addons dir, the tree's only dirs.
pub const GAME_DIR: &str = "left4dead2";
pub const ADDONS_DIR: &str = "addons";

/// `ID.vpk`, the name of an item in `addons/`.
pub fn addon_name(item: &Item) -> String {
    format!("{}.vpk", item.id)
}

/// The tree's files by name, as (device, inode).
type Listing = BTreeMap<String, (u64, u64)>;

/// The listing the tree of `items` (all in the cache) has.
pub(crate) fn wanted(cache: &Cache, items: &[&Item]) -> Result<Listing, WorkshopError> {
    let mut listing = Listing::new();
    for item in items {
        let stat = cache
            .stat(item.id, item.hcontent, item.file_size)?
            .ok_or_else(|| WorkshopError::NotCached {
                id: item.id,
                path: cache.path(item.id, item.hcontent),
            })?;
        listing.insert(addon_name(item), (stat.dev, stat.ino));
    }
    Ok(listing)
}

/// The listing of the content dir `content` when it has exactly the shape of a workshop tree
/// (`left4dead2/addons/` of regular files, nothing else); `None` otherwise.
pub(crate) fn listing(content: &Dir) -> Result<Option<Listing>, WorkshopError> {
    let Some(game) = only_dir(content, GAME_DIR)? else {
        return Ok(None);
    };
    let Some(addons) = only_dir(&game, ADDONS_DIR)? else {
        return Ok(None);
    };
    let mut listing = Listing::new();
    for entry in addons.entries()? {
        let Some(name) = entry.to_str() else {
            return Ok(None);
        };
        match addons.stat_entry(name)? {
            Some(EntryStat {
                kind: FileType::RegularFile,
                dev,
                ino,
                ..
            }) => {
                listing.insert(name.to_owned(), (dev, ino));
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(listing))
}

/// Counts in `links` the files of the old content `old` (an entry of `overlays/`) when it is a
/// workshop tree: the links its removal would drop.
pub(crate) fn count_links(
    overlays: &Overlays,
    old: &str,
    links: &mut super::Links,
) -> Result<(), WorkshopError> {
    let Some(dir) = overlays.dir().open_dir_if_exists(old)? else {
        return Ok(());
    };
    for file in listing(&dir)?.into_iter().flat_map(|l| l.into_values()) {
        *links.entry(file).or_default() += 1;
    }
    Ok(())
}

/// `dir/name` opened, when it is the only entry of `dir` and a real directory.
fn only_dir(dir: &Dir, name: &str) -> Result<Option<Dir>, WorkshopError> {
    let entries = dir.entries()?;
    if entries.len() != 1 || entries[0] != name {
        return Ok(None);
    }
    match dir.stat_entry(name)? {
        Some(EntryStat {
            kind: FileType::Directory,
            ..
        }) => Ok(Some(dir.open_dir(name)?)),
        _ => Ok(None),
    }
}

/// Whether `overlays/NAME` is already the tree `wanted` describes.
pub(crate) fn unchanged(overlays: &Overlays, wanted: &Listing) -> Result<bool, WorkshopError> {
    let Some(current) = overlays.current()? else {
        return Ok(false);
    };
    Ok(listing(&current)?.as_ref() == Some(wanted))
}

/// Builds `overlays/.NAME.build-RUNID` (root's, 0755) with every item of `items` hard-linked
/// from the cache as `left4dead2/addons/ID.vpk`.
pub(crate) fn build(
    overlays: &Overlays,
    cache: &Cache,
    run_id: &str,
    items: &[&Item],
) -> Result<(), WorkshopError> {
    let top = overlays.create_build(run_id, Ids { uid: 0, gid: 0 })?;
    let game = top.create_dir(GAME_DIR, (0, 0), 0o755)?;
    let addons = game.create_dir(ADDONS_DIR, (0, 0), 0o755)?;
    for item in items {
        cache.link_into(&addons, &addon_name(item), item.id, item.hcontent)?;
    }
    Ok(())
}
