//! The libpq password file (`~/.pgpass` or `PGPASSFILE`).
//!
//! Each line is `hostname:port:database:username:password`; `*` matches
//! anything, `\:` and `\\` escape, `#` starts a comment. As in libpq, the file
//! is ignored (with a warning) when others may read it, and a socket
//! connection matches its directory as written, or the host name
//! `localhost` when it is the default socket directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::settings::{ConnectionSettings, DEFAULT_SOCKET_DIRECTORIES};

/// The password for the first host of `settings`, if the file has one;
/// `warn` hears why a file that is there is not read.
pub fn lookup(path: &Path, settings: &ConnectionSettings, warn: &dyn Fn(&str)) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        // libpq refuses a password file that group or others can read,
        // and says so: the password it holds is then silently missing.
        warn(&format!(
            "warning: password file \"{}\" has group or world access; permissions should be \
             u=rw (0600) or less",
            crate::error::clip(&path.to_string_lossy())
        ));
        return None;
    }
    let contents = std::fs::read_to_string(path).ok()?;
    let host = settings.hosts.first()?;
    let host = if DEFAULT_SOCKET_DIRECTORIES.contains(&host.as_str()) {
        "localhost"
    } else {
        host
    };
    let port = settings.port_for(0).to_string();
    find(&contents, [host, &port, &settings.dbname, &settings.user])
}

/// The password of the first line whose four fields match `wanted`.
fn find(contents: &str, wanted: [&str; 4]) -> Option<String> {
    contents
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(split_fields)
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut fields| fields.pop().expect("five fields"))
}

/// Splits a line into its five fields, honouring `\` escapes; `None` for a
/// line with fewer than five fields.
fn split_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.extend(chars.next()),
            // The password is the rest of the line, colons included.
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r"
# comment
db1:5432:pay:alice:first
db1:*:*:alice:second
*:*:*:bob:p\:w\\x
localhost:5432:*:carol:colon:in:password
short:line
";

    #[test]
    fn first_matching_line_wins() {
        assert_eq!(
            find(FILE, ["db1", "5432", "pay", "alice"]),
            Some("first".into())
        );
        assert_eq!(
            find(FILE, ["db1", "6000", "other", "alice"]),
            Some("second".into())
        );
        assert_eq!(find(FILE, ["db2", "5432", "pay", "alice"]), None);
    }

    #[test]
    fn escapes_and_colons_in_passwords() {
        assert_eq!(find(FILE, ["any", "1", "x", "bob"]), Some(r"p:w\x".into()));
        assert_eq!(
            find(FILE, ["localhost", "5432", "x", "carol"]),
            Some("colon:in:password".into())
        );
    }

    #[test]
    fn a_socket_matches_its_directory_or_localhost_for_the_default_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "/srv/pg:5432:*:u:literal\nlocalhost:5432:*:u:default\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let password = |socket: &str| {
            let settings = ConnectionSettings::unix_socket(Path::new(socket), 5432, "u", "d");
            lookup(&path, &settings, &|warning| panic!("{warning}"))
        };
        assert_eq!(password("/srv/pg"), Some("literal".into()));
        assert_eq!(password("/var/run/postgresql"), Some("default".into()));
        assert_eq!(password("/tmp"), Some("default".into()));
        assert_eq!(password("/srv/other"), None);
    }

    #[test]
    fn unsafe_permissions_disable_the_file_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        let settings = ConnectionSettings::unix_socket(Path::new("/tmp"), 5432, "u", "d");
        let warnings = std::cell::RefCell::new(Vec::new());
        let warn = |warning: &str| warnings.borrow_mut().push(warning.to_owned());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&path, &settings, &warn), None);
        assert!(
            warnings.borrow()[0].contains("has group or world access"),
            "{warnings:?}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, &settings, &warn), Some("secret".into()));
        assert_eq!(warnings.borrow().len(), 1);
    }
}
