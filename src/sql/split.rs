//! Where a statement ends, found without tokenizing the whole input: a scan
//! for the next `;` outside strings, quoted identifiers, dollar quotes and
//! comments, following PostgreSQL's lexical rules.
//!
//! This only decides how much text to hand to sqlparser's tokenizer at a
//! time, so that a file of many statements is never held as one huge token
//! list. sqlparser has the last word: the caller re-splits a chunk whose
//! tokens still hold a `;`, and tokenizes the rest of the input in one piece
//! when a chunk does not tokenize on its own (see `Statements`).

/// The byte offset of the `;` that ends the statement starting at byte
/// `start`, or the input's length when no `;` follows.
pub(super) fn statement_end(input: &str, start: usize) -> usize {
    let bytes = input.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        i = match bytes[i] {
            b';' => return i,
            b'\'' => string_end(bytes, i, false),
            b'"' => quoted_identifier_end(bytes, i),
            b'-' if bytes.get(i + 1) == Some(&b'-') => line_comment_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => block_comment_end(bytes, i),
            b'$' => dollar_end(bytes, i),
            b if is_identifier_start(b) => {
                let end = identifier_end(bytes, i);
                // `E'...'` is an escape string: backslashes escape quotes.
                if end == i + 1 && matches!(b, b'e' | b'E') && bytes.get(end) == Some(&b'\'') {
                    string_end(bytes, end, true)
                } else {
                    end
                }
            }
            _ => i + 1,
        };
    }
    bytes.len()
}

/// Bytes that start an identifier or keyword (any byte of a multi-byte
/// UTF-8 character counts as a letter, as in PostgreSQL).
fn is_identifier_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_identifier_part(b: u8) -> bool {
    is_identifier_start(b) || b.is_ascii_digit() || b == b'$'
}

fn identifier_end(bytes: &[u8], start: usize) -> usize {
    start
        + bytes[start..]
            .iter()
            .position(|&b| !is_identifier_part(b))
            .unwrap_or(bytes.len() - start)
}

/// After the string whose opening quote is at `open`; `''` is a quote inside
/// it, and so is `\'` in an escape string.
fn string_end(bytes: &[u8], open: usize, backslash_escapes: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn quoted_identifier_end(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' if bytes.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn line_comment_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| start + n + 1)
}

/// After the block comment opening at `start`; block comments nest.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// After a `$`: a parameter (`$1`), a dollar-quoted string (`$$...$$`,
/// `$tag$...$tag$`), or a lone `$`.
fn dollar_end(bytes: &[u8], start: usize) -> usize {
    let tag_end = start
        + 1
        + bytes[start + 1..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80))
            .unwrap_or(bytes.len() - start - 1);
    let tag = &bytes[start..tag_end];
    if bytes.get(tag_end) != Some(&b'$') || tag[1..].first().is_some_and(u8::is_ascii_digit) {
        return tag_end.max(start + 1);
    }
    let delimiter = &bytes[start..=tag_end];
    let body = tag_end + 1;
    bytes[body..]
        .windows(delimiter.len())
        .position(|window| window == delimiter)
        .map_or(bytes.len(), |n| body + n + delimiter.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(input: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < input.len() {
            let end = statement_end(input, start);
            out.push(&input[start..end]);
            start = end + 1;
        }
        out
    }

    #[test]
    fn splits_at_semicolons_outside_literals_and_comments() {
        assert_eq!(
            statements("SELECT 'a;b'; SELECT $$x;y$$ ;-- c;\nSELECT /* ; /* ; */ ; */ 1"),
            [
                "SELECT 'a;b'",
                " SELECT $$x;y$$ ",
                "-- c;\nSELECT /* ; /* ; */ ; */ 1"
            ]
        );
        assert_eq!(
            statements("SELECT $fn$ ; $fn$, E'\\';', 'it''s;' ; SELECT \"a;\"\"b\" FROM t"),
            [
                "SELECT $fn$ ; $fn$, E'\\';', 'it''s;' ",
                " SELECT \"a;\"\"b\" FROM t"
            ]
        );
    }

    #[test]
    fn parameters_identifiers_and_plain_strings_are_not_quotes() {
        // `$1` is a parameter, `a$b$` an identifier, and a backslash in a
        // standard string escapes nothing.
        assert_eq!(
            statements("SELECT $1, a$b$ ;SELECT 'x\\'; SELECT some'e'"),
            ["SELECT $1, a$b$ ", "SELECT 'x\\'", " SELECT some'e'"]
        );
    }

    #[test]
    fn unterminated_constructs_run_to_the_end() {
        for input in [
            "SELECT 'a;",
            "SELECT \"a;",
            "SELECT /* a;",
            "SELECT $q$ ;",
            "-- ;",
        ] {
            assert_eq!(statement_end(input, 0), input.len(), "{input}");
        }
    }
}
