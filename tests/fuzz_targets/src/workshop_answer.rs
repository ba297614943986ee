//! The `workshop_answer` target: the Steam Web API client and the resolution of an overlay fed
//! whatever a server (or a man in the middle of plain `http://`) might answer.

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use left4me_workshop::api::wire::{MAX_FILE_SIZE, check_url};
use left4me_workshop::api::{Api, BATCH, Response, RetryPolicy, Transport, TransportError};
use left4me_workshop::resolve::{MAX_COLLECTIONS, MAX_DEPTH, MAX_ITEMS, resolve};
use left4me_workshop::{ItemState, WorkshopId};

/// The items the target asks about (a repeat included: the client asks once).
const ITEMS: &[WorkshopId] = &[1, 2, 3, 123, 1];
/// The collections the target asks about.
const COLLECTIONS: &[WorkshopId] = &[10, 20, 10];
/// What the resolution excludes.
const EXCLUDE: &[WorkshopId] = &[3, 30];
/// Tries per request: the first and two retries.
const ATTEMPTS: u32 = 3;
/// The most requests one resolution may send: a batch of collections per level and one more
/// per [`BATCH`] collections followed, a batch of items per [`BATCH`] items, each tried
/// [`ATTEMPTS`] times.
const MAX_REQUESTS: u32 =
    (MAX_DEPTH + (MAX_COLLECTIONS / BATCH) as u32 + (MAX_ITEMS / BATCH) as u32 + 1) * ATTEMPTS;

/// The status of the first answer, picked by bits 2–3 of the first byte; later answers are 200.
const FIRST_STATUS: [u16; 4] = [200, 429, 503, 404];

/// A server that answers the POSTs in turn with the NUL-separated bodies (the last repeats),
/// each with status 200 but the first, and counts them; clones share the count.
#[derive(Clone)]
struct Replay {
    bodies: Rc<[Vec<u8>]>,
    first_status: u16,
    sent: Rc<Cell<u32>>,
}

impl Transport for Replay {
    fn post_form(&self, url: &str, form: &[(String, String)]) -> Result<Response, TransportError> {
        assert!(
            url.starts_with("http://steam.test/ISteamRemoteStorage/"),
            "{url}"
        );
        assert!(
            form.len() <= BATCH + 1,
            "{} ids in one request",
            form.len() - 1
        );
        let n = self.sent.get();
        self.sent.set(n + 1);
        let index = (n as usize).min(self.bodies.len() - 1);
        Ok(Response {
            status: if n == 0 { self.first_status } else { 200 },
            body: self.bodies[index].to_vec(),
        })
    }
}

/// The first byte picks the calls to run (bits 0–1: file details, collection details, a
/// resolution, or all three) and the status of the first answer (bits 2–3: 200, 429, 503,
/// 404); the rest is the answers' bodies, separated by NUL bytes (never valid in JSON). The
/// results must keep the client's promises: one entry per distinct id in the order asked, Ok
/// items only with a file the download may fetch, no excluded or repeated item, the caps held.
pub fn workshop_answer(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let transport = Replay {
        bodies: rest.split(|&b| b == 0).map(<[u8]>::to_vec).collect(),
        first_status: FIRST_STATUS[usize::from((control >> 2) & 3)],
        sent: Rc::default(),
    };
    let api = || {
        Api::new("http://steam.test/", Box::new(transport.clone()))
            .expect("a good base")
            .with_retry(RetryPolicy {
                attempts: ATTEMPTS,
                first_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(4),
            })
            .with_sleep(|_| {})
    };
    let calls = control & 3;
    if (calls == 0 || calls == 3)
        && let Ok(items) = api().file_details(ITEMS)
    {
        let ids: Vec<WorkshopId> = items.iter().map(|item| item.id).collect();
        assert_eq!(ids, [1, 2, 3, 123]);
        items.iter().for_each(check_item);
    }
    if (calls == 1 || calls == 3)
        && let Ok(collections) = api().collection_details(COLLECTIONS)
    {
        let ids: Vec<WorkshopId> = collections.iter().map(|c| c.id).collect();
        assert_eq!(ids, [10, 20]);
    }
    if calls == 2 || calls == 3 {
        transport.sent.set(0);
        let api = api();
        if let Ok(r) = resolve(&api, ITEMS, COLLECTIONS, EXCLUDE, &mut |_| {}) {
            // Every item was asked for, explicitly or by a collection followed, and is not
            // excluded; every collection was followed once, within the caps.
            let listed: HashSet<WorkshopId> = ITEMS
                .iter()
                .chain(r.collections.iter().flat_map(|c| &c.items))
                .copied()
                .collect();
            let mut seen = HashSet::new();
            for item in &r.items {
                assert!(seen.insert(item.id), "item {} twice", item.id);
                assert!(!EXCLUDE.contains(&item.id), "excluded item {}", item.id);
                assert!(
                    listed.contains(&item.id),
                    "item {} asked by no one",
                    item.id
                );
                check_item(item);
            }
            assert!(r.items.len() <= MAX_ITEMS);
            let mut followed = HashSet::new();
            for c in &r.collections {
                assert!(followed.insert(c.id), "collection {} twice", c.id);
                assert!((1..=MAX_DEPTH).contains(&c.depth));
                assert!(!EXCLUDE.contains(&c.id), "excluded collection {}", c.id);
            }
            assert!(r.collections.len() <= MAX_COLLECTIONS);
            assert_eq!(r.api_requests, transport.sent.get());
        }
        assert!(
            transport.sent.get() <= MAX_REQUESTS,
            "{} requests",
            transport.sent.get()
        );
    }
}

/// An Ok item names a file the download step may fetch and check.
fn check_item(item: &left4me_workshop::Item) {
    if item.state == ItemState::Ok {
        assert!(check_url(&item.file_url).is_ok(), "{:?}", item.file_url);
        assert!(item.hcontent != 0);
        assert!((1..=MAX_FILE_SIZE).contains(&item.file_size));
    }
}
