//! A fake Steam Web API for unit tests: a [`Transport`] that answers the two
//! `ISteamRemoteStorage` calls from fixtures, with JSON shaped exactly like the real API's,
//! checks each form the way the real API reads it, records every request and can be scripted
//! to fail.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{Api, Response, RetryPolicy, Transport, TransportError};
use crate::item::WorkshopId;

/// A scripted answer, served before the fixtures.
#[derive(Debug, Clone)]
pub enum Scripted {
    Status(u16, &'static str),
    Unreachable,
}

#[derive(Debug, Default)]
struct Fixtures {
    items: HashMap<WorkshopId, Value>,
    collections: HashMap<WorkshopId, Value>,
    script: VecDeque<Scripted>,
    requests: Vec<(String, Vec<(String, String)>)>,
}

/// The fake API; clones share their fixtures and request log.
#[derive(Debug, Clone, Default)]
pub struct FakeSteam(Rc<RefCell<Fixtures>>);

/// The details of a good L4D2 item, every field the real API sends.
pub fn item_json(id: WorkshopId, hcontent: u64) -> Value {
    json!({
        "publishedfileid": id.to_string(), "result": 1, "creator": "76561198000000001",
        "creator_app_id": 550, "consumer_app_id": 550, "filename": "",
        "file_size": 1000 + id % 1000,
        "file_url": format!("https://steamusercontent-a.akamaihd.net/ugc/{hcontent}/{id:X}/"),
        "hcontent_file": hcontent.to_string(),
        "preview_url": "https://steamuserimages-a.akamaihd.net/ugc/1/2/", "hcontent_preview": "5",
        "title": format!("Campaign {id}"), "description": "A campaign.",
        "time_created": 1_300_000_000, "time_updated": 1_400_000_000 + id % 1000,
        "visibility": 0, "banned": 0, "ban_reason": "", "subscriptions": 10, "favorited": 2,
        "lifetime_subscriptions": 12, "lifetime_favorited": 3, "views": 100,
        "tags": [{"tag": "Campaigns"}]
    })
}

impl FakeSteam {
    pub fn new() -> FakeSteam {
        FakeSteam::default()
    }

    /// A good item whose file version is `hcontent`.
    pub fn item(&self, id: WorkshopId, hcontent: u64) -> &Self {
        self.describe(id, item_json(id, hcontent))
    }

    /// An item described by `details` as given.
    pub fn describe(&self, id: WorkshopId, details: Value) -> &Self {
        self.0.borrow_mut().items.insert(id, details);
        self
    }

    /// A collection of `children`: `(id, filetype)`, 0 an item, 2 a collection.
    pub fn collection(&self, id: WorkshopId, children: &[(WorkshopId, i64)]) -> &Self {
        let children: Vec<Value> = children
            .iter()
            .enumerate()
            .map(|(i, (child, filetype))| {
                json!({"publishedfileid": child.to_string(), "sortorder": i + 1, "filetype": filetype})
            })
            .collect();
        let entry = json!({"publishedfileid": id.to_string(), "result": 1, "children": children});
        self.0.borrow_mut().collections.insert(id, entry);
        self
    }

    /// Serves `answer` to the next request, before the fixtures.
    pub fn then(&self, answer: Scripted) -> &Self {
        self.0.borrow_mut().script.push_back(answer);
        self
    }

    /// Every request so far: URL and form.
    pub fn requests(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.0.borrow().requests.clone()
    }

    /// An [`Api`] over this fake at `http://steam.test`, retrying 3 times without sleeping.
    pub fn api(&self) -> Api {
        Api::new("http://steam.test/", Box::new(self.clone()))
            .expect("good base")
            .with_retry(RetryPolicy {
                attempts: 3,
                first_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_secs(1),
            })
            .with_sleep(|_| {})
    }

    fn answer(&self, url: &str, form: &[(String, String)]) -> Response {
        let fixtures = self.0.borrow();
        let (count_key, list_key, table) = if url.ends_with("/GetPublishedFileDetails/v1/") {
            ("itemcount", "publishedfiledetails", &fixtures.items)
        } else if url.ends_with("/GetCollectionDetails/v1/") {
            (
                "collectioncount",
                "collectiondetails",
                &fixtures.collections,
            )
        } else {
            return Response {
                status: 404,
                body: b"<html>Not Found</html>".to_vec(),
            };
        };
        let ids = read_form(form, count_key);
        let entries: Vec<Value> = ids
            .iter()
            .map(|id| {
                table
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| json!({"publishedfileid": id.to_string(), "result": 9}))
            })
            .collect();
        let body =
            json!({"response": {"result": 1, "resultcount": entries.len(), list_key: entries}});
        Response {
            status: 200,
            body: body.to_string().into_bytes(),
        }
    }
}

/// The ids of a form, checked the way the API reads it: the count first, then
/// `publishedfileids[0..count]` in order, at most 100.
fn read_form(form: &[(String, String)], count_key: &str) -> Vec<WorkshopId> {
    let (key, count) = &form[0];
    assert_eq!(key, count_key, "the count comes first");
    let count: usize = count.parse().expect("count is a number");
    assert_eq!(form.len(), count + 1, "one id per count");
    assert!(count <= 100, "at most 100 ids per request");
    form[1..]
        .iter()
        .enumerate()
        .map(|(i, (key, id))| {
            assert_eq!(key, &format!("publishedfileids[{i}]"));
            id.parse().expect("ids are decimal")
        })
        .collect()
}

impl Transport for FakeSteam {
    fn post_form(&self, url: &str, form: &[(String, String)]) -> Result<Response, TransportError> {
        self.0
            .borrow_mut()
            .requests
            .push((url.to_owned(), form.to_vec()));
        let scripted = self.0.borrow_mut().script.pop_front();
        match scripted {
            Some(Scripted::Status(status, body)) => Ok(Response {
                status,
                body: body.as_bytes().to_vec(),
            }),
            Some(Scripted::Unreachable) => Err(TransportError::Unreachable {
                url: url.to_owned(),
                reason: "connection refused".into(),
            }),
            None => Ok(self.answer(url, form)),
        }
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("left4me-workshop-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the scratch dir");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
