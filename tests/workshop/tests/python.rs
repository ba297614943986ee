//! The independent check: python's `urllib` + `json` POST both API calls to the stand-in and
//! check their shapes, and the PyPI `vpk` package (`pip install vpk==1.4.0`, installed by
//! `.ci/run`) opens the VPKs it serves and lists their files and CRCs. A missing module fails
//! the test with the install command; it is never skipped.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use left4me_workshop_standin::fixture::standard::*;
use left4me_workshop_standin::{Fixture, WorkshopServer, vpk};
use serde_json::Value;

/// Runs `script` with `python3`, the base URL as argv[1] and a temp dir as argv[2]; returns
/// the JSON it prints.
fn python(script: &str, base: &str) -> Value {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("workshop-standin-py-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("python3")
        .args(["-c", script, base])
        .arg(&dir)
        .output()
        .expect("python3 must be installed");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const PRELUDE: &str = r#"
import sys, json, os, urllib.request, urllib.parse
try:
    import vpk
except ImportError:
    sys.exit("python vpk is missing: python3 -m pip install vpk==1.4.0")
base, tmp = sys.argv[1], sys.argv[2]

def call(method, count_name, ids):
    form = {count_name: len(ids)}
    for i, pid in enumerate(ids):
        form["publishedfileids[%d]" % i] = pid
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(base + "/ISteamRemoteStorage/%s/v1/" % method, data=data)
    with urllib.request.urlopen(req) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        return json.load(answer)["response"]

def open_vpk(url, name):
    path = os.path.join(tmp, name)
    with urllib.request.urlopen(url) as answer, open(path, "wb") as out:
        out.write(answer.read())
    pak = vpk.open(path)
    files = {}
    for inner in pak:
        f = pak[inner]
        files[inner] = {"crc_ok": f.verify(), "text": f.read().decode()}
    return {"version": pak.version, "files": files}
"#;

#[test]
fn python_reads_the_api_and_opens_the_vpks() {
    let server = WorkshopServer::start(Fixture::standard()).unwrap();
    let script = format!(
        "{PRELUDE}
out = {{}}
c = call('GetCollectionDetails', 'collectioncount', ['{COLLECTION}', '{NESTED}'])
assert c['result'] == 1 and c['resultcount'] == 2
out['children'] = [[(ch['publishedfileid'], ch['filetype']) for ch in e['children']] for e in c['collectiondetails']]
ids = [ch[0] for e in out['children'] for ch in e if ch[1] == 0] + ['{REMOVED}']
d = call('GetPublishedFileDetails', 'itemcount', ids)
assert d['result'] == 1 and d['resultcount'] == len(ids)
out['removed'] = d['publishedfiledetails'][-1]
out['vpks'] = {{}}
for item in d['publishedfiledetails'][:-1]:
    assert item['result'] == 1 and item['consumer_app_id'] == 550 and item['banned'] == 0
    assert isinstance(item['hcontent_file'], str) and int(item['file_size']) > 0
    out['vpks'][item['publishedfileid']] = open_vpk(item['file_url'], item['publishedfileid'] + '.vpk')
print(json.dumps(out))
"
    );
    let out = python(&script, &server.base_url());
    assert_eq!(
        out["children"],
        serde_json::json!([
            [
                [OK_1.to_string(), 0],
                [OK_2.to_string(), 0],
                [NESTED.to_string(), 2]
            ],
            [[OK_3.to_string(), 0]]
        ])
    );
    assert_eq!(
        out["removed"],
        serde_json::json!({"publishedfileid": REMOVED.to_string(), "result": 9})
    );
    for id in [OK_1, OK_2, OK_3] {
        let pak = &out["vpks"][id.to_string()];
        assert_eq!(pak["version"], 1, "{pak}");
        let files = pak["files"].as_object().unwrap();
        let name = format!("missions/{id}_v1.txt");
        assert_eq!(files.keys().collect::<Vec<_>>(), vec![&name], "{pak}");
        assert_eq!(files[&name]["crc_ok"], true);
        assert!(
            files[&name]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("standin_{id}"))
        );
    }
    assert_eq!(server.file_requests(), 3);
}

#[test]
fn python_reads_a_vpk_of_many_files_in_several_directories() {
    let big = vec![7u8; 100_000];
    let bytes = vpk::build(&[
        ("missions/a.txt", b"mission a"),
        ("maps/a1.bsp", &big),
        ("maps/a2.bsp", b"map two"),
        ("addoninfo.txt", b"\"AddonInfo\" {}"),
        ("materials/x/y/z.vmt", b""),
        ("README", b"no extension"),
    ]);
    let server = WorkshopServer::start(Fixture::default()).unwrap();
    server.with_fixture(|f| {
        let mut item = left4me_workshop_standin::Item::new(5, "Many Files");
        item.versions[0].bytes = bytes;
        f.add_item(item);
    });
    let script = format!(
        "{PRELUDE}
d = call('GetPublishedFileDetails', 'itemcount', ['5'])['publishedfiledetails'][0]
pak = open_vpk(d['file_url'], 'many.vpk')
print(json.dumps({{k: [v['crc_ok'], len(v['text'])] for k, v in pak['files'].items()}}))
"
    );
    let out = python(&script, &server.base_url());
    assert_eq!(
        out,
        serde_json::json!({
            "missions/a.txt": [true, 9],
            "maps/a1.bsp": [true, 100_000],
            "maps/a2.bsp": [true, 7],
            "addoninfo.txt": [true, 14],
            "materials/x/y/z.vmt": [true, 0],
            // The " " extension of a file without one, as python vpk 1.4.0 joins it.
            "README. ": [true, 12],
        })
    );
}
