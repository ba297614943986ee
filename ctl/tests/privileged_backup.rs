//! `left4mectl backup` and `restore` against throwaway config, state and admin dirs, as root
//! (upper layers are the game user's: restore gives them to it, and root reads them only
//! through descriptors beneath a root-owned state dir). The game user is `nobody`.
//!
//! Backup → restore into an empty host gives the same files back with their modes and
//! owners; every kind of corrupted archive is refused with nothing written; `--replace` and
//! `--dry-run` do what they say.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use common::{Fixture, Run, require_root};

const HOST: &str = "game_user = \"nobody\"\n";
const COOP1: &str =
    "blueprint = \"coop\"\nport = 27015\noverlays = [\"overlays/maps\", \"overlays/sm\"]\n";
const VS1: &str = "port = 27020\n";

/// A host with two instances, a blueprint, a manual and a script overlay, an upper layer with
/// files of several modes (and a symbolic link, which is not archived) and an RCON password.
fn source_host() -> Fixture {
    require_root();
    let fx = Fixture::empty();
    fx.write("etc/host.toml", HOST);
    fx.write("etc/blueprints/coop.toml", "maxplayers = 4\n");
    fx.write("etc/instances/coop1.toml", COOP1);
    fx.write("etc/instances/vs1.toml", VS1);
    fx.write("etc/overlays/maps.toml", "kind = \"manual\"\n");
    fx.write(
        "etc/overlays/sm.toml",
        "kind = \"script\"\nscript = \"true\"\n",
    );
    fx.write("state/overlays/maps/left4dead2/maps/c1.vpk", "vpk bytes");
    fx.write(
        "state/runtime/coop1/upper/left4dead2/logs/L0001.log",
        "L 12/06/2026 - hello\n",
    );
    fx.write(
        "state/runtime/coop1/upper/left4dead2/cfg/server.cfg",
        "hostname x\n",
    );
    let random: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(
        fx.path("state/runtime/coop1/upper/left4dead2/data.bin"),
        random,
    )
    .unwrap();
    fs::set_permissions(
        fx.path("state/runtime/coop1/upper/left4dead2/logs/L0001.log"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", fx.path("state/runtime/coop1/upper/link")).unwrap();
    chown_tree(&fx.path("state/runtime/coop1/upper"));
    chown_tree(&fx.path("state/overlays/maps"));
    fx.run(&["rcon-password", "coop1", "--rotate"]).assert_ok();
    fx
}

fn chown_tree(path: &Path) {
    let status = std::process::Command::new("chown")
        .args(["-hR", "nobody:"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file and dir under the fixture (but the locks the verbs take, the spec history
/// database and the admin dir holding them) with its mode, owner
/// and bytes.
fn snapshot(fx: &Fixture) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, (u32, u32, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bookkeeping =
                name == ".left4mectl.lock" || name == "locks" || name.starts_with("left4me.db");
            if bookkeeping || name.ends_with(".tar.zst") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let bytes = if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            // Root's admin dir itself appears on any run (the spec history is opened there).
            if rel != Path::new("admin") {
                out.insert(rel, (meta.mode(), meta.uid(), bytes));
            }
            if meta.is_dir() {
                walk(&path, base, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&fx.root, &fx.root, &mut out);
    out
}

fn backup(fx: &Fixture) -> PathBuf {
    let archive = fx.path("backup.tar.zst");
    fx.run(&["backup", "-o", archive.to_str().unwrap()])
        .assert_ok();
    archive
}

fn restore(target: &Fixture, archive: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["restore", archive.to_str().unwrap()];
    args.extend_from_slice(extra);
    target.run(&args)
}

/// Runs a restore that must be refused (exit 2, `needle` in the error) and change nothing.
fn refused(target: &Fixture, archive: &Path, extra: &[&str], needle: &str) {
    let before = snapshot(target);
    let run = restore(target, archive, extra);
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains(needle), "want {needle:?}: {run:#?}");
    assert_eq!(
        snapshot(target),
        before,
        "a refused restore wrote something"
    );
}

#[test]
fn privileged_backup_then_restore_on_an_empty_host_gives_the_same_files() {
    let source = source_host();
    let archive = backup(&source);
    assert_eq!(fs::metadata(&archive).unwrap().mode() & 0o7777, 0o600);

    let target = Fixture::empty();
    let run = restore(&target, &archive, &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains("left4mectl start coop1 vs1"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("left4mectl overlay build sm"),
        "{run:#?}"
    );

    let mut want = snapshot(&source);
    // Not archived: the link, and the script overlay's (absent) content.
    want.remove(Path::new("state/runtime/coop1/upper/link"));
    let got = snapshot(&target);
    for (path, entry) in &want {
        let dirs_made_at_start = ["state/runtime/coop1/work", "state/runtime/coop1/merged"];
        if dirs_made_at_start.iter().any(|d| path.starts_with(d)) {
            continue;
        }
        assert_eq!(got.get(path), Some(entry), "{}", path.display());
    }
    for path in got.keys() {
        let made = path.starts_with("state/runtime/coop1/work")
            || path.starts_with("state/runtime/coop1/merged");
        assert!(
            want.contains_key(path) || made,
            "unexpected {}",
            path.display()
        );
    }
    let secret = fs::metadata(target.path("admin/rcon/coop1")).unwrap();
    assert_eq!(secret.mode() & 0o7777, 0o600);
    // Each spec written is a revision of the spec history, by the verb `restore`.
    let history = target.run(&["history", "coop1"]);
    history.assert_ok();
    assert!(history.stdout.contains("restore"), "{history:#?}");
}

#[test]
fn privileged_restore_refuses_an_existing_instance_unless_replace() {
    let source = source_host();
    let archive = backup(&source);
    let target = Fixture::empty();
    restore(&target, &archive, &[]).assert_ok();
    refused(&target, &archive, &[], "pass --replace");
    refused(&target, &archive, &["vs1"], "vs1.toml exists");

    let log = target.path("state/runtime/coop1/upper/left4dead2/logs/L0001.log");
    fs::write(&log, "changed since\n").unwrap();
    target.write("etc/instances/vs1.toml", "port = 27021\n");
    restore(&target, &archive, &["--replace"]).assert_ok();
    assert_eq!(fs::read_to_string(&log).unwrap(), "L 12/06/2026 - hello\n");
    assert_eq!(target.read("etc/instances/vs1.toml"), VS1);
    assert_eq!(fs::metadata(&log).unwrap().uid(), 65534);
    assert!(!target.path("state/runtime/coop1/.upper-restore").exists());
}

#[test]
fn privileged_restore_dry_run_writes_nothing() {
    let source = source_host();
    let archive = backup(&source);
    let target = Fixture::empty();
    let before = snapshot(&target);
    let run = restore(&target, &archive, &["--dry-run"]);
    run.assert_ok();
    assert!(run.stdout.contains("would restore"), "{run:#?}");
    assert!(run.stdout.contains("upper layer of coop1"), "{run:#?}");
    assert_eq!(snapshot(&target), before);
}

#[test]
fn privileged_restore_validates_against_the_host_before_writing() {
    let source = source_host();
    let archive = backup(&source);
    let target = Fixture::empty();
    target.write("etc/instances/other.toml", "port = 27015\n");
    refused(&target, &archive, &[], "27015");
    refused(&target, &archive, &["nosuch"], "no instance nosuch");
}

#[test]
fn privileged_backup_keep_rotates_the_default_dir() {
    let source = source_host();
    for _ in 0..3 {
        source.run(&["backup", "vs1", "--keep", "2"]).assert_ok();
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let kept: Vec<_> = fs::read_dir(source.path("admin/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter()
            .all(|n| n.starts_with("left4me-") && n.ends_with(".tar.zst"))
    );
}

/// The tar stream inside `archive`, decompressed.
fn tar_bytes(archive: &Path) -> Vec<u8> {
    zstd::decode_all(fs::File::open(archive).unwrap()).unwrap()
}

/// Writes `tar` compressed as `name` beside `archive`.
fn repack(archive: &Path, name: &str, tar: &[u8]) -> PathBuf {
    let path = archive.with_file_name(name);
    fs::write(&path, zstd::encode_all(tar, 3).unwrap()).unwrap();
    path
}

/// The archive's tar with one more entry appended before the end: `path` written raw into the
/// header (so `..` and absolute paths get through), of `kind`.
fn with_extra_entry(archive: &Path, path: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let plain = tar_bytes(archive);
    let mut input = tar::Archive::new(&plain[..]);
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        out.append(&header, &body[..]).unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
    }
    header.set_cksum();
    out.append(&header, data).unwrap();
    out.into_inner().unwrap()
}

#[test]
fn privileged_restore_refuses_corrupted_archives_before_writing() {
    let source = source_host();
    let archive = backup(&source);
    let target = Fixture::empty();
    let bytes = fs::read(&archive).unwrap();
    let corrupt = "not a usable left4me backup";

    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let flipped_path = archive.with_file_name("flipped.tar.zst");
    fs::write(&flipped_path, flipped).unwrap();
    refused(&target, &flipped_path, &[], corrupt);

    let truncated = archive.with_file_name("truncated.tar.zst");
    fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(&target, &truncated, &[], corrupt);

    fs::write(
        archive.with_file_name("garbage.tar.zst"),
        b"not zstd at all",
    )
    .unwrap();
    refused(
        &target,
        &archive.with_file_name("garbage.tar.zst"),
        &[],
        corrupt,
    );

    let regular = tar::EntryType::Regular;
    let cases = [
        (
            "dotdot",
            "upper/coop1/../../../etc/evil",
            regular,
            "not in the manifest",
        ),
        ("absolute", "/etc/evil", regular, "not in the manifest"),
        (
            "symlink",
            "upper/coop1/link",
            tar::EntryType::Symlink,
            "symbolic link",
        ),
        (
            "hardlink",
            "upper/coop1/hard",
            tar::EntryType::Link,
            "hard link",
        ),
        (
            "device",
            "upper/coop1/dev",
            tar::EntryType::Char,
            "device file",
        ),
        (
            "unlisted",
            "upper/coop1/extra.txt",
            regular,
            "not in the manifest",
        ),
    ];
    for (name, path, kind, needle) in cases {
        let tar = with_extra_entry(&archive, path, kind, b"evil\n");
        let bad = repack(&archive, &format!("{name}.tar.zst"), &tar);
        refused(&target, &bad, &[], needle);
    }

    // A content byte changed under an intact zstd stream: the manifest's checksum catches it.
    let mut tar = tar_bytes(&archive);
    let at = tar
        .windows(20)
        .position(|w| w == b"L 12/06/2026 - hello")
        .unwrap();
    tar[at] = b'X';
    let bad = repack(&archive, "checksum.tar.zst", &tar);
    refused(&target, &bad, &[], "does not match its checksum");

    // Nothing of any of them landed; the good archive still restores.
    assert!(!target.path("etc/instances").exists());
    restore(&target, &archive, &[]).assert_ok();
}
