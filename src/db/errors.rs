//! Turning client and server errors into one clear sentence: what failed,
//! why, and what to do. Messages name the host, port, user and database,
//! never the password.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use rustls::CertificateError;
use tokio_postgres::error::{DbError, SqlState};

use super::settings::{ConnectionSettings, sslmode_keyword};
use crate::error::Error;

/// An error from establishing a session.
pub fn connect_error(settings: &ConnectionSettings, error: &tokio_postgres::Error) -> Error {
    let reason = if let Some(db) = error.as_db_error() {
        login_reason(settings, db)
    } else if let Some(tls) = find_source::<rustls::Error>(error) {
        tls_reason(settings, tls)
    } else if let Some(io) = find_source::<io::Error>(error) {
        io_reason(io)
    } else {
        let text = with_sources(error);
        if text.contains("server does not support TLS") {
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
        "could not connect to PostgreSQL at {}: {reason}",
        settings.describe()
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
        None if error.is_closed() || find_source::<io::Error>(error).is_some() => {
            "the connection to the server was lost (the server closed it, crashed or was shut down)"
                .to_owned()
        }
        None => with_sources(error),
    };
    Error::database(format!("{context} failed: {reason}"))
}

/// `ERROR: message (SQLSTATE xxxxx); detail: ...; hint: ...` on one line.
pub fn server_message(db: &DbError) -> String {
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

/// Why the server refused the session.
fn login_reason(settings: &ConnectionSettings, db: &DbError) -> String {
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
            "the server has no free connection slots ({}); lower --pool-size or raise \
             max_connections",
            db.message()
        ),
        SqlState::CANNOT_CONNECT_NOW => format!(
            "the server is not accepting connections yet ({}); try again shortly",
            db.message()
        ),
        _ => format!("the server said: {}", server_message(db)),
    }
}

fn io_reason(io: &io::Error) -> String {
    let text = io.to_string();
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

fn tls_reason(settings: &ConnectionSettings, error: &rustls::Error) -> String {
    let mode = sslmode_keyword(settings.sslmode);
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's TLS certificate is not valid for the host name \"{}\" \
             (sslmode={mode}); connect with a name the certificate lists, or use sslmode=verify-ca",
            settings.hosts.join(",")
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the server's TLS certificate is not signed by a trusted root (sslmode={mode}); \
             set sslrootcert to the CA that signed it"
        ),
        other => format!("the TLS handshake failed: {other} (sslmode={mode})"),
    }
}

/// The first error of type `E` among the sources of `error`, looking inside
/// `io::Error`s too (TLS errors travel wrapped in one).
fn find_source<E: std::error::Error + 'static>(error: &tokio_postgres::Error) -> Option<&E> {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        source = match current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => current.source(),
        };
    }
    None
}

/// The error and its sources: `outer: inner: innermost`.
fn with_sources(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        text.push_str(&format!(": {current}"));
        source = current.source();
    }
    text
}
