//! Valve KeyValues (VDF/ACF) through `keyvalues-parser`: parse a document and look keys up
//! the way Valve's own reader does (case-insensitively).

use keyvalues_parser::{Obj, Parser, Value};

/// Why a KeyValues document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VdfError {
    #[error("not a KeyValues document: {0}")]
    Syntax(String),
}

/// A parsed document: its top-level key and its value.
#[derive(Debug, Clone)]
pub struct Document {
    pub key: String,
    pub value: Value<'static>,
}

/// Parses `text`. Valve writes strings unescaped (`"bin\win64"` in app info), so the literal
/// reading is tried first and the escaped one second.
pub fn parse(text: &str) -> Result<Document, VdfError> {
    let parsed = match Parser::new().literal_special_chars(true).parse(text) {
        Ok(parsed) => parsed,
        Err(_) => Parser::new()
            .parse(text)
            .map_err(|e| VdfError::Syntax(first_line(&e.to_string())))?,
    };
    let vdf = parsed.into_vdf().into_owned();
    Ok(Document {
        key: vdf.key.into_owned(),
        value: vdf.value,
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// The first value of `key` in `obj`, matched case-insensitively.
pub fn get<'o>(obj: &'o Obj<'o>, key: &str) -> Option<&'o Value<'o>> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, values)| values.first())
}

/// The value at `path` below `value` (each step an object key, case-insensitive).
pub fn lookup<'v>(value: &'v Value<'v>, path: &[&str]) -> Option<&'v Value<'v>> {
    let mut at = value;
    for key in path {
        at = get(at.get_obj()?, key)?;
    }
    Some(at)
}

/// The string at `path`, when it is one.
pub fn string<'v>(value: &'v Value<'v>, path: &[&str]) -> Option<&'v str> {
    lookup(value, path)?.get_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_keys_up_case_insensitively_and_keeps_backslashes() {
        let doc = parse("\"A\"\n{\n\t\"BuildID\"\t\t\"7\"\n\t\"exe\"\t\t\"bin\\win64\\srcds.exe\"\n\t\"x\"\n\t{\n\t\t\"y\"\t\t\"z\"\n\t}\n}\n").unwrap();
        assert_eq!(doc.key, "A");
        assert_eq!(string(&doc.value, &["buildid"]), Some("7"));
        assert_eq!(string(&doc.value, &["EXE"]), Some("bin\\win64\\srcds.exe"));
        assert_eq!(string(&doc.value, &["x", "Y"]), Some("z"));
        assert_eq!(string(&doc.value, &["x", "nope"]), None);
        assert!(parse("\"A\"\n{\n").is_err());
    }
}
