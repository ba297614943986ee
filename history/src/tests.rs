use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use super::*;

/// A temp dir removed when dropped.
struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("left4me-history-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn change<'a>(file: &'a Path, old: Option<&'a str>, new: Option<&'a str>) -> Change<'a> {
    Change {
        kind: Kind::Instance,
        name: "coop1",
        file,
        old,
        new,
        verb: "set",
        message: Some("why"),
    }
}

#[test]
fn records_lists_and_gets() {
    let dir = Dir::new("rw");
    let admin = dir.0.join("admin");
    let history = History::open(&admin).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&admin), 0o700);
    assert_eq!(mode(&admin.join(DATABASE)), 0o600);
    let file = dir.0.join("etc/instances/coop1.toml");
    let a = history
        .record(&change(&file, None, Some("port = 1\n")))
        .unwrap();
    let b = history
        .record(&change(&file, Some("port = 1\n"), Some("port = 2\n")))
        .unwrap();
    let c = history
        .record(&change(&file, Some("port = 2\n"), None))
        .unwrap();
    assert!(a < b && b < c);
    let all = history.list(Filter::default(), None).unwrap();
    assert_eq!(all.iter().map(|r| r.rev).collect::<Vec<_>>(), [c, b, a]);
    assert_eq!(
        all.iter().map(|r| r.action).collect::<Vec<_>>(),
        [Action::Removed, Action::Changed, Action::Created]
    );
    assert_eq!(all[0].verb, "set");
    assert_eq!(all[0].message.as_deref(), Some("why"));
    assert_eq!(all[0].uid, rustix::process::getuid().as_raw());
    let (rev, texts) = history.get(b).unwrap().unwrap();
    assert_eq!(rev.name, "coop1");
    assert_eq!(texts.old.as_deref(), Some("port = 1\n"));
    assert_eq!(texts.new.as_deref(), Some("port = 2\n"));
    assert!(history.get(c + 1).unwrap().is_none());
    let blueprints = Filter {
        kind: Some(Kind::Blueprint),
        name: None,
    };
    assert!(history.list(blueprints, None).unwrap().is_empty());
    let one = Filter {
        kind: Some(Kind::Instance),
        name: Some("coop1"),
    };
    assert_eq!(history.list(one, Some(1)).unwrap()[0].rev, c);
    assert_eq!(
        history
            .latest(Kind::Instance, "coop1")
            .unwrap()
            .unwrap()
            .0
            .rev,
        c
    );
}

#[test]
fn refuses_an_admin_dir_others_can_enter() {
    let dir = Dir::new("admin");
    let admin = dir.0.join("admin");
    fs::create_dir(&admin).unwrap();
    fs::set_permissions(&admin, fs::Permissions::from_mode(0o755)).unwrap();
    let err = History::open(&admin).unwrap_err();
    assert!(matches!(err, HistoryError::AdminDir { .. }), "{err}");
}

#[test]
fn scan_records_changes_made_outside() {
    let dir = Dir::new("scan");
    let etc = dir.0.join("etc");
    fs::create_dir_all(etc.join("instances")).unwrap();
    fs::create_dir_all(etc.join("blueprints")).unwrap();
    fs::write(etc.join("host.toml"), "port_range = [27015, 27030]\n").unwrap();
    fs::write(etc.join("instances/a.toml"), "port = 27015\n").unwrap();
    fs::write(etc.join("instances/.a.toml.123456"), "a temp file\n").unwrap();
    fs::write(etc.join("blueprints/coop.toml"), "map = \"c1m1_hotel\"\n").unwrap();
    let history = History::open(&dir.0.join("admin")).unwrap();
    let first = scan(&history, &etc).unwrap();
    assert_eq!(first.len(), 3, "host, a, coop appeared");
    assert!(scan(&history, &etc).unwrap().is_empty(), "nothing changed");

    fs::write(etc.join("instances/a.toml"), "port = 27016\n").unwrap();
    fs::remove_file(etc.join("blueprints/coop.toml")).unwrap();
    let second = scan(&history, &etc).unwrap();
    assert_eq!(second.len(), 2);
    let (rev, texts) = history.get(second[0]).unwrap().unwrap();
    assert_eq!(
        (rev.kind, rev.name.as_str(), rev.verb.as_str()),
        (Kind::Instance, "a", OUTSIDE)
    );
    assert_eq!(texts.old.as_deref(), Some("port = 27015\n"));
    assert_eq!(texts.new.as_deref(), Some("port = 27016\n"));
    let (rev, texts) = history.get(second[1]).unwrap().unwrap();
    assert_eq!((rev.kind, rev.action), (Kind::Blueprint, Action::Removed));
    assert_eq!(texts.old.as_deref(), Some("map = \"c1m1_hotel\"\n"));
    assert!(
        scan(&history, &etc).unwrap().is_empty(),
        "a removal is recorded once"
    );

    // A change recorded through `record` is not taken for an outside one.
    let file = etc.join("instances/a.toml");
    fs::write(&file, "port = 27017\n").unwrap();
    history
        .record(&change(
            &file,
            Some("port = 27016\n"),
            Some("port = 27017\n"),
        ))
        .unwrap();
    assert!(scan(&history, &etc).unwrap().is_empty());

    // A run against another config dir leaves this one's revisions alone.
    let other = dir.0.join("other");
    fs::create_dir_all(&other).unwrap();
    assert!(scan(&history, &other).unwrap().is_empty());
    assert!(scan(&history, &etc).unwrap().is_empty());
}

#[test]
fn hashes_are_sha256() {
    assert_eq!(
        hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
