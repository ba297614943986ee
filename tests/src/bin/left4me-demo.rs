//! `make demo`: left4me doing its job, narrated, inside a throwaway systemd.
//!
//! Boots a systemd of its own (see tests/boot/README.md: nothing on this machine is touched),
//! installs left4me into it with `make install`, installs the game with `left4mectl game
//! install` (the stand-in SteamCMD, an i386 program, in the sandbox, downloading from a
//! stand-in Steam inside the system's network: Steam is out of reach here), creates a blueprint
//! with overlays and two instances from it, starts them, shows `left4mectl list` and `status`,
//! queries one over A2S, updates the game while one instance has a player (only the empty one
//! restarts onto the new version), talks to the busy one over RCON and restarts it once its
//! player leaves, stops everything and tears the system down.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::cell::Cell;

use left4me_a2s::A2sClient;
use left4me_steamcmd_standin::{Depot, DepotFile};
use left4me_tests::BootedSystem;
use left4me_tests::steam::{FakeSteam, base_files};
use left4me_tests::workshop::FakeWorkshop;
use left4me_workshop_standin::fixture::Fixture;
use left4me_workshop_standin::fixture::standard::{COLLECTION, OK_1};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Demo {
    sys: BootedSystem,
    step: Cell<usize>,
}

const STEPS: usize = 11;

/// The stand-in Steam's builds: the first install and the update.
const BUILD_A: u64 = 9_000_001;
const BUILD_B: u64 = 9_000_002;

impl Demo {
    fn say(&self, text: &str) {
        self.step.set(self.step.get() + 1);
        println!("\n[{}/{STEPS}] {text}", self.step.get());
    }

    /// Runs `argv` inside the system, showing it as a shell line and its output indented;
    /// fails unless it exits 0.
    fn show(&self, argv: &[&str]) -> Result<String> {
        let (text, ok) = self.show_any(argv)?;
        if !ok {
            return Err(format!("`{}` failed", argv.join(" ")).into());
        }
        Ok(text)
    }

    /// Like [`Self::show`], whatever the exit status (shown); says whether it was 0.
    fn show_any(&self, argv: &[&str]) -> Result<(String, bool)> {
        println!("  $ {}", argv.join(" "));
        let started = Instant::now();
        let out = self.sys.run(argv.iter().copied())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            println!("    {line}");
        }
        if !out.status.success() {
            println!("    ({})", out.status);
        }
        if started.elapsed() > Duration::from_millis(500) {
            println!("    ({:.1} s)", started.elapsed().as_secs_f64());
        }
        Ok((text, out.status.success()))
    }

    fn write(&self, inside: &str, text: impl AsRef<[u8]>) -> Result<()> {
        let path = self.sys.host_path(inside);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, text)?;
        Ok(())
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    println!("left4me demo: everything below happens inside a throwaway systemd in namespaces of");
    println!("its own (its own PID 1, mounts and network); this machine's system is not touched.");
    match demo() {
        Ok(()) => {
            println!(
                "\nDemo finished in {:.1} s.",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("\ndemo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Tells the stand-in game of `name` who plays (its control file, read every 200 ms), and
/// gives it the time to read it.
fn control(demo: &Demo, name: &str, words: &str) -> Result<()> {
    let control = format!("/var/lib/left4me/runtime/{name}/merged/left4dead2/standin.control");
    demo.sys
        .run_ok(["sh", "-c", &format!("echo '{words}' > {control}")])?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

fn demo() -> Result<()> {
    println!(
        "\n[1/{STEPS}] Booting a throwaway systemd and installing left4me into it (make install DESTDIR=…)"
    );
    let booted = Instant::now();
    let sys = BootedSystem::builder()
        .name("demo")
        .install_project(true)
        // `game install` first checks for room for a real download (about 12 GiB).
        .tmpfs_size("64g")
        .boot()?;
    println!(
        "    booted in {:.1} s: systemd 252 as PID 1, left4me's units, generator and users installed",
        booted.elapsed().as_secs_f64()
    );
    let demo = Demo {
        sys,
        step: Cell::new(1),
    };

    demo.say(
        "Installing the game with SteamCMD: the stand-in SteamCMD (an i386 program) runs in the \
         sandbox and downloads from a stand-in Steam inside the system's network",
    );
    let depot_dir = demo.sys.base_dir().join("depot");
    let depot = Depot::create(&depot_dir)?;
    depot.add_build("public", BUILD_A, &base_files(BUILD_A)?)?;
    depot.set_branch("public", BUILD_A, None)?;
    let steam = FakeSteam::start(&demo.sys, Depot::open(&depot_dir), None)?;
    demo.show(&["left4mectl", "game", "install"])?;
    demo.write(
        "/var/lib/left4me/overlays/tickrate/left4dead2/cfg/server.cfg",
        "// from the tickrate overlay\nsv_maxupdaterate 100\n",
    )?;
    demo.write(
        "/var/lib/left4me/overlays/maps/left4dead2/addons/custom_campaign.vpk",
        left4me_workshop_standin::vpk::build(&[("missions/custom_campaign.txt", b"a map")]),
    )?;
    // The content is the game user's, as a build publishes it; overlays/ stays root's.
    demo.sys.run_ok([
        "chown",
        "-R",
        "left4me:left4me",
        "/var/lib/left4me/overlays/tickrate",
        "/var/lib/left4me/overlays/maps",
    ])?;
    println!(
        "    and two overlays: overlays/maps (an addon) and overlays/tickrate (with its own server.cfg)"
    );

    demo.say("Writing a blueprint and two instances from it with left4mectl");
    demo.show(&[
        "left4mectl",
        "blueprint",
        "create",
        "coop",
        "--map",
        "c2m1_highway",
        "--maxplayers",
        "4",
        "--overlay",
        "overlays/maps",
        "--overlay",
        "overlays/tickrate:tickrate",
    ])?;
    demo.show(&[
        "left4mectl",
        "create",
        "coop1",
        "--port",
        "27015",
        "--blueprint",
        "coop",
    ])?;
    demo.show(&[
        "left4mectl",
        "create",
        "coop2",
        "--port",
        "27016",
        "--blueprint",
        "coop",
        "--map",
        "c5m1_waterfront",
    ])?;
    demo.show(&["left4mectl", "set", "coop1", "config=hostname \"Coop #1\""])?;
    demo.show(&[
        "left4mectl",
        "set",
        "coop2",
        "config=hostname \"Coop #2\"",
        "maxplayers=8",
    ])?;
    demo.show(&["left4mectl", "render", "coop1"])?;

    demo.say("Starting both: each is active only once its game answers A2S queries");
    demo.show(&["left4mectl", "start", "coop1"])?;
    demo.show(&["left4mectl", "start", "coop2"])?;

    demo.say("What is running");
    demo.show(&["left4mectl", "list"])?;
    demo.show(&["left4mectl", "status", "coop1"])?;
    demo.show(&["findmnt", "-t", "overlay", "-o", "TARGET,SOURCE"])?;

    demo.say("Asking coop2 over A2S from inside the system's network, like a game client would");
    let info = demo.sys.in_netns(|| {
        A2sClient::connect(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 27016)),
            Duration::from_secs(2),
        )
        .and_then(|client| client.info())
    })??;
    println!(
        "    {} — map {}, {}/{} players, game {} (app {})",
        info.name, info.map, info.players, info.max_players, info.game, info.app_id
    );

    demo.say(
        "A new build is out. coop1 has a player, coop2 none: the update restarts only coop2 \
         onto it; coop1 keeps its version until its player leaves",
    );
    let mut files = base_files(BUILD_B)?;
    files.push(DepotFile::bytes(
        "left4dead2/addons/new_in_b.txt",
        0o644,
        b"added by the update\n",
    ));
    depot.add_build("public", BUILD_B, &files)?;
    depot.set_branch("public", BUILD_B, None)?;
    control(&demo, "coop1", "players 1")?;
    demo.show_any(&["left4mectl", "game", "check"])?;
    demo.show(&[
        "left4mectl",
        "game",
        "update",
        "--restart",
        "when-empty",
        "--max-wait",
        "3s",
    ])?;
    demo.show(&["left4mectl", "game", "versions"])?;
    demo.show(&["left4mectl", "list"])?;
    drop(steam);

    demo.say(
        "Live operations on coop1: who plays, its console over RCON (the password is root's, \
         made at create), then a restart that waits for the last player to leave",
    );
    control(&demo, "coop1", "player Ellis 7")?;
    demo.show(&["left4mectl", "players", "coop1"])?;
    demo.show(&["left4mectl", "rcon", "coop1", "status"])?;
    demo.show(&[
        "left4mectl",
        "rcon",
        "coop1",
        "changelevel",
        "c2m2_fairgrounds",
    ])?;
    demo.show_any(&[
        "left4mectl",
        "restart",
        "coop1",
        "--when-empty",
        "--max-wait",
        "2s",
        "--or-skip",
        "--announce",
        "Restart for the new game version once everyone has left",
    ])?;
    println!("    Ellis leaves (the stand-in's control file says `players 0`):");
    control(&demo, "coop1", "players 0")?;
    demo.show(&["left4mectl", "restart", "coop1", "--when-empty"])?;
    demo.show(&["left4mectl", "list"])?;

    demo.say(
        "Workshop campaigns: an item and a collection (with a nested one) resolved with a \
         stand-in Steam Web API, downloaded in the sandbox into the cache, linked into coop2; \
         then the item is updated upstream and the nightly refresh picks it up",
    );
    let workshop = FakeWorkshop::start(&demo.sys, Fixture::standard())?;
    let (item, collection) = (OK_1.to_string(), COLLECTION.to_string());
    demo.show(&[
        "left4mectl",
        "overlay",
        "create",
        "campaigns",
        "--workshop",
        &item,
        "--collection",
        &collection,
    ])?;
    demo.show(&["left4mectl", "overlay", "build", "campaigns"])?;
    demo.show(&["left4mectl", "overlay", "show", "campaigns"])?;
    demo.show(&[
        "left4mectl",
        "set",
        "coop2",
        "overlays=[\"overlays/campaigns\"]",
    ])?;
    demo.show(&["left4mectl", "restart", "coop2"])?;
    demo.show(&["left4mectl", "rcon", "coop2", "left4me_addons"])?;
    workshop.update_item(OK_1);
    println!("    item {OK_1} gets a new version upstream:");
    demo.show(&["left4mectl", "overlay", "refresh"])?;
    demo.show(&["left4mectl", "list"])?;
    drop(workshop);

    demo.say("Stopping everything: the overlays are unmounted as the units stop");
    demo.show(&["left4mectl", "stop", "coop1"])?;
    demo.show(&["left4mectl", "stop", "coop2"])?;
    demo.show(&["left4mectl", "list"])?;

    demo.say("Powering the throwaway system off and removing every trace of it");
    let Demo { sys, .. } = demo;
    let took = sys.shutdown()?;
    println!("    gone in {:.2} s", took.as_secs_f64());
    Ok(())
}
