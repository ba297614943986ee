//! The Steam Web API client: `ISteamRemoteStorage/GetCollectionDetails/v1/` and
//! `GetPublishedFileDetails/v1/`, the two calls that need no login and no key.
//!
//! Both are POSTs of an `application/x-www-form-urlencoded` form (`collectioncount` or
//! `itemcount`, then `publishedfileids[i]`), sent through a [`Transport`]: [`HttpTransport`]
//! in production, a fake in tests. [`Api`] batches the ids ([`BATCH`] per request), retries
//! transient failures (transport errors, HTTP 429 and 5xx) with exponential backoff
//! ([`RetryPolicy`], whose sleep tests replace) and fails at once on anything else. Answers are
//! parsed into typed values ([`wire`]); each item is judged by the rules there.

mod http;
pub mod wire;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use crate::item::{Item, WorkshopId};

pub use http::{BODY_LIMIT, HttpTransport};

/// The default base URL of the Steam Web API (`steam_web_api` in host.toml).
pub const DEFAULT_BASE: &str = "https://api.steampowered.com";

/// The most ids sent in one request.
pub const BATCH: usize = 100;

/// Where the operator sets the base URL, for messages.
const SETTING: &str = "steam_web_api in /etc/left4me/host.toml";

/// An HTTP answer: its status and its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection, a timeout, a reset: worth another try.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A URL, TLS or protocol failure another try will not mend.
    #[error("request to {url} failed: {reason}")]
    Failed { url: String, reason: String },
    #[error("the answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

impl TransportError {
    /// Whether the same request may succeed a moment later.
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Unreachable { .. })
    }
}

/// Sends one form POST and returns the answer, whatever its status.
pub trait Transport {
    fn post_form(&self, url: &str, form: &[(String, String)]) -> Result<Response, TransportError>;
}

/// Why the API could not tell us what we asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("steam_web_api = {base:?} is not an http:// or https:// URL: check {SETTING}")]
    BadBase { base: String },
    #[error(
        "cannot reach the Steam Web API after {attempts} attempt(s): {source}; check {SETTING} and the network, or try again later"
    )]
    Transport {
        attempts: u32,
        #[source]
        source: TransportError,
    },
    #[error(
        "Steam is down or busy (HTTP {status} from {url} after {attempts} attempt(s)); try again later"
    )]
    Unavailable {
        url: String,
        status: u16,
        attempts: u32,
    },
    #[error("HTTP {status} from {url}: this is not the Steam Web API's answer; check {SETTING}")]
    Status { url: String, status: u16 },
    #[error("the answer from {url} is not the Steam Web API's JSON ({reason}): check {SETTING}")]
    Garbage { url: String, reason: String },
    #[error(
        "Steam refused the request to {url} (result {result}); Steam may be down: try again later"
    )]
    Refused { url: String, result: i64 },
    #[error("the overlay resolves to more than {limit} items: split it into several overlays")]
    TooManyItems { limit: usize },
    #[error(
        "the overlay's collections include more than {limit} collections: split it into several overlays"
    )]
    TooManyCollections { limit: usize },
}

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait after the first failure; each further wait doubles it.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five tries, waiting 1, 2, 4 and 8 s between them.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// What the client has cost so far: requests sent (retries included) and the time spent in
/// them and in backoff waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiStats {
    pub requests: u32,
    pub time: Duration,
}

/// One collection as `GetCollectionDetails` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionDetails {
    pub id: WorkshopId,
    /// The API's `result` for it (1: found).
    pub result: i64,
    /// Its children in their sort order; `None` when it is not a collection (`result` not 1,
    /// or no `children`: an item's id, a deleted or private collection).
    pub children: Option<Vec<Child>>,
}

/// One child of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub id: WorkshopId,
    /// `filetype` 2: a nested collection; anything else is treated as an item (its details
    /// say whether it has a file).
    pub is_collection: bool,
}

/// The `filetype` of a collection in a collection's children (`EWorkshopFileType`).
const FILETYPE_COLLECTION: i64 = 2;

/// A client of the Steam Web API.
pub struct Api {
    base: String,
    transport: Box<dyn Transport>,
    retry: RetryPolicy,
    sleep: Box<dyn Fn(Duration)>,
    notice: Box<dyn Fn(&str)>,
    stats: Cell<ApiStats>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("retry", &self.retry)
            .field("stats", &self.stats.get())
            .finish_non_exhaustive()
    }
}

impl Api {
    /// A client of the API at `base` (host.toml's `steam_web_api`, e.g.
    /// `https://api.steampowered.com`; a trailing `/` is ignored) with the default
    /// [`RetryPolicy`] and real sleeps.
    pub fn new(base: &str, transport: Box<dyn Transport>) -> Result<Api, ApiError> {
        let bad = || ApiError::BadBase {
            base: base.to_owned(),
        };
        wire::check_url(base).map_err(|_| bad())?;
        if base.contains(['?', '#']) {
            return Err(bad());
        }
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            transport,
            retry: RetryPolicy::default(),
            sleep: Box::new(std::thread::sleep),
            notice: Box::new(|_| {}),
            stats: Cell::new(ApiStats::default()),
        })
    }

    /// A client of the API at `base` over [`HttpTransport`]: what production uses.
    pub fn http(base: &str) -> Result<Api, ApiError> {
        Api::new(base, Box::new(HttpTransport::new()))
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Api {
        self.retry = retry;
        self
    }

    /// Replaces how the client waits between tries (tests record instead of sleeping).
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) + 'static) -> Api {
        self.sleep = Box::new(sleep);
        self
    }

    /// Tells `notice` about each retry before its wait (e.g. "HTTP 503 from URL; trying again
    /// in 2s (attempt 2 of 5)"), so an operator sees why a resolution is slow.
    pub fn with_retry_notice(mut self, notice: impl Fn(&str) + 'static) -> Api {
        self.notice = Box::new(notice);
        self
    }

    /// The base URL in use, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What the client has cost so far.
    pub fn stats(&self) -> ApiStats {
        self.stats.get()
    }

    /// The details of `ids` (collections), in the order asked, one per distinct id.
    pub fn collection_details(
        &self,
        ids: &[WorkshopId],
    ) -> Result<Vec<CollectionDetails>, ApiError> {
        let mut found = self.batched::<wire::CollectionDetailsBody>(ids)?;
        Ok(distinct(ids)
            .into_iter()
            .map(|id| match found.remove(&id) {
                Some(entry) => collection_from(entry),
                None => CollectionDetails {
                    id,
                    result: 9,
                    children: None,
                },
            })
            .collect())
    }

    /// The details of `ids` (items), in the order asked, one per distinct id. An item the
    /// answer leaves out or describes badly is [`crate::ItemState::NoFile`] with the reason.
    pub fn file_details(&self, ids: &[WorkshopId]) -> Result<Vec<Item>, ApiError> {
        let mut found = self.batched::<wire::FileDetailsBody>(ids)?;
        Ok(distinct(ids)
            .into_iter()
            .map(|id| match found.remove(&id) {
                Some(entry) => wire::item_from_entry(id, entry),
                None => wire::missing_item(id),
            })
            .collect())
    }

    /// Asks method `A` about the distinct `ids`, [`BATCH`] per request: the entries of the
    /// answers by id.
    fn batched<A: wire::Answer>(
        &self,
        ids: &[WorkshopId],
    ) -> Result<HashMap<WorkshopId, A::Entry>, ApiError> {
        let url = format!("{}/ISteamRemoteStorage/{}/v1/", self.base, A::METHOD);
        let mut found = HashMap::new();
        for batch in distinct(ids).chunks(BATCH) {
            let mut form = vec![(A::COUNT_KEY.to_owned(), batch.len().to_string())];
            form.extend(
                batch
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (format!("publishedfileids[{i}]"), id.to_string())),
            );
            let body = self.post(&url, &form)?;
            let answer = serde_json::from_slice::<wire::Envelope<A>>(&body)
                .map_err(|err| garbage(&url, &err.to_string()))?
                .response;
            if answer.result() != 1 {
                let result = answer.result();
                return Err(ApiError::Refused { url, result });
            }
            let entries = answer
                .into_entries()
                .ok_or_else(|| garbage(&url, &format!("no {}", A::LIST_KEY)))?;
            // Only what this request asked: an entry for another id is not an answer about it,
            // and keeping it would let every batch's answer pile up in memory.
            let asked: HashSet<WorkshopId> = batch.iter().copied().collect();
            found.extend(entries.into_iter().filter(|(id, _)| asked.contains(id)));
        }
        Ok(found)
    }

    /// Sends `form` until it gets a 2xx answer, retrying transient failures.
    fn post(&self, url: &str, form: &[(String, String)]) -> Result<Vec<u8>, ApiError> {
        let attempts = self.retry.attempts.max(1);
        for attempt in 1..=attempts {
            let started = Instant::now();
            let outcome = self.transport.post_form(url, form);
            self.spend(started);
            let last = attempt == attempts;
            let why = match outcome {
                Ok(response) if (200..300).contains(&response.status) => return Ok(response.body),
                Ok(response) if is_transient_status(response.status) => {
                    if last {
                        return Err(ApiError::Unavailable {
                            url: url.to_owned(),
                            status: response.status,
                            attempts,
                        });
                    }
                    format!("HTTP {} from {url}", response.status)
                }
                Ok(response) => {
                    return Err(ApiError::Status {
                        url: url.to_owned(),
                        status: response.status,
                    });
                }
                Err(source) if source.is_transient() && !last => source.to_string(),
                Err(source) => {
                    return Err(ApiError::Transport {
                        attempts: attempt,
                        source,
                    });
                }
            };
            let wait = self.retry.backoff(attempt);
            (self.notice)(&format!(
                "{why}; trying again in {}s (attempt {} of {attempts})",
                wait.as_secs_f32(),
                attempt + 1
            ));
            let started = Instant::now();
            (self.sleep)(wait);
            let mut stats = self.stats.get();
            stats.time += started.elapsed();
            self.stats.set(stats);
        }
        unreachable!("the last attempt returns")
    }

    /// Counts one request that started at `started`.
    fn spend(&self, started: Instant) {
        let mut stats = self.stats.get();
        stats.requests += 1;
        stats.time += started.elapsed();
        self.stats.set(stats);
    }
}

/// HTTP 429 (too many requests) and every 5xx: worth another try after a wait.
fn is_transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

fn garbage(url: &str, reason: &str) -> ApiError {
    ApiError::Garbage {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `ids` without repeats, in first-seen order.
fn distinct(ids: &[WorkshopId]) -> Vec<WorkshopId> {
    let mut seen = HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

fn collection_from(entry: wire::RawCollection) -> CollectionDetails {
    let children = match (entry.result, entry.children) {
        (1, Some(mut children)) => {
            children.sort_by_key(|child| child.sortorder);
            Some(
                children
                    .into_iter()
                    .map(|child| Child {
                        id: child.publishedfileid,
                        is_collection: child.filetype == FILETYPE_COLLECTION,
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    CollectionDetails {
        id: entry.publishedfileid,
        result: entry.result,
        children,
    }
}

#[cfg(test)]
mod tests;
