//! The add-ons the stand-in mounts at map load: `left4dead2/addons/*.vpk` (VPKs written by the
//! workshop stand-in, links to them as the workshop overlay makes, and files that are not
//! VPKs), in its log and over RCON with the test-only `left4me_addons`.

use std::time::Duration;

use left4me_rcon::Client;
use left4me_workshop_standin::fixture::{HTML_ERROR_PAGE, item_vpk};
use left4me_workshop_standin::vpk;

mod common;

use common::{GameTree, Server};

const PASSWORD: &str = "addons";

#[test]
fn lists_the_addons_in_the_log_and_over_rcon() {
    let tree = GameTree::new("addons");
    tree.cfg("server.cfg", &format!("rcon_password \"{PASSWORD}\"\n"));
    let addons = tree.game().join("addons");
    std::fs::create_dir_all(&addons).unwrap();
    // A workshop item as the cache holds it, hard-linked in as the workshop overlay does.
    let cache = tree.root.join("cache.vpk");
    std::fs::write(&cache, item_vpk(3_100_000_001, 2)).unwrap();
    std::fs::hard_link(&cache, addons.join("3100000001.vpk")).unwrap();
    let two = vpk::build(&[("maps/a.bsp", b"map"), ("missions/a.txt", b"m")]);
    std::fs::write(addons.join("3100000002.vpk"), two).unwrap();
    std::fs::write(addons.join("error.vpk"), HTML_ERROR_PAGE).unwrap();
    std::fs::write(addons.join("readme.txt"), "not an add-on").unwrap();

    let mut server = Server::start(&tree, &[]);
    server.wait_ready(Duration::from_secs(10));
    let expected = [
        "Addon 3100000001.vpk: VPK v1, 1 file(s)",
        "Addon 3100000001.vpk: file missions/3100000001_v2.txt",
        "Addon 3100000002.vpk: VPK v1, 2 file(s)",
        "Addon 3100000002.vpk: file maps/a.bsp",
        "Addon 3100000002.vpk: file missions/a.txt",
        "Addon error.vpk: not a VPK (an HTML page, not a VPK header)",
    ];
    let log = tree.log();
    let logged: Vec<&str> = log.lines().filter(|l| l.starts_with("Addon ")).collect();
    assert_eq!(logged, expected, "{log}");

    let mut rcon = Client::connect(server.addr, PASSWORD, Duration::from_secs(5)).unwrap();
    let answer = rcon.exec("left4me_addons").unwrap();
    assert_eq!(answer, format!("{}\n", expected.join("\n")));

    // Mounted at map load: a file added later is not listed.
    std::fs::write(addons.join("late.vpk"), item_vpk(9, 1)).unwrap();
    assert_eq!(rcon.exec("left4me_addons").unwrap(), answer);
}

#[test]
fn no_addons_directory_lists_nothing() {
    let tree = GameTree::new("noaddons");
    tree.cfg("server.cfg", &format!("rcon_password \"{PASSWORD}\"\n"));
    let mut server = Server::start(&tree, &[]);
    server.wait_ready(Duration::from_secs(10));
    let mut rcon = Client::connect(server.addr, PASSWORD, Duration::from_secs(5)).unwrap();
    assert_eq!(rcon.exec("left4me_addons").unwrap(), "");
    assert!(!tree.log().contains("Addon "));
}
