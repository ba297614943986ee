use std::cell::RefCell;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::rc::Rc;

use serde_json::json;

use super::*;
use crate::item::ItemState;
use crate::testing::{FakeSteam, Scripted};

#[test]
fn file_details_batches_100_ids_per_request_in_order() {
    let steam = FakeSteam::new();
    let ids: Vec<WorkshopId> = (1..=250).collect();
    for &id in &ids {
        steam.item(id, id * 7);
    }
    let api = steam.api();
    let items = api.file_details(&ids).unwrap();
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
    assert!(items.iter().all(|i| i.state.is_ok()));
    assert_eq!(items[41].hcontent, 42 * 7);
    let requests = steam.requests();
    assert_eq!(requests.len(), 3);
    let counts: Vec<&str> = requests
        .iter()
        .map(|(_, form)| form[0].1.as_str())
        .collect();
    assert_eq!(counts, ["100", "100", "50"]);
    assert_eq!(
        requests[0].0,
        "http://steam.test/ISteamRemoteStorage/GetPublishedFileDetails/v1/"
    );
    assert_eq!(
        requests[2].1[1],
        ("publishedfileids[0]".into(), "201".into())
    );
    assert_eq!(api.stats().requests, 3);
}

#[test]
fn removed_banned_and_wrong_app_items_are_reported_not_errors() {
    let steam = FakeSteam::new();
    steam.item(1, 11);
    let mut banned = crate::testing::item_json(2, 22);
    banned["banned"] = json!(1);
    banned["ban_reason"] = json!("copyright");
    steam.describe(2, banned);
    let mut other = crate::testing::item_json(3, 33);
    other["consumer_app_id"] = json!(440);
    steam.describe(3, other);
    let items = steam.api().file_details(&[1, 2, 3, 4, 1]).unwrap();
    let states: Vec<&ItemState> = items.iter().map(|i| &i.state).collect();
    assert_eq!(
        states,
        [
            &ItemState::Ok,
            &ItemState::Banned {
                reason: "copyright".into()
            },
            &ItemState::WrongApp { app: 440 },
            &ItemState::Removed { result: 9 },
        ]
    );
}

#[test]
fn an_item_the_answer_leaves_out_has_no_file() {
    let steam = FakeSteam::new();
    steam.then(Scripted::Status(
        200,
        r#"{"response":{"result":1,"resultcount":0,"publishedfiledetails":[]}}"#,
    ));
    let items = steam.api().file_details(&[5]).unwrap();
    assert!(
        matches!(&items[0].state, ItemState::NoFile { reason } if reason.contains("does not describe"))
    );
}

#[test]
fn an_entry_for_an_id_the_request_did_not_ask_is_ignored() {
    // Found by the workshop_answer fuzz target's review: each batch's answer was kept whole, so
    // an answer to batch 1 could describe an item of batch 2 (which its own answer left out),
    // and entries nobody asked for piled up in memory batch after batch.
    let steam = FakeSteam::new();
    steam.then(Scripted::Status(
        200,
        r#"{"response":{"result":1,"publishedfiledetails":[{"publishedfileid":"101","result":1,
            "consumer_app_id":550,"file_url":"https://a/b","hcontent_file":"7","file_size":1}]}}"#,
    ));
    steam.then(Scripted::Status(
        200,
        r#"{"response":{"result":1,"publishedfiledetails":[]}}"#,
    ));
    let ids: Vec<WorkshopId> = (1..=101).collect();
    let items = steam.api().file_details(&ids).unwrap();
    assert_eq!(steam.requests().len(), 2);
    assert!(
        matches!(&items[100].state, ItemState::NoFile { reason } if reason.contains("does not describe")),
        "{:?}",
        items[100]
    );
}

#[test]
fn collection_details_reads_children_and_non_collections() {
    let steam = FakeSteam::new();
    steam.collection(10, &[(1, 0), (20, 2), (2, 0)]);
    let details = steam.api().collection_details(&[10, 99]).unwrap();
    assert_eq!(details[0].id, 10);
    let children = details[0].children.as_ref().unwrap();
    assert_eq!(
        children,
        &[
            Child {
                id: 1,
                is_collection: false
            },
            Child {
                id: 20,
                is_collection: true
            },
            Child {
                id: 2,
                is_collection: false
            },
        ]
    );
    assert_eq!(
        (details[1].id, details[1].result, &details[1].children),
        (99, 9, &None)
    );
    let form = &steam.requests()[0].1;
    assert_eq!(form[0], ("collectioncount".into(), "2".into()));
}

#[test]
fn transient_failures_are_retried_with_backoff() {
    let steam = FakeSteam::new();
    steam.item(1, 11);
    steam.then(Scripted::Status(503, "<html>Service Unavailable</html>"));
    steam.then(Scripted::Unreachable);
    let waits = Rc::new(RefCell::new(Vec::new()));
    let log = waits.clone();
    let notices = Rc::new(RefCell::new(Vec::new()));
    let told = notices.clone();
    let api = steam
        .api()
        .with_sleep(move |d| log.borrow_mut().push(d))
        .with_retry_notice(move |n| told.borrow_mut().push(n.to_owned()));
    let items = api.file_details(&[1]).unwrap();
    assert!(items[0].state.is_ok());
    assert_eq!(steam.requests().len(), 3);
    assert_eq!(
        *waits.borrow(),
        [Duration::from_millis(10), Duration::from_millis(20)]
    );
    assert_eq!(api.stats().requests, 3);
    assert_eq!(
        *notices.borrow(),
        [
            "HTTP 503 from http://steam.test/ISteamRemoteStorage/GetPublishedFileDetails/v1/; trying again in 0.01s (attempt 2 of 3)",
            "cannot reach http://steam.test/ISteamRemoteStorage/GetPublishedFileDetails/v1/: connection refused; trying again in 0.02s (attempt 3 of 3)",
        ]
    );
}

#[test]
fn steam_down_after_every_attempt_says_try_again_later() {
    let steam = FakeSteam::new();
    for _ in 0..3 {
        steam.then(Scripted::Status(429, ""));
    }
    let err = steam.api().file_details(&[1]).unwrap_err();
    assert!(matches!(
        err,
        ApiError::Unavailable {
            status: 429,
            attempts: 3,
            ..
        }
    ));
    let text = err.to_string();
    assert!(
        text.contains("try again later") && text.contains("GetPublishedFileDetails"),
        "{text}"
    );
}

#[test]
fn other_statuses_fail_at_once_naming_the_setting() {
    let steam = FakeSteam::new();
    steam.then(Scripted::Status(404, "<html>Not Found</html>"));
    let err = steam.api().file_details(&[1]).unwrap_err();
    assert_eq!(steam.requests().len(), 1);
    let text = err.to_string();
    assert!(
        text.contains("HTTP 404") && text.contains("steam_web_api"),
        "{text}"
    );
}

#[test]
fn garbage_is_a_clear_error() {
    for body in [
        "<html>oops</html>",
        r#"{"response":{"result":1}}"#,
        r#"{"nope":1}"#,
    ] {
        let steam = FakeSteam::new();
        steam.then(Scripted::Status(200, body));
        let err = steam.api().file_details(&[1]).unwrap_err();
        assert!(matches!(err, ApiError::Garbage { .. }), "{body}: {err:?}");
        assert!(err.to_string().contains("not the Steam Web API's JSON"));
    }
    let steam = FakeSteam::new();
    steam.then(Scripted::Status(200, r#"{"response":{"result":2}}"#));
    let err = steam.api().collection_details(&[1]).unwrap_err();
    assert!(
        matches!(err, ApiError::Refused { result: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn odd_entries_never_panic() {
    let steam = FakeSteam::new();
    steam.then(Scripted::Status(
        200,
        r#"{"response":{"result":1,"publishedfiledetails":[1,"x",null,{"publishedfileid":[1]},
            {"publishedfileid":"2","result":"1"},{"publishedfileid":"3","title":7},
            {"publishedfileid":"4","result":1,"consumer_app_id":550,"file_url":"https://a/b",
             "hcontent_file":"18446744073709551616","file_size":1}]}}"#,
    ));
    let items = steam.api().file_details(&[1, 2, 3, 4]).unwrap();
    for item in &items {
        assert!(matches!(item.state, ItemState::NoFile { .. }), "{item:?}");
    }
    let steam = FakeSteam::new();
    steam.then(Scripted::Status(
        200,
        r#"{"response":{"result":1,"collectiondetails":[{"publishedfileid":"1","children":[{"publishedfileid":-1}]}]}}"#,
    ));
    let err = steam.api().collection_details(&[1]).unwrap_err();
    assert!(matches!(err, ApiError::Garbage { .. }), "{err:?}");
}

#[test]
fn the_base_must_be_http_or_https() {
    for base in [
        "ftp://x",
        "api.steampowered.com",
        "https://x/?a",
        "https://",
    ] {
        let err = Api::new(base, Box::new(FakeSteam::new())).unwrap_err();
        assert!(err.to_string().contains("steam_web_api"), "{base}");
    }
    let api = Api::new("https://api.steampowered.com/", Box::new(FakeSteam::new())).unwrap();
    assert_eq!(api.base(), DEFAULT_BASE);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let policy = RetryPolicy::default();
    let secs: Vec<u64> = (1..=7).map(|a| policy.backoff(a).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(policy.backoff(100), policy.max_backoff);
}

/// One HTTP exchange on a real socket: returns what the server read (request line, headers
/// lowercased, body) after answering with `status` and `body`.
fn serve_once(
    status: &'static str,
    body: &'static str,
) -> (
    String,
    std::thread::JoinHandle<(String, Vec<String>, String)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
            headers.push(line.trim_end().to_ascii_lowercase());
        }
        let length: usize = headers
            .iter()
            .find_map(|h| h.strip_prefix("content-length: "))
            .map_or(0, |n| n.parse().unwrap());
        let mut form = vec![0; length];
        reader.read_exact(&mut form).unwrap();
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        (request_line, headers, String::from_utf8(form).unwrap())
    });
    (format!("http://127.0.0.1:{port}"), handle)
}

#[test]
fn http_transport_posts_the_form_on_a_real_socket() {
    let answer = r#"{"response":{"result":1,"resultcount":1,"collectiondetails":[{"publishedfileid":"7","result":9}]}}"#;
    let (base, server) = serve_once("200 OK", answer);
    let api = Api::new(&base, Box::new(HttpTransport::new())).unwrap();
    let details = api.collection_details(&[7]).unwrap();
    assert_eq!(details[0].children, None);
    let (request_line, headers, form) = server.join().unwrap();
    assert_eq!(
        request_line.trim_end(),
        "POST /ISteamRemoteStorage/GetCollectionDetails/v1/ HTTP/1.1"
    );
    assert!(
        headers.contains(&"content-type: application/x-www-form-urlencoded".to_owned()),
        "{headers:?}"
    );
    let agent = format!("user-agent: left4me/{}", env!("CARGO_PKG_VERSION"));
    assert!(headers.contains(&agent), "{headers:?}");
    assert_eq!(form, "collectioncount=1&publishedfileids%5B0%5D=7");
}

#[test]
fn http_transport_returns_error_statuses_and_caps_bodies() {
    let (base, server) = serve_once("503 Service Unavailable", "down");
    let response = HttpTransport::new()
        .post_form(&format!("{base}/x"), &[])
        .unwrap();
    assert_eq!(
        response,
        Response {
            status: 503,
            body: b"down".to_vec()
        }
    );
    server.join().unwrap();

    let (base, server) = serve_once("200 OK", "0123456789");
    let err = HttpTransport::new()
        .with_body_limit(4)
        .post_form(&format!("{base}/x"), &[])
        .unwrap_err();
    assert!(
        matches!(err, TransportError::TooLarge { limit: 4, .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    server.join().unwrap();
}

#[test]
fn http_transport_does_not_follow_redirects() {
    let (base, server) = serve_once("301 Moved Permanently", "");
    let api = Api::new(&base, Box::new(HttpTransport::new())).unwrap();
    let err = api.file_details(&[1]).unwrap_err();
    assert!(
        matches!(err, ApiError::Status { status: 301, .. }),
        "{err:?}"
    );
    server.join().unwrap();
}

#[test]
fn no_ids_no_request() {
    let steam = FakeSteam::new();
    assert!(steam.api().file_details(&[]).unwrap().is_empty());
    assert!(steam.api().collection_details(&[]).unwrap().is_empty());
    assert!(steam.requests().is_empty());
}

#[test]
fn http_transport_unreachable_is_transient() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = HttpTransport::new()
        .post_form(&format!("http://127.0.0.1:{port}/x"), &[])
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let err = HttpTransport::new()
        .post_form("file:///etc/passwd", &[])
        .unwrap_err();
    assert!(!err.is_transient());
}
