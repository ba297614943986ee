//! The stand-in SteamCMD run for real: `steamcmd.sh` → the i386 `linux32/steamcmd`, against the
//! fake Steam on loopback, in temp dirs. The ACF and `app_info_print` output are read back with
//! the independent python `vdf` parser (`pip install vdf==3.4`); a test fails when it is missing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use left4me_steamcmd_standin::content::Hasher;
use left4me_steamcmd_standin::{
    Depot, DepotFile, Fault, SteamServer, install_kit, kit_tarball, serve,
};
use serde_json::Value;

const APP: &str = "222860";
const SUCCESS: &str = "Success! App '222860' fully installed.";

/// A temp dir with a depot, a running fake Steam, a kit and a HOME.
struct Env {
    root: PathBuf,
    depot: Depot,
    server: Option<SteamServer>,
}

struct Run {
    code: i32,
    out: String,
}

impl Run {
    fn has(&self, line: &str) -> bool {
        self.out.lines().any(|l| l == line)
    }

    fn expect(&self, code: i32, line: &str) -> &Self {
        assert!(
            self.code == code && self.has(line),
            "expected exit {code} and the line {line:?}; got exit {}:\n{}",
            self.code,
            self.out
        );
        self
    }
}

impl Env {
    fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "left4me-steamcmd-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("home")).unwrap();
        let depot = Depot::create(&root.join("depot")).unwrap();
        let server = serve(depot.clone(), TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        install_kit(&root.join("steamcmd"), &server.url(), None).unwrap();
        Self {
            root,
            depot,
            server: Some(server),
        }
    }

    fn kit(&self) -> PathBuf {
        self.root.join("steamcmd")
    }

    fn install(&self) -> PathBuf {
        self.root.join("game")
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(&self.kit(), args, "")
    }

    fn run_with(&self, kit: &Path, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(kit.join("steamcmd.sh"))
            .args(args)
            .env_clear()
            .env("HOME", self.root.join("home"))
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&output.stdout).into_owned(),
        }
    }

    /// `+@NoPromptForPassword 1 +force_install_dir GAME +login anonymous +app_update 222860 …`
    fn app_update(&self, extra: &[&str]) -> Run {
        let install = self.install();
        let mut args = vec![
            "+@NoPromptForPassword",
            "1",
            "+force_install_dir",
            install.to_str().unwrap(),
            "+login",
            "anonymous",
            "+app_update",
            APP,
        ];
        args.extend_from_slice(extra);
        args.push("+quit");
        self.run(&args)
    }

    fn acf(&self) -> Value {
        acf_at(&self.install())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn acf_at(install: &Path) -> Value {
    let text =
        std::fs::read_to_string(install.join(format!("steamapps/appmanifest_{APP}.acf"))).unwrap();
    vdf(&text)["AppState"].clone()
}

/// Parses VDF text with python's `vdf` package (independent of this crate).
fn vdf(text: &str) -> Value {
    let script = "import sys, json\n\
try:\n    import vdf\n\
except ImportError:\n    sys.exit('python vdf is missing: python3 -m pip install vdf==3.4')\n\
print(json.dumps(vdf.loads(sys.stdin.read())))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python vdf failed on:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn build_a() -> Vec<DepotFile> {
    vec![
        DepotFile::bytes("srcds_run", 0o755, b"#!/bin/sh\necho srcds\n"),
        DepotFile::bytes(
            "left4dead2/gameinfo.txt",
            0o644,
            b"\"GameInfo\" { game \"L4D2\" }\n",
        ),
        DepotFile::generated("left4dead2/maps/c1m1_hotel.bsp", 0o644, 1, 300_000),
        DepotFile::generated("bin/libtier0_srv.so", 0o755, 2, 100_001),
        DepotFile::bytes(
            "left4dead2/addons/a file with spaces+plus.txt",
            0o644,
            b"spaces\n",
        ),
        DepotFile::bytes("left4dead2/old/removed.txt", 0o644, b"going away\n"),
    ]
}

fn build_b() -> Vec<DepotFile> {
    let mut files = build_a();
    files.retain(|f| f.path != "left4dead2/old/removed.txt");
    files[1] = DepotFile::bytes(
        "left4dead2/gameinfo.txt",
        0o644,
        b"\"GameInfo\" { game \"L4D2 v2\" }\n",
    );
    files[2] = DepotFile::generated("left4dead2/maps/c1m1_hotel.bsp", 0o644, 11, 310_000);
    files.push(DepotFile::generated(
        "left4dead2/maps/c14m1_junkyard.bsp",
        0o644,
        3,
        50_000,
    ));
    files
}

fn hash_file(path: &Path) -> u64 {
    let mut hasher = Hasher::new();
    hasher.feed(&std::fs::read(path).unwrap());
    hasher.finish()
}

/// Every regular file under `install` except `steamapps/`: path → (mode, hash).
fn tree(install: &Path) -> BTreeMap<String, (u32, u64)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u64)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if rel == "steamapps" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, out);
            } else if meta.is_file() {
                out.insert(rel, (meta.permissions().mode() & 0o7777, hash_file(&path)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(install, install, &mut out);
    out
}

fn expected(files: &[DepotFile]) -> BTreeMap<String, (u32, u64)> {
    files
        .iter()
        .map(|f| (f.path.clone(), (f.mode, f.content.hash())))
        .collect()
}

/// Every " Update state (0xN) NAME, progress: P (DONE / TOTAL)" line, checked for form.
fn progress_lines(out: &str) -> Vec<(u32, String, u64, u64)> {
    out.lines()
        .filter(|l| l.starts_with(" Update state ("))
        .map(|line| {
            let bad = || panic!("malformed progress line {line:?}");
            let rest = &line[" Update state (0x".len()..];
            let (state, rest) = rest.split_once(") ").unwrap_or_else(bad);
            let (name, rest) = rest.split_once(", progress: ").unwrap_or_else(bad);
            let (pct, rest) = rest.split_once(" (").unwrap_or_else(bad);
            let (done, total) = rest
                .trim_end_matches(')')
                .split_once(" / ")
                .unwrap_or_else(bad);
            let (done, total): (u64, u64) = (done.parse().unwrap(), total.parse().unwrap());
            let want = if total == 0 {
                0.0
            } else {
                100.0 * done as f64 / total as f64
            };
            assert_eq!(pct, format!("{want:.2}"), "{line}");
            (
                u32::from_str_radix(state, 16).unwrap(),
                name.to_owned(),
                done,
                total,
            )
        })
        .collect()
}

fn assert_complete_acf(acf: &Value, build: u64) {
    assert_eq!(acf["appid"], APP);
    assert_eq!(acf["buildid"], build.to_string());
    assert_eq!(acf["StateFlags"], "4");
    assert_eq!(acf["BytesDownloaded"], acf["BytesToDownload"], "{acf}");
    assert_eq!(acf["BytesStaged"], acf["BytesToStage"], "{acf}");
    assert_eq!(acf["installdir"], "Left 4 Dead 2 Dedicated Server");
}

#[test]
fn the_client_is_an_i386_dynamically_linked_elf() {
    let env = Env::new("elf");
    let elf = std::fs::read(env.kit().join("linux32/steamcmd")).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 1, "ELFCLASS32");
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 3, "EM_386");
    let phoff = u32::from_le_bytes(elf[28..32].try_into().unwrap()) as usize;
    let phentsize = u16::from_le_bytes([elf[42], elf[43]]) as usize;
    let phnum = u16::from_le_bytes([elf[44], elf[45]]) as usize;
    let interp = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    });
    assert!(interp, "PT_INTERP: dynamically linked like Valve's");
    if let Ok(out) = Command::new("file")
        .arg(env.kit().join("linux32/steamcmd"))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Intel 80386") && text.contains("dynamically linked"),
            "{text}"
        );
    }
}

#[test]
fn first_run_updates_itself_then_prints_the_banner() {
    let env = Env::new("banner");
    let run = env.run(&["+quit"]);
    assert_eq!(run.code, 0, "{}", run.out);
    let lines: Vec<&str> = run.out.lines().collect();
    let restart = lines
        .iter()
        .position(|l| *l == "[----] Update complete, launching Steamcmd...")
        .expect("self-update then exit 42 then run again");
    let logs = env.kit().join("logs");
    assert_eq!(
        lines[restart + 1],
        format!("Redirecting stderr to '{}/stderr.txt'", logs.display())
    );
    for line in [
        "Loading Steam API...OK",
        "-- type 'quit' to exit --",
        "Unloading Steam API...OK",
    ] {
        assert!(run.has(line), "{line}:\n{}", run.out);
    }
    assert!(env.root.join("home/.steam/steam.pid").is_file());
    let again = env.run(&["+quit"]);
    assert!(!again.out.contains("Update complete"), "{}", again.out);
}

#[test]
fn install_downloads_every_file_and_writes_the_appmanifest() {
    let env = Env::new("install");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    let run = env.app_update(&["validate"]);
    run.expect(0, SUCCESS);
    assert!(run.has("Connecting anonymously to Steam Public...OK"));
    assert!(run.has("Waiting for user info...OK"));
    assert!(run.has("\"@NoPromptForPassword\" = \"1\""));
    let states: Vec<u32> = progress_lines(&run.out).iter().map(|p| p.0).collect();
    for state in [0x3, 0x5, 0x11, 0x61, 0x81, 0x101] {
        assert!(states.contains(&state), "state 0x{state:x} in\n{}", run.out);
    }
    let total: u64 = build_a().iter().map(|f| f.content.len()).sum();
    let last = progress_lines(&run.out)
        .into_iter()
        .rfind(|p| p.0 == 0x61)
        .unwrap();
    assert_eq!((last.2, last.3), (total, total));
    assert_eq!(tree(&env.install()), expected(&build_a()));
    let acf = env.acf();
    assert_complete_acf(&acf, 100);
    assert_eq!(acf["BytesToDownload"], total.to_string());
    assert!(!env.install().join("steamapps/downloading/222860").exists());
    // the same build again: nothing to do
    env.app_update(&[])
        .expect(0, "Success! App '222860' already up to date.");
}

#[test]
fn update_writes_only_changes_additions_and_removals() {
    let env = Env::new("update");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.app_update(&[]).expect(0, SUCCESS);
    let ino = |p: &str| std::fs::metadata(env.install().join(p)).unwrap().ino();
    let kept = [
        "srcds_run",
        "bin/libtier0_srv.so",
        "left4dead2/addons/a file with spaces+plus.txt",
    ];
    let before: Vec<u64> = kept.iter().map(|p| ino(p)).collect();
    let changed_before = ino("left4dead2/maps/c1m1_hotel.bsp");

    env.depot.add_build("public", 101, &build_b()).unwrap();
    let run = env.app_update(&[]);
    run.expect(0, SUCCESS);
    assert_eq!(tree(&env.install()), expected(&build_b()));
    assert_eq!(
        kept.iter().map(|p| ino(p)).collect::<Vec<_>>(),
        before,
        "unchanged files untouched"
    );
    assert_ne!(
        ino("left4dead2/maps/c1m1_hotel.bsp"),
        changed_before,
        "changed files replaced"
    );
    assert!(
        !env.install().join("left4dead2/old").exists(),
        "emptied dirs go"
    );
    let acf = env.acf();
    assert_complete_acf(&acf, 101);
    let delta: u64 = build_b()
        .iter()
        .filter(|f| {
            ["gameinfo.txt", "c1m1_hotel.bsp", "c14m1_junkyard.bsp"]
                .iter()
                .any(|name| f.path.ends_with(name))
        })
        .map(|f| f.content.len())
        .sum();
    assert_eq!(
        acf["BytesToDownload"],
        delta.to_string(),
        "only the changed bytes"
    );
}

#[test]
fn validate_repairs_damaged_files_a_plain_update_does_not() {
    let env = Env::new("validate");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.app_update(&[]).expect(0, SUCCESS);
    let map = env.install().join("left4dead2/maps/c1m1_hotel.bsp");
    std::fs::write(&map, b"damaged").unwrap();
    std::fs::remove_file(env.install().join("srcds_run")).unwrap();
    env.app_update(&[])
        .expect(0, "Success! App '222860' already up to date.");
    assert_eq!(std::fs::read(&map).unwrap(), b"damaged");
    let run = env.app_update(&["validate"]);
    run.expect(0, SUCCESS);
    assert_eq!(tree(&env.install()), expected(&build_a()));
    let acf = env.acf();
    assert_eq!(acf["BytesToDownload"], (300_000u64 + 21).to_string());
}

#[test]
fn force_install_dir_after_login_is_refused_and_the_default_dir_used() {
    let env = Env::new("order");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    let install = env.install();
    let run = env.run(&[
        "+login",
        "anonymous",
        "+force_install_dir",
        install.to_str().unwrap(),
        "+app_update",
        APP,
        "+quit",
    ]);
    run.expect(0, "Please use force_install_dir before logon!");
    assert!(run.has(SUCCESS));
    assert!(!install.join("srcds_run").exists());
    let default = env
        .kit()
        .join("steamapps/common/Left 4 Dead 2 Dedicated Server");
    assert_eq!(tree(&default), expected(&build_a()));
}

#[test]
fn anonymous_linux_install_fails_invalid_platform_and_the_windows_pass_works_around_it() {
    let env = Env::new("platform");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot
        .set_fault(Fault::InvalidPlatformForAnonymous)
        .unwrap();
    let linux = ["+@sSteamCmdForcePlatformType", "linux"];
    let run = env.run(
        &[
            &linux[..],
            &[
                "+force_install_dir",
                env.install().to_str().unwrap(),
                "+login",
                "anonymous",
            ],
            &["+app_update", APP, "validate", "+quit"],
        ]
        .concat(),
    );
    run.expect(
        8,
        "ERROR! Failed to install app '222860' (Invalid platform)",
    );
    assert!(run.has("\"@sSteamCmdForcePlatformType\" = \"linux\""));
    assert!(!env.install().join("srcds_run").exists());

    let pass = |platform: &str, extra: &[&str]| {
        let install = env.install();
        let args = [
            &["+@sSteamCmdForcePlatformType", platform][..],
            &[
                "+force_install_dir",
                install.to_str().unwrap(),
                "+login",
                "anonymous",
            ],
            &["+app_update", APP],
            extra,
            &["+quit"],
        ]
        .concat();
        env.run(&args)
    };
    pass("windows", &[]).expect(0, SUCCESS);
    pass("linux", &["validate"]).expect(0, SUCCESS);
    assert_eq!(tree(&env.install()), expected(&build_a()));
    assert_complete_acf(&env.acf(), 100);
}

#[test]
fn privileged_disk_full_is_state_0x202() {
    assert_eq!(
        unsafe_free_geteuid(),
        0,
        "privileged_* tests need root (they mount a small tmpfs)"
    );
    let env = Env::new("diskfull");
    env.depot
        .add_build(
            "public",
            100,
            &[DepotFile::generated("big.bin", 0o644, 5, 4 << 20)],
        )
        .unwrap();
    let tiny = env.root.join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    // a private mount namespace, so the tmpfs never shows outside this run
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs '{0}' && exec '{1}/steamcmd.sh' +force_install_dir '{0}/game' +login anonymous +app_update {APP} +quit",
        tiny.display(),
        env.kit().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("HOME", env.root.join("home"))
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    run.expect(8, "Error! App '222860' state is 0x202 after update job.");
    assert!(!run.has(SUCCESS));
}

/// geteuid() without unsafe code: the owner of /proc/self.
fn unsafe_free_geteuid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn a_transient_network_failure_is_0x602_and_a_retry_succeeds() {
    let env = Env::new("transient");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot
        .set_fault(Fault::TransientNetworkFailures(1))
        .unwrap();
    let run = env.app_update(&[]);
    run.expect(8, "Error! App '222860' state is 0x602 after update job.");
    let acf = env.acf();
    assert_ne!(
        acf["buildid"], "100",
        "a failed update does not claim the build"
    );
    assert_ne!(acf["BytesDownloaded"], acf["BytesToDownload"]);
    env.app_update(&[]).expect(0, SUCCESS);
    assert_eq!(tree(&env.install()), expected(&build_a()));
    assert_complete_acf(&env.acf(), 100);
}

#[test]
fn rate_limited_login_fails_with_exit_5() {
    let env = Env::new("ratelimit");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot.set_fault(Fault::RateLimit(1)).unwrap();
    env.app_update(&[]).expect(
        5,
        "Connecting anonymously to Steam Public...FAILED (Rate Limit Exceeded)",
    );
    env.app_update(&[]).expect(0, SUCCESS);
}

#[test]
fn no_subscription_fails_with_exit_8() {
    let env = Env::new("nosub");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot.set_fault(Fault::NoSubscription).unwrap();
    env.app_update(&[])
        .expect(8, "ERROR! Failed to install app '222860' (No subscription)");
}

#[test]
fn an_unreachable_steam_fails_to_connect_with_exit_5() {
    let mut env = Env::new("unreachable");
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    env.server.take();
    install_kit(&env.kit(), &dead, None).unwrap();
    let run = env.app_update(&[]);
    run.expect(5, "FAILED (No Connection)");
    assert!(
        run.out
            .contains("Connecting anonymously to Steam Public...Retrying..."),
        "{}",
        run.out
    );
}

#[test]
fn a_lying_run_reports_success_but_the_appmanifest_shows_the_gap() {
    let env = Env::new("lie");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot.set_fault(Fault::Lie).unwrap();
    env.app_update(&[]).expect(0, SUCCESS);
    let acf = env.acf();
    let to_download: u64 = acf["BytesToDownload"].as_str().unwrap().parse().unwrap();
    let downloaded: u64 = acf["BytesDownloaded"].as_str().unwrap().parse().unwrap();
    assert!(downloaded < to_download, "{acf}");
    assert!(!env.install().join("left4dead2/old/removed.txt").exists());
}

#[test]
fn login_with_password_and_guard_then_cached_credentials() {
    let env = Env::new("login");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot
        .add_account("alice", "s3cret", Some("ABCDE"))
        .unwrap();
    env.depot
        .set_fault(Fault::InvalidPlatformForAnonymous)
        .unwrap();
    let no_prompt = ["+@NoPromptForPassword", "1"];

    let run = env.run(&[&no_prompt[..], &["+login", "alice", "wrong", "+quit"]].concat());
    run.expect(
        5,
        "Logging in user 'alice' [U:1:0] to Steam Public...FAILED (Invalid Password)",
    );
    let run = env.run(&[&no_prompt[..], &["+login", "alice", "s3cret", "+quit"]].concat());
    run.expect(5, "FAILED (Account Logon Denied)");
    assert!(
        run.has("Steam Guard code:") || run.out.contains("Steam Guard"),
        "{}",
        run.out
    );
    let run = env.run(&[&no_prompt[..], &["+login", "alice", "+quit"]].concat());
    run.expect(5, "Cached credentials not found.");

    let run = env.run(&["+login", "alice", "s3cret", "ABCDE", "+quit"]);
    run.expect(0, "Logging in user 'alice' [U:1:0] to Steam Public...OK");
    assert!(run.has("Waiting for user info...OK"));

    // later runs: the user name alone, with the account (no Invalid platform for it)
    let install = env.install();
    let run = env.run(
        &[
            &no_prompt[..],
            &[
                "+force_install_dir",
                install.to_str().unwrap(),
                "+login",
                "alice",
            ],
            &["+app_update", APP, "validate", "+quit"],
        ]
        .concat(),
    );
    run.expect(0, SUCCESS);
    assert!(
        run.has("Logging in using cached credentials."),
        "{}",
        run.out
    );

    // a fresh SteamCMD: password and guard code prompted on stdin
    let fresh = env.root.join("fresh");
    install_kit(&fresh, &env.url(), None).unwrap();
    let run = env.run_with(&fresh, &["+login", "alice", "+quit"], "s3cret\nABCDE\n");
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(run.out.contains("password: "), "{}", run.out);
    assert!(run.out.contains("Steam Guard code:"), "{}", run.out);
}

/// The VDF block of `app_info_print` output (after its "AppID : …" line).
fn app_info_vdf(out: &str) -> Value {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == format!("\"{APP}\""))
        .unwrap_or_else(|| panic!("no app info in\n{out}"));
    assert!(lines[start - 1].starts_with(&format!("AppID : {APP}, change number : ")));
    let end = start + lines[start..].iter().position(|l| *l == "}").unwrap();
    vdf(&lines[start..=end].join("\n"))
}

fn public_buildid(info: &Value) -> &str {
    info[APP]["depots"]["branches"]["public"]["buildid"]
        .as_str()
        .unwrap()
}

#[test]
fn app_info_print_is_stale_until_app_info_update_or_the_cache_is_deleted() {
    let env = Env::new("appinfo");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot.add_build("beta", 200, &build_b()).unwrap();
    env.depot.set_branch("beta", 200, Some("pw")).unwrap();
    let fresh = [
        "+login",
        "anonymous",
        "+app_info_update",
        "1",
        "+app_info_print",
        APP,
        "+quit",
    ];
    let cached = ["+login", "anonymous", "+app_info_print", APP, "+quit"];
    let run = env.run(&fresh);
    assert_eq!(run.code, 0, "{}", run.out);
    let info = app_info_vdf(&run.out);
    assert_eq!(public_buildid(&info), "100");
    assert_eq!(info[APP]["depots"]["branches"]["beta"]["buildid"], "200");
    assert_eq!(info[APP]["depots"]["branches"]["beta"]["pwdrequired"], "1");

    env.depot.add_build("public", 101, &build_b()).unwrap();
    assert_eq!(
        public_buildid(&app_info_vdf(&env.run(&cached).out)),
        "100",
        "stale"
    );
    assert_eq!(public_buildid(&app_info_vdf(&env.run(&fresh).out)), "101");
    env.depot.add_build("public", 102, &build_a()).unwrap();
    std::fs::remove_file(env.kit().join("appcache/appinfo.vdf")).unwrap();
    assert_eq!(public_buildid(&app_info_vdf(&env.run(&cached).out)), "102");
}

#[test]
fn a_beta_branch_with_its_password_is_installed_and_recorded() {
    let env = Env::new("beta");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot.add_build("beta", 200, &build_b()).unwrap();
    env.depot.set_branch("beta", 200, Some("pw")).unwrap();
    env.app_update(&["-beta", "beta", "-betapassword", "nope"])
        .expect(
            8,
            "ERROR! Failed to install app '222860' (Invalid beta password)",
        );
    env.app_update(&["-beta", "beta", "-betapassword", "pw", "validate"])
        .expect(0, SUCCESS);
    let acf = env.acf();
    assert_complete_acf(&acf, 200);
    assert_eq!(acf["UserConfig"]["betakey"], "beta");
    assert_eq!(tree(&env.install()), expected(&build_b()));
}

#[test]
fn runscript_runs_a_file_of_console_commands() {
    // What left4me does with a beta password: the app_update line lives in a script file, so
    // the password is on no command line.
    let env = Env::new("runscript");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.depot.add_build("beta", 200, &build_b()).unwrap();
    env.depot.set_branch("beta", 200, Some("pw")).unwrap();
    let script = env.root.join("run.txt");
    std::fs::write(
        &script,
        "// comments and blank lines are skipped\n\napp_update 222860 -beta beta -betapassword pw\n",
    )
    .unwrap();
    let install = env.install();
    let run = env.run(&[
        "+@NoPromptForPassword",
        "1",
        "+force_install_dir",
        install.to_str().unwrap(),
        "+login",
        "anonymous",
        "+runscript",
        script.to_str().unwrap(),
        "+quit",
    ]);
    run.expect(0, SUCCESS);
    assert_complete_acf(&env.acf(), 200);
    env.run(&["+runscript", "/nonexistent/run.txt", "+quit"])
        .expect(0, "Failed to open script file \"/nonexistent/run.txt\"");
}

#[test]
fn throttled_downloads_print_progress_at_least_every_second() {
    let env = Env::new("throttle");
    env.depot
        .add_build(
            "public",
            100,
            &[DepotFile::generated("big.bin", 0o644, 9, 750_000)],
        )
        .unwrap();
    install_kit(&env.kit(), &env.url(), Some(250_000)).unwrap();
    env.run(&["+quit"]); // the self-update run
    let install = env.install();
    let started = Instant::now();
    let mut child = Command::new(env.kit().join("steamcmd.sh"))
        .args(["+force_install_dir", install.to_str().unwrap()])
        .args(["+login", "anonymous", "+app_update", APP, "+quit"])
        .env("HOME", env.root.join("home"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stamps = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with(" Update state (0x61)") {
            stamps.push(started.elapsed());
        }
    }
    assert!(child.wait().unwrap().success());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "{elapsed:?}: throttled to 250 kB/s"
    );
    assert!(stamps.len() >= 4, "{stamps:?}");
    for pair in stamps.windows(2) {
        assert!(
            pair[1] - pair[0] <= Duration::from_millis(1300),
            "{stamps:?}"
        );
    }
}

#[test]
fn the_bootstrap_tarball_unpacks_to_a_working_steamcmd() {
    let env = Env::new("tarball");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    let tarball = env.root.join("steamcmd_linux.tar.gz");
    kit_tarball(&tarball, &env.url(), None).unwrap();
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for name in [
        "steamcmd.sh",
        "linux32/steamcmd",
        "linux32/steamclient.so",
        "linux64/steamclient.so",
    ] {
        assert!(
            listing.lines().any(|l| l.trim_start_matches("./") == name),
            "{name}: {listing}"
        );
    }
    let unpacked = env.root.join("bootstrapped");
    std::fs::create_dir_all(&unpacked).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap()
            .success()
    );
    let install = env.install();
    let run = env.run_with(
        &unpacked,
        &[
            "+force_install_dir",
            install.to_str().unwrap(),
            "+login",
            "anonymous",
            "+app_update",
            APP,
            "+quit",
        ],
        "",
    );
    run.expect(0, SUCCESS);
}

#[test]
fn privileged_runs_as_an_unprivileged_user_writing_only_its_own_dirs() {
    assert_eq!(
        unsafe_free_geteuid(),
        0,
        "privileged_* tests need root (they switch to uid 65534)"
    );
    let env = Env::new("nobody");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    let install = env.install();
    std::fs::create_dir_all(&install).unwrap();
    for dir in [env.kit(), env.root.join("home"), install.clone()] {
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env.kit().join("steamcmd.sh"))
        .args(["+@NoPromptForPassword", "1", "+force_install_dir"])
        .arg(&install)
        .args([
            "+login",
            "anonymous",
            "+app_update",
            APP,
            "validate",
            "+quit",
        ])
        .env_clear()
        .env("HOME", env.root.join("home"))
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    run.expect(0, SUCCESS);
    assert_eq!(tree(&install), expected(&build_a()));
    let owner = std::fs::metadata(install.join("srcds_run")).unwrap().uid();
    assert_eq!(owner, 65534);
    for written in ["logs/stderr.txt", "package/steam_cmd_linux.installed"] {
        assert!(env.kit().join(written).is_file(), "{written}");
    }
}

#[test]
fn synthetic_builds_update_through_the_client() {
    use left4me_steamcmd_standin::{next_build, synthetic_tree};
    let env = Env::new("synthetic");
    let a = synthetic_tree(8 << 20, 64, 1);
    let b = next_build(&a, 0.05, 2);
    env.depot.add_build("public", 1, &a).unwrap();
    env.app_update(&[]).expect(0, SUCCESS);
    assert_eq!(tree(&env.install()), expected(&a));
    env.depot.add_build("public", 2, &b).unwrap();
    env.app_update(&[]).expect(0, SUCCESS);
    assert_eq!(tree(&env.install()), expected(&b));
    let acf = env.acf();
    let downloaded: u64 = acf["BytesDownloaded"].as_str().unwrap().parse().unwrap();
    let total: u64 = b.iter().map(|f| f.content.len()).sum();
    assert!(
        downloaded * 100 <= total * 7 && downloaded * 100 >= total * 3,
        "{downloaded} of {total}"
    );
}

#[test]
fn privileged_an_update_through_overlayfs_leaves_only_the_delta_in_the_upper_layer() {
    use std::os::unix::fs::FileTypeExt;
    assert_eq!(
        unsafe_free_geteuid(),
        0,
        "privileged_* tests need root (they mount an overlayfs)"
    );
    let env = Env::new("overlay");
    env.depot.add_build("public", 100, &build_a()).unwrap();
    env.app_update(&[]).expect(0, SUCCESS); // the lower layer: build A in GAME
    let lower_before = tree(&env.install());
    env.depot.add_build("public", 101, &build_b()).unwrap();
    let (upper, work, merged) = (
        env.root.join("upper"),
        env.root.join("work"),
        env.root.join("merged"),
    );
    for dir in [&upper, &work, &merged] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let script = format!(
        "mount -t overlay overlay -o lowerdir='{}',upperdir='{}',workdir='{}' '{m}' && \
         exec '{}/steamcmd.sh' +force_install_dir '{m}' +login anonymous +app_update {APP} +quit",
        env.install().display(),
        upper.display(),
        work.display(),
        env.kit().display(),
        m = merged.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("HOME", env.root.join("home"))
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    };
    run.expect(0, SUCCESS);
    assert_eq!(
        tree(&env.install()),
        lower_before,
        "the lower layer is never written"
    );
    let upper_files = tree(&upper);
    let changed: Vec<&str> = upper_files.keys().map(String::as_str).collect();
    assert_eq!(
        changed,
        [
            "left4dead2/gameinfo.txt",
            "left4dead2/maps/c14m1_junkyard.bsp",
            "left4dead2/maps/c1m1_hotel.bsp",
        ],
        "only changed and added files are copied up"
    );
    let whiteout = std::fs::symlink_metadata(upper.join("left4dead2/old")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "a whiteout"
    );
    assert!(
        upper
            .join(format!("steamapps/appmanifest_{APP}.acf"))
            .is_file()
    );
    assert!(!upper.join("steamapps/downloading/222860").exists());
    assert_complete_acf(&acf_at(&upper), 101);
}
