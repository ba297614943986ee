//! The stand-in's HTTP server (a thread per connection) and the handle tests steer it with.
//!
//! Routes, on one base URL (`http://ADDR`):
//!
//! ```text
//! POST /ISteamRemoteStorage/GetPublishedFileDetails/v1/   the API (`api`); also .../v0001/
//! POST /ISteamRemoteStorage/GetCollectionDetails/v1/      GET on either: 405
//! GET  /ugc/HCONTENT/TOKEN/                                an item's file (HEAD too)
//! ```

use std::io::{self, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::api::{self, Answer, SizeShape};
use crate::fixture::{Fixture, Version};
use crate::http::{self, Request};

/// How long an idle keep-alive connection is kept.
const IDLE: Duration = Duration::from_secs(10);

/// The state every connection thread shares.
#[derive(Debug)]
struct Shared {
    fixture: Mutex<Fixture>,
    size_shape: Mutex<SizeShape>,
    base: String,
    failures_left: AtomicU64,
    failure_status: AtomicU64,
    api_requests: AtomicU64,
    file_requests: AtomicU64,
    file_bytes: AtomicU64,
}

impl Shared {
    fn fixture(&self) -> MutexGuard<'_, Fixture> {
        self.fixture.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running stand-in; stopped when dropped.
#[derive(Debug)]
pub struct WorkshopServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WorkshopServer {
    /// Serves `fixture` on a free loopback port.
    pub fn start(fixture: Fixture) -> io::Result<Self> {
        Self::serve(fixture, TcpListener::bind("127.0.0.1:0")?)
    }

    /// Serves `fixture` on `listener` in a background thread.
    pub fn serve(fixture: Fixture, listener: TcpListener) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = shared(fixture, addr);
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, state) = (stop.clone(), shared.clone());
        let thread = std::thread::spawn(move || accept_loop(&state, &listener, &flag));
        Ok(WorkshopServer {
            shared,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL: host.toml's `steam_web_api` for tests, and the host of every `file_url`.
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// Publishes a new version of item `id` (see [`Fixture::update_item`]); `None` if unknown.
    pub fn update_item(&self, id: u64) -> Option<Version> {
        self.shared.fixture().update_item(id).cloned()
    }

    /// Runs `change` on the fixture being served (for cases the controls do not cover).
    pub fn with_fixture<R>(&self, change: impl FnOnce(&mut Fixture) -> R) -> R {
        change(&mut self.shared.fixture())
    }

    /// The current `file_url` of item `id`.
    pub fn file_url(&self, id: u64) -> Option<String> {
        let fixture = self.shared.fixture();
        let item = fixture.items.get(&id)?;
        Some(api::file_url(
            &self.shared.base,
            id,
            item.current().hcontent,
        ))
    }

    /// The next `n` API calls answer 503 Service Unavailable (file downloads are not affected).
    pub fn fail_next_api(&self, n: u64) {
        self.fail_next_api_with(n, 503);
    }

    /// The next `n` API calls answer `status` (e.g. 429 Too Many Requests, 500, 502).
    pub fn fail_next_api_with(&self, n: u64, status: u16) {
        self.shared
            .failure_status
            .store(u64::from(status), Ordering::SeqCst);
        self.shared.failures_left.store(n, Ordering::SeqCst);
    }

    /// Whether `file_size` is sent as a string (the default, as the live API) or a number.
    pub fn set_size_shape(&self, shape: SizeShape) {
        *self
            .shared
            .size_shape
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = shape;
    }

    /// API calls received, failed ones included.
    pub fn api_requests(&self) -> u64 {
        self.shared.api_requests.load(Ordering::SeqCst)
    }

    /// Requests for `/ugc/…` files, found or not.
    pub fn file_requests(&self) -> u64 {
        self.shared.file_requests.load(Ordering::SeqCst)
    }

    /// Bytes of file bodies sent.
    pub fn file_bytes(&self) -> u64 {
        self.shared.file_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for WorkshopServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes accept()
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `fixture` on `listener` until the process ends.
pub fn serve_forever(fixture: Fixture, listener: TcpListener) -> io::Result<()> {
    let shared = shared(fixture, listener.local_addr()?);
    accept_loop(&shared, &listener, &AtomicBool::new(false));
    Ok(())
}

fn shared(fixture: Fixture, addr: SocketAddr) -> Arc<Shared> {
    Arc::new(Shared {
        fixture: Mutex::new(fixture),
        size_shape: Mutex::new(SizeShape::default()),
        base: format!("http://{addr}"),
        failures_left: AtomicU64::new(0),
        failure_status: AtomicU64::new(503),
        api_requests: AtomicU64::new(0),
        file_requests: AtomicU64::new(0),
        file_bytes: AtomicU64::new(0),
    })
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || {
            let _ = serve_connection(&shared, stream);
        });
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let request = match http::read_request(&mut reader, &mut out) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let page = format!("<html><body><h1>Bad Request</h1>{e}</body></html>");
                return http::respond(&mut out, 400, "text/html", page.as_bytes(), false, false);
            }
            Err(e) => return Err(e),
        };
        let keep_alive = request.keep_alive;
        let (status, content_type, body) = route(shared, &request);
        let head_only = request.method == "HEAD";
        http::respond(&mut out, status, content_type, &body, keep_alive, head_only)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The status, content type and body of the answer to `request`.
fn route(shared: &Shared, request: &Request) -> (u16, &'static str, Vec<u8>) {
    let path = request.path.trim_end_matches('/');
    let call = path
        .strip_prefix("/ISteamRemoteStorage/")
        .and_then(|rest| rest.rsplit_once('/'))
        .filter(|(_, version)| matches!(*version, "v1" | "v0001"))
        .map(|(method, _)| method);
    if let Some(method @ ("GetPublishedFileDetails" | "GetCollectionDetails")) = call {
        return api_call(shared, method, request);
    }
    if let Some(rest) = path.strip_prefix("/ugc/") {
        return file(shared, request, rest);
    }
    let page =
        b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>";
    (404, "text/html", page.to_vec())
}

fn api_call(shared: &Shared, method: &str, request: &Request) -> (u16, &'static str, Vec<u8>) {
    shared.api_requests.fetch_add(1, Ordering::SeqCst);
    let fail = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        let status = shared.failure_status.load(Ordering::SeqCst) as u16;
        let reason = http::reason(status);
        let page = format!(
            "<html><head><title>{reason}</title></head><body><h1>{reason}</h1></body></html>"
        );
        return (status, "text/html", page.into_bytes());
    }
    if request.method != "POST" {
        let page = b"<html><head><title>Method Not Allowed</title></head><body><h1>Method Not Allowed</h1>This API must be called with a HTTP POST request</body></html>";
        return (405, "text/html", page.to_vec());
    }
    let form = http::parse_form(&String::from_utf8_lossy(&request.body));
    let answer = {
        let fixture = shared.fixture();
        let shape = *shared.size_shape.lock().unwrap_or_else(|e| e.into_inner());
        match method {
            "GetPublishedFileDetails" => {
                api::published_file_details(&fixture, shape, &shared.base, &form)
            }
            _ => api::collection_details(&fixture, &form),
        }
    };
    match answer {
        Answer::Json(value) => (
            200,
            "application/json; charset=UTF-8",
            value.to_string().into_bytes(),
        ),
        Answer::BadRequest(page) => (400, "text/html", page.into_bytes()),
    }
}

fn file(shared: &Shared, request: &Request, rest: &str) -> (u16, &'static str, Vec<u8>) {
    shared.file_requests.fetch_add(1, Ordering::SeqCst);
    let found = rest
        .split_once('/')
        .and_then(|(number, token)| Some((number.parse::<u64>().ok()?, token)))
        .and_then(|(hcontent, token)| shared.fixture().file(hcontent, token).map(<[u8]>::to_vec));
    match found {
        Some(bytes) if matches!(request.method.as_str(), "GET" | "HEAD") => {
            if request.method == "GET" {
                shared
                    .file_bytes
                    .fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
            // The error-page fixture is sent as the page it is.
            let content_type = if bytes.starts_with(b"<") {
                "text/html"
            } else {
                "application/octet-stream"
            };
            (200, content_type, bytes)
        }
        Some(_) => (405, "text/html", b"<html><body>Method Not Allowed</body></html>".to_vec()),
        None => (
            404,
            "text/html",
            b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
                .to_vec(),
        ),
    }
}
