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
