use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use super::*;
use crate::testing::Scratch;

fn item(id: WorkshopId, hcontent: u64, state: ItemState) -> Item {
    Item {
        id,
        title: format!("Campaign {id}"),
        file_size: 1234,
        time_updated: 1_400_000_000,
        hcontent,
        file_url: format!("https://steamusercontent-a.akamaihd.net/ugc/{hcontent}/"),
        state,
    }
}

fn resolution(items: Vec<Item>) -> Resolution {
    Resolution {
        items,
        collections: vec![CollectionInfo {
            id: 900,
            depth: 1,
            items: vec![1, 2],
            collections: vec![],
            found: true,
        }],
        notes: vec!["a note".into()],
        api_requests: 2,
        api_time: Duration::from_millis(5),
    }
}

#[test]
fn changes_are_judged_against_the_previous_state() {
    let first = OverlayState::from_resolution(
        "maps",
        &resolution(vec![item(1, 10, ItemState::Ok), item(2, 20, ItemState::Ok)]),
        None,
    );
    assert!(first.items.iter().all(|r| r.change == Change::New));
    let second = OverlayState::from_resolution(
        "maps",
        &resolution(vec![
            item(1, 10, ItemState::Ok),
            item(2, 21, ItemState::Ok),
            item(3, 30, ItemState::Ok),
            item(4, 0, ItemState::Removed { result: 9 }),
        ]),
        Some(&first),
    );
    let changes: Vec<Change> = second.items.iter().map(|r| r.change).collect();
    assert_eq!(
        changes,
        [Change::Unchanged, Change::Updated, Change::New, Change::New]
    );
    // a banned item that comes back with a file is updated
    let third = OverlayState::from_resolution(
        "maps",
        &resolution(vec![item(2, 21, ItemState::Ok), item(4, 40, ItemState::Ok)]),
        Some(&second),
    );
    let changes: Vec<Change> = third.items.iter().map(|r| r.change).collect();
    assert_eq!(changes, [Change::Unchanged, Change::Updated]);
    assert_eq!(second.version, VERSION);
    assert_eq!(second.overlay, "maps");
    assert!(second.resolved_at > 1_700_000_000);
}

#[test]
fn display_states() {
    let mut state = OverlayState::from_resolution(
        "maps",
        &resolution(vec![
            item(1, 10, ItemState::Ok),
            item(2, 0, ItemState::Removed { result: 9 }),
            item(3, 0, ItemState::Banned { reason: "x".into() }),
            item(4, 0, ItemState::WrongApp { app: 440 }),
            item(
                5,
                0,
                ItemState::NoFile {
                    reason: "no file_url".into(),
                },
            ),
            item(6, 60, ItemState::Ok),
            item(7, 70, ItemState::Ok),
        ]),
        None,
    );
    state.items[6].change = Change::Updated;
    let shown: Vec<&str> = state.items.iter().map(display_state).collect();
    assert_eq!(
        shown,
        [
            "ok",
            "removed upstream",
            "banned",
            "wrong app",
            "no file",
            "ok",
            "updated"
        ]
    );
}

#[test]
fn save_and_load_round_trip_atomically_0600_in_a_0700_dir() {
    let scratch = Scratch::new("state");
    let path = scratch.0.join("admin/workshop/maps.json");
    assert_eq!(load(&path).unwrap(), None);
    let mut state = OverlayState::from_resolution(
        "maps",
        &resolution(vec![
            item(1, 10, ItemState::Ok),
            item(
                2,
                0,
                ItemState::Banned {
                    reason: "spam".into(),
                },
            ),
        ]),
        None,
    );
    save(&path, &state).unwrap();
    assert_eq!(load(&path).unwrap().as_ref(), Some(&state));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    // replaced in place, no temp file left behind
    state.notes.push("second".into());
    save(&path, &state).unwrap();
    assert_eq!(load(&path).unwrap().unwrap().notes.len(), 2);
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["maps.json"]);
    // the JSON reads as designed
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["items"][0]["id"], 1);
    assert_eq!(json["items"][0]["change"], "new");
    assert_eq!(json["items"][1]["state"], "banned");
    assert_eq!(json["items"][1]["reason"], "spam");
}

#[test]
fn a_bad_state_file_is_an_error_naming_it() {
    let scratch = Scratch::new("bad-state");
    let path = scratch.0.join("maps.json");
    fs::write(&path, "{not json").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("maps.json") && err.contains("remove it"),
        "{err}"
    );
    fs::write(&path, r#"{"version": 2}"#).unwrap();
    let err = load(&path).unwrap_err();
    assert!(
        matches!(err, StateError::Version { version: 2, .. }),
        "{err}"
    );
    fs::write(&path, r#"{"version": 1, "overlay": "maps"}"#).unwrap();
    assert!(matches!(
        load(&path).unwrap_err(),
        StateError::Malformed { .. }
    ));
}
