//! Reading SQL from where the user put it: an argument, a file, or stdin (`-`).

use std::io::Read;
use std::path::Path;

use crate::cli::SqlArgs;
use crate::error::{Error, Result};

/// The SQL text, checked to be UTF-8 without NUL bytes (PostgreSQL accepts
/// neither in a query), without the byte order mark some editors put at the
/// start of a UTF-8 file (it is not SQL, and a message quoting it would
/// show an invisible character).
pub fn read_sql(args: &SqlArgs) -> Result<String> {
    let (bytes, origin) = match (&args.sql, &args.file) {
        (Some(sql), None) if sql != "-" => {
            return check(sql.clone().into_bytes(), "the SQL argument");
        }
        (_, Some(path)) if path != Path::new("-") => {
            let bytes = std::fs::read(path).map_err(|e| {
                Error::input(format!(
                    "cannot read the SQL file \"{}\": {e}",
                    path.display()
                ))
            })?;
            (bytes, format!("the SQL file \"{}\"", path.display()))
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Error::input(format!("cannot read SQL from standard input: {e}")))?;
            (bytes, "standard input".to_owned())
        }
    };
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
fn position(before: &[u8]) -> (usize, usize) {
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
