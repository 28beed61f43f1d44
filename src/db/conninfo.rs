//! Parsing of libpq connection strings, in both of their forms:
//! `postgresql://user:secret@host:5432/db?sslmode=require` URLs and
//! `host=db.example.com port=5432 dbname=app` key/value conninfo.
//!
//! The result is a list of libpq keywords and values in the order given;
//! which keywords perfaudit understands is decided by the caller
//! ([`super::settings`]). tokio-postgres has a parser of its own, but it
//! rejects the keywords it does not implement (`sslrootcert`, `sslmode=verify-full`,
//! `passfile`), so perfaudit parses the string itself.

use std::fmt;

/// A connection string that could not be parsed. The message never includes
/// the string itself, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConninfoError(String);

impl fmt::Display for ConninfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn error(message: impl Into<String>) -> ConninfoError {
    ConninfoError(message.into())
}

/// Parses a URL (`postgres://` or `postgresql://`) or a key/value conninfo.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    let trimmed = text.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = strip_prefix_ignore_case(trimmed, scheme) {
            return parse_url(rest);
        }
    }
    if trimmed.contains("://") {
        return Err(error(
            "the connection URL must start with postgresql:// or postgres://",
        ));
    }
    parse_key_values(trimmed)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `key=value key2='quoted value'`, with `\'` and `\\` escapes inside quotes.
fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The keyword is not echoed: a mistyped `password secret` would leak it.
            return Err(error(format!(
                "missing \"=\" after keyword number {} of the connection string (expected key=value pairs or a postgresql:// URL)",
                pairs.len() + 1
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(error(format!(
                            "unterminated quoted value for \"{}\" in the connection string",
                            crate::error::clip(&key)
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// `user:password@host1:port1,host2/dbname?key=value&...` (after the scheme).
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, ConninfoError> {
    let mut pairs = Vec::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    // The user info ends at the last '@': passwords may hold '@' when not encoded.
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".to_owned(), percent_decode(user, "user name")?));
            }
            if let Some(password) = password {
                pairs.push(("password".to_owned(), percent_decode(password, "password")?));
            }
            hostspec
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostspec.split(',') {
            let (host, port) = split_host_port(spec)?;
            hosts.push(percent_decode(host, "host")?);
            ports.push(port.to_owned());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            pairs.push(("host".to_owned(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            pairs.push(("port".to_owned(), ports.join(",")));
        }
    }
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        pairs.push(("dbname".to_owned(), percent_decode(path, "database name")?));
    }
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        if param.is_empty() {
            continue;
        }
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| error("missing \"=\" in a parameter after \"?\" in the URL"))?;
        let key = percent_decode(key, "parameter name")?;
        let value = percent_decode(value, "parameter value")?;
        // libpq accepts the JDBC spelling `ssl=true` for sslmode=require.
        if key == "ssl" && value == "true" {
            pairs.push(("sslmode".to_owned(), "require".to_owned()));
        } else {
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

/// Splits `host:port`, `[::1]:port`, `host` or `:port`.
fn split_host_port(spec: &str) -> Result<(&str, &str), ConninfoError> {
    if let Some(bracketed) = spec.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| error("unterminated \"[\" around an IPv6 address in the URL"))?;
        return match after {
            "" => Ok((host, "")),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, port))
                .ok_or_else(|| error("unexpected text after an IPv6 address in the URL")),
        };
    }
    Ok(spec.split_once(':').unwrap_or((spec, "")))
}

fn percent_decode(text: &str, what: &str) -> Result<String, ConninfoError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| error(format!("invalid percent-encoding in the URL's {what}")))?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| error(format!("the URL's {what} is not valid UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn full_url() {
        assert_eq!(
            parse("postgresql://alice:s%40cret@db.example.com:6543/pay%20ments?sslmode=verify-full&application_name=ci").unwrap(),
            pairs(&[
                ("user", "alice"),
                ("password", "s@cret"),
                ("host", "db.example.com"),
                ("port", "6543"),
                ("dbname", "pay ments"),
                ("sslmode", "verify-full"),
                ("application_name", "ci"),
            ])
        );
    }

    #[test]
    fn url_with_socket_directory_multiple_hosts_and_ipv6() {
        assert_eq!(
            parse("postgres://%2Fvar%2Frun%2Fpostgresql/app").unwrap(),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "app")])
        );
        assert_eq!(
            parse("postgres://a:1,[::1]:2,b/app").unwrap(),
            pairs(&[("host", "a,::1,b"), ("port", "1,2,"), ("dbname", "app")])
        );
        assert_eq!(
            parse("postgresql:///app?host=/tmp&ssl=true").unwrap(),
            pairs(&[("dbname", "app"), ("host", "/tmp"), ("sslmode", "require")])
        );
        assert_eq!(parse("postgresql://").unwrap(), pairs(&[]));
    }

    #[test]
    fn url_password_with_unencoded_at_sign() {
        assert_eq!(
            parse("postgres://bob:p@ss@localhost/db").unwrap(),
            pairs(&[
                ("user", "bob"),
                ("password", "p@ss"),
                ("host", "localhost"),
                ("dbname", "db")
            ])
        );
    }

    #[test]
    fn key_values_with_quotes_and_escapes() {
        assert_eq!(
            parse("host=localhost  port = 5433 password='it''s' dbname='my db' user=a\\ b")
                .unwrap_err(),
            error(
                "missing \"=\" after keyword number 4 of the connection string (expected key=value pairs or a postgresql:// URL)"
            )
        );
        assert_eq!(
            parse(r"host=localhost  port = 5433 password='it\'s \\ fine' dbname='my db' user=a\ b")
                .unwrap(),
            pairs(&[
                ("host", "localhost"),
                ("port", "5433"),
                ("password", r"it's \ fine"),
                ("dbname", "my db"),
                ("user", "a b"),
            ])
        );
        assert_eq!(parse("dbname=''").unwrap(), pairs(&[("dbname", "")]));
    }

    #[test]
    fn errors_never_echo_the_input() {
        let secret = "hunter2";
        for bad in [
            format!("password='{secret}"),
            format!("password{secret}"),
            format!("mysql://u:{secret}@h/db"),
            format!("postgres://u:{secret}%zz@h/db"),
            format!("postgres://h/db?{secret}"),
        ] {
            let message = parse(&bad).unwrap_err().to_string();
            assert!(!message.contains(secret), "{message}");
        }
    }
}
