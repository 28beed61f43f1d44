//! Identifiers as perfaudit spells them, against PostgreSQL's own rules:
//! the key words it quotes are the server's, and a name comes back quoted
//! exactly where the server's `quote_ident` quotes it.

mod common;

use perfaudit::sql::ident::{KEYWORDS, LATER_KEYWORDS, ident};

/// The release whose key words `KEYWORDS` lists, exactly.
const KEYWORDS_RELEASE: i32 = 15;

/// Whether perfaudit quotes `word` as a key word.
fn listed(word: &str) -> bool {
    KEYWORDS.contains(&word) || LATER_KEYWORDS.contains(&word)
}

#[tokio::test]
async fn the_key_words_quoted_are_the_servers() {
    let db = common::TestDb::empty().await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000, \
                    array_agg(word ORDER BY word COLLATE \"C\") \
             FROM pg_get_keywords() WHERE catcode <> 'U'",
            &[],
        )
        .await
        .unwrap();
    let (release, words): (i32, Vec<String>) = (row.get(0), row.get(1));
    if release == KEYWORDS_RELEASE {
        assert_eq!(words, KEYWORDS);
    }
    let missing: Vec<&String> = words.iter().filter(|word| !listed(word)).collect();
    assert!(
        missing.is_empty(),
        "PostgreSQL {release} has key words perfaudit does not quote: {missing:?}"
    );
}

#[tokio::test]
async fn names_are_quoted_where_the_server_quotes_them() {
    let db = common::TestDb::empty().await;
    let client = db.client().await;
    let others = [
        "payments", "user_id2", "_x$1", "Payments", "2fa", "a\"b", "a b", "é", "", "$x",
    ];
    let rows = client
        .query(
            "SELECT name, quote_ident(name) \
             FROM (SELECT word FROM pg_get_keywords() UNION ALL SELECT unnest($1::text[])) \
                 AS names(name)",
            &[&&others[..]],
        )
        .await
        .unwrap();
    assert!(rows.len() > others.len() + KEYWORDS.len());
    for row in rows {
        let (name, server): (String, String) = (row.get(0), row.get(1));
        if server == name && LATER_KEYWORDS.contains(&name.as_str()) {
            continue; // a key word of a later release, quoted on purpose
        }
        assert_eq!(ident(&name), server, "{name}");
    }
}

/// How a generated name is spelled in SQL.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    /// `"..."`, quotes doubled.
    Quoted,
    /// `U&"..."` with `\XXXX` / `\+XXXXXX` escapes where `escaped` says.
    Unicode,
    /// `U&"..." UESCAPE '!'`.
    UnicodeBang,
}

/// `name` spelled as `how`, escaping the characters `escaped` picks.
fn spell(name: &str, how: Spelling, escaped: &[bool]) -> String {
    let escape = match how {
        Spelling::Quoted => return format!("\"{}\"", name.replace('"', "\"\"")),
        Spelling::Unicode => '\\',
        Spelling::UnicodeBang => '!',
    };
    let mut body = String::new();
    for (c, &escape_it) in name.chars().zip(escaped.iter().cycle()) {
        if c == escape {
            body.extend([escape, escape]);
        } else if escape_it && (c as u32) <= 0xFFFF {
            body.push_str(&format!("{escape}{:04X}", c as u32));
        } else if escape_it {
            body.push_str(&format!("{escape}+{:06x}", c as u32));
        } else if c == '"' {
            body.push_str("\"\"");
        } else {
            body.push(c);
        }
    }
    match how {
        Spelling::UnicodeBang => format!("U&\"{body}\" UESCAPE '!'"),
        _ => format!("U&\"{body}\""),
    }
}

/// Names spelled every way PostgreSQL's lexer allows read as the server
/// reads them: the column name of `SELECT 1 AS <spelling>` is the oracle.
#[tokio::test]
async fn generated_spellings_decode_as_the_server_reads_them() {
    use perfaudit::sql::ident::{decode, truncated};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    const CASES: usize = 400;
    let db = common::TestDb::empty().await;
    let client = db.client().await;
    let characters = proptest::sample::select(vec![
        'a',
        'Z',
        '_',
        '0',
        '$',
        ' ',
        '"',
        '\\',
        '!',
        '+',
        'é',
        '€',
        'ß',
        '\u{1F600}',
        '\u{10FFFF}',
    ]);
    let strategy = (
        proptest::collection::vec(characters, 1..40),
        proptest::sample::select(vec![
            Spelling::Quoted,
            Spelling::Unicode,
            Spelling::UnicodeBang,
        ]),
        proptest::collection::vec(any::<bool>(), 1..8),
    );
    let mut runner = TestRunner::deterministic();
    let mut failures = Vec::new();
    for _ in 0..CASES {
        let (chars, how, escaped) = strategy.new_tree(&mut runner).unwrap().current();
        let name: String = chars.into_iter().collect();
        let spelling = spell(&name, how, &escaped);
        let server = client
            .prepare(&format!("SELECT 1 AS {spelling}"))
            .await
            .map(|statement| statement.columns()[0].name().to_owned())
            .map_err(|e| e.to_string());
        let ours = decode(&spelling);
        if ours != server || server.as_deref() != Ok(truncated(name.clone()).as_str()) {
            failures.push(format!("{spelling}: ours {ours:?}, server {server:?}"));
        }
    }
    // Plain names fold and are cut like the quoted ones.
    for plain in ["NextVal", &"Long".repeat(20)] {
        let server = client
            .prepare(&format!("SELECT 1 AS {plain}"))
            .await
            .unwrap()
            .columns()[0]
            .name()
            .to_owned();
        assert_eq!(decode(plain).unwrap(), server, "{plain}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
