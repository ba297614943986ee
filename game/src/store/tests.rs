//! The store on a temporary directory (root-free: the store is opened beneath a plain
//! directory descriptor; whiteouts, opaque directories and attackers are in
//! `tests/privileged_store.rs`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use left4me_statedir::Dir;
use rustix::fs::{Mode, OFlags};

use super::*;

/// A temporary state dir, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "left4me-store-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
    pub(crate) fn dir(&self) -> Dir {
        let fd = rustix::fs::open(
            &self.0,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        Dir::from_fd(fd, self.0.clone())
    }
    pub(crate) fn store(&self) -> Store {
        Store::open_in(&self.dir(), true).unwrap().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn new(build_id: u64, how: How) -> NewVersion {
    NewVersion {
        build_id,
        branch: "public".into(),
        how,
        platform_workaround: false,
    }
}

/// Publishes a version over `parent` whose tree holds `files` (name, contents).
fn publish(store: &Store, parent: Option<&str>, build: u64, files: &[(&str, &str)]) -> Version {
    let staging = store.begin(parent).unwrap();
    for (name, text) in files {
        let path = staging.tree.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let how = if parent.is_some() {
        How::Update
    } else {
        How::Install
    };
    store.publish(staging, new(build, how)).unwrap()
}

#[test]
fn open_without_create_finds_nothing_and_create_makes_the_layout() {
    let s = Scratch::new("open");
    assert!(Store::open_in(&s.dir(), false).unwrap().is_none());
    let store = s.store();
    assert!(s.path().join("game/versions").is_dir());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(s.path().join("game/versions"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(store.current().unwrap(), None);
    assert_eq!(store.versions().unwrap(), []);
    assert_eq!(store.resolve(None).unwrap(), GameLayers::Installation);
    assert_eq!(GameLayers::Installation.layers(), ["installation"]);
    assert!(Store::open_in(&s.dir(), false).unwrap().is_some());
}

#[test]
fn begin_publish_chain_and_current() {
    let s = Scratch::new("publish");
    let store = s.store();
    let a = publish(
        &store,
        None,
        100,
        &[("srcds_run", "#!/bin/sh\n"), ("a", "aaaa")],
    );
    assert_eq!(a.id, "100");
    assert_eq!(a.bytes, 14);
    assert_eq!(a.parent, None);
    assert_eq!(a.how, How::Install);
    assert_eq!(store.current().unwrap().as_deref(), Some("100"));
    assert_eq!(
        fs::read_to_string(s.path().join("game/current")).unwrap(),
        "100\n"
    );
    assert!(!s.path().join("game/versions/100/work").exists());

    let staging = store.begin(Some("100")).unwrap();
    assert_eq!(staging.job.len(), 8);
    assert!(staging.job.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        staging.dir,
        s.path().join(format!("game/versions/.new-{}", staging.job))
    );
    assert_eq!(staging.tree, staging.dir.join("tree"));
    assert!(staging.work.is_dir() && staging.tree.is_dir());
    assert_eq!(staging.lowers, [s.path().join("game/versions/100/tree")]);
    fs::write(staging.tree.join("b"), "bb").unwrap();
    let b = store.publish(staging, new(200, How::Update)).unwrap();
    assert_eq!(
        (b.id.as_str(), b.parent.as_deref(), b.bytes),
        ("200", Some("100"), 2)
    );
    assert_eq!(store.current().unwrap().as_deref(), Some("200"));
    assert_eq!(
        store.layers("200").unwrap(),
        ["game/versions/200/tree", "game/versions/100/tree"]
    );
    let ids: Vec<String> = store
        .chain("200")
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(ids, ["200", "100"]);
    assert_eq!(
        store.resolve(None).unwrap(),
        GameLayers::Version {
            id: "200".into(),
            layers: vec![
                "game/versions/200/tree".into(),
                "game/versions/100/tree".into()
            ],
        }
    );
    assert_eq!(
        store.resolve(Some("100")).unwrap().layers(),
        ["game/versions/100/tree"]
    );
    // The same build again gets a suffix.
    let c = publish(&store, Some("200"), 200, &[]);
    assert_eq!(c.id, "200-2");
    let d = publish(&store, Some("200-2"), 200, &[]);
    assert_eq!(d.id, "200-3");
    let all: Vec<String> = store
        .versions()
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(all, ["100", "200", "200-2", "200-3"]);
    // version.toml is what the docs say.
    let text = fs::read_to_string(s.path().join("game/versions/200/version.toml")).unwrap();
    for line in [
        "build_id = 200",
        "branch = \"public\"",
        "parent = \"100\"",
        "how = \"update\"",
        "platform_workaround = false",
        "bytes = 2",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[test]
fn unknown_ids_and_broken_chains_are_named() {
    let s = Scratch::new("missing");
    let store = s.store();
    let e = store.version("42").unwrap_err();
    assert!(
        matches!(&e, StoreError::NotFound { id, .. } if id == "42"),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("game version 42 does not exist"),
        "{e}"
    );
    let e = store.resolve(Some("42")).unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    let e = store.version("../x").unwrap_err();
    assert!(matches!(e, StoreError::BadId { .. }), "{e}");
    publish(&store, None, 1, &[("f", "x")]);
    publish(&store, Some("1"), 2, &[]);
    store.versions.rename("1", ".gone").unwrap();
    let e = store.chain("2").unwrap_err();
    assert_eq!(
        e.to_string(),
        "game version 2 builds on 1, which does not exist: the chain is broken; install the game \
         again (`left4mectl game validate`)"
    );
    let e = store.set_current("9").unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
}

#[test]
fn a_loop_of_parents_is_refused() {
    let s = Scratch::new("loop");
    let store = s.store();
    publish(&store, None, 1, &[]);
    publish(&store, Some("1"), 2, &[]);
    let meta = s.path().join("game/versions/1/version.toml");
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, format!("parent = \"2\"\n{text}")).unwrap();
    let e = store.chain("2").unwrap_err();
    assert!(matches!(e, StoreError::ChainTooLong { .. }), "{e}");
}

#[test]
fn a_long_chain_is_squashed_into_a_full_tree() {
    let s = Scratch::new("squash");
    let store = s.store();
    publish(
        &store,
        None,
        1,
        &[("srcds_run", "1"), ("keep", "k"), ("dir/a", "a1")],
    );
    publish(&store, Some("1"), 2, &[("dir/a", "a2")]);
    publish(&store, Some("2"), 3, &[("dir/b", "b3")]);
    let last = publish(&store, Some("3"), 4, &[("srcds_run", "4")]);
    assert_eq!(store.chain("4").unwrap().len(), MAX_CHAIN);
    assert_eq!(last.how, How::Update);
    let squashed = publish(&store, Some("4"), 5, &[("dir/c", "c5")]);
    assert_eq!(squashed.how, How::Squash);
    assert_eq!(squashed.parent, None);
    assert_eq!(store.layers("5").unwrap(), ["game/versions/5/tree"]);
    let tree = s.path().join("game/versions/5/tree");
    for (name, want) in [
        ("srcds_run", "4"),
        ("keep", "k"),
        ("dir/a", "a2"),
        ("dir/b", "b3"),
        ("dir/c", "c5"),
    ] {
        assert_eq!(fs::read_to_string(tree.join(name)).unwrap(), want, "{name}");
    }
    assert_eq!(squashed.bytes, 1 + 1 + 2 + 2 + 2);
    assert!(!s.path().join("game/versions/5/squashed").exists());
    // The old chain is untouched, and gc may now drop it.
    assert_eq!(
        fs::read_to_string(s.path().join("game/versions/1/tree/dir/a")).unwrap(),
        "a1"
    );
    let removed = store.gc_keeping(&BTreeSet::new()).unwrap();
    assert_eq!(removed, ["1", "2", "3", "4"]);
}

#[test]
fn gc_keeps_current_kept_and_their_parents() {
    let s = Scratch::new("gc");
    let store = s.store();
    publish(&store, None, 1, &[("f", "1")]);
    publish(&store, Some("1"), 2, &[("f", "2")]);
    publish(&store, None, 3, &[("f", "3")]);
    publish(&store, Some("3"), 4, &[("f", "4")]);
    publish(&store, None, 5, &[("f", "5")]);
    // current = 5; keep 2 (so 1 too); 3 and 4 go.
    let keep: BTreeSet<String> = ["2".to_owned(), "77".to_owned()].into();
    let removed = store.gc_keeping(&keep).unwrap();
    assert_eq!(removed, ["3", "4"]);
    let left: Vec<String> = store
        .versions()
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(left, ["1", "2", "5"]);
    assert_eq!(store.gc_keeping(&keep).unwrap(), Vec::<String>::new());
}

#[test]
fn begin_removes_what_dead_jobs_left_and_abandon_removes_staging() {
    let s = Scratch::new("stale");
    let store = s.store();
    let dead = store.begin(None).unwrap();
    fs::write(dead.tree.join("half"), "x").unwrap();
    fs::create_dir_all(s.path().join("game/versions/.old-7/tree")).unwrap();
    let next = store.begin(None).unwrap();
    assert!(!dead.dir.exists());
    assert!(!s.path().join("game/versions/.old-7").exists());
    assert!(next.dir.exists());
    assert_eq!(store.versions().unwrap(), []);
    let path = next.dir.clone();
    store.abandon(next.clone()).unwrap();
    assert!(!path.exists());
    let e = store.publish(next, new(1, How::Install)).unwrap_err();
    assert!(matches!(e, StoreError::StagingGone { .. }), "{e}");
    assert_eq!(store.current().unwrap(), None);
}

#[test]
fn a_bad_current_file_is_named() {
    let s = Scratch::new("current");
    let store = s.store();
    fs::write(s.path().join("game/current"), "../etc\n").unwrap();
    let e = store.current().unwrap_err();
    assert!(
        e.to_string().contains("game/current: holds \"../etc\""),
        "{e}"
    );
}

#[test]
fn running_versions_come_from_the_tagged_mounts() {
    let table = b"1 0 254:0 / / rw - ext4 /dev/vda rw\n\
40 1 0:40 / /s/runtime/a/merged rw - overlay left4me:a:00ff rw,lowerdir+=/s/overlays/x,lowerdir+=/s/game/versions/200/tree,lowerdir+=/s/game/versions/100/tree,upperdir=/s/runtime/a/upper,workdir=/s/runtime/a/work\n\
41 1 0:41 / /s/runtime/b/merged rw - overlay left4me:b:00ff rw,lowerdir+=/s/installation,upperdir=/s/runtime/b/upper,workdir=/s/runtime/b/work\n\
42 1 0:42 / /s/runtime/c/merged rw - overlay left4me:c:00ff rw,lowerdir+=/t/game/versions/9/tree\n\
43 1 0:43 / /elsewhere rw - overlay other rw,lowerdir+=/s/game/versions/300/tree\n\
44 1 0:44 / /s/runtime/d/merged rw - overlay left4me:d:00ff rw,lowerdir=/s/game/versions/1-2/tree:/s/game/versions/1/tree\n";
    let entries = left4me_overlay::mountinfo::parse(table).unwrap();
    let running = running_versions_in(&entries, Path::new("/s"));
    let want: Vec<(&str, &str)> = vec![("a", "200"), ("d", "1-2")];
    assert_eq!(
        running
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        want
    );
    let mounted: Vec<String> = running::mounted_in(&entries, Path::new("/s"))
        .into_iter()
        .collect();
    assert_eq!(mounted, ["1", "1-2", "100", "200", "300"]);
    assert_eq!(
        running::tree_path(Path::new("/s"), "7"),
        Path::new("/s/game/versions/7/tree")
    );
}

#[test]
fn metadata_round_trips_and_refuses_what_toml_cannot_hold() {
    let version = Version {
        id: "7-2".into(),
        build_id: 7,
        branch: "beta".into(),
        parent: Some("7".into()),
        created: 1,
        bytes: 2,
        how: How::Validate,
        platform_workaround: true,
    };
    let path = Path::new("/s/game/versions/7-2/version.toml");
    let text = meta::render(&version, path).unwrap();
    assert_eq!(meta::parse("7-2", path, &text).unwrap(), version);
    let e = meta::parse(
        "7",
        path,
        "build_id = 7\nbranch = \"public\"\ncreated = 1\nbytes = 1\nhow = \"guess\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/s/game/versions/7-2/version.toml: "),
        "{e}"
    );
    let e = meta::parse(
        "7",
        path,
        &text.replace("parent = \"7\"", "parent = \"../x\""),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("parent \"../x\" is not a version id"),
        "{e}"
    );
    let huge = Version {
        build_id: u64::MAX,
        ..version
    };
    // Every id the ID rule allows (20 digits) is written and read back.
    let text = meta::render(&huge, path).unwrap();
    assert_eq!(meta::parse("7-2", path, &text).unwrap(), huge);
}
