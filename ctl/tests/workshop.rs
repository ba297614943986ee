//! The workshop overlay verbs without a network or systemd: what `overlay create` writes and
//! refuses, `show` before the first build, `refresh` with nothing to do, and a build whose
//! Steam Web API cannot be reached failing with the URL and nothing changed. The downloads,
//! the cache and the publish are tested end to end in tests/tests/booted_workshop.rs.

mod common;

use common::Fixture;

#[test]
fn create_writes_a_workshop_definition_from_ids_and_urls() {
    let fx = Fixture::standard();
    fx.run(&[
        "overlay",
        "create",
        "camps",
        "--workshop",
        "123456789,https://steamcommunity.com/sharedfiles/filedetails/?id=42&searchtext=x",
        "--collection",
        "987",
        "--exclude",
        "42",
    ])
    .assert_ok();
    let text = fx.read("etc/overlays/camps.toml");
    assert!(text.contains("kind = \"workshop\""), "{text}");
    assert!(text.contains("items = [123456789, 42]"), "{text}");
    assert!(text.contains("collections = [987]"), "{text}");
    assert!(text.contains("exclude = [42]"), "{text}");
    assert!(text.contains("refresh = \"daily\""), "{text}");
    fx.run(&["validate"]).assert_ok();

    let show = fx.run(&["overlay", "show", "camps"]);
    show.assert_ok();
    assert!(show.stdout.contains("workshop"), "{show:#?}");
    assert!(show.stdout.contains("no build yet"), "{show:#?}");
    let list = fx.run(&["overlay", "list", "--json"]);
    assert!(list.stdout.contains("\"kind\": \"workshop\""), "{list:#?}");
}

#[test]
fn create_refuses_options_of_other_kinds_and_bad_ids() {
    let fx = Fixture::standard();
    fx.refused(
        &[
            "overlay",
            "create",
            "a",
            "--workshop",
            "1",
            "--script",
            "true",
        ],
        "are for workshop overlays",
    );
    fx.refused(
        &[
            "overlay",
            "create",
            "a",
            "--workshop",
            "1",
            "--timeout",
            "1h",
        ],
        "are for script overlays",
    );
    fx.refused(
        &["overlay", "create", "a", "--kind", "workshop"],
        "needs items or collections",
    );
    fx.refused(
        &[
            "overlay", "create", "a", "--kind", "manual", "--script", "x",
        ],
        "only a script overlay has a script",
    );
    fx.refused(
        &["overlay", "create", "a", "--exclude", "5"],
        "are for workshop overlays",
    );
    fx.refused(
        &["overlay", "create", "a", "--refresh", "daily"],
        "a manual overlay is never rebuilt",
    );
    let bad = fx.run(&["overlay", "create", "a", "--workshop", "12x"]);
    assert_eq!(bad.status, 2, "{bad:#?}");
    assert!(bad.stderr.contains("is not a workshop id"), "{bad:#?}");
    assert!(!fx.path("etc/overlays/a.toml").exists());
}

#[test]
fn refresh_with_nothing_to_refresh_says_so() {
    let fx = Fixture::standard();
    fx.run(&["overlay", "create", "hand"]).assert_ok();
    let run = fx.run(&["overlay", "refresh"]);
    run.assert_ok();
    assert!(run.stdout.contains("no overlay to refresh"), "{run:#?}");
    fx.refused(&["overlay", "refresh", "hand"], "nothing refreshes it");
    let json = fx.run(&["overlay", "refresh", "--json"]);
    json.assert_ok();
    assert_eq!(json.stdout.trim(), "[]");
}

/// Answers one HTTP request with 404 (an answer the API client does not retry); the port.
fn serve_404() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    });
    port
}

#[test]
fn a_build_the_api_refuses_names_the_url_and_changes_nothing() {
    let fx = Fixture::standard();
    let port = serve_404();
    fx.write(
        "etc/host.toml",
        &format!("steam_web_api = \"http://127.0.0.1:{port}\"\n"),
    );
    fx.run(&["overlay", "create", "camps", "--workshop", "1"])
        .assert_ok();
    let before = fx.tree();
    let run = fx.run(&["overlay", "build", "camps", "--dry-run"]);
    assert_eq!(run.status, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")),
        "{run:#?}"
    );
    assert!(run.stderr.contains("404"), "{run:#?}");
    assert_eq!(fx.tree(), before, "nothing changed");
}
