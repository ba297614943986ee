//! The secrets module against a temp admin dir, as whoever runs the tests (the owner check is
//! made against the tests' own uid; production checks root).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use super::*;

fn me() -> Secrets {
    Secrets {
        owner: rustix::process::geteuid().as_raw(),
    }
}

/// A fresh admin dir path (not created) under the temp dir; removed when dropped.
struct Admin(PathBuf);

impl Admin {
    fn new(tag: &str) -> Admin {
        let path =
            std::env::temp_dir().join(format!("left4me-secrets-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Admin(path)
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn a_password_is_32_characters_of_the_alphabet_and_differs_each_time() {
    let a = generate_password().unwrap();
    let b = generate_password().unwrap();
    assert_eq!(a.len(), PASSWORD_LEN);
    assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
    assert!(is_valid_password(&a));
    assert_ne!(a, b);
    // Safe inside a quoted cfg string.
    for c in [b'"', b';', b' ', b'\t', b'\n', b'\\', b'\''] {
        assert!(!ALPHABET.contains(&c));
    }
}

#[test]
fn generated_characters_are_spread_over_the_whole_alphabet() {
    let mut seen = [0u32; 256];
    for _ in 0..200 {
        for c in generate_password().unwrap().bytes() {
            seen[usize::from(c)] += 1;
        }
    }
    // 6400 draws over 62 characters: each expected ~103 times.
    for &c in ALPHABET {
        assert!(
            (40..200).contains(&seen[usize::from(c)]),
            "{} seen {}",
            c as char,
            seen[usize::from(c)]
        );
    }
}

#[test]
fn ensure_makes_one_then_keeps_it_rotate_replaces_it_remove_removes_it() {
    let admin = Admin::new("cycle");
    let s = me();
    assert!(s.read(&admin.0, "coop1").unwrap_err().is_missing());
    let first = s.ensure(&admin.0, "coop1").unwrap();
    assert_eq!(s.ensure(&admin.0, "coop1").unwrap(), first);
    assert_eq!(s.read(&admin.0, "coop1").unwrap(), first);
    let file = admin.0.join("rcon/coop1");
    assert_eq!(mode(&admin.0.join("rcon")), 0o700);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{first}\n")
    );

    let second = s.rotate(&admin.0, "coop1").unwrap();
    assert_ne!(second, first);
    assert_eq!(s.read(&admin.0, "coop1").unwrap(), second);
    assert_eq!(mode(&file), 0o600);

    s.remove(&admin.0, "coop1").unwrap();
    s.remove(&admin.0, "coop1").unwrap(); // idempotent
    assert!(s.read(&admin.0, "coop1").unwrap_err().is_missing());
    // No temp file left behind.
    assert_eq!(std::fs::read_dir(admin.0.join("rcon")).unwrap().count(), 0);
}

#[test]
fn reading_or_removing_without_an_admin_dir_is_missing_or_nothing() {
    let admin = Admin::new("none");
    let err = me().read(&admin.0, "vs1").unwrap_err();
    assert!(err.is_missing());
    assert!(
        err.to_string()
            .contains("left4mectl rcon-password vs1 --rotate"),
        "{err}"
    );
    me().remove(&admin.0, "vs1").unwrap();
    assert!(!admin.0.exists());
}

#[test]
fn a_bad_name_is_refused_before_any_file_is_touched() {
    let admin = Admin::new("badname");
    for name in ["../x", "Coop", "", ".hidden", "a/b"] {
        let err = me().ensure(&admin.0, name).unwrap_err();
        assert!(matches!(err, SecretError::BadName { .. }), "{name}: {err}");
        assert!(err.to_string().contains("not a valid name"), "{err}");
    }
    assert!(!admin.0.exists());
}

#[test]
fn a_secrets_dir_or_file_open_to_others_is_refused() {
    let admin = Admin::new("exposed");
    let s = me();
    s.ensure(&admin.0, "coop1").unwrap();
    let dir = admin.0.join("rcon");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = s.read(&admin.0, "coop1").unwrap_err();
    assert!(
        matches!(err, SecretError::Exposed { mode: 0o755, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 700"), "{err}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    let file = dir.join("coop1");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = s.read(&admin.0, "coop1").unwrap_err();
    assert!(err.to_string().contains("mode 0644"), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn a_writable_admin_dir_is_refused() {
    let admin = Admin::new("writable");
    me().ensure(&admin.0, "coop1").unwrap();
    std::fs::set_permissions(&admin.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = me().read(&admin.0, "coop1").unwrap_err();
    assert!(matches!(err, SecretError::Exposed { .. }), "{err}");
}

#[test]
fn a_file_of_another_owner_is_refused() {
    // The owner check, seen from a checker expecting another uid.
    let admin = Admin::new("owner");
    me().ensure(&admin.0, "coop1").unwrap();
    let other = Secrets {
        owner: me().owner + 1,
    };
    let err = other.read(&admin.0, "coop1").unwrap_err();
    assert!(matches!(err, SecretError::NotRootOwned { .. }), "{err}");
    assert!(err.to_string().contains("not root"), "{err}");
}

#[test]
fn a_link_or_a_malformed_file_is_refused() {
    let admin = Admin::new("link");
    me().ensure(&admin.0, "coop1").unwrap();
    let dir = admin.0.join("rcon");
    std::os::unix::fs::symlink(dir.join("coop1"), dir.join("vs1")).unwrap();
    let err = me().read(&admin.0, "vs1").unwrap_err();
    assert!(matches!(err, SecretError::NotAFile { .. }), "{err}");

    for text in ["pass word\n", "x\";quit\n", "", "two\nlines\n"] {
        let file = dir.join("coop1");
        std::fs::write(&file, text).unwrap();
        let err = me().read(&admin.0, "coop1").unwrap_err();
        assert!(
            matches!(err, SecretError::Malformed { .. }),
            "{text:?}: {err}"
        );
    }
    // A password written by hand, with or without a newline, is accepted.
    std::fs::write(dir.join("coop1"), "Hand-Written_pw!").unwrap();
    assert_eq!(me().read(&admin.0, "coop1").unwrap(), "Hand-Written_pw!");
}

#[test]
fn concurrent_ensures_agree_on_one_password() {
    let admin = Admin::new("race");
    let path = admin.0.clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || me().ensure(&path, "coop1").unwrap())
        })
        .collect();
    let got: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(got.iter().all(|p| p == &got[0]), "{got:?}");
    assert_eq!(me().read(&admin.0, "coop1").unwrap(), got[0]);
}
