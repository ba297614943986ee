//! `overlay rm` and `overlay create` act on overlay content as root (needs root): only through
//! descriptors beneath the state dir, and only under the overlay's lock. Each test keeps a
//! canary outside the state dir and checks it survives whatever the game user swapped in.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};

use common::Fixture;
use left4me_jobs::OverlayDirs;

/// A fixture with a root-owned state dir (0755), a manual overlay `maps` defined, and a canary
/// dir `canary/maps/keep` beside the state dir.
fn fixture() -> (Fixture, PathBuf) {
    common::require_root();
    let fx = Fixture::empty();
    fs::set_permissions(fx.path("state"), fs::Permissions::from_mode(0o755)).unwrap();
    fx.write("etc/overlays/maps.toml", "kind = \"manual\"\n");
    let canary = fx.path("canary");
    fs::create_dir_all(canary.join("maps/sub")).unwrap();
    fs::write(canary.join("maps/keep"), "keep me\n").unwrap();
    fs::write(canary.join("maps/sub/keep"), "keep me\n").unwrap();
    (fx, canary)
}

fn intact(canary: &Path) -> bool {
    fs::read_to_string(canary.join("maps/keep")).is_ok_and(|t| t == "keep me\n")
        && fs::read_to_string(canary.join("maps/sub/keep")).is_ok_and(|t| t == "keep me\n")
}

#[test]
fn privileged_rm_refuses_an_overlays_dir_replaced_by_a_symlink() {
    let (fx, canary) = fixture();
    // The game user (who owned overlays/ before the ownership rule) swapped it for a link.
    symlink(&canary, fx.path("state/overlays")).unwrap();
    let run = fx.run(&["overlay", "rm", "maps", "--yes"]);
    assert_ne!(run.status, 0, "{run:#?}");
    assert!(run.stderr.contains("overlays"), "{run:#?}");
    assert!(intact(&canary), "the canary was touched: {run:#?}");
    assert!(
        fx.path("etc/overlays/maps.toml").exists(),
        "nothing was changed"
    );
}

#[test]
fn privileged_rm_refuses_a_game_user_owned_overlays_dir() {
    let (fx, canary) = fixture();
    fs::create_dir_all(fx.path("state/overlays/maps")).unwrap();
    std::os::unix::fs::chown(fx.path("state/overlays"), Some(65534), Some(65534)).unwrap();
    let run = fx.run(&["overlay", "rm", "maps", "--yes"]);
    assert_ne!(run.status, 0, "{run:#?}");
    assert!(
        run.stderr
            .contains("systemd-tmpfiles --create left4me.conf"),
        "{run:#?}"
    );
    assert!(fx.path("state/overlays/maps").is_dir());
    assert!(intact(&canary));
}

#[test]
fn privileged_rm_stops_at_links_inside_the_content() {
    let (fx, canary) = fixture();
    let overlays = fx.path("state/overlays");
    fs::create_dir_all(overlays.join("maps/left4dead2")).unwrap();
    fs::create_dir_all(overlays.join(".maps.build-0a0a0a0a")).unwrap();
    fs::create_dir_all(overlays.join(".maps.old-0b0b0b0b")).unwrap();
    // Links where directories were: in the content, a stale build dir and old content.
    symlink(canary.join("maps"), overlays.join("maps/left4dead2/addons")).unwrap();
    symlink(
        canary.join("maps"),
        overlays.join(".maps.build-0a0a0a0a/sub"),
    )
    .unwrap();
    symlink(canary.join("maps"), overlays.join(".maps.old-0b0b0b0b/sub")).unwrap();
    symlink(canary.join("maps"), overlays.join(".maps.old-0c0c0c0c")).unwrap();
    let run = fx.run(&["overlay", "rm", "maps", "--yes"]);
    assert_eq!(run.status, 0, "{run:#?}");
    assert!(intact(&canary), "the canary was touched: {run:#?}");
    let left: Vec<_> = fs::read_dir(&overlays).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn privileged_rm_of_a_busy_overlay_fails_and_deletes_nothing() {
    let (fx, _canary) = fixture();
    fs::create_dir_all(fx.path("state/overlays/maps/left4dead2")).unwrap();
    fs::write(fx.path("state/overlays/maps/left4dead2/keep"), "x").unwrap();
    fs::create_dir_all(fx.path("state/overlays/.maps.build-0a0a0a0a")).unwrap();
    // A running `overlay build maps` holds this lock.
    let _build = OverlayDirs::new(&fx.path("state"), "maps")
        .lock(&fx.path("admin/locks"))
        .unwrap();
    let run = fx.refused(&["overlay", "rm", "maps", "--yes"], "overlay maps is busy");
    assert!(run.stderr.contains("nothing was changed"), "{run:#?}");
    assert!(fx.path("state/overlays/maps/left4dead2/keep").exists());
    assert!(fx.path("state/overlays/.maps.build-0a0a0a0a").exists());
}

#[test]
fn privileged_create_makes_the_content_dir_for_the_game_user() {
    common::require_root();
    let fx = Fixture::empty();
    fs::set_permissions(fx.path("state"), fs::Permissions::from_mode(0o755)).unwrap();
    fx.write("etc/host.toml", "game_user = \"nobody\"\n");
    fs::create_dir(fx.path("state/overlays")).unwrap();
    fs::set_permissions(fx.path("state/overlays"), fs::Permissions::from_mode(0o755)).unwrap();
    let run = fx.run(&["overlay", "create", "maps"]);
    assert_eq!(run.status, 0, "{run:#?}");
    assert!(
        run.stdout
            .contains("created [ROOT]/state/overlays/maps, owned by nobody"),
        "{run:#?}"
    );
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(fx.path("state/overlays/maps")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (65534, 0o755));
}
