//! Connecting: errors that name where and why (never the password), TLS in
//! every sslmode against a server with a certificate made here, and a pool
//! that opens connections only when asked.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use perfaudit::Error;
use perfaudit::db::{
    ConnectionSettings, Database, PoolOptions, ScratchCluster, ScratchTls, Sources,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const PASSWORD: &str = "Correct-Horse-7";
const WRONG_PASSWORD: &str = "Wrong-Battery-9";

/// Settings from a conninfo string alone, as `--database-url` would give.
fn settings(conninfo: &str) -> ConnectionSettings {
    ConnectionSettings::resolve(&Sources {
        connection_string: Some(conninfo),
        env: &|_| None,
        connect_timeout: None,
        warn: &|_| {},
    })
    .unwrap()
}

async fn connect(settings: ConnectionSettings) -> Result<(), Error> {
    let db = Database::new(settings, PoolOptions::default())?;
    db.connection().await.map(drop)
}

/// The error's message, after checking it is a database error (exit 3) that
/// names the endpoint and hides the password.
fn database_error(result: Result<(), Error>, endpoint: &str, secret: &str) -> String {
    let error = result.expect_err("the connection should fail");
    assert_eq!(error.exit_code(), 3, "{error}");
    let message = error.to_string();
    assert!(
        message.contains(endpoint),
        "{message} should name {endpoint}"
    );
    assert!(!message.contains(secret), "{message} leaks the password");
    message
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster with a TCP listener where `alice` logs in with [`PASSWORD`].
async fn tcp_cluster(tls: Option<ScratchTls>) -> ScratchCluster {
    common::tcp_cluster(PASSWORD, tls).await
}

#[tokio::test]
async fn refused_connection_names_host_port_user_and_database() {
    let port = closed_port();
    let message = database_error(
        connect(settings(&format!(
            "postgresql://alice:{PASSWORD}@127.0.0.1:{port}/payments"
        )))
        .await,
        &format!("host \"127.0.0.1\" port {port}, user \"alice\", database \"payments\""),
        PASSWORD,
    );
    assert!(message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn unknown_host_is_reported_as_such() {
    // A label longer than 63 characters fails inside the resolver without
    // sending a DNS query anywhere.
    let host = format!("{}.invalid", "a".repeat(64));
    let message = database_error(
        connect(settings(&format!(
            "host={host} port=5432 user=u password={PASSWORD}"
        )))
        .await,
        &format!("host \"{host}\" port 5432"),
        PASSWORD,
    );
    assert!(message.contains("could not be resolved"), "{message}");
}

#[tokio::test]
async fn a_silent_server_hits_the_connect_timeout() {
    // Accepts TCP connections (the kernel does) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let message = database_error(
        connect(settings(&format!(
            "host=127.0.0.1 port={port} user=u password={PASSWORD} connect_timeout=2"
        )))
        .await,
        &format!("host \"127.0.0.1\" port {port}"),
        PASSWORD,
    );
    let waited = started.elapsed();
    assert!(message.contains("no answer within 2s"), "{message}");
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(4)).contains(&waited),
        "waited {waited:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn wrong_password_is_reported_without_the_password() {
    let cluster = tcp_cluster(None).await;
    let port = cluster.tcp_port().unwrap();
    let base = format!("host=127.0.0.1 port={port} user=alice dbname=postgres sslmode=disable");
    let message = database_error(
        connect(settings(&format!("{base} password={WRONG_PASSWORD}"))).await,
        &format!("host \"127.0.0.1\" port {port}, user \"alice\", database \"postgres\""),
        WRONG_PASSWORD,
    );
    assert!(
        message.contains("password authentication failed for user \"alice\""),
        "{message}"
    );
    connect(settings(&format!("{base} password={PASSWORD}")))
        .await
        .unwrap();
}

#[tokio::test]
async fn password_comes_from_the_password_file() {
    let cluster = tcp_cluster(None).await;
    let port = cluster.tcp_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(&passfile, format!("127.0.0.1:{port}:*:alice:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let passfile = passfile.display().to_string();
    let env = move |name: &str| (name == "PGPASSFILE").then(|| passfile.clone());
    let settings = ConnectionSettings::resolve(&Sources {
        connection_string: Some(&format!(
            "host=127.0.0.1 port={port} user=alice dbname=postgres"
        )),
        env: &env,
        connect_timeout: None,
        warn: &|_| {},
    })
    .unwrap();
    assert!(settings.password.is_some());
    connect(settings).await.unwrap();
}

/// A CA, a server certificate for `localhost` signed by it (the server
/// also takes client certificates the CA signed), and a client certificate
/// for `alice`.
struct Certificates {
    ca_pem: String,
    server: ScratchTls,
    client_pem: String,
    client_key_pem: String,
}

fn make_certificates() -> Certificates {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Certificates {
        ca_pem: ca.pem(),
        server: ScratchTls {
            certificate_pem: server.pem(),
            key_pem: server_key.serialize_pem(),
            client_ca_pem: Some(ca.pem()),
        },
        client_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Connects with `conninfo` and says whether the session uses TLS.
async fn uses_tls(conninfo: &str) -> Result<bool, Error> {
    own_ssl(conninfo, "ssl").await
}

/// Connects with `conninfo` and reads `column` of the session's own row of
/// `pg_stat_ssl`.
async fn own_ssl<T: tokio_postgres::types::FromSqlOwned>(
    conninfo: &str,
    column: &str,
) -> Result<T, Error> {
    let db = Database::new(settings(conninfo), PoolOptions::default())?;
    let client = db.connection().await?;
    let row = client
        .query_one(
            &format!("SELECT {column} FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
            &[],
        )
        .await
        .unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn tls_follows_every_sslmode() {
    let certificates = make_certificates();
    let cluster = tcp_cluster(Some(certificates.server.clone())).await;
    let port = cluster.tcp_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.crt");
    std::fs::write(&root, &certificates.ca_pem).unwrap();
    let other_root = dir.path().join("other.crt");
    std::fs::write(&other_root, make_certificates().ca_pem).unwrap();
    let conninfo = |host: &str, mode: &str, root: &Path| {
        format!(
            "host={host} port={port} user=alice password={PASSWORD} dbname=postgres \
             sslmode={mode} sslrootcert={}",
            root.display()
        )
    };
    let no_root = Path::new("/nonexistent/root.crt");

    assert!(
        !uses_tls(&conninfo("localhost", "disable", no_root))
            .await
            .unwrap()
    );
    assert!(
        uses_tls(&conninfo("localhost", "prefer", no_root))
            .await
            .unwrap()
    );
    assert!(uses_tls(&format!(
        "host=127.0.0.1 port={port} user=alice password={PASSWORD} dbname=postgres sslmode=require"
    ))
    .await
    .unwrap());
    assert!(
        uses_tls(&conninfo("localhost", "verify-full", &root))
            .await
            .unwrap()
    );
    // verify-ca checks the chain, not the name.
    assert!(
        uses_tls(&conninfo("127.0.0.1", "verify-ca", &root))
            .await
            .unwrap()
    );

    let message = database_error(
        uses_tls(&conninfo("127.0.0.1", "verify-full", &root))
            .await
            .map(drop),
        &format!("host \"127.0.0.1\" port {port}"),
        PASSWORD,
    );
    assert!(
        message.contains("not valid for the host name \"127.0.0.1\""),
        "{message}"
    );

    for mode in ["verify-full", "verify-ca", "require"] {
        let message = database_error(
            uses_tls(&conninfo("localhost", mode, &other_root))
                .await
                .map(drop),
            &format!("host \"localhost\" port {port}"),
            PASSWORD,
        );
        assert!(
            message.contains("not signed by a trusted root"),
            "{mode}: {message}"
        );
    }
}

/// A self-signed CA certificate for `localhost`, as `openssl req -x509`
/// makes one (`CA:TRUE`), valid until `(year, month, day)`, and its key.
fn self_signed_ca((year, month, day): (i32, u8, u8)) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    (certificate.pem(), key.serialize_pem())
}

/// A TLS cluster whose certificate is a self-signed CA valid until
/// `not_after`, its port, and that certificate written as a root file (in
/// the directory returned with it).
async fn serving_its_own_root(
    not_after: (i32, u8, u8),
) -> (ScratchCluster, u16, tempfile::TempDir, std::path::PathBuf) {
    let (certificate_pem, key_pem) = self_signed_ca(not_after);
    let cluster = tcp_cluster(Some(ScratchTls {
        certificate_pem: certificate_pem.clone(),
        key_pem,
        client_ca_pem: None,
    }))
    .await;
    let port = cluster.tcp_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.crt");
    std::fs::write(&root, &certificate_pem).unwrap();
    (cluster, port, dir, root)
}

#[tokio::test]
async fn a_server_certificate_that_is_itself_the_trusted_root_is_accepted_as_libpq_does() {
    let (_cluster, port, _dir, root) = serving_its_own_root((2999, 1, 1)).await;
    let conninfo = |host: &str, mode: &str| {
        format!(
            "host={host} port={port} user=alice password={PASSWORD} dbname=postgres \
             sslmode={mode} sslrootcert={}",
            root.display()
        )
    };
    for (host, mode) in [
        ("localhost", "verify-full"),
        ("localhost", "verify-ca"),
        ("127.0.0.1", "verify-ca"),
        ("127.0.0.1", "require"),
    ] {
        let tls = uses_tls(&conninfo(host, mode)).await;
        assert!(
            tls.unwrap_or_else(|e| panic!("{mode} {host}: {e}")),
            "{mode}"
        );
    }
    // The names are still checked under verify-full, in one sentence.
    let message = database_error(
        uses_tls(&conninfo("127.0.0.1", "verify-full"))
            .await
            .map(drop),
        &format!("host \"127.0.0.1\" port {port}"),
        PASSWORD,
    );
    assert!(
        message.contains("not valid for the host name \"127.0.0.1\""),
        "{message}"
    );
    // Another self-signed CA is no root of this server's certificate.
    let (other_pem, _) = self_signed_ca((2999, 1, 1));
    std::fs::write(&root, other_pem).unwrap();
    let message = database_error(
        uses_tls(&conninfo("localhost", "verify-full"))
            .await
            .map(drop),
        &format!("host \"localhost\" port {port}"),
        PASSWORD,
    );
    assert!(
        message.contains("is a CA certificate, and not itself one of the roots"),
        "{message}"
    );
    assert!(!message.contains("CaUsedAsEndEntity"), "{message}");
}

#[tokio::test]
async fn an_expired_certificate_that_is_itself_the_trusted_root_is_refused() {
    let (_cluster, port, _dir, root) = serving_its_own_root((2020, 1, 1)).await;
    for mode in ["verify-ca", "verify-full"] {
        let message = database_error(
            uses_tls(&format!(
                "host=localhost port={port} user=alice password={PASSWORD} dbname=postgres \
                 sslmode={mode} sslrootcert={}",
                root.display()
            ))
            .await
            .map(drop),
            &format!("host \"localhost\" port {port}"),
            PASSWORD,
        );
        assert!(
            message.contains("TLS certificate has expired"),
            "{mode}: {message}"
        );
    }
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_given() {
    let certificates = make_certificates();
    let cluster = tcp_cluster(Some(certificates.server.clone())).await;
    let port = cluster.tcp_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("alice.crt"), dir.path().join("alice.key"));
    std::fs::write(&cert, &certificates.client_pem).unwrap();
    std::fs::write(&key, &certificates.client_key_pem).unwrap();
    let client_dn = |extra: String| async move {
        let conninfo = format!(
            "host=127.0.0.1 port={port} user=alice password={PASSWORD} dbname=postgres \
             sslmode=require {extra}"
        );
        own_ssl::<Option<String>>(&conninfo, "client_dn").await
    };
    let given = format!("sslcert={} sslkey={}", cert.display(), key.display());
    assert_eq!(
        client_dn(given).await.unwrap().as_deref(),
        Some("/CN=alice")
    );
    assert_eq!(client_dn(String::new()).await.unwrap(), None);
    // A certificate whose key cannot be read is a clear error before
    // anything is sent.
    let error = client_dn(format!(
        "sslcert={} sslkey=/nonexistent.key",
        cert.display()
    ))
    .await
    .unwrap_err();
    assert_eq!(error.exit_code(), 2, "{error}");
    assert!(
        error
            .to_string()
            .contains("cannot use \"/nonexistent.key\" as the client key: cannot open it"),
        "{error}"
    );
}

#[tokio::test]
async fn tls_required_from_a_server_without_it_is_refused() {
    let cluster = tcp_cluster(None).await;
    let port = cluster.tcp_port().unwrap();
    let message = database_error(
        uses_tls(&format!(
            "host=127.0.0.1 port={port} user=alice password={PASSWORD} dbname=postgres sslmode=require"
        ))
        .await
        .map(drop),
        &format!("host \"127.0.0.1\" port {port}"),
        PASSWORD,
    );
    assert!(message.contains("does not offer TLS"), "{message}");
}

#[test]
fn verbose_says_where_it_connects() {
    let where_to = "socket \"/nonexistent/.s.PGSQL.5432\", user \"alice\", database \"x\"";
    for (verbose, said) in [(true, true), (false, false)] {
        let output = common::perfaudit()
            .args(["-d", "host=/nonexistent user=alice dbname=x"])
            .args(verbose.then_some("-v"))
            .args(["explain", "SELECT 1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert_eq!(
            stderr.contains(&format!(
                "perfaudit: connecting to {where_to}, sslmode prefer"
            )),
            said,
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn sslmode_does_not_apply_to_a_unix_socket() {
    // As in libpq: a PGSSLMODE meant for remote servers still lets the
    // local socket, where there is no TLS, be used.
    // A cluster of its own: it is reached over its socket, whatever
    // PERFAUDIT_TEST_DATABASE_URL points the other tests at.
    let cluster = tcp_cluster(None).await;
    let socket = cluster.settings("postgres").to_conninfo();
    for sslmode in ["require", "verify-ca", "verify-full"] {
        let conninfo = format!("{socket} sslmode={sslmode}");
        assert!(!uses_tls(&conninfo).await.unwrap(), "{sslmode}");
    }
}

#[tokio::test]
async fn the_pool_opens_connections_lazily_and_sets_up_each_session() {
    let test_db = common::TestDb::empty().await;
    let db = Database::new(
        test_db.settings.clone(),
        PoolOptions {
            max_size: 8,
            statement_timeout: Some(Duration::from_millis(1500)),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        db.open_connections(),
        0,
        "building the pool connects to nothing"
    );
    let client = db.connection().await.unwrap();
    assert_eq!(db.open_connections(), 1, "one connection for one user");
    let row = client
        .query_one(
            "SELECT current_setting('statement_timeout'), current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "1500ms");
    assert_eq!(row.get::<_, String>(1), "perfaudit");
    drop(client);
    let _again = db.connection().await.unwrap();
    assert_eq!(db.open_connections(), 1, "a returned connection is reused");
}

#[tokio::test]
async fn an_exhausted_pool_waits_then_fails_clearly() {
    let test_db = common::TestDb::empty().await;
    let db = Database::new(
        test_db.settings.clone(),
        PoolOptions {
            max_size: 1,
            wait_timeout: Duration::from_millis(300),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let held = db.connection().await.unwrap();
    let error = db.connection().await.map(drop).unwrap_err();
    assert_eq!(error.exit_code(), 3);
    assert!(
        error
            .to_string()
            .contains("all 1 pooled connections stayed busy"),
        "{error}"
    );
    drop(held);
    let _free_again = db.connection().await.unwrap();
}

/// Runs `perfaudit explain "SELECT 1"` against `url` (with `PGPASSWORD` set
/// too) and checks it exits 3 with a message naming `endpoint` and no secret.
fn cli_database_error(url: &str, extra: &[&str], endpoint: &str) -> String {
    let output = common::perfaudit()
        .env("PGPASSWORD", WRONG_PASSWORD)
        .args(["--database-url", url])
        .args(extra)
        .args(["explain", "SELECT 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(endpoint), "{stderr} should name {endpoint}");
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "leaks: {stderr}{stdout}"
        );
    }
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    stderr
}

#[test]
fn cli_connection_errors_exit_3_with_where_and_why() {
    let port = closed_port();
    let stderr = cli_database_error(
        &format!("postgresql://alice:{PASSWORD}@127.0.0.1:{port}/payments"),
        &[],
        &format!("host \"127.0.0.1\" port {port}, user \"alice\", database \"payments\""),
    );
    assert!(stderr.contains("connection refused"), "{stderr}");

    let host = format!("{}.invalid", "a".repeat(64));
    let stderr = cli_database_error(
        &format!("host={host} port=5433 user=alice"),
        &[],
        &format!("host \"{host}\" port 5433"),
    );
    assert!(stderr.contains("could not be resolved"), "{stderr}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let stderr = cli_database_error(
        &format!("postgresql://alice:{PASSWORD}@127.0.0.1:{port}/db"),
        &["--connect-timeout", "1s"],
        &format!("host \"127.0.0.1\" port {port}"),
    );
    assert!(stderr.contains("no answer within 1s"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cli_wrong_password_exits_3_without_the_password() {
    let cluster = tcp_cluster(None).await;
    let port = cluster.tcp_port().unwrap();
    // The password comes from PGPASSWORD (set by the helper), the rest from the URL.
    let stderr = cli_database_error(
        &format!("postgresql://alice@127.0.0.1:{port}/postgres?sslmode=disable"),
        &[],
        &format!("host \"127.0.0.1\" port {port}, user \"alice\", database \"postgres\""),
    );
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
}
