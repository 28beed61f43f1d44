//! Turning client and server errors into one clear sentence: what failed,
//! why, and what to do. Messages name the host, port, user and database,
//! never the password.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::settings::{ConnectionSettings, sslmode_keyword};
use crate::error::Error;

/// An error from establishing a session.
pub fn connect_error(settings: &ConnectionSettings, error: &tokio_postgres::Error) -> Error {
    let target = settings.describe();
    let reason = if let Some(db) = error.as_db_error() {
        match *db.code() {
            SqlState::INVALID_PASSWORD => format!(
                "password authentication failed for user \"{}\"; check the password \
                 (in the connection string, PGPASSWORD or ~/.pgpass)",
                settings.user
            ),
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
                "the server refused the login: {}; check the role exists and that \
                 pg_hba.conf admits it from here",
                db.message()
            ),
            SqlState::INVALID_CATALOG_NAME => format!(
                "database \"{}\" does not exist; check the database name",
                settings.dbname
            ),
            SqlState::TOO_MANY_CONNECTIONS => format!(
                "the server has no free connection slots ({}); lower --pool-size or raise max_connections",
                db.message()
            ),
            SqlState::CANNOT_CONNECT_NOW => format!(
                "the server is not accepting connections yet ({}); try again shortly",
                db.message()
            ),
            _ => format!("the server said: {}", server_message(db)),
        }
    } else if let Some(io) = io_source(error) {
        io_reason(settings, io)
    } else {
        let text = error.to_string();
        if let Some(tls) = tls_reason(settings, &text) {
            tls
        } else if text.contains("server does not support TLS") {
            format!(
                "the server does not offer TLS but sslmode={} requires it; enable ssl on the \
                 server or use sslmode=prefer",
                sslmode_keyword(settings.sslmode)
            )
        } else if text.contains("password missing") {
            "the server asks for a password and none was given; set it in the connection \
             string, PGPASSWORD or ~/.pgpass"
                .to_owned()
        } else {
            text
        }
    };
    Error::database(format!(
        "could not connect to PostgreSQL at {target}: {reason}"
    ))
}

/// A connection attempt that took longer than `timeout`.
pub fn connect_timeout(settings: &ConnectionSettings, timeout: Duration) -> Error {
    Error::database(format!(
        "could not connect to PostgreSQL at {}: no answer within {}; check the host and port, \
         or raise --connect-timeout",
        settings.describe(),
        humantime::format_duration(timeout)
    ))
}

/// An error from a statement run on an established session, with `context`
/// saying what was being done ("running EXPLAIN", "building index ...").
pub fn query_error(context: &str, error: &tokio_postgres::Error) -> Error {
    let reason = match error.as_db_error() {
        Some(db) if *db.code() == SqlState::QUERY_CANCELED => format!(
            "the statement was cancelled ({}); raise --statement-timeout if it needs longer",
            db.message()
        ),
        Some(db) => server_message(db),
        None if error.is_closed() || io_source(error).is_some() => {
            "the connection to the server was lost (the server closed it, crashed or was shut down)"
                .to_owned()
        }
        None => error.to_string(),
    };
    Error::database(format!("{context} failed: {reason}"))
}

/// `ERROR: message (SQLSTATE xxxxx). DETAIL: ... HINT: ...` on one line.
pub fn server_message(db: &tokio_postgres::error::DbError) -> String {
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

fn io_source(error: &tokio_postgres::Error) -> Option<&io::Error> {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = current.source();
    }
    None
}

fn io_reason(settings: &ConnectionSettings, io: &io::Error) -> String {
    let text = io.to_string();
    if let Some(tls) = tls_reason(settings, &text) {
        return tls;
    }
    match io.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused; is the server running and accepting connections there?".into()
        }
        io::ErrorKind::NotFound => {
            "no server socket there; is the server running, and is the socket directory right?"
                .into()
        }
        io::ErrorKind::PermissionDenied => {
            format!("permission denied ({text}); check who may use the socket directory")
        }
        io::ErrorKind::TimedOut => {
            "the connection attempt timed out; check the host, port and firewall".into()
        }
        _ if text.contains("lookup address") || text.contains("Name or service not known") => {
            format!("the host name could not be resolved ({text}); check the host name")
        }
        _ => text,
    }
}

fn tls_reason(settings: &ConnectionSettings, text: &str) -> Option<String> {
    let mode = sslmode_keyword(settings.sslmode);
    if text.contains("NotValidForName") {
        Some(format!(
            "the server's TLS certificate is not valid for the host name \"{}\" (sslmode={mode}); \
             connect with a name the certificate lists, or use sslmode=verify-ca",
            settings.hosts.join(",")
        ))
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        Some(format!(
            "the server's TLS certificate is not signed by a trusted root (sslmode={mode}); \
             set sslrootcert to the CA that signed it"
        ))
    } else if text.contains("invalid peer certificate") {
        Some(format!(
            "the server's TLS certificate was rejected ({text}, sslmode={mode})"
        ))
    } else {
        None
    }
}
