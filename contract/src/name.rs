//! Names of instances, blueprints, overlays and aliases: `^[a-z0-9][a-z0-9_-]{0,63}$`. Every
//! boundary checks a name with [`is_valid_name`]: the CLI, the generator, the supervisor, the mount
//! code (again, defensively) and the job code.

/// Whether `name` may name an instance, blueprint, overlay or alias.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.len() <= 64
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Checks a name, explaining the rule when it is broken.
pub fn check_name(name: &str) -> Result<(), String> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a valid name: use 1-64 characters of a-z, 0-9, '_' and '-', \
             starting with a letter or digit",
            name.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_matching_the_rule() {
        for name in ["a", "0", "coop1", "versus_2", "my-server", &"a".repeat(64)] {
            assert!(is_valid_name(name), "{name}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for name in [
            "",
            "-a",
            "_a",
            "Coop",
            "a.b",
            "a/b",
            "..",
            "a b",
            "ä",
            &"a".repeat(65),
            "a\n",
        ] {
            assert!(!is_valid_name(name), "{name:?}");
            assert!(check_name(name).is_err());
        }
    }
}
