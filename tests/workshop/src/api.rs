//! The two Steam Web API calls, answered as `api.steampowered.com` answers them:
//!
//! - `POST /ISteamRemoteStorage/GetPublishedFileDetails/v1/`, form `itemcount=N&
//!   publishedfileids[0]=…`: `{"response":{"result":1,"resultcount":N,"publishedfiledetails":
//!   [...]}}`, one entry per id in the order asked; a deleted, private or unknown id is
//!   `{"publishedfileid":"ID","result":9}` and nothing else.
//! - `POST /ISteamRemoteStorage/GetCollectionDetails/v1/`, form `collectioncount=N&
//!   publishedfileids[0]=…`: `{"response":{"result":1,"resultcount":N,"collectiondetails":
//!   [{"publishedfileid":"ID","result":1,"children":[{"publishedfileid":"C","sortorder":1,
//!   "filetype":0}]}]}}`; `filetype` 0 is an item, 2 a nested collection.
//!
//! Ids are JSON strings (they are 64-bit), as are `hcontent_file`, `hcontent_preview` and
//! `creator`; `file_size` is a string as the live API sends it today, or a number when the
//! fixture asks for the older shape ([`SizeShape`]). A missing count or id is a 400 with the
//! API's HTML page naming the parameter.

use serde_json::{Value, json};

use crate::fixture::{Fixture, Item, file_token};

/// How `file_size` is written: clients have seen both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SizeShape {
    /// `"file_size":"12345"` (the live API).
    #[default]
    String,
    /// `"file_size":12345`.
    Number,
}

/// What an API call answers: a JSON document, or a 400 page.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Json(Value),
    BadRequest(String),
}

/// The SteamID64 every fixture item was made by.
const CREATOR: &str = "76561198000000001";

/// `GetPublishedFileDetails` for a decoded form.
pub fn published_file_details(
    fixture: &Fixture,
    shape: SizeShape,
    base: &str,
    form: &[(String, String)],
) -> Answer {
    let ids = match requested_ids(form, "itemcount") {
        Ok(ids) => ids,
        Err(page) => return Answer::BadRequest(page),
    };
    let details: Vec<Value> = ids
        .iter()
        .map(|id| item_details(fixture, shape, base, id))
        .collect();
    Answer::Json(json!({"response": {
        "result": 1,
        "resultcount": details.len(),
        "publishedfiledetails": details,
    }}))
}

/// `GetCollectionDetails` for a decoded form.
pub fn collection_details(fixture: &Fixture, form: &[(String, String)]) -> Answer {
    let ids = match requested_ids(form, "collectioncount") {
        Ok(ids) => ids,
        Err(page) => return Answer::BadRequest(page),
    };
    let details: Vec<Value> = ids
        .iter()
        .map(|id| {
            let known = id.parse::<u64>().ok();
            if let Some(collection) = known.and_then(|n| fixture.collections.get(&n)) {
                let children: Vec<Value> = collection
                    .children
                    .iter()
                    .enumerate()
                    .map(|(i, (child, kind))| {
                        json!({
                            "publishedfileid": child.to_string(),
                            "sortorder": i + 1,
                            "filetype": kind.filetype(),
                        })
                    })
                    .collect();
                json!({"publishedfileid": id, "result": 1, "children": children})
            } else if known
                .and_then(|n| fixture.items.get(&n))
                .is_some_and(|item| !item.removed)
            {
                // An item, not a collection: found, but no children.
                json!({"publishedfileid": id, "result": 1})
            } else {
                json!({"publishedfileid": id, "result": 9})
            }
        })
        .collect();
    Answer::Json(json!({"response": {
        "result": 1,
        "resultcount": details.len(),
        "collectiondetails": details,
    }}))
}

/// The ids `publishedfileids[0..count]` of a form whose count parameter is `count_name`, or
/// the 400 page for the first one missing.
fn requested_ids(form: &[(String, String)], count_name: &str) -> Result<Vec<String>, String> {
    let value = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let count: usize = value(count_name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| missing(count_name))?;
    (0..count)
        .map(|i| {
            let name = format!("publishedfileids[{i}]");
            value(&name)
                .map(str::to_owned)
                .ok_or_else(|| missing(&name))
        })
        .collect()
}

fn missing(parameter: &str) -> String {
    format!(
        "<html><head><title>Bad Request</title></head><body><h1>Bad Request</h1>\
         Required parameter '{parameter}' is missing</body></html>"
    )
}

fn item_details(fixture: &Fixture, shape: SizeShape, base: &str, id: &str) -> Value {
    let known = id.parse::<u64>().ok();
    if let Some(item) = known.and_then(|n| fixture.items.get(&n)) {
        if item.removed {
            return json!({"publishedfileid": id, "result": 9});
        }
        return live_item(item, shape, base);
    }
    if let Some(collection) = known.and_then(|n| fixture.collections.get(&n)) {
        // A collection asked for as an item: found, but it has no file.
        return json!({
            "publishedfileid": id,
            "result": 1,
            "creator": CREATOR,
            "creator_app_id": 766,
            "consumer_app_id": crate::fixture::L4D2_APP_ID,
            "filename": "",
            "file_size": size(0, shape),
            "file_url": "",
            "preview_url": "",
            "title": collection.title,
            "description": "",
            "time_created": crate::fixture::FIRST_TIME,
            "time_updated": crate::fixture::FIRST_TIME,
            "visibility": 0,
            "banned": 0,
            "ban_reason": "",
            "subscriptions": 0,
            "favorited": 0,
            "lifetime_subscriptions": 0,
            "lifetime_favorited": 0,
            "views": 0,
            "tags": [],
        });
    }
    json!({"publishedfileid": id, "result": 9})
}

fn live_item(item: &Item, shape: SizeShape, base: &str) -> Value {
    let version = item.current();
    let preview = version.hcontent + 7;
    json!({
        "publishedfileid": item.id.to_string(),
        "result": 1,
        "creator": CREATOR,
        "creator_app_id": item.consumer_app,
        "consumer_app_id": item.consumer_app,
        "filename": format!("myl4d2addons/{}.vpk", item.id),
        "file_size": size(version.file_size(), shape),
        "file_url": file_url(base, item.id, version.hcontent),
        "hcontent_file": version.hcontent.to_string(),
        "preview_url": file_url(base, item.id, preview),
        "hcontent_preview": preview.to_string(),
        "title": item.title,
        "description": format!("{}: a stand-in workshop item.", item.title),
        "time_created": crate::fixture::FIRST_TIME,
        "time_updated": version.time_updated,
        "visibility": 0,
        "banned": u8::from(item.banned.is_some()),
        "ban_reason": item.banned.clone().unwrap_or_default(),
        "subscriptions": 1000,
        "favorited": 100,
        "lifetime_subscriptions": 2000,
        "lifetime_favorited": 150,
        "views": 5000,
        "tags": [{"tag": "Campaigns"}],
    })
}

fn size(bytes: u64, shape: SizeShape) -> Value {
    match shape {
        SizeShape::String => json!(bytes.to_string()),
        SizeShape::Number => json!(bytes),
    }
}

/// Where version `hcontent` of item `id` is downloaded: `BASE/ugc/HCONTENT/TOKEN/`, shaped like
/// `https://steamusercontent-a.akamaihd.net/ugc/<number>/<40 hex>/`.
pub fn file_url(base: &str, id: u64, hcontent: u64) -> String {
    format!("{base}/ugc/{hcontent}/{}/", file_token(id, hcontent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::standard::*;
    use crate::http::parse_form;

    fn json(answer: Answer) -> Value {
        match answer {
            Answer::Json(v) => v,
            Answer::BadRequest(page) => panic!("400: {page}"),
        }
    }

    #[test]
    fn details_in_the_order_asked_with_removed_as_result_9_only() {
        let f = Fixture::standard();
        let form = parse_form(&format!(
            "itemcount=3&publishedfileids[0]={OK_2}&publishedfileids[1]={REMOVED}&publishedfileids[2]=7"
        ));
        let v = json(published_file_details(
            &f,
            SizeShape::String,
            "http://h",
            &form,
        ));
        assert_eq!(v["response"]["resultcount"], 3);
        let d = &v["response"]["publishedfiledetails"];
        assert_eq!(d[0]["publishedfileid"], OK_2.to_string());
        assert_eq!(d[0]["consumer_app_id"], 550);
        assert!(d[0]["file_size"].is_string());
        assert!(
            d[0]["file_url"]
                .as_str()
                .unwrap()
                .starts_with("http://h/ugc/")
        );
        assert_eq!(
            d[1],
            json!({"publishedfileid": REMOVED.to_string(), "result": 9})
        );
        assert_eq!(d[2], json!({"publishedfileid": "7", "result": 9}));
    }

    #[test]
    fn missing_parameters_are_a_400_naming_them() {
        let f = Fixture::standard();
        let answer = published_file_details(
            &f,
            SizeShape::Number,
            "",
            &parse_form("itemcount=2&publishedfileids[0]=1"),
        );
        assert!(matches!(answer, Answer::BadRequest(p) if p.contains("'publishedfileids[1]'")));
        let answer = collection_details(&f, &[]);
        assert!(matches!(answer, Answer::BadRequest(p) if p.contains("'collectioncount'")));
    }

    #[test]
    fn collections_list_children_with_filetypes() {
        let f = Fixture::standard();
        let form = parse_form(&format!(
            "collectioncount=2&publishedfileids[0]={COLLECTION}&publishedfileids[1]={OK_1}"
        ));
        let v = json(collection_details(&f, &form));
        let c = &v["response"]["collectiondetails"];
        assert_eq!(
            c[0]["children"][2],
            json!({"publishedfileid": NESTED.to_string(), "sortorder": 3, "filetype": 2})
        );
        assert_eq!(
            c[1],
            json!({"publishedfileid": OK_1.to_string(), "result": 1})
        );
    }
}
