//! The Steam Web API's JSON, as typed serde structs, and the rules an item's description must
//! pass before anything downloads what it names.
//!
//! The API is lenient about types: ids are strings of digits (some clients see numbers),
//! `file_size` is a number or a string, `banned` is 0/1 or a bool. Each is accepted in every
//! form here. An item whose description breaks a rule becomes [`ItemState::NoFile`] with the
//! reason; it never aborts the resolution of the others and never panics.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};

use crate::item::{Item, ItemState, L4D2_APP_ID, WorkshopId};

/// The largest `file_size` accepted: 4 GiB (L4D2's own VPK limit is far below).
pub const MAX_FILE_SIZE: u64 = 4 << 30;

/// `GetPublishedFileDetails` and `GetCollectionDetails` both wrap their answer in `response`.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<T> {
    pub response: T,
}

/// The body of a `GetPublishedFileDetails/v1` answer. Each entry is kept as raw JSON so one
/// malformed item cannot spoil the others.
#[derive(Debug, Deserialize)]
pub(super) struct FileDetailsBody {
    #[serde(default = "ok_result")]
    pub result: i64,
    pub publishedfiledetails: Option<Vec<serde_json::Value>>,
}

/// The body of a `GetCollectionDetails/v1` answer.
#[derive(Debug, Deserialize)]
pub(super) struct CollectionDetailsBody {
    #[serde(default = "ok_result")]
    pub result: i64,
    pub collectiondetails: Option<Vec<RawCollection>>,
}

/// The body of one method's answer: its `result`, and its entries by id.
pub(super) trait Answer: DeserializeOwned {
    /// The method's name in the URL.
    const METHOD: &'static str;
    /// The form key of the number of ids.
    const COUNT_KEY: &'static str;
    /// The key of the list of entries, for messages.
    const LIST_KEY: &'static str;
    type Entry;
    fn result(&self) -> i64;
    /// The entries by id; `None` when the list is missing.
    fn into_entries(self) -> Option<Vec<(WorkshopId, Self::Entry)>>;
}

impl Answer for FileDetailsBody {
    const METHOD: &'static str = "GetPublishedFileDetails";
    const COUNT_KEY: &'static str = "itemcount";
    const LIST_KEY: &'static str = "publishedfiledetails";
    type Entry = serde_json::Value;

    fn result(&self) -> i64 {
        self.result
    }

    /// An entry without a usable id cannot be told apart: it is dropped, and the item asked
    /// about is then "not described".
    fn into_entries(self) -> Option<Vec<(WorkshopId, serde_json::Value)>> {
        let entries = self.publishedfiledetails?;
        Some(
            entries
                .into_iter()
                .filter_map(|entry| Some((entry_id(&entry)?, entry)))
                .collect(),
        )
    }
}

impl Answer for CollectionDetailsBody {
    const METHOD: &'static str = "GetCollectionDetails";
    const COUNT_KEY: &'static str = "collectioncount";
    const LIST_KEY: &'static str = "collectiondetails";
    type Entry = RawCollection;

    fn result(&self) -> i64 {
        self.result
    }

    fn into_entries(self) -> Option<Vec<(WorkshopId, RawCollection)>> {
        let entries = self.collectiondetails?;
        Some(
            entries
                .into_iter()
                .map(|c| (c.publishedfileid, c))
                .collect(),
        )
    }
}

/// One entry of `collectiondetails`.
#[derive(Debug, Deserialize)]
pub(super) struct RawCollection {
    #[serde(deserialize_with = "id")]
    pub publishedfileid: WorkshopId,
    #[serde(default = "ok_result")]
    pub result: i64,
    pub children: Option<Vec<RawChild>>,
}

/// One child of a collection.
#[derive(Debug, Deserialize)]
pub(super) struct RawChild {
    #[serde(deserialize_with = "id")]
    pub publishedfileid: WorkshopId,
    #[serde(default)]
    pub sortorder: i64,
    /// `EWorkshopFileType`: 0 an item, 2 a collection.
    #[serde(default)]
    pub filetype: i64,
}

/// One entry of `publishedfiledetails`: the fields left4me reads (the others are ignored).
#[derive(Debug, Deserialize)]
struct RawItem {
    #[serde(default = "ok_result")]
    result: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_u64")]
    consumer_app_id: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    file_size: Option<u64>,
    #[serde(default)]
    file_url: Option<String>,
    #[serde(default, deserialize_with = "opt_u64")]
    hcontent_file: Option<u64>,
    #[serde(default, deserialize_with = "opt_i64")]
    time_updated: Option<i64>,
    #[serde(default, deserialize_with = "flag")]
    banned: bool,
    #[serde(default)]
    ban_reason: Option<String>,
}

fn ok_result() -> i64 {
    1
}

/// The `publishedfileid` of a raw entry, or `None` when it has none that parses.
pub(super) fn entry_id(entry: &serde_json::Value) -> Option<WorkshopId> {
    id(entry.get("publishedfileid")?).ok()
}

/// Turns one raw `publishedfiledetails` entry into an [`Item`], judging it by the rules.
pub(super) fn item_from_entry(id: WorkshopId, entry: serde_json::Value) -> Item {
    match RawItem::deserialize(entry) {
        Ok(raw) => raw.into_item(id),
        Err(err) => no_file(
            id,
            String::new(),
            0,
            format!("its description is malformed: {err}"),
        ),
    }
}

/// The item the API did not describe at all.
pub(super) fn missing_item(id: WorkshopId) -> Item {
    no_file(
        id,
        String::new(),
        0,
        "the Steam Web API's answer does not describe it".into(),
    )
}

fn no_file(id: WorkshopId, title: String, time_updated: i64, reason: String) -> Item {
    Item {
        id,
        title,
        file_size: 0,
        time_updated,
        hcontent: 0,
        file_url: String::new(),
        state: ItemState::NoFile { reason },
    }
}

impl RawItem {
    fn into_item(self, id: WorkshopId) -> Item {
        let title = self.title.unwrap_or_default();
        let time_updated = self.time_updated.unwrap_or(0);
        let state = if self.result != 1 {
            ItemState::Removed {
                result: self.result,
            }
        } else if self.banned {
            ItemState::Banned {
                reason: self.ban_reason.unwrap_or_default(),
            }
        } else {
            match self.consumer_app_id {
                Some(app) if app != u64::from(L4D2_APP_ID) => ItemState::WrongApp { app },
                None => ItemState::NoFile {
                    reason: "no consumer_app_id: the API does not say which game it is for".into(),
                },
                Some(_) => {
                    match check_file(self.file_url.as_deref(), self.hcontent_file, self.file_size) {
                        Ok(()) => ItemState::Ok,
                        Err(reason) => ItemState::NoFile { reason },
                    }
                }
            }
        };
        if !state.is_ok() {
            let mut item = no_file(id, title, time_updated, String::new());
            item.state = state;
            return item;
        }
        Item {
            id,
            title,
            file_size: self.file_size.unwrap_or(0),
            time_updated,
            hcontent: self.hcontent_file.unwrap_or(0),
            file_url: self.file_url.unwrap_or_default(),
            state,
        }
    }
}

/// The rules for an Ok item's file: what the download step will hand to curl and check.
fn check_file(url: Option<&str>, hcontent: Option<u64>, size: Option<u64>) -> Result<(), String> {
    let url = url.unwrap_or_default();
    if url.is_empty() {
        return Err(
            "no file_url (a collection given as an item? list it under `collections`)".into(),
        );
    }
    check_url(url).map_err(|why| format!("file_url {why}"))?;
    match hcontent {
        None | Some(0) => return Err("no hcontent_file (the id of the file's version)".into()),
        Some(_) => {}
    }
    match size {
        None => Err("no file_size".into()),
        Some(0) => Err("file_size is 0: an empty file is not a VPK".into()),
        Some(size) if size > MAX_FILE_SIZE => Err(format!(
            "file_size {size} is larger than 4 GiB ({MAX_FILE_SIZE} bytes)"
        )),
        Some(_) => Ok(()),
    }
}

/// Whether `url` is an `http://` or `https://` URL of printable ASCII (no blanks, no control
/// characters: it becomes a command-line argument of the download).
pub fn check_url(url: &str) -> Result<(), String> {
    if let Some(bad) = url.bytes().find(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "holds the byte {bad:#04x}: only printable ASCII without blanks is accepted"
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} names no host"));
    }
    Ok(())
}

/// A JSON value that is a number or a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Text(String),
    Flag(bool),
}

fn parse_u64(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a string of digits"));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is too large for a 64-bit number"))
}

/// A published file id: a nonzero number, as a string of digits or a JSON number.
pub(super) fn id<'de, D: Deserializer<'de>>(de: D) -> Result<WorkshopId, D::Error> {
    let value = match Number::deserialize(de)? {
        Number::Unsigned(n) => n,
        Number::Text(text) => parse_u64(&text).map_err(de::Error::custom)?,
        Number::Signed(n) => return Err(de::Error::custom(format!("id {n} is negative"))),
        Number::Flag(b) => return Err(de::Error::custom(format!("id {b} is not a number"))),
    };
    if value == 0 {
        return Err(de::Error::custom("id 0 is not a published file id"));
    }
    Ok(value)
}

fn opt_u64<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    match Option::<Number>::deserialize(de)? {
        None => Ok(None),
        Some(Number::Unsigned(n)) => Ok(Some(n)),
        Some(Number::Text(text)) => parse_u64(&text).map(Some).map_err(de::Error::custom),
        Some(Number::Signed(n)) => Err(de::Error::custom(format!("{n} is negative"))),
        Some(Number::Flag(b)) => Err(de::Error::custom(format!("{b} is not a number"))),
    }
}

fn opt_i64<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    match Option::<Number>::deserialize(de)? {
        None => Ok(None),
        Some(Number::Signed(n)) => Ok(Some(n)),
        Some(Number::Unsigned(n)) => i64::try_from(n)
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{n} is too large"))),
        Some(Number::Text(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("{text:?} is not a number"))),
        Some(Number::Flag(b)) => Err(de::Error::custom(format!("{b} is not a number"))),
    }
}

/// `banned`: 0/1, a bool, or either as a string.
fn flag<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    match Option::<Number>::deserialize(de)? {
        None => Ok(false),
        Some(Number::Flag(b)) => Ok(b),
        Some(Number::Unsigned(n)) => Ok(n != 0),
        Some(Number::Signed(n)) => Ok(n != 0),
        Some(Number::Text(text)) => match text.as_str() {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(de::Error::custom(format!(
                "banned {text:?} is not 0/1 or a bool"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> serde_json::Value {
        json!({
            "publishedfileid": "123", "result": 1, "creator": "76561198000000000",
            "creator_app_id": 550, "consumer_app_id": 550, "filename": "",
            "file_size": 12345, "file_url": "https://steamusercontent-a.akamaihd.net/ugc/1/ABC/",
            "hcontent_file": "1234567890123456789", "preview_url": "", "hcontent_preview": "1",
            "title": "Dead Before Dawn", "description": "", "time_created": 1300000000,
            "time_updated": 1400000000, "visibility": 0, "banned": 0, "ban_reason": "",
            "subscriptions": 1, "favorited": 1, "lifetime_subscriptions": 1,
            "lifetime_favorited": 1, "views": 1, "tags": [{"tag": "Campaigns"}]
        })
    }

    fn judge(patch: serde_json::Value) -> Item {
        let mut entry = good();
        for (k, v) in patch.as_object().unwrap() {
            entry[k] = v.clone();
        }
        item_from_entry(123, entry)
    }

    fn reason(item: &Item) -> &str {
        match &item.state {
            ItemState::NoFile { reason } => reason,
            other => panic!("expected NoFile, got {other:?}"),
        }
    }

    #[test]
    fn a_real_description_is_an_ok_item() {
        let item = judge(json!({}));
        assert_eq!(item.state, ItemState::Ok);
        assert_eq!(item.hcontent, 1_234_567_890_123_456_789);
        assert_eq!(item.file_size, 12345);
        assert_eq!(item.time_updated, 1_400_000_000);
        assert_eq!(item.title, "Dead Before Dawn");
    }

    #[test]
    fn numbers_come_as_strings_or_numbers_and_banned_as_bool() {
        let item = judge(json!({"file_size": "12345", "hcontent_file": 77, "time_updated": "5"}));
        assert_eq!(
            (item.file_size, item.hcontent, item.time_updated),
            (12345, 77, 5)
        );
        let banned = judge(json!({"banned": true, "ban_reason": "spam"}));
        assert_eq!(
            banned.state,
            ItemState::Banned {
                reason: "spam".into()
            }
        );
        assert!(judge(json!({"banned": false})).state.is_ok());
    }

    #[test]
    fn every_named_field_is_checked() {
        assert!(reason(&judge(json!({"file_url": ""}))).contains("collection given as an item"));
        assert!(reason(&judge(json!({"file_url": "ftp://x/y"}))).contains("not an http://"));
        assert!(reason(&judge(json!({"file_url": "https://x/a b"}))).contains("0x20"));
        assert!(
            reason(&judge(json!({"file_url": "https://x/\u{e9}"}))).contains("printable ASCII")
        );
        assert!(reason(&judge(json!({"file_url": "https:///x"}))).contains("no host"));
        assert!(reason(&judge(json!({"hcontent_file": "0"}))).contains("hcontent_file"));
        assert!(reason(&judge(json!({"hcontent_file": null}))).contains("hcontent_file"));
        assert!(reason(&judge(json!({"file_size": 0}))).contains("empty"));
        assert!(reason(&judge(json!({"file_size": MAX_FILE_SIZE + 1}))).contains("4 GiB"));
        assert!(judge(json!({"file_size": MAX_FILE_SIZE})).state.is_ok());
        assert!(reason(&judge(json!({"file_size": "-1"}))).contains("malformed"));
        assert!(reason(&judge(json!({"hcontent_file": "12x"}))).contains("malformed"));
        assert!(reason(&judge(json!({"banned": "maybe"}))).contains("malformed"));
        assert_eq!(
            judge(json!({"consumer_app_id": 440})).state,
            ItemState::WrongApp { app: 440 }
        );
    }

    #[test]
    fn a_removed_item_is_its_result_alone() {
        let item = item_from_entry(9, json!({"publishedfileid": "9", "result": 9}));
        assert_eq!(item.state, ItemState::Removed { result: 9 });
        assert_eq!(entry_id(&json!({"publishedfileid": 9})), Some(9));
        assert_eq!(entry_id(&json!({"publishedfileid": "0"})), None);
        assert_eq!(entry_id(&json!({"publishedfileid": "x"})), None);
    }
}
