//! Turning client and server errors into one clear sentence: what failed,
//! why, and what to do. Messages name the host, port, user and database,
//! never the password.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use rustls::CertificateError;
use tokio_postgres::error::{DbError, SqlState};

use super::settings::{ConnectionSettings, sslmode_keyword};
use crate::error::{Error, clip};

/// An error from establishing a session.
pub fn connect_error(settings: &ConnectionSettings, error: &tokio_postgres::Error) -> Error {
    let reason = if let Some(db) = error.as_db_error() {
        login_reason(settings, db)
    } else if let Some(tls) = find_source::<rustls::Error>(error) {
        tls_reason(settings, tls)
    } else if unreadable_reply(error) {
        UNREADABLE_REPLY.to_owned()
    } else if error.is_closed() {
        "the server closed the connection before the session started; check that a \
         PostgreSQL server listens there and admits this client"
            .to_owned()
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
            one_line(&text)
        }
    };
    Error::database(format!(
        "could not connect to PostgreSQL at {}: {reason}",
        settings.describe()
    ))
}

/// What a peer that does not speak PostgreSQL's protocol gets told.
const UNREADABLE_REPLY: &str =
    "the server's reply could not be read (is this a PostgreSQL server? check the host and port)";

/// Whether the peer's reply was not PostgreSQL's protocol: a message that
/// does not parse or should not come, or bytes left over that make no
/// message (tokio-postgres has no public kind for these, so they are told
/// by its wording).
fn unreadable_reply(error: &tokio_postgres::Error) -> bool {
    let top = error.to_string();
    if top.starts_with("error parsing response from server")
        || top.starts_with("unexpected message from server")
    {
        return true;
    }
    top.starts_with("error communicating with the server")
        && find_source::<io::Error>(error).is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
            ) || io.to_string() == "bytes remaining on stream"
        })
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

/// The server's refusal of a statement (its error, on one line), for the
/// statement to be reported as refused: `Err` when the server did not
/// refuse it but went away (a lost connection, a shutdown).
pub fn refusal(error: tokio_postgres::Error, context: &str) -> crate::error::Result<String> {
    match error.as_db_error() {
        Some(db) if !db.code().code().starts_with("57P") => Ok(server_message(db)),
        _ => Err(query_error(context, &error)),
    }
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
            clip(&settings.user)
        ),
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "the server refused the login: {}; check the role exists and that \
             pg_hba.conf admits it from here",
            db.message()
        ),
        SqlState::INVALID_CATALOG_NAME => format!(
            "database \"{}\" does not exist; check the database name",
            clip(&settings.dbname)
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
        _ => one_line(&text),
    }
}

/// A TLS failure as one sentence: what was refused, and what to do.
fn tls_reason(settings: &ConnectionSettings, error: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    let mode = sslmode_keyword(settings.sslmode);
    let certificate = "the server's TLS certificate";
    match error {
        rustls::Error::InvalidCertificate(problem) => match problem {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "{certificate} is not valid for the host name \"{}\" (sslmode={mode}); \
                     connect with a name the certificate lists, or use sslmode=verify-ca",
                    clip(&settings.hosts.join(","))
                )
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "{certificate} is not signed by a trusted root (sslmode={mode}); set \
                 sslrootcert to the CA that signed it"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "{certificate} has expired (sslmode={mode}); the server needs a new one, or \
                 check this machine's clock"
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "{certificate} is not valid yet (sslmode={mode}); check the clocks of this \
                     machine and the server"
                )
            }
            CertificateError::Revoked => format!(
                "{certificate} has been revoked (sslmode={mode}); the server needs a new one"
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!(
                    "{certificate} is not meant for a server: its extended key usage leaves out \
                     TLS server authentication (sslmode={mode}); the server needs one that \
                     includes it"
                )
            }
            CertificateError::BadEncoding => format!(
                "{certificate} could not be read: it is not valid DER (sslmode={mode}); check \
                 the server's ssl_cert_file"
            ),
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                format!(
                    "{certificate} is a CA certificate, and not itself one of the roots in \
                     sslrootcert (sslmode={mode}); give the server a certificate its CA signed, \
                     or set sslrootcert to this very certificate"
                )
            }
            CertificateError::Other(other) => format!(
                "{certificate} was refused: {} (sslmode={mode}); check it and sslrootcert",
                one_line(&other.0.to_string())
            ),
            other => format!(
                "{certificate} was refused: {} (sslmode={mode}); check it and sslrootcert",
                one_line(&format!("{other:?}"))
            ),
        },
        rustls::Error::AlertReceived(Alert::CertificateRequired) => format!(
            "the server asks for a client certificate and none was given (sslmode={mode}); set \
             sslcert and sslkey"
        ),
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::AccessDenied),
        ) => format!(
            "the server refused the client certificate ({alert:?}, sslmode={mode}); check \
             sslcert and sslkey, and that the server trusts the CA that signed them"
        ),
        rustls::Error::AlertReceived(
            alert
            @ (Alert::ProtocolVersion | Alert::HandshakeFailure | Alert::InsufficientSecurity),
        ) => format!(
            "the server and perfaudit share no TLS version or cipher ({alert:?}, \
             sslmode={mode}); perfaudit needs TLS 1.2 or later with a modern cipher"
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "the server ended the TLS handshake ({alert:?}, sslmode={mode}); its log says why"
        ),
        rustls::Error::PeerIncompatible(why) => format!(
            "the server's TLS is incompatible with perfaudit's ({why:?}, sslmode={mode}); \
             perfaudit needs TLS 1.2 or later with a modern cipher"
        ),
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::PeerMisbehaved(_)
        | rustls::Error::DecryptError => {
            format!(
                "the server's reply to the TLS handshake could not be read (sslmode={mode}; is \
                 this a PostgreSQL server? check the host and port)"
            )
        }
        rustls::Error::NoCertificatesPresented => format!(
            "the server presented no TLS certificate (sslmode={mode}); check its ssl_cert_file"
        ),
        other => format!(
            "the TLS handshake failed: {} (sslmode={mode})",
            one_line(&other.to_string())
        ),
    }
}

/// A library's text as part of one sentence: on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
