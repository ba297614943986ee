//! Resolution: from an overlay's `items`, `collections` and `exclude` to the list of items it
//! is made of, each with its state (WORKSHOP-DESIGN step 2).
//!
//! Collections are followed breadth-first, level by level (one batched request per level), to
//! at most [`MAX_DEPTH`] levels and [`MAX_COLLECTIONS`] collections; a visited set follows each collection once, so a cycle or a
//! collection included twice is noted, not an error. The items are the explicit items, then
//! the collections' items in the order the levels and their children give, without repeats,
//! without the `exclude`d ids (which also stops a nested collection from being followed).

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::{Api, ApiError};
use crate::item::{Item, WorkshopId};

/// How many levels of collections are followed (the overlay's own collections are level 1).
pub const MAX_DEPTH: u32 = 16;

/// The most items one overlay resolves to.
pub const MAX_ITEMS: usize = 10_000;

/// The most collections one overlay follows (its own and the nested ones): without a cap, a
/// level of collections naming a million others would be asked about, level after level.
pub const MAX_COLLECTIONS: usize = 1_000;

/// What an overlay's definition resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Every item, in a stable order: explicit items first, then collection order.
    pub items: Vec<Item>,
    /// Every collection followed (or found not to be one), in the order they were asked.
    pub collections: Vec<CollectionInfo>,
    /// What the operator should know that is not an error: cycles, repeats, ids that are not
    /// collections, excludes that matched nothing, the depth cap.
    pub notes: Vec<String>,
    /// Requests sent to the API (retries included).
    pub api_requests: u32,
    /// Time spent in the API's round trips and backoff waits.
    pub api_time: Duration,
}

/// One collection of the resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    pub id: WorkshopId,
    /// 1: listed in the overlay's definition; 2: inside one of those; and so on.
    pub depth: u32,
    /// Its children that are items, in its sort order.
    pub items: Vec<WorkshopId>,
    /// Its children that are collections.
    pub collections: Vec<WorkshopId>,
    /// False when the API says it is not a collection (deleted, private, or an item's id).
    pub found: bool,
}

/// Resolves an overlay's definition through `api`, telling `progress` what it asks.
pub fn resolve(
    api: &Api,
    items: &[WorkshopId],
    collections: &[WorkshopId],
    exclude: &[WorkshopId],
    progress: &mut dyn FnMut(&str),
) -> Result<Resolution, ApiError> {
    let before = api.stats();
    let excluded: HashSet<WorkshopId> = exclude.iter().copied().collect();
    let mut used_excludes = HashSet::new();
    let mut wanted = Wanted::default();
    for &id in items {
        if excluded.contains(&id) {
            used_excludes.insert(id);
        } else {
            wanted.add(id);
        }
    }
    let mut notes = Vec::new();
    let mut infos = Vec::new();
    let mut visited = HashSet::new();
    let mut level: Vec<WorkshopId> = Vec::new();
    for &id in collections {
        if excluded.contains(&id) {
            used_excludes.insert(id);
        } else if visited.insert(id) {
            level.push(id);
        }
    }
    check_caps(&wanted, &visited)?;
    let mut depth = 1;
    while !level.is_empty() {
        if depth > MAX_DEPTH {
            notes.push(format!(
                "collections nested deeper than {MAX_DEPTH} levels are not followed: {}",
                list(&level)
            ));
            break;
        }
        progress(&format!(
            "resolving {} collection(s) at depth {depth}",
            level.len()
        ));
        let mut next = Vec::new();
        for details in api.collection_details(&level)? {
            let mut info = CollectionInfo {
                id: details.id,
                depth,
                items: Vec::new(),
                collections: Vec::new(),
                found: details.children.is_some(),
            };
            let Some(children) = details.children else {
                notes.push(format!(
                    "{} is not a collection (result {}: deleted, private, or an item's id — list items under `items`); skipped",
                    details.id, details.result
                ));
                infos.push(info);
                continue;
            };
            for child in children {
                if excluded.contains(&child.id) {
                    used_excludes.insert(child.id);
                } else if !child.is_collection {
                    info.items.push(child.id);
                    wanted.add(child.id);
                } else if visited.insert(child.id) {
                    info.collections.push(child.id);
                    next.push(child.id);
                } else {
                    info.collections.push(child.id);
                    notes.push(format!(
                        "collection {} includes collection {} again (a cycle or a repeat); followed once",
                        details.id, child.id
                    ));
                }
            }
            check_caps(&wanted, &visited)?;
            infos.push(info);
        }
        level = next;
        depth += 1;
    }
    let unused: Vec<WorkshopId> = exclude
        .iter()
        .copied()
        .filter(|id| !used_excludes.contains(id))
        .collect();
    if !unused.is_empty() {
        notes.push(format!(
            "exclude lists ids no item or collection has: {}",
            list(&unused)
        ));
    }
    if wanted.order.len() > MAX_ITEMS {
        return Err(ApiError::TooManyItems { limit: MAX_ITEMS });
    }
    progress(&format!(
        "fetching the details of {} item(s)",
        wanted.order.len()
    ));
    let items = api.file_details(&wanted.order)?;
    let after = api.stats();
    Ok(Resolution {
        items,
        collections: infos,
        notes,
        api_requests: after.requests - before.requests,
        api_time: after.time.saturating_sub(before.time),
    })
}

/// Fails when the items wanted or the collections to follow are more than the caps allow.
fn check_caps(wanted: &Wanted, visited: &HashSet<WorkshopId>) -> Result<(), ApiError> {
    if wanted.order.len() > MAX_ITEMS {
        return Err(ApiError::TooManyItems { limit: MAX_ITEMS });
    }
    if visited.len() > MAX_COLLECTIONS {
        return Err(ApiError::TooManyCollections {
            limit: MAX_COLLECTIONS,
        });
    }
    Ok(())
}

/// The items wanted so far, in first-seen order.
#[derive(Debug, Default)]
struct Wanted {
    order: Vec<WorkshopId>,
    seen: HashSet<WorkshopId>,
}

impl Wanted {
    fn add(&mut self, id: WorkshopId) {
        if self.seen.insert(id) {
            self.order.push(id);
        }
    }
}

fn list(ids: &[WorkshopId]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::ItemState;
    use crate::testing::FakeSteam;

    fn ids(items: &[Item]) -> Vec<WorkshopId> {
        items.iter().map(|i| i.id).collect()
    }

    fn run(steam: &FakeSteam, items: &[u64], collections: &[u64], exclude: &[u64]) -> Resolution {
        let mut lines = Vec::new();
        let resolution = resolve(&steam.api(), items, collections, exclude, &mut |l| {
            lines.push(l.to_owned())
        })
        .unwrap();
        assert!(lines.last().unwrap().starts_with("fetching the details"));
        resolution
    }

    #[test]
    fn nested_collections_breadth_first_explicit_items_first() {
        let steam = FakeSteam::new();
        for id in 1..=9 {
            steam.item(id, id + 100);
        }
        steam.collection(100, &[(3, 0), (200, 2), (4, 0)]);
        steam.collection(200, &[(5, 0), (300, 2), (1, 0)]);
        steam.collection(300, &[(6, 0)]);
        steam.collection(101, &[(7, 0)]);
        let r = run(&steam, &[2, 1], &[100, 101], &[]);
        assert_eq!(ids(&r.items), [2, 1, 3, 4, 7, 5, 6]);
        assert!(r.items.iter().all(|i| i.state.is_ok()));
        let depths: Vec<(u64, u32)> = r.collections.iter().map(|c| (c.id, c.depth)).collect();
        assert_eq!(depths, [(100, 1), (101, 1), (200, 2), (300, 3)]);
        assert_eq!(r.collections[0].items, [3, 4]);
        assert_eq!(r.collections[0].collections, [200]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        // one request per level, one for the items
        assert_eq!(r.api_requests, 4);
        assert_eq!(steam.requests().len(), 4);
    }

    #[test]
    fn a_cycle_is_noted_and_followed_once() {
        let steam = FakeSteam::new();
        steam.item(1, 11).item(2, 22);
        steam.collection(10, &[(1, 0), (20, 2)]);
        steam.collection(20, &[(2, 0), (10, 2)]);
        let r = run(&steam, &[], &[10], &[]);
        assert_eq!(ids(&r.items), [1, 2]);
        assert_eq!(r.collections.len(), 2);
        assert_eq!(r.notes.len(), 1);
        assert!(
            r.notes[0].contains("collection 20 includes collection 10 again"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn exclude_removes_items_and_nested_collections() {
        let steam = FakeSteam::new();
        steam.item(1, 11).item(2, 22).item(3, 33);
        steam.collection(10, &[(1, 0), (2, 0), (20, 2)]);
        steam.collection(20, &[(3, 0)]);
        let r = run(&steam, &[3], &[10], &[2, 20, 3, 77]);
        assert_eq!(ids(&r.items), [1]);
        assert_eq!(r.collections.len(), 1);
        assert_eq!(r.notes, ["exclude lists ids no item or collection has: 77"]);
    }

    #[test]
    fn removed_items_and_non_collections_are_reported_not_errors() {
        let steam = FakeSteam::new();
        steam.item(1, 11);
        steam.collection(10, &[(1, 0), (404, 0)]);
        let r = run(&steam, &[], &[10, 55], &[]);
        assert_eq!(ids(&r.items), [1, 404]);
        assert_eq!(r.items[1].state, ItemState::Removed { result: 9 });
        assert!(!r.collections[1].found);
        assert!(
            r.notes[0].starts_with("55 is not a collection"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn depth_is_capped() {
        let steam = FakeSteam::new();
        for level in 1..=20u64 {
            steam.collection(1000 + level, &[(level, 0), (1001 + level, 2)]);
            steam.item(level, level);
        }
        let r = run(&steam, &[], &[1001], &[]);
        assert_eq!(r.items.len(), MAX_DEPTH as usize);
        assert!(
            r.notes[0].contains("deeper than 16 levels are not followed: 1017"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn too_many_items_is_an_error() {
        let steam = FakeSteam::new();
        let children: Vec<(u64, i64)> = (1..=MAX_ITEMS as u64 + 1).map(|id| (id, 0)).collect();
        steam.collection(5, &children);
        let err = resolve(&steam.api(), &[], &[5], &[], &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("more than 10000 items"), "{err}");
    }

    #[test]
    fn too_many_collections_is_an_error_before_they_are_asked() {
        // Found reviewing the workshop_answer fuzz target: nested collections had no cap but
        // depth, so one answer naming thousands of collections made thousands of requests.
        let steam = FakeSteam::new();
        let children: Vec<(u64, i64)> =
            (1..=MAX_COLLECTIONS as u64).map(|id| (5 + id, 2)).collect();
        steam.collection(5, &children);
        let err = resolve(&steam.api(), &[], &[5], &[], &mut |_| {}).unwrap_err();
        assert!(
            err.to_string().contains("more than 1000 collections"),
            "{err}"
        );
        assert_eq!(steam.requests().len(), 1);
        let top: Vec<u64> = (1..=MAX_COLLECTIONS as u64 + 1).collect();
        let err = resolve(&steam.api(), &[], &top, &[], &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, ApiError::TooManyCollections { limit: 1000 }),
            "{err:?}"
        );
        assert_eq!(
            steam.requests().len(),
            1,
            "no request for the second resolution"
        );
    }
}
