//! The stand-in over real sockets, with a raw HTTP/1.1 client written here: the API shapes,
//! the files, the controls and the counters.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use left4me_workshop_standin::fixture::{HTML_ERROR_PAGE, standard::*};
use left4me_workshop_standin::{Fixture, SizeShape, WorkshopServer};
use serde_json::Value;

/// One answer: status, headers (lower-cased names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(
            self.header("content-type"),
            Some("application/json; charset=UTF-8")
        );
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

fn read_answer(reader: &mut impl BufRead) -> Answer {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 "), "status line {line:?}");
    let status = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .expect("every answer has a Content-Length")
        .1
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn request(server: &WorkshopServer, method: &str, path: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr(),
        body.len()
    )
    .unwrap();
    read_answer(&mut BufReader::new(stream))
}

fn post(server: &WorkshopServer, method: &str, body: &str) -> Answer {
    request(
        server,
        "POST",
        &format!("/ISteamRemoteStorage/{method}/v1/"),
        body,
    )
}

fn form(count: &str, ids: &[u64]) -> String {
    let mut text = format!("{count}={}", ids.len());
    for (i, id) in ids.iter().enumerate() {
        text.push_str(&format!("&publishedfileids%5B{i}%5D={id}"));
    }
    text
}

fn details(server: &WorkshopServer, ids: &[u64]) -> Vec<Value> {
    let v = post(server, "GetPublishedFileDetails", &form("itemcount", ids)).json();
    assert_eq!(v["response"]["result"], 1);
    assert_eq!(v["response"]["resultcount"], ids.len());
    v["response"]["publishedfiledetails"]
        .as_array()
        .unwrap()
        .clone()
}

/// Downloads a `file_url` (absolute, on the stand-in).
fn download(server: &WorkshopServer, url: &str) -> Answer {
    let path = url
        .strip_prefix(&server.base_url())
        .expect("file_url on the stand-in");
    request(server, "GET", path, "")
}

#[test]
fn item_details_are_shaped_like_the_real_api() {
    let server = WorkshopServer::start(Fixture::standard()).unwrap();
    let all = [
        OK_1, REMOVED, BANNED, WRONG_APP, HTML_PAGE, WRONG_SIZE, COLLECTION,
    ];
    let d = details(&server, &all);
    let ok = &d[0];
    assert_eq!(ok["publishedfileid"], OK_1.to_string());
    assert_eq!(ok["result"], 1);
    assert_eq!(ok["consumer_app_id"], 550);
    assert_eq!(ok["creator_app_id"], 550);
    assert!(ok["creator"].as_str().unwrap().starts_with("7656"));
    assert_eq!(ok["banned"], 0);
    assert_eq!(ok["ban_reason"], "");
    assert_eq!(ok["tags"][0]["tag"], "Campaigns");
    let hcontent = ok["hcontent_file"]
        .as_str()
        .expect("hcontent_file is a string");
    assert!(hcontent.len() >= 19 && hcontent.parse::<u64>().is_ok());
    let url = ok["file_url"].as_str().unwrap();
    let rest = url
        .strip_prefix(&format!("{}/ugc/{hcontent}/", server.base_url()))
        .expect("file_url is BASE/ugc/HCONTENT/TOKEN/");
    let token = rest.strip_suffix('/').unwrap();
    assert!(token.len() == 40 && token.chars().all(|c| c.is_ascii_hexdigit()));
    for key in [
        "filename",
        "preview_url",
        "hcontent_preview",
        "title",
        "description",
        "time_created",
        "time_updated",
        "visibility",
        "subscriptions",
        "favorited",
        "lifetime_subscriptions",
        "lifetime_favorited",
        "views",
    ] {
        assert!(!ok[key].is_null(), "{key} missing in {ok}");
    }
    assert_eq!(
        d[1],
        serde_json::json!({"publishedfileid": REMOVED.to_string(), "result": 9})
    );
    assert_eq!(d[2]["banned"], 1);
    assert_ne!(d[2]["ban_reason"], "");
    assert_eq!(d[3]["consumer_app_id"], 730);
    assert_eq!(d[6]["file_url"], "", "a collection has no file");

    // file_size: a string by default (the live API), a number when asked.
    let size: u64 = ok["file_size"].as_str().unwrap().parse().unwrap();
    server.set_size_shape(SizeShape::Number);
    assert_eq!(details(&server, &[OK_1])[0]["file_size"], size);
}

#[test]
fn collections_nest_and_cycle() {
    let server = WorkshopServer::start(Fixture::standard()).unwrap();
    let body = form("collectioncount", &[COLLECTION, CYCLE_A, CYCLE_B, OK_1, 42]);
    let v = post(&server, "GetCollectionDetails", &body).json();
    assert_eq!(v["response"]["result"], 1);
    assert_eq!(v["response"]["resultcount"], 5);
    let c = v["response"]["collectiondetails"].as_array().unwrap();
    let children = |i: usize| -> Vec<(String, u64)> {
        c[i]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ch| {
                (
                    ch["publishedfileid"].as_str().unwrap().to_owned(),
                    ch["filetype"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(c[0]["publishedfileid"], COLLECTION.to_string());
    assert_eq!(c[0]["result"], 1);
    assert_eq!(
        children(0),
        vec![
            (OK_1.to_string(), 0),
            (OK_2.to_string(), 0),
            (NESTED.to_string(), 2)
        ]
    );
    assert_eq!(c[0]["children"][0]["sortorder"], 1);
    assert!(children(1).contains(&(CYCLE_B.to_string(), 2)));
    assert!(children(2).contains(&(CYCLE_A.to_string(), 2)));
    assert!(c[3].get("children").is_none(), "an item has no children");
    assert_eq!(
        c[4],
        serde_json::json!({"publishedfileid": "42", "result": 9})
    );
}

#[test]
fn files_are_served_as_the_api_describes_them() {
    let server = WorkshopServer::start(Fixture::standard()).unwrap();
    let d = details(&server, &[OK_1, HTML_PAGE, WRONG_SIZE]);
    let size = |v: &Value| v["file_size"].as_str().unwrap().parse::<usize>().unwrap();

    let vpk = download(&server, d[0]["file_url"].as_str().unwrap());
    assert_eq!(vpk.status, 200);
    assert_eq!(vpk.body.len(), size(&d[0]));
    assert_eq!(&vpk.body[..8], &[0x34, 0x12, 0xaa, 0x55, 1, 0, 0, 0]);

    let html = download(&server, d[1]["file_url"].as_str().unwrap());
    assert_eq!(html.status, 200, "the error page comes with 200");
    assert_eq!(html.body, HTML_ERROR_PAGE.as_bytes());
    assert_eq!(html.body.len(), size(&d[1]));

    let short = download(&server, d[2]["file_url"].as_str().unwrap());
    assert_eq!(short.status, 200);
    assert_eq!(short.body.len() + 512, size(&d[2]));

    let unknown = request(
        &server,
        "GET",
        "/ugc/1/0000000000000000000000000000000000000000/",
        "",
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(server.file_requests(), 4);
    assert_eq!(
        server.file_bytes(),
        (vpk.body.len() + html.body.len() + short.body.len()) as u64
    );
}

#[test]
fn an_update_is_a_new_version_and_the_old_file_stays() {
    let server = WorkshopServer::start(Fixture::standard()).unwrap();
    let before = details(&server, &[OK_2])[0].clone();
    let version = server.update_item(OK_2).unwrap();
    let after = details(&server, &[OK_2])[0].clone();
    assert_eq!(after["hcontent_file"], version.hcontent.to_string());
    assert_ne!(after["hcontent_file"], before["hcontent_file"]);
    assert!(after["time_updated"].as_i64() > before["time_updated"].as_i64());
    assert_ne!(after["file_url"], before["file_url"]);
    assert_eq!(
        server.file_url(OK_2).unwrap(),
        after["file_url"].as_str().unwrap()
    );
    let new = download(&server, after["file_url"].as_str().unwrap());
    let old = download(&server, before["file_url"].as_str().unwrap());
    assert_eq!(new.body, version.bytes);
    assert_eq!(old.status, 200);
    assert_ne!(old.body, new.body);
    assert!(server.update_item(1).is_none());
}

#[test]
fn failures_counters_methods_and_keep_alive() {
    let server = WorkshopServer::start(Fixture::standard()).unwrap();
    server.fail_next_api(2);
    let body = form("itemcount", &[OK_1]);
    assert_eq!(post(&server, "GetPublishedFileDetails", &body).status, 503);
    assert_eq!(
        post(
            &server,
            "GetCollectionDetails",
            &form("collectioncount", &[COLLECTION])
        )
        .status,
        503
    );
    assert_eq!(post(&server, "GetPublishedFileDetails", &body).status, 200);
    assert_eq!(server.api_requests(), 3);
    server.fail_next_api_with(1, 429);
    assert_eq!(post(&server, "GetPublishedFileDetails", &body).status, 429);
    assert_eq!(post(&server, "GetPublishedFileDetails", &body).status, 200);

    let get = request(
        &server,
        "GET",
        "/ISteamRemoteStorage/GetPublishedFileDetails/v1/",
        "",
    );
    assert_eq!(get.status, 405, "the API takes POST");
    let missing = post(&server, "GetPublishedFileDetails", "itemcount=1");
    assert_eq!(missing.status, 400);
    assert!(String::from_utf8_lossy(&missing.body).contains("publishedfileids[0]"));
    assert_eq!(request(&server, "GET", "/nothing", "").status, 404);

    // Two requests on one connection.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        write!(
            stream,
            "POST /ISteamRemoteStorage/GetPublishedFileDetails/v1/ HTTP/1.1\r\nHost: x\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let answer = read_answer(&mut reader);
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert_eq!(answer.json()["response"]["resultcount"], 1);
    }
}

#[test]
fn the_benchmark_collection() {
    let server = WorkshopServer::start(Fixture::collection_of(200)).unwrap();
    let body = form(
        "collectioncount",
        &[left4me_workshop_standin::fixture::BIG_COLLECTION],
    );
    let v = post(&server, "GetCollectionDetails", &body).json();
    let children = v["response"]["collectiondetails"][0]["children"]
        .as_array()
        .unwrap();
    assert_eq!(children.len(), 200);
    let ids: Vec<u64> = children
        .iter()
        .map(|c| c["publishedfileid"].as_str().unwrap().parse().unwrap())
        .collect();
    let d = details(&server, &ids[..100]);
    assert!(d.iter().all(|item| item["result"] == 1));
}
