//! Script overlays end to end in a booted systemd (needs root): the two example recipes
//! (examples/map-sync.toml, examples/addon-tarball.toml) built with `left4mectl overlay build`
//! against test hosts inside the system's own network namespace (a file server on 192.0.2.10,
//! found by name through a DNS responder on the private address 10.0.0.53, which the build may
//! reach only as its resolver); incremental syncs; a failed build that leaves the content
//! alone; the swap while an instance has the overlay mounted (old content kept until the
//! instance restarts, then removed); the ledger, list, show and rm.

mod booted_support;
mod build_support;

use std::os::unix::fs::MetadataExt as _;

use anyhow::{Context, Result, ensure};
use booted_support::{boot, builder, ctl, ctl_ok};
use build_support::*;
use left4me_tests::{BootedSystem, STATE_DIR, game_tree::lookup_user, require_root};

/// A map the test serves: its vpk name, content, and how it is packed.
struct Map {
    name: &'static str,
    body: String,
    packing: &'static str,
}

impl Map {
    fn new(name: &'static str, packing: &'static str) -> Self {
        // Big enough that 7z really compresses something, distinct per map.
        let body = format!("VPK {name}\n").repeat(2000);
        Map {
            name,
            body,
            packing,
        }
    }

    fn url_path(&self) -> String {
        format!(
            "/maps/{}.{}",
            self.name.trim_end_matches(".vpk"),
            self.packing
        )
    }
}

/// Packs `map` inside the system (7z, python's zipfile, or as is) and serves it.
fn serve_map(sys: &BootedSystem, hosts: &TestHosts, map: &Map) -> Result<String> {
    let work = "/tmp/maps-src";
    sys.run_ok(["mkdir", "-p", work])?;
    std::fs::write(sys.host_path(format!("{work}/{}", map.name)), &map.body)?;
    let archive = format!("{work}/{}", map.url_path().trim_start_matches("/maps/"));
    match map.packing {
        "7z" => {
            sys.run_ok([
                "sh",
                "-c",
                &format!(
                    "cd {work} && rm -f {archive} && 7z a -bd {archive} {} >/dev/null",
                    map.name
                ),
            ])?;
        }
        "zip" => {
            python(
                sys,
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
                 z.write(sys.argv[2], 'maps/' + sys.argv[3])",
                &[&archive, &format!("{work}/{}", map.name), map.name],
            )?;
        }
        _ => {} // served as it is: `archive` is the vpk itself
    }
    hosts
        .files
        .put(&map.url_path(), read_inside(sys, &archive)?);
    md5_inside(sys, &format!("{work}/{}", map.name))
}

/// An index line for `map`.
fn index_line(map: &Map, md5: &str) -> String {
    format!(
        "{}  {}  {md5}  http://{FILE_HOST_NAME}{}\n",
        map.name,
        map.body.len(),
        map.url_path()
    )
}

fn addons(sys: &BootedSystem, overlay: &str) -> Result<Vec<String>> {
    let dir = sys.host_path(format!("{STATE_DIR}/overlays/{overlay}/left4dead2/addons"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

/// The files of `dir` as an instance sees them (inside, through its merged mount).
fn merged_addons(sys: &BootedSystem, instance: &str) -> Result<String> {
    Ok(sys.run_stdout([
        "ls",
        &format!("{STATE_DIR}/runtime/{instance}/merged/left4dead2/addons"),
    ])?)
}

fn old_dirs(sys: &BootedSystem, overlay: &str) -> Result<Vec<String>> {
    let dir = sys.host_path(format!("{STATE_DIR}/overlays"));
    let prefix = format!(".{overlay}.old-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            found.push(name);
        }
    }
    Ok(found)
}

fn jobs_json(sys: &BootedSystem, overlay: &str) -> Result<Vec<serde_json::Value>> {
    let out = ctl_ok(sys, &["overlay", "jobs", overlay, "--json"])?;
    serde_json::from_str(&out).with_context(|| format!("jobs json:\n{out}"))
}

/// A build on an install whose `overlays/` is still the game user's (tmpfiles.d from before
/// the ownership rule) is refused, naming the fix, and changes nothing; then the state dir
/// and `overlays/` are made root's, as tmpfiles.d now says.
fn refuses_a_game_user_owned_overlays_dir(sys: &BootedSystem) -> Result<()> {
    root_owned_overlays(sys)?;
    let overlays = format!("{STATE_DIR}/overlays");
    sys.run_ok(["chown", "left4me:left4me", &overlays])?;
    define_overlay(
        sys,
        "early",
        &script_overlay("echo never\n", "network = false\n"),
    )?;
    build_fails(sys, "early", "systemd-tmpfiles --create left4me.conf")?;
    ensure!(build_dirs(sys)?.is_empty(), "{:?}", build_dirs(sys)?);
    root_owned_overlays(sys)?;
    ctl_ok(sys, &["overlay", "rm", "early", "--yes"])?;
    Ok(())
}

#[test]
fn booted_build_recipes_swap_and_ledger() -> Result<()> {
    require_root();
    let sys = boot(builder("builds"))?;
    refuses_a_game_user_owned_overlays_dir(&sys)?;
    let hosts = start_hosts(&sys, &[])?;
    use_test_resolver(&sys)?;
    let (game_uid, _) = lookup_user(sys.root(), "left4me").context("the game user")?;

    // --- The map sync recipe, pointed at the test host by name.
    let recipe = std::fs::read_to_string(workspace_file("examples/map-sync.toml"))?;
    let original_url = "INDEX_URL=\"https://maps.example.org/l4d2/index.txt\"";
    ensure!(
        recipe.contains(original_url),
        "the recipe's INDEX_URL line changed"
    );
    let recipe = recipe.replace(
        original_url,
        &format!("INDEX_URL=\"http://{FILE_HOST_NAME}/maps/index.txt\""),
    );
    define_overlay(&sys, "maps", &recipe)?;

    let alpha = Map::new("alpha.vpk", "7z");
    let beta = Map::new("beta.vpk", "7z");
    let gamma = Map::new("gamma.vpk", "zip");
    let delta = Map::new("delta.vpk", "vpk");
    let zeta = Map::new("zeta.vpk", "7z");
    let mut md5 = std::collections::HashMap::new();
    for map in [&alpha, &beta, &gamma, &delta, &zeta] {
        md5.insert(map.name, serve_map(&sys, &hosts, map)?);
    }
    let index = |maps: &[&Map]| -> String {
        let mut text = String::from("# name size md5 url\n\n");
        for map in maps {
            text.push_str(&index_line(map, &md5[map.name]));
        }
        text
    };

    // 1: a first sync fetches everything (7z and zip archives).
    hosts
        .files
        .put("/maps/index.txt", index(&[&alpha, &beta, &gamma]));
    let out = build_ok(&sys, "maps")?;
    ensure!(
        out.contains("maps: 3 fetched, 0 up to date, 0 removed"),
        "{out}"
    );
    ensure!(
        out.contains(&format!("DNS {RESOLVER} (private, allowed exactly)")),
        "the build should resolve through the test resolver:\n{out}"
    );
    ensure!(addons(&sys, "maps")? == ["alpha.vpk", "beta.vpk", "gamma.vpk"]);
    for map in [&alpha, &beta, &gamma] {
        let path = format!("{STATE_DIR}/overlays/maps/left4dead2/addons/{}", map.name);
        ensure!(md5_inside(&sys, &path)? == md5[map.name], "{path} differs");
        let meta = std::fs::metadata(sys.host_path(&path))?;
        ensure!(
            meta.uid() == game_uid,
            "{path} is owned by uid {}",
            meta.uid()
        );
    }
    ensure!(
        build_dirs(&sys)?.is_empty(),
        "build dirs left: {:?}",
        build_dirs(&sys)?
    );
    eprintln!("left4me builds: map sync 1 ok: alpha (7z), beta (7z), gamma (zip) fetched");

    // 2: an incremental sync: alpha leaves the index, delta (a bare .vpk) joins; beta and
    // gamma are not downloaded again.
    hosts
        .files
        .put("/maps/index.txt", index(&[&beta, &gamma, &delta]));
    let out = build_ok(&sys, "maps")?;
    ensure!(
        out.contains("removing alpha.vpk: no longer in the index"),
        "{out}"
    );
    ensure!(
        out.contains("maps: 1 fetched, 2 up to date, 1 removed"),
        "{out}"
    );
    ensure!(addons(&sys, "maps")? == ["beta.vpk", "delta.vpk", "gamma.vpk"]);
    ensure!(
        hosts.files.hits(&beta.url_path()) == 1,
        "beta was fetched again"
    );
    ensure!(
        hosts.files.hits(&gamma.url_path()) == 1,
        "gamma was fetched again"
    );
    eprintln!("left4me builds: map sync 2 ok: alpha removed, delta fetched, beta/gamma kept");

    // 3: a map whose md5 does not match fails the build; the content stays as it was.
    let mut bad = index(&[&beta, &gamma, &delta]);
    bad.push_str(&index_line(&zeta, "0123456789abcdef0123456789abcdef"));
    hosts.files.put("/maps/index.txt", bad);
    let out = build_fails(&sys, "maps", "the script exited with status 1")?;
    ensure!(out.contains("zeta.vpk: size"), "{out}");
    ensure!(out.contains("is unchanged"), "{out}");
    ensure!(addons(&sys, "maps")? == ["beta.vpk", "delta.vpk", "gamma.vpk"]);
    ensure!(
        build_dirs(&sys)?.is_empty(),
        "a failed build left {:?}",
        build_dirs(&sys)?
    );
    let jobs = jobs_json(&sys, "maps")?;
    ensure!(jobs.len() == 3, "{jobs:#?}");
    ensure!(
        jobs[0]["status"] == "failed" && jobs[0]["exit_status"] == 1,
        "{:#}",
        jobs[0]
    );
    ensure!(
        jobs[0]["log_tail"]
            .as_str()
            .unwrap_or("")
            .contains("zeta.vpk: size"),
        "{:#}",
        jobs[0]
    );
    ensure!(jobs[1]["status"] == "success" && jobs[2]["status"] == "success");
    eprintln!("left4me builds: a bad md5 fails the build, content unchanged, ledger has it");

    // --- The addon tarball recipe.
    python(
        &sys,
        "import io, sys, tarfile\n\
         files = {'addons/metamod.vdf': b'\"Plugin\" {}\\n',\n\
                  'addons/sourcemod/plugins/admin.smx': b'SMX' * 100,\n\
                  'cfg/sourcemod/admin.cfg': b'sm_admin 1\\n'}\n\
         with tarfile.open(sys.argv[1], 'w:gz') as t:\n    \
             for name, data in files.items():\n        \
                 info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o600\n        \
                 t.addfile(info, io.BytesIO(data))",
        &["/tmp/admin-pack.tar.gz"],
    )?;
    let sha = sys.run_stdout(["sha256sum", "/tmp/admin-pack.tar.gz"])?;
    let sha = sha.split_whitespace().next().unwrap_or("");
    hosts.files.put(
        "/addons/admin-pack.tar.gz",
        read_inside(&sys, "/tmp/admin-pack.tar.gz")?,
    );
    let recipe = std::fs::read_to_string(workspace_file("examples/addon-tarball.toml"))?;
    let url = "URL=\"https://addons.example.org/releases/admin-pack-1.4.2.tar.gz\"";
    let placeholder = "SHA256=\"0000000000000000000000000000000000000000000000000000000000000000\"";
    ensure!(recipe.contains(url) && recipe.contains(placeholder));
    let recipe = recipe
        .replace(
            url,
            &format!("URL=\"http://{FILE_HOST}/addons/admin-pack.tar.gz\""),
        )
        .replace(placeholder, &format!("SHA256=\"{sha}\""));
    define_overlay(&sys, "adminpack", &recipe)?;
    let out = build_ok(&sys, "adminpack")?;
    ensure!(
        out.contains("installed 3 files from admin-pack.tar.gz"),
        "{out}"
    );
    for (path, mode) in [
        ("left4dead2/addons/metamod.vdf", 0o644),
        ("left4dead2/addons/sourcemod/plugins/admin.smx", 0o644),
        ("left4dead2/cfg/sourcemod/admin.cfg", 0o644),
    ] {
        let meta =
            std::fs::metadata(sys.host_path(format!("{STATE_DIR}/overlays/adminpack/{path}")))
                .with_context(|| format!("adminpack lacks {path}"))?;
        ensure!(
            meta.uid() == game_uid && meta.mode() & 0o7777 == mode,
            "{path}: {meta:?}"
        );
    }
    eprintln!("left4me builds: addon tarball ok (sha256 checked, 3 files installed)");

    // --- network = false: the build runs, but reaches nothing, not even the test host.
    ctl_ok(
        &sys,
        &[
            "overlay",
            "create",
            "offline",
            "--no-network",
            "--script",
            &format!(
                "echo built > offline.txt\n\
                 if curl -s --max-time 3 -o /dev/null http://{FILE_HOST}/maps/index.txt; then \
                 echo reached; exit 1; fi\necho unreachable\n"
            ),
        ],
    )?;
    let out = build_ok(&sys, "offline")?;
    ensure!(
        out.contains("unreachable") && out.contains("network  none"),
        "{out}"
    );
    ensure!(exists_inside(
        &sys,
        &format!("{STATE_DIR}/overlays/offline/offline.txt")
    ));
    // A manual overlay is not built.
    ctl_ok(&sys, &["overlay", "create", "handmade"])?;
    let manual = ctl(&sys, &["overlay", "build", "handmade"])?;
    ensure!(
        manual.status.code() == Some(2) && text(&manual).contains("is a manual overlay"),
        "{}",
        text(&manual)
    );

    // --- The swap while an instance has the overlay mounted.
    ctl_ok(
        &sys,
        &[
            "create",
            "coop1",
            "--port",
            "27015",
            "--overlay",
            "overlays/maps",
        ],
    )?;
    ctl_ok(&sys, &["start", "coop1"])?;
    ensure!(merged_addons(&sys, "coop1")? == "beta.vpk\ndelta.vpk\ngamma.vpk");
    hosts
        .files
        .put("/maps/index.txt", index(&[&beta, &gamma, &zeta]));
    let out = build_ok(&sys, "maps")?;
    ensure!(
        out.contains("while coop1 still mounts it"),
        "the old content should be kept for coop1:\n{out}"
    );
    ensure!(addons(&sys, "maps")? == ["beta.vpk", "gamma.vpk", "zeta.vpk"]);
    let olds = old_dirs(&sys, "maps")?;
    ensure!(olds.len() == 1, "{olds:?}");
    // The running instance still sees, and can read, exactly the content it mounted.
    ensure!(merged_addons(&sys, "coop1")? == "beta.vpk\ndelta.vpk\ngamma.vpk");
    let delta_path = format!("{STATE_DIR}/runtime/coop1/merged/left4dead2/addons/delta.vpk");
    ensure!(md5_inside(&sys, &delta_path)? == md5["delta.vpk"]);
    // Another build while the old content is still mounted keeps it.
    let out = build_ok(&sys, "maps")?;
    ensure!(
        out.contains("maps: 0 fetched, 3 up to date, 0 removed"),
        "{out}"
    );
    ensure!(
        old_dirs(&sys, "maps")?.len() == 2,
        "{:?}",
        old_dirs(&sys, "maps")?
    );
    // After a restart the instance mounts the new content; the next build removes the old.
    ctl_ok(&sys, &["restart", "coop1"])?;
    ensure!(merged_addons(&sys, "coop1")? == "beta.vpk\ngamma.vpk\nzeta.vpk");
    let out = build_ok(&sys, "maps")?;
    ensure!(out.contains(".maps.old-"), "{out}");
    let olds = old_dirs(&sys, "maps")?;
    ensure!(
        olds.len() == 1,
        "only the dir of the last swap may stay: {olds:?}"
    );
    ensure!(out.contains("while coop1 still mounts it"), "{out}");
    eprintln!("left4me builds: swap while mounted ok: old content kept until coop1 restarted");

    // --- list, show, rm, jobs.
    let list: serde_json::Value =
        serde_json::from_str(&ctl_ok(&sys, &["overlay", "list", "--json"])?)?;
    let row = list
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "maps"))
        .context("maps in overlay list")?;
    ensure!(row["last_build"]["status"] == "success", "{row:#}");
    ensure!(
        row["used_by"] == serde_json::json!(["instance coop1"]),
        "{row:#}"
    );
    let table = ctl_ok(&sys, &["overlay", "list"])?;
    ensure!(
        table
            .lines()
            .any(|l| l.starts_with("maps") && l.contains("success")),
        "{table}"
    );
    let show = ctl_ok(&sys, &["overlay", "show", "adminpack"])?;
    ensure!(show.contains("last build  success"), "{show}");
    let refused = ctl(&sys, &["overlay", "rm", "maps", "--yes"])?;
    ensure!(
        refused.status.code() == Some(2) && text(&refused).contains("used by instance coop1"),
        "{}",
        text(&refused)
    );
    ctl_ok(&sys, &["stop", "coop1"])?;
    ctl_ok(&sys, &["delete", "coop1", "--yes"])?;
    let out = ctl_ok(&sys, &["overlay", "rm", "maps", "--yes"])?;
    ensure!(out.contains("removed") && !exists_inside(&sys, &format!("{STATE_DIR}/overlays/maps")));
    ensure!(
        old_dirs(&sys, "maps")?.is_empty(),
        "{:?}",
        old_dirs(&sys, "maps")?
    );
    let jobs = ctl_ok(&sys, &["overlay", "jobs"])?;
    eprintln!("left4me builds: ledger:\n{jobs}");
    ensure!(jobs.lines().count() == 1 + 8, "{jobs}");

    // Nothing of the builds is left running or lying around.
    let leftover_units = sys.run_stdout([
        "systemctl",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        "left4me-build-*",
    ])?;
    ensure!(leftover_units.is_empty(), "{leftover_units}");
    let runtime = sys.run_stdout(["ls", "-A", "/run/left4me/builds"])?;
    ensure!(
        runtime.lines().all(|l| l.ends_with(".lock")),
        "resolv.conf files left: {runtime}"
    );
    drop(hosts);
    booted_support::finish(sys, &[])
}
