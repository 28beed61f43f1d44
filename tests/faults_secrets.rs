//! Robustness: a password, from the connection URL or from PGPASSWORD, never
//! appears in what perfaudit prints — error messages, `-v` / `-vv` lines,
//! JSON — on any path that names the connection, in any command.

mod common;

use std::net::TcpListener;
use std::process::Output;

/// The password, with characters a URL must escape.
const SECRET: &str = "Hush/Secret:42@pw";
/// The same, as it is written in a URL.
const SECRET_IN_URL: &str = "Hush%2FSecret%3A42%40pw";

const COMMANDS: [&[&str]; 4] = [
    &["explain", "SELECT * FROM payments"],
    &["rewrite", "SELECT * FROM payments"],
    &["indexes"],
    &["advise", "SELECT * FROM payments WHERE user_id = 1"],
];

/// Where a connection goes: host, port, user and database of a URL.
struct Target {
    host: String,
    port: u16,
    user: &'static str,
    dbname: &'static str,
    /// Query parameters of the URL (`sslmode=require`), if any.
    params: &'static str,
}

impl Target {
    fn at(host: &str, port: u16) -> Target {
        Target {
            host: host.to_owned(),
            port,
            user: "alice",
            dbname: "postgres",
            params: "",
        }
    }

    /// `host "h" port p`, as the messages name it.
    fn endpoint(&self) -> String {
        format!("host \"{}\" port {}", self.host, self.port)
    }

    /// The URL, with the password in it or not.
    fn url(&self, with_password: bool) -> String {
        let password = if with_password {
            format!(":{SECRET_IN_URL}")
        } else {
            String::new()
        };
        format!(
            "postgresql://{}{password}@{}:{}/{}{}",
            self.user, self.host, self.port, self.dbname, self.params
        )
    }
}

/// Runs every command against `target` twice — the password in the URL
/// with `-vv --format json`, then in PGPASSWORD with `-v` — checks that the
/// password is printed nowhere, and returns each run's exit code and
/// stderr.
fn run_everything(target: &Target, extra: &[&str]) -> Vec<(i32, String)> {
    let mut runs = Vec::new();
    for command in COMMANDS {
        for with_password in [true, false] {
            let mut perfaudit = common::perfaudit();
            perfaudit.args(["--database-url", &target.url(with_password)]);
            if with_password {
                perfaudit.args(["-vv", "--format", "json"]);
            } else {
                perfaudit.env("PGPASSWORD", SECRET).arg("-v");
            }
            let output: Output = perfaudit.args(extra).args(command).output().unwrap();
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            for secret in [SECRET, SECRET_IN_URL, "Hush", "Secret"] {
                assert!(
                    !printed.contains(secret),
                    "{command:?} printed the password: {printed}"
                );
            }
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            runs.push((output.status.code().unwrap(), stderr));
        }
    }
    runs
}

/// Runs everything against `target`, which cannot be connected to: each
/// run must exit 3 naming the endpoint, with `reason`.
fn assert_connection_errors(target: &Target, extra: &[&str], reason: &str) {
    for (code, stderr) in run_everything(target, extra) {
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains(&target.endpoint()), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
    }
}

#[test]
fn no_password_when_the_connection_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_connection_errors(&Target::at("127.0.0.1", port), &[], "connection refused");
}

#[test]
fn no_password_when_the_host_is_unknown() {
    // A label over 63 characters fails in the resolver, without DNS.
    let target = Target::at(&format!("{}.invalid", "a".repeat(64)), 5432);
    assert_connection_errors(&target, &[], "could not be resolved");
}

#[test]
fn no_password_when_the_server_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = Target::at("127.0.0.1", listener.local_addr().unwrap().port());
    assert_connection_errors(&target, &["--connect-timeout", "1s"], "no answer within 1s");
}

#[tokio::test]
async fn no_password_from_a_server_that_refuses_the_login_or_fails_later() {
    let cluster = common::tcp_cluster(SECRET, None).await;
    let port = cluster.tcp_port().unwrap();

    let wrong_user = Target {
        user: "mallory",
        ..Target::at("127.0.0.1", port)
    };
    assert_connection_errors(&wrong_user, &[], "password authentication failed");

    let missing_database = Target {
        dbname: "missing",
        ..Target::at("127.0.0.1", port)
    };
    assert_connection_errors(
        &missing_database,
        &[],
        "database \"missing\" does not exist",
    );

    let tls_required = Target {
        params: "?sslmode=require",
        ..Target::at("127.0.0.1", port)
    };
    assert_connection_errors(&tls_required, &[], "does not offer TLS");

    // Logged in: each command fails later, on the server (no payments
    // table, no HypoPG), or succeeds; nothing it prints holds the password.
    let logged_in = Target::at("127.0.0.1", port);
    let codes: Vec<i32> = run_everything(&logged_in, &[])
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    assert_eq!(codes, [3, 3, 0, 0, 2, 2, 3, 3]);
}
