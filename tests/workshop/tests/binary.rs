//! The `left4me-workshop-standin` program, driven as the benchmark and the demo drive it, with
//! `curl` as the client (the tool the workshop download runs in the sandbox).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use left4me_workshop_standin::fixture::BIG_COLLECTION;
use serde_json::Value;

const PROGRAM: &str = env!("CARGO_BIN_EXE_left4me-workshop-standin");

/// The running program; killed on drop.
struct Program(Child);

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .args(args)
        .output()
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn serves_a_big_collection_to_curl() {
    let mut child = Command::new(PROGRAM)
        .args(["--listen", "127.0.0.1:0", "--collection-of", "150"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _program = Program(child);
    let base = lines.next().unwrap().unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("collection {BIG_COLLECTION}: 150 children")
    );

    // Every POST asks for `100 Continue` and would wait 20 s for it: the server must answer
    // it at once (curl asks by itself for bodies over 1 KiB).
    let api = |method: &str, form: &str| -> Value {
        let url = format!("{base}/ISteamRemoteStorage/{method}/v1/");
        let expect = [
            "--header",
            "Expect: 100-continue",
            "--expect100-timeout",
            "20",
        ];
        let mut args = expect.to_vec();
        args.extend(["--data", form, &url]);
        serde_json::from_slice(&curl(&args)).unwrap()
    };
    let c = api(
        "GetCollectionDetails",
        &format!("collectioncount=1&publishedfileids[0]={BIG_COLLECTION}"),
    );
    let ids: Vec<String> = c["response"]["collectiondetails"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|child| child["publishedfileid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 150);

    let mut form = format!("itemcount={}", ids.len());
    for (i, id) in ids.iter().enumerate() {
        form.push_str(&format!("&publishedfileids[{i}]={id}"));
    }
    assert!(form.len() > 1024);
    let started = Instant::now();
    let d = api("GetPublishedFileDetails", &form);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let items = d["response"]["publishedfiledetails"].as_array().unwrap();
    assert_eq!(items.len(), 150);

    let item = &items[0];
    let size = item["file_size"].as_str().unwrap();
    let url = item["file_url"].as_str().unwrap();
    let file = curl(&[
        "--location",
        "--proto",
        "=http,https",
        "--max-filesize",
        size,
        url,
    ]);
    assert_eq!(file.len().to_string(), size);
    assert_eq!(&file[..4], &[0x34, 0x12, 0xaa, 0x55]);
}

#[test]
fn refuses_a_bad_command_line_with_status_2() {
    for args in [
        &[][..],
        &["--listen"][..],
        &["--listen", "x", "--collection-of", "0"][..],
    ] {
        let out = Command::new(PROGRAM).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: left4me-workshop-standin"));
    }
}
