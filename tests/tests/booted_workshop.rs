//! Workshop overlays end to end in a booted systemd (needs root): the stand-in Steam Web API
//! and file server (`left4me-workshop-standin`) on 192.0.2.11:80 inside the system's own
//! network namespace, the real download sandbox (curl in a `left4me-workshop-*` unit), the
//! cache of root-owned hard-linked VPKs, a hardened instance whose stand-in game server opens
//! every `addons/*.vpk` through its merged tree and lists what it holds, the refresh while the
//! instance runs ("content update pending"), gc, refused downloads, and API retries. One boot.

mod booted_support;
mod build_support;

use std::os::unix::fs::MetadataExt as _;

use anyhow::{Context, Result, ensure};
use booted_support::{boot, builder, ctl, ctl_ok, ctl_status, text};
use build_support::{build, build_dirs, build_ok, define_overlay};
use left4me_tests::workshop::FakeWorkshop;
use left4me_tests::{BootedSystem, STATE_DIR, require_root};
use left4me_workshop_standin::fixture::{Fixture, standard::*};
use serde_json::Value;

/// The items a build links into `camp`: the collection's (with its nested one) and the
/// cycle's, all three good ones.
const OK: [u64; 3] = [OK_1, OK_2, OK_3];

/// The workshop overlay definition the test edits: the good items come through the
/// collections, the explicit ones are the left-out kinds plus `extra`.
fn camp_definition(extra: &[u64]) -> String {
    let mut items = vec![OK_1, REMOVED, BANNED, WRONG_APP];
    items.extend_from_slice(extra);
    let list = |ids: &[u64]| {
        ids.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "kind = \"workshop\"\nitems = [{}]\ncollections = [{}]\nexclude = []\n",
        list(&items),
        list(&[COLLECTION, CYCLE_A])
    )
}

/// The current `hcontent_file` of item `id` at the stand-in.
fn hcontent(ws: &FakeWorkshop<'_>, id: u64) -> u64 {
    ws.with_fixture(|f| f.items[&id].current().hcontent)
}

fn cache_file(id: u64, hcontent: u64) -> String {
    format!("{STATE_DIR}/workshop_cache/{id}/{hcontent}.vpk")
}

/// (inode, link count, uid, gid, mode) of a path inside, from the host.
fn stat(sys: &BootedSystem, inside: &str) -> Result<(u64, u64, u32, u32, u32)> {
    let meta = std::fs::symlink_metadata(sys.host_path(inside))
        .with_context(|| format!("stat {inside}"))?;
    Ok((
        meta.ino(),
        meta.nlink(),
        meta.uid(),
        meta.gid(),
        meta.mode() & 0o7777,
    ))
}

/// The content's `left4dead2/addons` entries of overlay `name` with their inodes, sorted.
fn addons(sys: &BootedSystem, name: &str) -> Result<Vec<(String, u64)>> {
    let dir = sys.host_path(format!("{STATE_DIR}/overlays/{name}/left4dead2/addons"));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        found.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.metadata()?.ino(),
        ));
    }
    found.sort();
    Ok(found)
}

fn vpk_names(ids: &[u64]) -> Vec<String> {
    let mut names: Vec<String> = ids.iter().map(|id| format!("{id}.vpk")).collect();
    names.sort();
    names
}

/// What the overlay's content dir is (its inode) and holds: compared before and after a
/// failed build.
fn content_identity(sys: &BootedSystem, name: &str) -> Result<(u64, Vec<(String, u64)>)> {
    let (ino, ..) = stat(sys, &format!("{STATE_DIR}/overlays/{name}"))?;
    Ok((ino, addons(sys, name)?))
}

/// The stand-in game's `left4me_addons` answer over RCON: the add-ons it mounted at map load.
fn game_addons(sys: &BootedSystem, instance: &str) -> Result<String> {
    ctl_ok(sys, &["rcon", instance, "left4me_addons"])
}

/// The `file` line the stand-in game prints for version `n` of item `id`.
fn holds(id: u64, n: u32) -> String {
    format!("Addon {id}.vpk: file missions/{id}_v{n}.txt")
}

fn list_row(sys: &BootedSystem, instance: &str) -> Result<Value> {
    let out = ctl_ok(sys, &["list", "--json"])?;
    let rows: Value = serde_json::from_str(&out).with_context(|| format!("list json:\n{out}"))?;
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == instance))
        .cloned()
        .with_context(|| format!("{instance} not in list --json:\n{out}"))
}

fn old_content_dirs(sys: &BootedSystem, name: &str) -> Result<Vec<String>> {
    let prefix = format!(".{name}.old-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(sys.host_path(format!("{STATE_DIR}/overlays")))? {
        let entry = entry?.file_name().to_string_lossy().into_owned();
        if entry.starts_with(&prefix) {
            found.push(entry);
        }
    }
    Ok(found)
}

fn exists(sys: &BootedSystem, inside: &str) -> bool {
    sys.host_path(inside).exists()
}

/// The first build: the left-out items are warned about by id, the good ones downloaded once
/// into root's 0444 cache files linked (count 2) into `overlays/camp/left4dead2/addons`.
fn first_build(sys: &BootedSystem, ws: &FakeWorkshop<'_>) -> Result<()> {
    let csv = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    ctl_ok(
        sys,
        &[
            "overlay",
            "create",
            "camp",
            "--workshop",
            &csv(&[OK_1, REMOVED, BANNED, WRONG_APP]),
            "--collection",
            &format!("https://steamcommunity.com/sharedfiles/filedetails/?id={COLLECTION}"),
            "--collection",
            &CYCLE_A.to_string(),
        ],
    )?;
    let out = build_ok(sys, "camp")?;
    eprintln!("left4me workshop: first build:\n{out}");
    for (id, why) in [
        (REMOVED, "removed upstream"),
        (BANNED, "banned"),
        (WRONG_APP, "not Left 4 Dead 2"),
    ] {
        ensure!(
            out.lines().any(|l| l.starts_with("warning:")
                && l.contains(&format!("item {id}"))
                && l.contains(why)),
            "no warning naming {id} ({why}):\n{out}"
        );
    }
    ensure!(out.contains("3 item(s), 3 left out"), "{out}");
    // The first good build turns the nightly refresh on.
    ensure!(
        out.contains("left4me-overlay-refresh.timer refreshes it nightly"),
        "{out}"
    );
    ensure!(
        sys.run_stdout(["systemctl", "is-enabled", "left4me-overlay-refresh.timer"])?
            .trim()
            == "enabled",
        "the refresh timer is not enabled"
    );
    ensure!(out.contains("downloaded 3 file(s)"), "{out}");
    ensure!(
        ws.file_requests() == 3,
        "{} file requests",
        ws.file_requests()
    );
    for id in OK {
        let (_, links, uid, gid, mode) = stat(sys, &cache_file(id, hcontent(ws, id)))?;
        ensure!(
            (links, uid, gid, mode) == (2, 0, 0, 0o444),
            "cache file of {id}: links {links}, owner {uid}:{gid}, mode {mode:o}"
        );
    }
    let tree = addons(sys, "camp")?;
    ensure!(
        tree.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() == vpk_names(&OK),
        "{tree:?}"
    );
    for (name, ino) in &tree {
        let id: u64 = name.trim_end_matches(".vpk").parse()?;
        let (cache_ino, ..) = stat(sys, &cache_file(id, hcontent(ws, id)))?;
        ensure!(
            *ino == cache_ino,
            "{name} is not a hard link of its cache file"
        );
    }
    for dir in [
        "overlays/camp",
        "overlays/camp/left4dead2",
        "overlays/camp/left4dead2/addons",
    ] {
        let (_, _, uid, _, mode) = stat(sys, &format!("{STATE_DIR}/{dir}"))?;
        ensure!((uid, mode) == (0, 0o755), "{dir}: uid {uid}, mode {mode:o}");
    }
    ensure!(build_dirs(sys)?.is_empty(), "{:?}", build_dirs(sys)?);
    let leftover = sys.run_stdout(["ls", "-A", &format!("{STATE_DIR}/workshop_cache")])?;
    ensure!(
        leftover.lines().all(|l| !l.starts_with('.')),
        "download leftovers in the cache: {leftover}"
    );

    // `overlay show`: each item's state, as JSON and as the table.
    let shown: Value = serde_json::from_str(&ctl_ok(sys, &["overlay", "show", "camp", "--json"])?)?;
    let items = shown["workshop"]["items"]
        .as_array()
        .with_context(|| format!("no workshop items in {shown:#}"))?;
    let state_of = |id: u64| {
        items
            .iter()
            .find(|i| i["id"] == id)
            // The item's state is an object tagged `state` (`{"state":"wrong_app","app":730}`).
            .map(|i| i["state"].as_str().unwrap_or("").to_owned())
    };
    for (id, state) in [
        (OK_1, "ok"),
        (OK_2, "ok"),
        (OK_3, "ok"),
        (REMOVED, "removed"),
        (BANNED, "banned"),
        (WRONG_APP, "wrong_app"),
    ] {
        ensure!(
            state_of(id).as_deref() == Some(state),
            "item {id}: {:?}, not {state}, in {shown:#}",
            state_of(id)
        );
    }
    ensure!(items.len() == 6, "{shown:#}");
    let table = ctl_ok(sys, &["overlay", "show", "camp"])?;
    for (id, state) in [
        (OK_2, "ok"),
        (REMOVED, "removed upstream"),
        (WRONG_APP, "wrong app"),
    ] {
        ensure!(
            table
                .lines()
                .any(|l| l.starts_with(&id.to_string()) && l.trim_end().ends_with(state)),
            "{id} is not `{state}` in:\n{table}"
        );
    }
    eprintln!("left4me workshop: first build ok, 3 items linked, 3 left out; show:\n{table}");
    Ok(())
}

/// Builds with nothing new upstream download nothing and publish nothing; two 503s of the API
/// are retried and the build still succeeds.
fn unchanged_builds(sys: &BootedSystem, ws: &FakeWorkshop<'_>) -> Result<()> {
    let before = content_identity(sys, "camp")?;
    let (files, bytes, api) = (ws.file_requests(), ws.file_bytes(), ws.api_requests());
    let out = build_ok(sys, "camp")?;
    ensure!(
        out.contains("nothing downloaded") && out.contains("unchanged"),
        "{out}"
    );
    ensure!(
        (ws.file_requests(), ws.file_bytes()) == (files, bytes),
        "an unchanged build downloaded something"
    );
    ensure!(
        content_identity(sys, "camp")? == before,
        "an unchanged build published"
    );
    let per_build = ws.api_requests() - api;

    let api = ws.api_requests();
    ws.fail_next_api(2);
    let out = build_ok(sys, "camp")?;
    ensure!(out.contains("unchanged"), "{out}");
    ensure!(
        ws.api_requests() - api == per_build + 2,
        "{} API requests with two 503s, {per_build} without:\n{out}",
        ws.api_requests() - api
    );
    ensure!(out.contains("503"), "the retries are not reported:\n{out}");
    ensure!(ws.file_requests() == files);
    eprintln!(
        "left4me workshop: unchanged builds download nothing; two 503s retried ({per_build} \
         API requests a build)"
    );
    Ok(())
}

/// An item whose download is an HTML page, or shorter than the API said, fails the build
/// naming it; the content stays as it was.
fn refused_downloads(sys: &BootedSystem, ws: &FakeWorkshop<'_>) -> Result<()> {
    let before = content_identity(sys, "camp")?;
    for (id, why) in [(HTML_PAGE, "HTML"), (WRONG_SIZE, "bytes")] {
        define_overlay(sys, "camp", &camp_definition(&[id]))?;
        let (ok, out) = build(sys, "camp")?;
        ensure!(!ok, "a build with item {id} succeeded:\n{out}");
        let line = out
            .lines()
            .find(|l| l.contains(&format!("item {id}:")))
            .with_context(|| format!("the failure does not name item {id}:\n{out}"))?;
        ensure!(
            line.contains(why),
            "item {id} failed, but not for {why:?}:\n{out}"
        );
        ensure!(out.contains("is unchanged"), "{out}");
        ensure!(
            content_identity(sys, "camp")? == before,
            "a failed build changed the content"
        );
        ensure!(build_dirs(sys)?.is_empty(), "{:?}", build_dirs(sys)?);
        ensure!(
            !exists(
                sys,
                &format!("{STATE_DIR}/workshop_cache/{id}/{}.vpk", hcontent(ws, id))
            ),
            "the refused file of {id} is in the cache"
        );
        eprintln!("left4me workshop: item {id} refused: {line}");
    }
    let out = ctl_status(sys, &["overlay", "build", "camp"], 1)?;
    ensure!(out.contains(&format!("item {WRONG_SIZE}")), "{out}");
    define_overlay(sys, "camp", &camp_definition(&[]))?;
    let out = build_ok(sys, "camp")?;
    ensure!(out.contains("unchanged"), "{out}");
    Ok(())
}

#[test]
fn booted_workshop_build_run_refresh_gc() -> Result<()> {
    require_root();
    let sys = boot(builder("workshop"))?;
    build_support::root_owned_overlays(&sys)?;
    let ws = FakeWorkshop::start(&sys, Fixture::standard())?;

    first_build(&sys, &ws)?;
    unchanged_builds(&sys, &ws)?;
    refused_downloads(&sys, &ws)?;

    // --- A hardened instance mounts the overlay; the stand-in game opens every VPK.
    ctl_ok(
        &sys,
        &[
            "create",
            "coop1",
            "--port",
            "27015",
            "--overlay",
            "overlays/camp",
        ],
    )?;
    ctl_ok(&sys, &["start", "coop1"])?;
    let hardening = sys.run_stdout([
        "systemctl",
        "show",
        "-p",
        "PrivateUsers,ProtectSystem,DropInPaths",
        "left4me-server@coop1.service",
    ])?;
    ensure!(
        hardening.contains("PrivateUsers=yes")
            && hardening.contains("ProtectSystem=strict")
            && hardening.contains("10-hardening.conf"),
        "coop1 is not hardened:\n{hardening}"
    );
    let merged = sys.run_stdout([
        "ls",
        &format!("{STATE_DIR}/runtime/coop1/merged/left4dead2/addons"),
    ])?;
    ensure!(
        merged.lines().map(str::to_owned).collect::<Vec<_>>() == vpk_names(&OK),
        "coop1's merged addons: {merged}"
    );
    let listed = game_addons(&sys, "coop1")?;
    for id in OK {
        ensure!(
            listed.contains(&format!("Addon {id}.vpk: VPK v1, 1 file(s)"))
                && listed.contains(&holds(id, 1)),
            "the game does not list {id}:\n{listed}"
        );
    }
    ensure!(!listed.contains("not a VPK"), "{listed}");
    let journal = sys.journal(Some("left4me-server@coop1.service"));
    ensure!(journal.contains(&holds(OK_2, 1)), "{journal}");
    eprintln!("left4me workshop: coop1 (hardened) lists the add-ons:\n{listed}");

    // --- A new version upstream: refresh publishes it; coop1 keeps what it mounted.
    let old_1 = hcontent(&ws, OK_1);
    ws.update_item(OK_1).context("update OK_1")?;
    let new_1 = hcontent(&ws, OK_1);
    let bytes = ws.file_bytes();
    let out = ctl_ok(&sys, &["overlay", "refresh", "camp"])?;
    eprintln!("left4me workshop: refresh:\n{out}");
    ensure!(
        out.contains("downloaded 1 file(s)") && out.contains("published in"),
        "{out}"
    );
    ensure!(out.contains("while coop1 still mounts it"), "{out}");
    let new_size = ws.with_fixture(|f| f.items[&OK_1].current().file_size());
    ensure!(
        ws.file_bytes() - bytes == new_size,
        "more than the new version was downloaded"
    );
    ensure!(stat(&sys, &cache_file(OK_1, new_1))?.1 == 2);
    let row = list_row(&sys, "coop1")?;
    let pending = row["content_pending"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        pending
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("camp"))),
        "coop1 has no content update pending: {row:#}"
    );
    let status = ctl_ok(&sys, &["status", "coop1"])?;
    ensure!(status.contains("content update pending"), "{status}");
    let listed = game_addons(&sys, "coop1")?;
    ensure!(
        listed.contains(&holds(OK_1, 1)) && !listed.contains(&holds(OK_1, 2)),
        "coop1 should still list the old version:\n{listed}"
    );
    let show: Value = serde_json::from_str(&ctl_ok(&sys, &["overlay", "show", "camp", "--json"])?)?;
    let record = show["workshop"]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["id"] == OK_1))
        .cloned()
        .context("OK_1 in show")?;
    ensure!(record["change"] == "updated", "{record:#}");

    // A second instance started now mounts the new version.
    ctl_ok(
        &sys,
        &[
            "create",
            "coop2",
            "--port",
            "27016",
            "--overlay",
            "overlays/camp",
        ],
    )?;
    ctl_ok(&sys, &["start", "coop2"])?;
    let listed = game_addons(&sys, "coop2")?;
    ensure!(
        listed.contains(&holds(OK_1, 2)) && !listed.contains(&holds(OK_1, 1)),
        "coop2 should list the new version:\n{listed}"
    );
    ensure!(list_row(&sys, "coop2")?["content_pending"] == serde_json::json!([]));

    // gc while coop1 mounts the old content keeps the old version's file.
    ctl_ok(&sys, &["overlay", "gc"])?;
    ensure!(
        exists(&sys, &cache_file(OK_1, old_1)),
        "gc removed a mounted file"
    );
    ensure!(old_content_dirs(&sys, "camp")?.len() == 1);

    // --- After a restart coop1 runs the new version; gc removes the old file, not the new.
    ctl_ok(&sys, &["restart", "coop1"])?;
    let listed = game_addons(&sys, "coop1")?;
    ensure!(
        listed.contains(&holds(OK_1, 2)) && !listed.contains(&holds(OK_1, 1)),
        "coop1 after its restart:\n{listed}"
    );
    ensure!(list_row(&sys, "coop1")?["content_pending"] == serde_json::json!([]));
    let dry: Value =
        serde_json::from_str(&ctl_ok(&sys, &["overlay", "gc", "--dry-run", "--json"])?)?;
    ensure!(dry["dry_run"] == true, "{dry:#}");
    ensure!(
        exists(&sys, &cache_file(OK_1, old_1)),
        "gc --dry-run removed a file"
    );
    ensure!(
        old_content_dirs(&sys, "camp")?.len() == 1,
        "gc --dry-run retired content"
    );
    let gc: Value = serde_json::from_str(&ctl_ok(&sys, &["overlay", "gc", "--json"])?)?;
    eprintln!("left4me workshop: gc: {gc:#}");
    ensure!(
        dry["removed"] == gc["removed"] && dry["retired"] == gc["retired"],
        "the dry run said otherwise: {dry:#}"
    );
    let removed: Vec<&str> = gc["removed"]
        .as_array()
        .map(|r| r.iter().filter_map(|f| f["path"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        removed.len() == 1 && removed[0].ends_with(&format!("{OK_1}/{old_1}.vpk")),
        "{gc:#}"
    );
    ensure!(
        !exists(&sys, &cache_file(OK_1, old_1)),
        "the old version stayed"
    );
    ensure!(
        old_content_dirs(&sys, "camp")?.is_empty(),
        "the old content stayed"
    );
    for (id, h) in [
        (OK_1, new_1),
        (OK_2, hcontent(&ws, OK_2)),
        (OK_3, hcontent(&ws, OK_3)),
    ] {
        ensure!(
            stat(&sys, &cache_file(id, h))?.1 == 2,
            "the current file of {id} is gone or not linked once"
        );
    }
    ensure!(gc["kept_files"] == 3, "{gc:#}");
    let again = ctl(&sys, &["overlay", "gc"])?;
    ensure!(
        text(&again).contains("removed 0 file(s)"),
        "{}",
        text(&again)
    );

    drop(ws);
    booted_support::finish(sys, &["coop1", "coop2"])
}
