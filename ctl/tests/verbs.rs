//! Every verb against a temp config dir: the happy paths, and bad input of each kind giving exit
//! status 2, one clear line, and unchanged files.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use common::{Fixture, INSTANCE_COOP1, INSTANCE_VS1};
use rustix::fs::FlockOperation;

#[test]
fn create_writes_a_valid_spec() {
    let fx = Fixture::standard();
    let run = fx.run(&[
        "create",
        "coop2",
        "--port",
        "27016",
        "--blueprint",
        "coop",
        "--map",
        "c3m1_plankcountry",
        "--maxplayers",
        "8",
        "--overlay",
        "overlays/maps",
        "--overlay",
        "overlays/tickrate:tickrate",
    ]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "created instance coop2 ([ROOT]/etc/instances/coop2.toml)\n\
         not reloading systemd (--no-reload); run `systemctl daemon-reload` to apply the change\n"
    );
    assert_eq!(
        fx.read("etc/instances/coop2.toml"),
        "# left4me instance 'coop2', created by left4mectl.\n\
         # Change it with `left4mectl edit coop2` (or `set`); `left4mectl show coop2` shows the result.\n\
         blueprint = \"coop\"\n\
         port = 27016\n\
         map = \"c3m1_plankcountry\"\n\
         maxplayers = 8\n\
         overlays = [\n  \"overlays/maps\",\n  { path = \"overlays/tickrate\", alias = \"tickrate\" },\n]\n"
    );
    let mode = fs::metadata(fx.path("etc/instances/coop2.toml"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
    fx.run(&["validate", "coop2"]).assert_ok();
}

#[test]
fn create_makes_the_dirs_it_needs() {
    let fx = Fixture::empty();
    fs::remove_dir(fx.config_dir()).unwrap();
    fx.run(&["create", "a", "--port", "27015"]).assert_ok();
    fx.run(&["blueprint", "create", "b"]).assert_ok();
    assert_eq!(
        fx.read("etc/instances/a.toml").lines().last(),
        Some("port = 27015")
    );
    assert!(fx.path("etc/blueprints/b.toml").is_file());
}

#[test]
fn create_refuses_bad_input_and_changes_nothing() {
    let fx = Fixture::standard();
    fx.refused(
        &["create", "Coop3", "--port", "27016"],
        "'Coop3' is not a valid name",
    );
    fx.refused(
        &["create", "../x", "--port", "27016"],
        "is not a valid name",
    );
    fx.refused(
        &["create", "coop3", "--port", "27015"],
        "key 'port': 27015 is already used by instance 'coop1'",
    );
    fx.refused(
        &["create", "coop3", "--port", "80"],
        "key 'port': 80 is outside the host's port_range 27000-27999",
    );
    fx.refused(
        &["create", "coop3", "--port", "27016", "--blueprint", "nope"],
        "blueprint 'nope' does not exist",
    );
    fx.refused(
        &["create", "coop3", "--port", "27016", "--overlay", "/etc"],
        "key 'overlays[0]': '/etc' is absolute",
    );
    fx.refused(
        &["create", "coop3", "--port", "27016", "--maxplayers", "33"],
        "key 'maxplayers': 33 is out of range",
    );
    fx.refused(
        &["create", "vs1", "--port", "27016"],
        "vs1.toml already exists",
    );
}

#[test]
fn usage_errors_exit_2() {
    let fx = Fixture::standard();
    let run = fx.run(&["create", "coop3"]);
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains("--port <PORT>"), "{run:#?}");
    assert_eq!(fx.run(&["frobnicate"]).status, 2);
    assert_eq!(fx.run(&["set", "coop1"]).status, 2);
}

#[test]
fn runtime_errors_exit_1() {
    let fx = Fixture::empty();
    fx.write("etc/instances", "a file where a dir should be");
    let run = fx.run(&["create", "a", "--port", "27015"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
}

#[test]
fn set_changes_keys_and_keeps_comments() {
    let fx = Fixture::standard();
    let run = fx.run(&[
        "set",
        "coop1",
        "port=27016",
        "map=c5m1_waterfront",
        "maxplayers=8",
        r#"args=["-tickrate", "100"]"#,
        "resources.memory_max=3G",
        "health.watchdog=0",
    ]);
    run.assert_ok();
    assert!(
        run.stdout.starts_with(
            "updated instance coop1 ([ROOT]/etc/instances/coop1.toml): port map maxplayers args resources.memory_max health.watchdog\n"
        ),
        "{run:#?}"
    );
    assert_eq!(
        fx.read("etc/instances/coop1.toml"),
        r#"# The first coop server.
blueprint = "coop"
port = 27016 # the game port
map = "c5m1_waterfront"
args = ["-tickrate", "100"]
overlays = ["overlays/tickrate"]
config = 'hostname "Coop #1"'
maxplayers = 8

[health]
watchdog = "0" # a minute is too long

[resources]
memory_max = "3G"
"#
    );
    let shown = fx.run(&["show", "coop1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(json["port"], 27016);
    assert_eq!(json["watchdog"], "0");
    assert_eq!(json["resources"]["memory_max"], "3G");

    fx.run(&[
        "set",
        "coop1",
        "--unset",
        "maxplayers",
        "--unset",
        "health.watchdog",
    ])
    .assert_ok();
    let text = fx.read("etc/instances/coop1.toml");
    assert!(
        !text.contains("maxplayers") && !text.contains("watchdog"),
        "{text}"
    );
    assert!(text.contains("port = 27016 # the game port\n"), "{text}");
}

#[test]
fn set_without_a_change_says_so() {
    let fx = Fixture::standard();
    let before = fx.tree();
    let run = fx.run(&["set", "vs1", "port=27020"]);
    run.assert_ok();
    assert_eq!(run.stdout, "no changes to instance vs1\n");
    assert_eq!(fx.tree(), before);
}

#[test]
fn set_refuses_bad_input_and_changes_nothing() {
    let fx = Fixture::standard();
    fx.refused(
        &["set", "coop1", "mapp=c1m1_hotel"],
        "coop1.toml: key 'mapp': unknown key (known keys here: blueprint, port,",
    );
    fx.refused(
        &["set", "coop1", "resources.swap=1G"],
        "key 'resources.swap': unknown key",
    );
    fx.refused(
        &["set", "coop1", "port=27020"],
        "already used by instance 'vs1'",
    );
    fx.refused(
        &["set", "coop1", "port=70000"],
        "key 'port': 70000 is out of range",
    );
    fx.refused(
        &["set", "coop1", "blueprint=nope"],
        "blueprint 'nope' does not exist",
    );
    fx.refused(
        &["set", "coop1", "map="],
        "'map=' has no value; remove the key with --unset map",
    );
    fx.refused(&["set", "coop1", "map"], "'map' is not KEY=VALUE");
    fx.refused(&["set", "coop1", "a..b=1"], "'a..b' is not a key");
    fx.refused(&["set", "coop1", "port.x=1"], "'port' is not a table");
    fx.refused(
        &["set", "coop1", "--unset", "maxplayers"],
        "key 'maxplayers' is not set",
    );
    fx.refused(&["set", "nope", "port=27016"], "no instance 'nope'");
    fx.refused(&["set", "No", "port=27016"], "'No' is not a valid name");
}

#[test]
fn set_on_a_file_with_broken_toml_points_at_edit() {
    let fx = Fixture::standard();
    fx.write("etc/instances/vs1.toml", "port = \n");
    fx.refused(&["set", "vs1", "port=27021"], "vs1.toml: line 1, column");
}

#[test]
fn show_prints_the_merged_spec() {
    let fx = Fixture::standard();
    let run = fx.run(&["show", "coop1", "--json"]);
    run.assert_ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["map"], "c2m1_highway", "the instance wins");
    assert_eq!(json["maxplayers"], 4, "from the blueprint");
    assert_eq!(
        json["overlays"][0]["path"], "overlays/sourcemod",
        "blueprint's first"
    );
    assert_eq!(json["overlays"][1]["path"], "overlays/tickrate");
    assert_eq!(json["config"], "sv_consistency 0\nhostname \"Coop #1\"");
    fx.refused(&["show", "nope"], "no instance 'nope'");
}

#[test]
fn show_list_and_render_of_a_bad_instance() {
    let fx = Fixture::standard();
    fx.write("etc/instances/bad.toml", "port = 27030\nmapp = 'x'\n");
    fx.refused(&["show", "bad"], "bad.toml: key 'mapp': unknown key");
    fx.refused(&["render", "bad"], "bad.toml: key 'mapp': unknown key");
    let run = fx.run(&["list", "--json"]);
    run.assert_ok();
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows[0]["name"], "bad");
    assert_eq!(rows[0]["ok"], false);
    assert_eq!(rows[0]["port"], 27030, "read from the file as written");
    assert!(rows[0]["error"].as_str().unwrap().contains("key 'mapp'"));
    assert_eq!(rows[1]["ok"], true);
}

#[test]
fn validate_everything_one_name_or_one_file() {
    let fx = Fixture::standard();
    let run = fx.run(&["validate"]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "checked 2 instances, 1 blueprint, 0 overlay definitions: all valid\n"
    );
    fx.run(&["validate", "coop1"]).assert_ok();
    fx.refused(&["validate", "nope"], "no instance 'nope'");

    fx.write("draft/coop9.toml", "port = 27015\n");
    fx.refused(
        &["validate", &fx.path("draft/coop9.toml").to_string_lossy()],
        "draft/coop9.toml: key 'port': 27015 is already used by instance 'coop1'",
    );
    fx.write("draft/coop9.toml", "port = 27019\n");
    let run = fx.run(&["validate", &fx.path("draft/coop9.toml").to_string_lossy()]);
    run.assert_ok();
    assert_eq!(run.stdout, "[ROOT]/draft/coop9.toml: ok (instance spec)\n");

    fx.write("draft/blueprints/x.toml", "port = 1\n");
    fx.refused(
        &[
            "validate",
            &fx.path("draft/blueprints/x.toml").to_string_lossy(),
        ],
        "key 'port': a blueprint cannot set this",
    );
    fx.write("etc/overlays/maps.toml", "kind = 'manual'\n");
    let run = fx.run(&[
        "validate",
        &fx.path("etc/overlays/maps.toml").to_string_lossy(),
    ]);
    run.assert_ok();
    assert!(
        run.stdout.ends_with("ok (overlay definition)\n"),
        "{run:#?}"
    );
    fx.write("etc/host.toml", "port_range = [1, 2, 3]\n");
    fx.refused(
        &["validate", &fx.path("etc/host.toml").to_string_lossy()],
        "key 'port_range'",
    );
    fx.refused(
        &["validate", "./missing.toml"],
        "./missing.toml: no such file",
    );
}

#[test]
fn validate_reports_each_bad_file_and_exits_2() {
    let fx = Fixture::standard();
    fx.write("etc/instances/dup.toml", "port = 27015\n");
    fx.write("etc/instances/Upper.toml", "port = 27031\n");
    fx.write("etc/blueprints/broken.toml", "maxplayers = 'many'\n");
    fx.write("etc/overlays/maps.toml", "kind = 'script'\n");
    fx.write("etc/instances/.coop1.toml.swp", "ignored\n");
    let before = fx.tree();
    let run = fx.run(&["validate"]);
    assert_eq!(run.status, 2, "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{run:#?}");
    assert!(
        lines[0].starts_with("[ROOT]/etc/instances/Upper.toml: file name:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("[ROOT]/etc/instances/dup.toml: key 'port'"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("[ROOT]/etc/blueprints/broken.toml: key 'maxplayers'"));
    assert!(lines[3].starts_with("[ROOT]/etc/overlays/maps.toml: key 'script'"));
    assert_eq!(
        lines[4],
        "checked 4 instances, 2 blueprints, 1 overlay definition: 4 invalid"
    );
    assert_eq!(fx.tree(), before);
}

#[test]
fn list_shows_every_instance() {
    let fx = Fixture::empty();
    let run = fx.run(&["list"]);
    run.assert_ok();
    assert!(
        run.stdout
            .starts_with("no instances in [ROOT]/etc/instances"),
        "{run:#?}"
    );
    fx.write("etc/instances/vs1.toml", INSTANCE_VS1);
    let run = fx.run(&["list"]);
    assert_eq!(
        run.stdout,
        "NAME  PORT   MAP         BLUEPRINT  SPEC\nvs1   27020  c1m1_hotel  -          ok\n"
    );
}

#[test]
fn blueprint_verbs() {
    let fx = Fixture::standard();
    let run = fx.run(&[
        "blueprint",
        "create",
        "versus",
        "--map",
        "c5m1_waterfront",
        "--maxplayers",
        "8",
        "--overlay",
        "overlays/sourcemod:sm",
    ]);
    run.assert_ok();
    assert!(
        run.stdout
            .starts_with("created blueprint versus ([ROOT]/etc/blueprints/versus.toml)\n")
    );
    fx.run(&["set", "vs1", "blueprint=versus"]).assert_ok();
    let run = fx.run(&["blueprint", "list"]);
    run.assert_ok();
    assert_eq!(
        run.stdout,
        "NAME    INSTANCES  SPEC\ncoop    1          ok\nversus  1          ok\n"
    );
    let run = fx.run(&["blueprint", "show", "versus", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["settings"]["map"], "c5m1_waterfront");
    assert_eq!(json["used_by"][0], "vs1");
    fx.run(&[
        "blueprint",
        "set",
        "versus",
        "maxplayers=4",
        "--unset",
        "map",
    ])
    .assert_ok();
    let run = fx.run(&["show", "vs1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["maxplayers"], 8, "the instance's own value wins");
    assert_eq!(json["map"], "c1m1_hotel", "the default again");

    fx.refused(&["blueprint", "create", "coop"], "coop.toml already exists");
    fx.refused(
        &["blueprint", "create", "Co-op"],
        "blueprint name 'Co-op' is not a valid name",
    );
    fx.refused(
        &["blueprint", "set", "coop", "port=27015"],
        "a blueprint cannot set this",
    );
    fx.refused(&["blueprint", "show", "nope"], "no blueprint 'nope'");
}

#[test]
fn a_blueprint_change_that_breaks_an_instance_is_refused() {
    let fx = Fixture::standard();
    fx.write(
        "etc/instances/coop2.toml",
        "blueprint = 'coop'\nport = 27016\n",
    );
    // coop1 lists overlays/tickrate itself: the blueprint may not list it too.
    let run = fx.refused(
        &["blueprint", "set", "coop", r#"overlays=["overlays/tickrate"]"#],
        "this change would make 1 instance invalid: instance 'coop1' (key 'overlays': 'overlays/tickrate' is listed twice",
    );
    assert!(!run.stderr.contains("coop2"), "{run:#?}");
    fx.refused(
        &["blueprint", "set", "coop", "resources.memory_high=3G"],
        "this change would make 2 instances invalid: instance 'coop1' (key 'resources.memory_high'",
    );
}

#[test]
fn an_already_invalid_instance_does_not_block_its_blueprint() {
    let fx = Fixture::standard();
    fx.write(
        "etc/instances/coop2.toml",
        "blueprint = 'coop'\nport = 27015\n",
    );
    fx.run(&["blueprint", "set", "coop", "maxplayers=6"])
        .assert_ok();
}

#[test]
fn render_shows_every_section() {
    let fx = Fixture::standard();
    let run = fx.run(&["render", "coop1", "--json"]);
    run.assert_ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json["dropin"]["path"],
        "left4me-server@coop1.service.d/50-left4me.conf"
    );
    assert!(json["dropin"]["text"].as_str().unwrap().contains(
        "SocketBindAllow=udp:27015\nSocketBindAllow=udp:27115\nSocketBindAllow=tcp:27015\n"
    ));
    assert_eq!(
        json["binds"],
        serde_json::json!([
            {"protocol": "udp", "port": 27015, "role": "game"},
            {"protocol": "udp", "port": 27115, "role": "client"},
            {"protocol": "tcp", "port": 27015, "role": "rcon"}
        ])
    );
    assert_eq!(
        json["lowerdirs"],
        serde_json::json!([
            "[ROOT]/state/overlays/tickrate",
            "[ROOT]/state/overlays/sourcemod",
            "[ROOT]/state/installation"
        ])
    );
    assert_eq!(
        json["argv"][0],
        "[ROOT]/state/runtime/coop1/merged/srcds_run"
    );
    assert_eq!(json["alias_cfgs"][0]["alias"], "sm");
}

#[test]
fn writers_wait_for_the_lock() {
    let fx = Fixture::standard();
    let lock = File::create(fx.path("etc/.left4mectl.lock")).unwrap();
    rustix::fs::flock(&lock, FlockOperation::LockExclusive).unwrap();
    let mut child = fx
        .command(&["set", "vs1", "maxplayers=4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "set went ahead without the lock"
    );
    assert_eq!(fx.read("etc/instances/vs1.toml"), INSTANCE_VS1);
    drop(lock);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("waiting for the lock"), "{stderr}");
    assert!(fx.read("etc/instances/vs1.toml").contains("maxplayers = 4"));
    // Readers never take the lock.
    assert_eq!(INSTANCE_COOP1, fx.read("etc/instances/coop1.toml"));
}
