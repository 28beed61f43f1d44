//! Connection settings resolved the way libpq resolves them.
//!
//! Precedence, per keyword: the connection string (`--database-url`, else
//! `DATABASE_URL`), then the libpq environment variables (`PGHOST`, `PGPORT`,
//! ...), then the defaults. A password still missing after that is looked up in
//! the password file (`PGPASSFILE` or `~/.pgpass`). tokio-postgres itself reads
//! none of this, so perfaudit does it here, once, into plain data.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{conninfo, pgpass};
use crate::error::{Error, Result, clip};

/// The `application_name` perfaudit's sessions show in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "perfaudit";
/// Used when neither the flag, the connection string nor `PGCONNECT_TIMEOUT`
/// says otherwise. libpq waits forever; a pipeline should not.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest startup message PostgreSQL reads (`MAX_STARTUP_PACKET_LENGTH`);
/// it drops a connection that sends a longer one.
const MAX_STARTUP_MESSAGE_BYTES: usize = 10_000;
/// Room in the startup message for the ` -c statement_timeout=N` the pool
/// adds to the options.
const STATEMENT_TIMEOUT_OPTION_BYTES: usize = 40;
/// The longest timeout perfaudit accepts, for every duration: PostgreSQL's
/// own limit for `statement_timeout` and `lock_timeout`, `INT_MAX`
/// milliseconds (24 days 20h 31min 23.647s).
pub const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);
const DEFAULT_PORT: u16 = 5432;
/// Where Debian's and upstream's libpq look for the server's socket.
pub(crate) const DEFAULT_SOCKET_DIRECTORIES: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, without verifying the certificate.
    Prefer,
    /// Always use TLS; verify the certificate only when a root certificate is
    /// configured (libpq's behaviour).
    Require,
    /// Always use TLS and verify the certificate chain, not the host name.
    VerifyCa,
    /// Always use TLS and verify the chain and the host name.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries without TLS first and `prefer` with TLS
            // first; against any server both end up connected, unverified.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::input(format!(
                    "invalid sslmode \"{}\"; use disable, prefer, require, verify-ca or verify-full",
                    clip(other)
                )));
            }
        })
    }
}

/// A password that never shows up in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The secret itself, for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Everything needed to open a session, resolved from all sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Host names, IP addresses or Unix socket directories, tried in order.
    pub hosts: Vec<String>,
    /// Numeric addresses to connect to instead of resolving `hosts`.
    pub hostaddrs: Vec<IpAddr>,
    /// One port for all hosts, or one per host.
    pub ports: Vec<u16>,
    /// The role to connect as.
    pub user: String,
    /// The password, if one was given or found in the password file.
    pub password: Option<Password>,
    /// The database to connect to.
    pub dbname: String,
    /// Whether and how to use TLS.
    pub sslmode: SslMode,
    /// Root certificates to verify the server with; `system` for the
    /// system's roots.
    pub sslrootcert: Option<PathBuf>,
    /// The client certificate (PEM, followed by any intermediates) to
    /// present when the server asks for one; `None`: libpq's default file
    /// `~/.postgresql/postgresql.crt`, when it exists.
    pub sslcert: Option<PathBuf>,
    /// The client certificate's private key (PEM); `None`: libpq's default
    /// file `~/.postgresql/postgresql.key`.
    pub sslkey: Option<PathBuf>,
    /// How long to wait for a connection to be established; `Duration::MAX`
    /// for no limit (libpq's `connect_timeout=0`).
    pub connect_timeout: Duration,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
    /// Command-line options sent at startup (`-c name=value ...`).
    pub options: Option<String>,
}

/// Where the raw settings come from: a connection string and an environment.
pub struct Sources<'a> {
    /// `--database-url` or `DATABASE_URL`, if given.
    pub connection_string: Option<&'a str>,
    /// Looks up an environment variable (a closure so tests need not touch
    /// the process environment).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `--connect-timeout`, which beats every other source.
    pub connect_timeout: Option<Duration>,
    /// Hears what a person should know about the sources (a password file
    /// others may read); the UI decides how to show it.
    pub warn: &'a dyn Fn(&str),
}

/// The libpq keywords perfaudit understands, with their environment variable.
const KEYWORDS: [(&str, &str); 14] = [
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("dbname", "PGDATABASE"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("application_name", "PGAPPNAME"),
    ("options", "PGOPTIONS"),
    ("passfile", "PGPASSFILE"),
];

impl ConnectionSettings {
    /// Resolves the settings from a connection string, the environment and
    /// the defaults, then the password file.
    pub fn resolve(sources: &Sources<'_>) -> Result<ConnectionSettings> {
        let given = match sources.connection_string {
            Some(text) => conninfo::parse(text)
                .map_err(|e| Error::input(format!("invalid connection string: {e}")))?,
            None => Vec::new(),
        };
        for (key, value) in &given {
            if !KEYWORDS.iter().any(|(k, _)| k == key) {
                return Err(Error::input(format!(
                    "unsupported connection option \"{}\"; perfaudit understands {}",
                    clip(key),
                    KEYWORDS.map(|(k, _)| k).join(", ")
                )));
            }
            refuse_nul(value, &format!("{key} in the connection string"))?;
        }
        for (_, variable) in KEYWORDS {
            if let Some(value) = (sources.env)(variable) {
                refuse_nul(&value, variable)?;
            }
        }
        let lookup = |key: &str| -> Option<String> {
            let from_string = given.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
            from_string.cloned().or_else(|| {
                let (_, var) = KEYWORDS.iter().find(|(k, _)| *k == key)?;
                (sources.env)(var)
            })
        };

        let user = match lookup("user").filter(|u| !u.is_empty()) {
            Some(user) => user,
            None => os_user_name()?,
        };
        let ports = match lookup("port").filter(|p| !p.is_empty()) {
            Some(list) => list
                .split(',')
                .map(|p| match p.trim() {
                    "" => Ok(DEFAULT_PORT),
                    p => p.parse::<u16>().map_err(|_| {
                        Error::input(format!(
                            "invalid port \"{}\"; a port is a number from 1 to 65535",
                            clip(p)
                        ))
                    }),
                })
                .collect::<Result<Vec<_>>>()?,
            None => vec![DEFAULT_PORT],
        };
        let hostaddrs = match lookup("hostaddr").filter(|h| !h.is_empty()) {
            Some(list) => list
                .split(',')
                .map(|a| {
                    a.trim().parse::<IpAddr>().map_err(|_| {
                        Error::input(format!(
                            "invalid hostaddr \"{}\"; it must be an IP address",
                            clip(a)
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let hosts = match lookup("host").filter(|h| !h.is_empty()) {
            Some(list) => list.split(',').map(|h| h.trim().to_owned()).collect(),
            None if !hostaddrs.is_empty() => hostaddrs.iter().map(IpAddr::to_string).collect(),
            None => vec![default_host(ports[0])],
        };
        if ports.len() != 1 && ports.len() != hosts.len() {
            return Err(Error::input(format!(
                "{} hosts but {} ports were given; give one port, or one per host",
                hosts.len(),
                ports.len()
            )));
        }
        let dbname = lookup("dbname")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| user.clone());
        let path = |key: &str| lookup(key).filter(|p| !p.is_empty()).map(PathBuf::from);
        let sslrootcert = path("sslrootcert");
        let sslmode = system_roots_mode(
            sslrootcert.as_deref(),
            lookup("sslmode").map(|m| SslMode::parse(&m)).transpose()?,
        )?;
        let connect_timeout = match sources.connect_timeout {
            Some(timeout) => timeout,
            None => match lookup("connect_timeout").filter(|t| !t.is_empty()) {
                Some(text) => parse_connect_timeout(&text)?,
                None => DEFAULT_CONNECT_TIMEOUT,
            },
        };
        let mut settings = ConnectionSettings {
            hosts,
            hostaddrs,
            ports,
            user,
            password: lookup("password").map(Password),
            dbname,
            sslmode,
            sslrootcert,
            sslcert: path("sslcert"),
            sslkey: path("sslkey"),
            connect_timeout,
            application_name: lookup("application_name")
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.into()),
            options: lookup("options").filter(|o| !o.is_empty()),
        };
        settings.check_startup_length()?;
        if settings.password.is_none() {
            let passfile = lookup("passfile")
                .map(PathBuf::from)
                .or_else(|| (sources.env)("HOME").map(|home| Path::new(&home).join(".pgpass")));
            if let Some(passfile) = passfile {
                settings.password =
                    pgpass::lookup(&passfile, &settings, sources.warn).map(Password);
            }
        }
        Ok(settings)
    }

    /// Refuses settings too long for PostgreSQL's startup message, which the
    /// server refuses by dropping the connection: said here, as bad input,
    /// before anything connects.
    fn check_startup_length(&self) -> Result<()> {
        let sent = [
            ("the user name", "user", self.user.len()),
            ("the database name", "database", self.dbname.len()),
            (
                "the options",
                "options",
                self.options.as_ref().map_or(0, String::len),
            ),
            (
                "the application_name",
                "application_name",
                self.application_name.len(),
            ),
            ("", "client_encoding", "UTF8".len()),
        ];
        // The length, the protocol version, each key and value ended by a
        // NUL, the NUL that ends the list, and room for the pool's option.
        let length = 4
            + 4
            + sent
                .iter()
                .map(|(_, key, value)| key.len() + value + 2)
                .sum::<usize>()
            + 1
            + STATEMENT_TIMEOUT_OPTION_BYTES;
        if length <= MAX_STARTUP_MESSAGE_BYTES {
            return Ok(());
        }
        let (longest, _, bytes) = sent
            .iter()
            .max_by_key(|(_, _, bytes)| *bytes)
            .expect("settings are sent");
        Err(Error::input(format!(
            "the connection settings do not fit in PostgreSQL's startup message \
             ({MAX_STARTUP_MESSAGE_BYTES} bytes at most): the longest, {longest}, is {bytes} \
             bytes long; shorten it"
        )))
    }

    /// Settings for a server listening on a Unix socket in `socket_dir`,
    /// with trust authentication (the scratch cluster).
    pub fn unix_socket(socket_dir: &Path, port: u16, user: &str, dbname: &str) -> Self {
        ConnectionSettings {
            hosts: vec![socket_dir.display().to_string()],
            hostaddrs: Vec::new(),
            ports: vec![port],
            user: user.to_owned(),
            password: None,
            dbname: dbname.to_owned(),
            sslmode: SslMode::Disable,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            options: None,
        }
    }

    /// The same server and role, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        ConnectionSettings {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// The port used for the host at `index`.
    pub fn port_for(&self, index: usize) -> u16 {
        *self.ports.get(index).unwrap_or(&self.ports[0])
    }

    /// A key/value conninfo for these settings, password included, for
    /// handing them to a child process (tests, benchmarks). Never print it.
    pub fn to_conninfo(&self) -> String {
        let mut parts = vec![
            ("host", self.hosts.join(",")),
            (
                "port",
                self.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("user", self.user.clone()),
            ("dbname", self.dbname.clone()),
            ("sslmode", sslmode_keyword(self.sslmode).to_owned()),
            ("application_name", self.application_name.clone()),
            (
                "connect_timeout",
                connect_timeout_keyword(self.connect_timeout),
            ),
        ];
        if !self.hostaddrs.is_empty() {
            let addrs = self.hostaddrs.iter().map(IpAddr::to_string);
            parts.push(("hostaddr", addrs.collect::<Vec<_>>().join(",")));
        }
        if let Some(password) = &self.password {
            parts.push(("password", password.expose().to_owned()));
        }
        for (key, path) in [
            ("sslrootcert", &self.sslrootcert),
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
        ] {
            if let Some(path) = path {
                parts.push((key, path.display().to_string()));
            }
        }
        if let Some(options) = &self.options {
            parts.push(("options", options.clone()));
        }
        parts
            .iter()
            .map(|(key, value)| {
                format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Where this connects, for messages: hosts and ports, role and database,
    /// never the password. For example `host "db1" port 5432, user "app", database "pay"`.
    /// Each value is [`clip`]ped: a message stays short whatever was given.
    pub fn describe(&self) -> String {
        let endpoints: Vec<String> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = self.port_for(i);
                if host.starts_with('/') {
                    format!("socket \"{}\"", clip(&format!("{host}/.s.PGSQL.{port}")))
                } else {
                    format!("host \"{}\" port {port}", clip(host))
                }
            })
            .collect();
        format!(
            "{}, user \"{}\", database \"{}\"",
            endpoints.join(" or "),
            clip(&self.user),
            clip(&self.dbname)
        )
    }
}

/// The sslmode, given `sslrootcert`: as in libpq 16, `sslrootcert=system`
/// (trust the system's roots, which vouch for any public host) makes
/// `verify-full` the default and refuses weaker modes, which would accept a
/// certificate any public CA issued for any name.
fn system_roots_mode(sslrootcert: Option<&Path>, sslmode: Option<SslMode>) -> Result<SslMode> {
    let system = sslrootcert == Some(Path::new("system"));
    match (system, sslmode) {
        (true, None | Some(SslMode::VerifyFull)) => Ok(SslMode::VerifyFull),
        (true, Some(weaker)) => Err(Error::input(format!(
            "sslrootcert=system needs sslmode=verify-full, not {}; the system's roots vouch \
             for any public host, so only the host name check makes them meaningful",
            sslmode_keyword(weaker)
        ))),
        (false, mode) => Ok(mode.unwrap_or(SslMode::Prefer)),
    }
}

/// The conninfo spelling of an sslmode.
pub fn sslmode_keyword(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// libpq counts whole seconds, with 0 for "forever".
fn connect_timeout_keyword(timeout: Duration) -> String {
    if timeout == Duration::MAX {
        "0".to_owned()
    } else {
        timeout.as_secs().max(2).to_string()
    }
}

fn parse_connect_timeout(text: &str) -> Result<Duration> {
    let invalid = || {
        Error::input(format!(
            "invalid connect_timeout \"{}\"; it is a whole number of seconds, at most {}",
            clip(text),
            MAX_TIMEOUT.as_secs()
        ))
    };
    let seconds: i64 = text.trim().parse().map_err(|_| invalid())?;
    // libpq: zero or negative means wait forever, and less than 2s means 2s.
    Ok(match seconds {
        ..=0 => Duration::MAX,
        1 => Duration::from_secs(2),
        n if n as u64 > MAX_TIMEOUT.as_secs() => return Err(invalid()),
        n => Duration::from_secs(n as u64),
    })
}

/// Refuses a NUL byte in the connection setting `what`: PostgreSQL's
/// startup message and the operating system's paths end a string there, so
/// the setting cannot mean what it says.
fn refuse_nul(value: &str, what: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::input(format!(
            "{what} holds a NUL byte, which no connection setting may hold; remove it"
        )));
    }
    Ok(())
}

/// libpq's default host: the default socket directory when a server listens
/// there, else `localhost`.
fn default_host(port: u16) -> String {
    DEFAULT_SOCKET_DIRECTORIES
        .iter()
        .find(|dir| Path::new(dir).join(format!(".s.PGSQL.{port}")).exists())
        .map_or_else(|| "localhost".to_owned(), |dir| (*dir).to_owned())
}

fn os_user_name() -> Result<String> {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(user.name),
        _ => Err(Error::input(format!(
            "no database user given and the operating-system user (uid {uid}) has no name; \
             set PGUSER or put the user in the connection string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(url: Option<&str>, env: &[(&str, &str)]) -> Result<ConnectionSettings> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |key: &str| env.get(key).cloned();
        ConnectionSettings::resolve(&Sources {
            connection_string: url,
            env: &lookup,
            connect_timeout: None,
            warn: &|_| {},
        })
    }

    #[test]
    fn connection_string_beats_environment_which_beats_defaults() {
        let s = resolve(
            Some("postgresql://alice@db1/pay"),
            &[
                ("PGHOST", "ignored"),
                ("PGPORT", "6000"),
                ("PGUSER", "ignored"),
                ("PGSSLMODE", "require"),
            ],
        )
        .unwrap();
        assert_eq!(s.hosts, ["db1"]);
        assert_eq!(s.ports, [6000]);
        assert_eq!(s.user, "alice");
        assert_eq!(s.dbname, "pay");
        assert_eq!(s.sslmode, SslMode::Require);
        assert_eq!(s.application_name, "perfaudit");
        assert_eq!(s.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn environment_alone() {
        let s = resolve(
            None,
            &[
                ("PGHOST", "/var/run/custom"),
                ("PGUSER", "bob"),
                ("PGPASSWORD", "pw"),
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", "/etc/ca.pem"),
                ("PGCONNECT_TIMEOUT", "9"),
                ("PGAPPNAME", "migrations"),
            ],
        )
        .unwrap();
        assert_eq!(s.hosts, ["/var/run/custom"]);
        assert_eq!(s.user, "bob");
        assert_eq!(s.dbname, "bob", "dbname defaults to the user");
        assert_eq!(s.password.as_ref().map(Password::expose), Some("pw"));
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.sslrootcert.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(s.connect_timeout, Duration::from_secs(9));
        assert_eq!(s.application_name, "migrations");
        assert_eq!(
            s.describe(),
            "socket \"/var/run/custom/.s.PGSQL.5432\", user \"bob\", database \"bob\""
        );
    }

    #[test]
    fn key_value_form_and_multiple_hosts() {
        let s = resolve(Some("host=a,b port=1,2 user=u dbname=d"), &[]).unwrap();
        assert_eq!(s.hosts, ["a", "b"]);
        assert_eq!(s.ports, [1, 2]);
        assert_eq!(
            s.describe(),
            "host \"a\" port 1 or host \"b\" port 2, user \"u\", database \"d\""
        );
        assert!(resolve(Some("host=a,b,c port=1,2 user=u"), &[]).is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let err = |url| {
            resolve(Some(url), &[("PGUSER", "u")])
                .unwrap_err()
                .to_string()
        };
        assert!(err("sslmode=maybe").contains("invalid sslmode \"maybe\""));
        assert!(err("port=http").contains("invalid port \"http\""));
        assert!(err("hostaddr=db").contains("invalid hostaddr"));
        assert!(err("connect_timeout=soon").contains("invalid connect_timeout"));
        assert!(err("color=blue").contains("unsupported connection option \"color\""));
        // A mistake in the settings is bad input (exit 2), not a database
        // error: no server was asked.
        for conninfo in ["sslmode=maybe", "color=blue", "postgresql://h:x/db"] {
            let error = resolve(Some(conninfo), &[("PGUSER", "u")]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{conninfo}: {error}");
        }
    }

    #[test]
    fn a_nul_byte_in_any_setting_is_bad_input_naming_it() {
        for (url, named) in [
            ("postgresql://u@h/d%00b", "dbname in the connection string"),
            ("postgresql://u%00@h/d", "user in the connection string"),
            (
                "postgresql://u:pw%00secret@h/d",
                "password in the connection string",
            ),
            ("postgresql://h%00x/d", "host in the connection string"),
            (
                "postgresql://u@h/d?options=-c%20a%3D%00",
                "options in the connection string",
            ),
            (
                "postgresql://u@h/d?sslrootcert=/a%00b",
                "sslrootcert in the connection string",
            ),
        ] {
            let error = resolve(Some(url), &[]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{url}: {error}");
            let message = error.to_string();
            assert!(message.starts_with(named), "{url}: {message}");
            assert!(!message.contains("secret"), "{message}");
        }
        let error = resolve(None, &[("PGUSER", "u"), ("PGAPPNAME", "a\0b")]).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{error}");
        assert!(
            error.to_string().starts_with("PGAPPNAME holds a NUL byte"),
            "{error}"
        );
    }

    #[test]
    fn settings_too_long_for_the_startup_message_are_bad_input() {
        let fits = "d".repeat(9_000);
        resolve(Some(&format!("user=u host=h dbname={fits}")), &[]).unwrap();
        let name = "d".repeat(100_000);
        let error = resolve(Some(&format!("user=u host=h dbname={name}")), &[]).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{error}");
        assert_eq!(
            error.to_string(),
            "the connection settings do not fit in PostgreSQL's startup message (10000 bytes \
             at most): the longest, the database name, is 100000 bytes long; shorten it"
        );
        let error = resolve(
            Some(&format!(
                "user=u options={} application_name={}",
                "o".repeat(6_000),
                "a".repeat(5_000)
            )),
            &[],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the longest, the options, is 6000 bytes"),
            "{error}"
        );
    }

    #[test]
    fn long_values_are_echoed_clipped() {
        let name = "h".repeat(100_000);
        let s = resolve(Some(&format!("user=u host={name}")), &[]).unwrap();
        let described = s.describe();
        assert!(described.len() < 200, "{described}");
        assert!(described.contains("… (100000 bytes)"), "{described}");
        let error = resolve(Some(&format!("user=u port={name}")), &[]).unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn system_roots_mean_verify_full() {
        let mode = |conninfo: &str| resolve(Some(conninfo), &[("PGUSER", "u")]).map(|s| s.sslmode);
        assert_eq!(mode("sslrootcert=system").unwrap(), SslMode::VerifyFull);
        assert_eq!(
            mode("sslrootcert=system sslmode=verify-full").unwrap(),
            SslMode::VerifyFull
        );
        let err = mode("sslrootcert=system sslmode=require").unwrap_err();
        assert!(
            err.to_string()
                .contains("needs sslmode=verify-full, not require"),
            "{err}"
        );
        assert_eq!(mode("sslrootcert=/ca.pem").unwrap(), SslMode::Prefer);
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let timeout = |t| {
            resolve(Some(&format!("user=u connect_timeout={t}")), &[])
                .unwrap()
                .connect_timeout
        };
        assert_eq!(timeout("0"), Duration::MAX);
        assert_eq!(timeout("1"), Duration::from_secs(2));
        assert_eq!(timeout("30"), Duration::from_secs(30));
        assert_eq!(timeout("2147483"), Duration::from_secs(2_147_483));
        for past in ["2147484", "99999999999999"] {
            let error = resolve(Some(&format!("user=u connect_timeout={past}")), &[]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{error}");
        }
    }

    #[test]
    fn conninfo_round_trips_through_the_parser() {
        let original = resolve(
            Some("postgresql://o%27neil:p%27w%5C@h:7/d%20b?sslmode=verify-ca&sslrootcert=/ca&options=-c%20x%3D1"),
            &[],
        )
        .unwrap();
        let again = resolve(Some(&original.to_conninfo()), &[]).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn debug_output_hides_the_password() {
        let s = resolve(Some("user=u password=hunter2"), &[]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.describe().contains("hunter2"));
    }
}
