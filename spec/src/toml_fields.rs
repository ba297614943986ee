//! Reading TOML tables key by key, so every error can name its file and dotted key.
//!
//! serde's derive would give "invalid type" messages without the key; walking the table by hand
//! costs a few lines per type and lets each rule explain itself.

use std::path::Path;

use toml::{Table, Value};

use crate::error::{ErrorKind, SpecError};

/// Parses `text` as a TOML document; syntax errors carry the line and column.
pub(crate) fn parse_document(file: &Path, text: &str) -> Result<Table, SpecError> {
    text.parse::<Table>().map_err(|err| {
        let location = err
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or_default();
        let message = err.message().trim().replace('\n', "; ");
        SpecError::new(
            ErrorKind::Syntax,
            file,
            None,
            format!("{location}invalid TOML: {message}"),
        )
    })
}

/// `line L, column C: ` for a byte offset into `text`, to prefix a syntax error.
pub fn line_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: ")
}

/// The keys of one table, taken one at a time; [`Fields::new`] refuses keys it does not know.
pub(crate) struct Fields<'a> {
    file: &'a Path,
    prefix: String,
    table: Table,
}

impl<'a> Fields<'a> {
    /// Wraps `table` (found at dotted `prefix`, empty for the document), refusing unknown keys.
    pub(crate) fn new(
        file: &'a Path,
        prefix: &str,
        table: Table,
        known: &[&str],
    ) -> Result<Self, SpecError> {
        let fields = Fields {
            file,
            prefix: prefix.to_owned(),
            table,
        };
        if let Some(unknown) = fields.table.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(SpecError::invalid(
                file,
                &fields.key(unknown),
                format!("unknown key (known keys here: {})", known.join(", ")),
            ));
        }
        Ok(fields)
    }

    pub(crate) fn file(&self) -> &'a Path {
        self.file
    }

    /// The dotted path of `key` in this table, for error messages.
    pub(crate) fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub(crate) fn error(&self, key: &str, reason: impl Into<String>) -> SpecError {
        SpecError::invalid(self.file, &self.key(key), reason)
    }

    fn type_error(&self, key: &str, expected: &str, value: &Value) -> SpecError {
        self.error(
            key,
            format!("expected {expected}, found {}", value.type_str()),
        )
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>, SpecError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.type_error(key, "a string", &other)),
        }
    }

    pub(crate) fn integer(&mut self, key: &str) -> Result<Option<i64>, SpecError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => Ok(Some(i)),
            Some(other) => Err(self.type_error(key, "an integer", &other)),
        }
    }

    /// An integer that must lie in `range`, converted to `T`.
    pub(crate) fn integer_in<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<T>, SpecError> {
        let Some(value) = self.integer(key)? else {
            return Ok(None);
        };
        if !range.contains(&value) {
            return Err(self.error(
                key,
                format!(
                    "{value} is out of range ({}..={})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        T::try_from(value)
            .map(Some)
            .map_err(|_| self.error(key, format!("{value} is out of range")))
    }

    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, SpecError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(self.type_error(key, "true or false", &other)),
        }
    }

    pub(crate) fn array(&mut self, key: &str) -> Result<Option<Vec<Value>>, SpecError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.type_error(key, "an array", &other)),
        }
    }

    /// A string parsed by `parse`, whose error message is reported against `key`.
    pub(crate) fn parsed<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SpecError> {
        match self.string(key)? {
            None => Ok(None),
            Some(text) => parse(&text).map(Some).map_err(|why| self.error(key, why)),
        }
    }

    /// A sub-table, itself checked for unknown keys.
    pub(crate) fn table(
        &mut self,
        key: &str,
        known: &[&str],
    ) -> Result<Option<Fields<'a>>, SpecError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Table(table)) => {
                Fields::new(self.file, &self.key(key), table, known).map(Some)
            }
            Some(other) => Err(self.type_error(key, "a table", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str, known: &[&str]) -> Result<Fields<'static>, SpecError> {
        let file = Path::new("/etc/left4me/instances/t.toml");
        Fields::new(file, "", parse_document(file, text)?, known)
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = fields("port = 27015\nmap = \n", &["port", "map"])
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::Syntax);
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/left4me/instances/t.toml: line 2, column"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = fields("mapp = 'x'", &["port", "map"]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "/etc/left4me/instances/t.toml: key 'mapp': unknown key (known keys here: port, map)"
        );
    }

    #[test]
    fn type_errors_name_the_dotted_key() {
        let mut doc = fields("[resources]\nnice = 'high'", &["resources"]).unwrap();
        let mut res = doc.table("resources", &["nice"]).unwrap().unwrap();
        let err = res.integer("nice").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("resources.nice"));
        assert!(
            err.reason.contains("expected an integer, found string"),
            "{err}"
        );
    }

    #[test]
    fn ranges_are_checked() {
        let mut doc = fields("n = 40", &["n"]).unwrap();
        let err = doc.integer_in::<i8>("n", -20..=19).unwrap_err();
        assert!(
            err.reason.contains("40 is out of range (-20..=19)"),
            "{err}"
        );
    }
}
