//! What the stand-in Steam Workshop holds: items (each with its versions) and collections.
//!
//! [`Fixture::standard`] is the set the workshop tests share (ids in [`standard`]);
//! [`Fixture::collection_of`] is one big collection for the benchmark.

use std::collections::BTreeMap;

use crate::vpk;

/// Left 4 Dead 2's app id, the `creator_app_id`/`consumer_app_id` of its items.
pub const L4D2_APP_ID: u32 = 550;

/// `time_created` of every fixture item, and the `time_updated` of its first version
/// (2024-01-01T00:00:00Z).
pub const FIRST_TIME: i64 = 1_704_067_200;

/// One published version of an item's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `hcontent_file`: the UGC id of this file; also the number in its `file_url`.
    pub hcontent: u64,
    /// `time_updated`, Unix seconds.
    pub time_updated: i64,
    /// What a download of `file_url` returns.
    pub bytes: Vec<u8>,
    /// `file_size` as the API states it; `None`: the length of `bytes` (the truth). Set to
    /// model a file whose download does not measure what the API promised.
    pub declared_size: Option<u64>,
}

impl Version {
    /// `file_size` as the API answers it.
    pub fn file_size(&self) -> u64 {
        self.declared_size.unwrap_or(self.bytes.len() as u64)
    }
}

/// One workshop item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: u64,
    pub title: String,
    /// `consumer_app_id` (550 for Left 4 Dead 2).
    pub consumer_app: u32,
    /// `banned` (with `ban_reason`).
    pub banned: Option<String>,
    /// Deleted or made private: the API answers `result` 9 and nothing else.
    pub removed: bool,
    /// Oldest first; the API describes the last one. Never empty.
    pub versions: Vec<Version>,
}

impl Item {
    /// A Left 4 Dead 2 item whose one version is a VPK holding `missions/ID_v1.txt`.
    pub fn new(id: u64, title: &str) -> Self {
        Item {
            id,
            title: title.to_owned(),
            consumer_app: L4D2_APP_ID,
            banned: None,
            removed: false,
            versions: vec![Version {
                hcontent: first_hcontent(id),
                time_updated: FIRST_TIME,
                bytes: item_vpk(id, 1),
                declared_size: None,
            }],
        }
    }

    /// The version the API describes now.
    pub fn current(&self) -> &Version {
        self.versions
            .last()
            .expect("an item has at least one version")
    }
}

/// What a collection's child is: `filetype` 0 (an item) or 2 (a nested collection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Item,
    Collection,
}

impl ChildKind {
    /// The `filetype` the API gives it.
    pub fn filetype(self) -> u32 {
        match self {
            ChildKind::Item => 0,
            ChildKind::Collection => 2,
        }
    }
}

/// One workshop collection: its children in `sortorder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub id: u64,
    pub title: String,
    pub children: Vec<(u64, ChildKind)>,
}

/// Everything the stand-in serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fixture {
    pub items: BTreeMap<u64, Item>,
    pub collections: BTreeMap<u64, Collection>,
}

/// The ids of [`Fixture::standard`].
pub mod standard {
    /// Three good items.
    pub const OK_1: u64 = 3_100_000_001;
    pub const OK_2: u64 = 3_100_000_002;
    pub const OK_3: u64 = 3_100_000_003;
    /// Deleted upstream: `result` 9.
    pub const REMOVED: u64 = 3_100_000_009;
    /// `banned` 1.
    pub const BANNED: u64 = 3_100_000_010;
    /// `consumer_app_id` 730, not 550.
    pub const WRONG_APP: u64 = 3_100_000_011;
    /// Its `file_url` answers an HTML error page with status 200 (and `file_size` its length).
    pub const HTML_PAGE: u64 = 3_100_000_012;
    /// Its file is a good VPK, but 512 bytes shorter than the API's `file_size`.
    pub const WRONG_SIZE: u64 = 3_100_000_013;
    /// A collection of [`OK_1`], [`OK_2`] and the nested collection [`NESTED`].
    pub const COLLECTION: u64 = 3_200_000_001;
    /// A collection of [`OK_3`], nested in [`COLLECTION`].
    pub const NESTED: u64 = 3_200_000_002;
    /// A cycle: `CYCLE_A` holds [`OK_1`] and `CYCLE_B`; `CYCLE_B` holds [`OK_2`] and `CYCLE_A`.
    pub const CYCLE_A: u64 = 3_200_000_003;
    pub const CYCLE_B: u64 = 3_200_000_004;
}

/// The id of the one collection of [`Fixture::collection_of`]; its items follow it.
pub const BIG_COLLECTION: u64 = 4_000_000_000;

/// The page a CDN answers in place of a file, with status 200.
pub const HTML_ERROR_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Access Denied</title></head>\n\
<body><h1>Access Denied</h1><p>You don't have permission to access this file on this server.</p>\
</body></html>\n";

impl Fixture {
    /// The shared test set (ids in [`standard`]).
    pub fn standard() -> Self {
        use standard::*;
        let mut fixture = Fixture::default();
        fixture.add_item(Item::new(OK_1, "Stand-in Campaign One"));
        fixture.add_item(Item::new(OK_2, "Stand-in Campaign Two"));
        fixture.add_item(Item::new(OK_3, "Stand-in Campaign Three"));
        fixture.add_item(Item {
            removed: true,
            ..Item::new(REMOVED, "Removed Campaign")
        });
        fixture.add_item(Item {
            banned: Some("Incompatible content".into()),
            ..Item::new(BANNED, "Banned Campaign")
        });
        fixture.add_item(Item {
            consumer_app: 730,
            ..Item::new(WRONG_APP, "Another Game's Map")
        });
        let mut html = Item::new(HTML_PAGE, "Campaign Behind An Error Page");
        html.versions[0].bytes = HTML_ERROR_PAGE.as_bytes().to_vec();
        fixture.add_item(html);
        let mut short = Item::new(WRONG_SIZE, "Campaign Of The Wrong Size");
        short.versions[0].declared_size = Some(short.versions[0].bytes.len() as u64 + 512);
        fixture.add_item(short);
        fixture.add_collection(
            COLLECTION,
            "Stand-in Collection",
            &[
                (OK_1, ChildKind::Item),
                (OK_2, ChildKind::Item),
                (NESTED, ChildKind::Collection),
            ],
        );
        fixture.add_collection(NESTED, "Nested Collection", &[(OK_3, ChildKind::Item)]);
        fixture.add_collection(
            CYCLE_A,
            "Cycle A",
            &[(OK_1, ChildKind::Item), (CYCLE_B, ChildKind::Collection)],
        );
        fixture.add_collection(
            CYCLE_B,
            "Cycle B",
            &[(OK_2, ChildKind::Item), (CYCLE_A, ChildKind::Collection)],
        );
        fixture
    }

    /// One collection ([`BIG_COLLECTION`]) of `n` small items with the ids that follow it.
    pub fn collection_of(n: u64) -> Self {
        let mut fixture = Fixture::default();
        let ids: Vec<(u64, ChildKind)> = (1..=n)
            .map(|i| (BIG_COLLECTION + i, ChildKind::Item))
            .collect();
        for &(id, _) in &ids {
            fixture.add_item(Item::new(
                id,
                &format!("Bench Item {}", id - BIG_COLLECTION),
            ));
        }
        fixture.add_collection(BIG_COLLECTION, &format!("Bench Collection of {n}"), &ids);
        fixture
    }

    pub fn add_item(&mut self, item: Item) {
        self.items.insert(item.id, item);
    }

    pub fn add_collection(&mut self, id: u64, title: &str, children: &[(u64, ChildKind)]) {
        let collection = Collection {
            id,
            title: title.to_owned(),
            children: children.to_vec(),
        };
        self.collections.insert(id, collection);
    }

    /// Publishes a new version of item `id`: a new `hcontent_file`, `time_updated` one hour
    /// later, a new VPK (`missions/ID_vN.txt`). Returns it, or `None` for an unknown id.
    pub fn update_item(&mut self, id: u64) -> Option<&Version> {
        let item = self.items.get_mut(&id)?;
        let last = item.current();
        let n = item.versions.len() as u32 + 1;
        let version = Version {
            hcontent: last.hcontent + 1_000_003,
            time_updated: last.time_updated + 3600,
            bytes: item_vpk(id, n),
            declared_size: None,
        };
        item.versions.push(version);
        item.versions.last()
    }

    /// The file served at `/ugc/HCONTENT/TOKEN/` (any version, old ones stay downloadable).
    pub fn file(&self, hcontent: u64, token: &str) -> Option<&[u8]> {
        self.items
            .values()
            .flat_map(|item| item.versions.iter().map(move |v| (item.id, v)))
            .find(|(id, v)| v.hcontent == hcontent && file_token(*id, v.hcontent) == token)
            .map(|(_, v)| v.bytes.as_slice())
    }
}

/// The VPK of version `n` of item `id`: `missions/ID_vN.txt` (the mission file a campaign has).
pub fn item_vpk(id: u64, n: u32) -> Vec<u8> {
    let text =
        format!("\"mission\"\n{{\n\t\"Name\"\t\"standin_{id}\"\n\t\"Version\"\t\"{n}\"\n}}\n");
    vpk::build(&[(&format!("missions/{id}_v{n}.txt"), text.as_bytes())])
}

/// The first `hcontent_file` of item `id`: 19 digits, like Steam's UGC ids.
fn first_hcontent(id: u64) -> u64 {
    1_800_000_000_000_000_000 + (id % 1_000_000_000) * 1_000
}

/// The 40 hex digits after the number in a file's URL (Steam's are upper-case hex too).
pub fn file_token(id: u64, hcontent: u64) -> String {
    let mut out = String::with_capacity(40);
    let mut state = id ^ hcontent.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    while out.len() < 40 {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.push_str(&format!("{z:016X}"));
    }
    out.truncate(40);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_fixture_has_every_case() {
        let f = Fixture::standard();
        assert_eq!(f.items.len(), 8);
        assert!(f.items[&standard::REMOVED].removed);
        assert!(f.items[&standard::BANNED].banned.is_some());
        assert_eq!(f.items[&standard::WRONG_APP].consumer_app, 730);
        let short = f.items[&standard::WRONG_SIZE].current();
        assert_eq!(short.file_size(), short.bytes.len() as u64 + 512);
        assert!(
            f.collections[&standard::CYCLE_B]
                .children
                .contains(&(standard::CYCLE_A, ChildKind::Collection))
        );
    }

    #[test]
    fn update_makes_a_new_version_and_keeps_the_old_file() {
        let mut f = Fixture::standard();
        let old = f.items[&standard::OK_1].current().clone();
        let new = f.update_item(standard::OK_1).unwrap().clone();
        assert_ne!(new.hcontent, old.hcontent);
        assert!(new.time_updated > old.time_updated);
        assert_ne!(new.bytes, old.bytes);
        let token = file_token(standard::OK_1, old.hcontent);
        assert_eq!(f.file(old.hcontent, &token), Some(old.bytes.as_slice()));
        assert_eq!(f.file(old.hcontent, "0000"), None);
        assert!(f.update_item(1).is_none());
    }

    #[test]
    fn tokens_are_40_upper_hex() {
        let t = file_token(1, 2);
        assert_eq!(t.len(), 40);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_ne!(t, file_token(1, 3));
    }
}
