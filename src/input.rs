//! Reading SQL from where the user put it: an argument, a file, or stdin (`-`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

/// Where the SQL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    /// The text of a command-line argument.
    Argument(String),
    /// A file.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

impl SqlSource {
    /// The source `sql` (an argument) or `file` name, where `-` is
    /// standard input.
    pub fn of(sql: Option<&str>, file: Option<&Path>) -> SqlSource {
        match (sql, file) {
            (Some(sql), None) if sql != "-" => SqlSource::Argument(sql.to_owned()),
            (_, Some(path)) if path != Path::new("-") => SqlSource::File(path.to_owned()),
            _ => SqlSource::Stdin,
        }
    }
}

/// The SQL text, checked to be UTF-8 without NUL bytes (PostgreSQL accepts
/// neither in a query), without the byte order mark some editors put at the
/// start of a UTF-8 file (it is not SQL, and a message quoting it would
/// show an invisible character). A signal stops the wait for a file or
/// stdin (`perfaudit explain -` waiting for a pipe that never writes).
pub async fn read_sql(source: &SqlSource, interrupt: &Interrupt) -> Result<String> {
    let file: Option<PathBuf> = match source {
        SqlSource::Argument(sql) => return check(sql.clone().into_bytes(), "the SQL argument"),
        SqlSource::File(path) => Some(path.clone()),
        SqlSource::Stdin => None,
    };
    // Read on a thread of its own: a read blocks the thread it runs on,
    // and this one must go on listening for signals.
    let read = tokio::task::spawn_blocking(move || match file {
        Some(path) => {
            let bytes = std::fs::read(&path).map_err(|e| {
                Error::input(format!(
                    "cannot read the SQL file \"{}\": {e}; check the path given to -f",
                    path.display()
                ))
            })?;
            Ok((bytes, format!("the SQL file \"{}\"", path.display())))
        }
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Error::input(format!("cannot read SQL from standard input: {e}")))?;
            Ok((bytes, "standard input".to_owned()))
        }
    });
    let (bytes, origin) = interrupt
        .guard(async {
            read.await
                .map_err(|e| Error::input(format!("reading the SQL failed: {e}")))?
        })
        .await?;
    check(bytes, &origin)
}

fn check(mut bytes: Vec<u8>, origin: &str) -> Result<String> {
    if bytes.starts_with(BYTE_ORDER_MARK) {
        bytes.drain(..BYTE_ORDER_MARK.len());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = position(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        Error::input(format!(
            "{origin} is not valid UTF-8 (line {line}, column {column}); save it as UTF-8"
        ))
    })?;
    if let Some(offset) = text.find('\0') {
        let (line, column) = position(&text.as_bytes()[..offset]);
        return Err(Error::input(format!(
            "{origin} holds a NUL byte at line {line}, column {column}; PostgreSQL does not accept NUL in SQL"
        )));
    }
    Ok(text)
}

/// U+FEFF in UTF-8.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// The 1-based line and column just after `before`, counting characters.
pub fn position(before: &[u8]) -> (usize, usize) {
    let before = String::from_utf8_lossy(before);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_and_nul_are_located() {
        let err = check(b"SELECT 1;\nSELECT '\xff'".to_vec(), "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x is not valid UTF-8 (line 2, column 9); save it as UTF-8"
        );
        let err = check(b"SELECT\n 'a\0'".to_vec(), "x").unwrap_err();
        assert!(
            err.to_string().contains("NUL byte at line 2, column 4"),
            "{err}"
        );
        assert_eq!(check(b"SELECT 1".to_vec(), "x").unwrap(), "SELECT 1");
    }

    #[test]
    fn a_byte_order_mark_is_not_sql() {
        let text = check(b"\xEF\xBB\xBFSELECT 1;\n\xEF\xBB\xBF".to_vec(), "x").unwrap();
        assert_eq!(text, "SELECT 1;\n\u{feff}", "only a leading mark goes");
        let err = check(b"\xEF\xBB\xBFSELECT '\xff'".to_vec(), "x").unwrap_err();
        assert!(err.to_string().contains("(line 1, column 9)"), "{err}");
    }
}
