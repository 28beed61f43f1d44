//! Robustness: hostile configuration. Certificate and key files that are
//! devices, FIFOs or huge; durations past what PostgreSQL accepts; a NUL
//! byte or a 100 KB value in a connection setting; a peer that answers
//! with garbage; a closed or full stdout. Each ends promptly with the exit
//! code its cause deserves and one sentence, never a hang, an OOM or a raw
//! library message.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::finish;

/// A run of perfaudit: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `command` to its end (killed, and the test failed, if it hangs).
fn run(command: &mut Command) -> Run {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn perfaudit");
    let output = finish(child);
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    /// Asserts the run exited with `code` and said one line on stderr
    /// holding each of `expected`; returns that line.
    fn failed(&self, code: i32, expected: &[&str]) -> &str {
        assert_eq!(self.code, code, "{}", self.stderr);
        let line = self.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "one sentence: {}", self.stderr);
        assert!(line.starts_with("perfaudit: "), "{line}");
        for expected in expected {
            assert!(line.contains(expected), "{expected}: {line}");
        }
        line
    }
}

/// A TCP port where nothing is accepted, only counted: whether perfaudit
/// tried to connect.
struct Watched(TcpListener);

impl Watched {
    fn new() -> Watched {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Watched(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    /// Asserts nobody connected (a connection waits in the backlog).
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("perfaudit connected: {other:?}"),
        }
    }
}

// --- Certificate and key files ----------------------------------------------

/// A client certificate and its key, as PEM files in `dir`.
fn client_identity(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["alice".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("alice.crt"), dir.join("alice.key"));
    std::fs::write(&cert_path, certificate.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A TLS file setting: what the file holds, its keyword and variable.
struct FileSetting {
    what: &'static str,
    keyword: &'static str,
    variable: &'static str,
}

const FILE_SETTINGS: [FileSetting; 3] = [
    FileSetting {
        what: "root certificates",
        keyword: "sslrootcert",
        variable: "PGSSLROOTCERT",
    },
    FileSetting {
        what: "client certificate",
        keyword: "sslcert",
        variable: "PGSSLCERT",
    },
    FileSetting {
        what: "client key",
        keyword: "sslkey",
        variable: "PGSSLKEY",
    },
];

#[test]
fn certificate_files_that_are_devices_fifos_or_huge_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("root.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'A'; 2 * 1024 * 1024]).unwrap();
    let (cert, key) = client_identity(dir.path());
    let bad: [(&Path, &str); 4] = [
        (Path::new("/dev/zero"), "it is a device"),
        (&fifo, "it is a FIFO"),
        (&huge, "it is larger than 1024 KiB"),
        (dir.path(), "it is a directory"),
    ];
    let peer = Watched::new();
    for (file, why) in bad {
        for setting in &FILE_SETTINGS {
            // The other files of the set are good ones; root certificates
            // are read under verify-full.
            let mut values = vec![
                ("sslmode", "verify-full".to_owned()),
                ("sslcert", cert.display().to_string()),
                ("sslkey", key.display().to_string()),
            ];
            values.retain(|(keyword, _)| *keyword != setting.keyword);
            values.push((setting.keyword, file.display().to_string()));
            let in_string: String = values.iter().map(|(k, v)| format!(" {k}={v}")).collect();
            let base = format!("host=127.0.0.1 port={} user=alice", peer.port());
            // From the connection string, then from the variables.
            let mut commands = [common::perfaudit(), common::perfaudit()];
            commands[0].args(["-d", &format!("{base}{in_string}")]);
            commands[1].args(["-d", &base]);
            for (keyword, value) in &values {
                let variable = FILE_SETTINGS
                    .iter()
                    .find(|s| s.keyword == *keyword)
                    .map_or("PGSSLMODE", |s| s.variable);
                commands[1].env(variable, value);
            }
            for mut command in commands {
                let result = run(command.args(["explain", "SELECT 1"]));
                result.failed(
                    2,
                    &[
                        &format!(
                            "cannot use \"{}\" as the {}: {why}",
                            file.display(),
                            setting.what
                        ),
                        &format!("check {} ({})", setting.keyword, setting.variable),
                    ],
                );
            }
        }
    }
    peer.assert_untouched();
}

// --- Values -------------------------------------------------------------------

#[test]
fn durations_past_what_postgresql_accepts_are_bad_input_before_connecting() {
    let peer = Watched::new();
    let url = format!("host=127.0.0.1 port={} user=alice", peer.port());
    // A usage error, as clap words it: exit 2, naming the flag.
    let refused = |args: &[&str], flag: &str| {
        let result = run(common::perfaudit().args(["-d", &url]).args(args));
        assert_eq!(result.code, 2, "{args:?}: {}", result.stderr);
        assert!(result.stderr.contains(flag), "{}", result.stderr);
        assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    };
    let commands: [&[&str]; 4] = [
        &["explain", "SELECT 1"],
        &["indexes"],
        &["advise", "SELECT 1"],
        &["rewrite", "SELECT 1"],
    ];
    for value in [
        "100000h",
        "99999999999999h",
        "2147484s",
        "2147484",
        "99999999999999999999999h",
    ] {
        for flag in ["--pool-timeout", "--connect-timeout", "--statement-timeout"] {
            for command in commands {
                refused(&[&[flag, value][..], command].concat(), flag);
            }
        }
        for flag in ["--lock-timeout", "--transaction-wait-timeout"] {
            refused(&["indexes", flag, value], flag);
        }
    }
    for seconds in ["2147484", "99999999999999"] {
        let result = run(common::perfaudit()
            .env("PGCONNECT_TIMEOUT", seconds)
            .args(["-d", &url, "explain", "SELECT 1"]));
        result.failed(2, &["invalid connect_timeout"]);
    }
    // The longest one PostgreSQL takes is still taken.
    let result = run(common::perfaudit().args([
        "--statement-timeout",
        "2147483647ms",
        "rewrite",
        "SELECT 1",
    ]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    peer.assert_untouched();
}

#[test]
fn a_nul_byte_in_a_connection_setting_is_bad_input_naming_it() {
    let peer = Watched::new();
    let port = peer.port();
    for (url, setting) in [
        (
            format!("postgresql://alice@127.0.0.1:{port}/pay%00ments"),
            "dbname",
        ),
        (format!("postgresql://al%00ice@127.0.0.1:{port}/db"), "user"),
        (
            format!("postgresql://alice:pw%00@127.0.0.1:{port}/db"),
            "password",
        ),
        (
            format!("postgresql://alice@127.0.0.1:{port}/db?options=-c%20a%3D%00"),
            "options",
        ),
        (
            format!("postgresql://alice@127.0.0.1:{port}/db?application_name=%00"),
            "application_name",
        ),
    ] {
        run(common::perfaudit().args(["-d", &url, "explain", "SELECT 1"])).failed(
            2,
            &[&format!(
                "{setting} in the connection string holds a NUL byte"
            )],
        );
    }
    peer.assert_untouched();
}

#[test]
fn a_100_kb_value_is_never_echoed_whole() {
    let peer = Watched::new();
    let port = peer.port();
    let long = "d".repeat(100_000);
    let short_line = |result: Run, code: i32, expected: &[&str]| {
        let line = result.failed(code, expected).to_owned();
        assert!(line.len() < 400, "{line}");
    };
    // Too long for PostgreSQL's startup message, which the server answers
    // by dropping the connection: refused before connecting.
    for setting in ["dbname", "user", "application_name", "options"] {
        let url = format!("host=127.0.0.1 port={port} {setting}={long}");
        short_line(
            run(common::perfaudit().args(["-d", &url, "explain", "SELECT 1"])),
            2,
            &[
                "do not fit in PostgreSQL's startup message",
                "100000 bytes long",
            ],
        );
    }
    peer.assert_untouched();
    // Echoed shortened: a host name, a file name, a token of SQL.
    let host = format!("{}.invalid", "h".repeat(100_000));
    short_line(
        run(common::perfaudit().args([
            "-d",
            &format!("host={host} user=alice"),
            "explain",
            "SELECT 1",
        ])),
        3,
        &["… (100008 bytes)", "could not be resolved"],
    );
    let file = format!("/{long}");
    short_line(
        run(common::perfaudit().args([
            "-d",
            &format!("host=127.0.0.1 port={port} sslrootcert={file} sslmode=verify-ca"),
            "explain",
            "SELECT 1",
        ])),
        2,
        &["… (100001 bytes)", "check sslrootcert (PGSSLROOTCERT)"],
    );
    short_line(
        run(common::perfaudit().args(["rewrite", &long])),
        2,
        &["found: ddd", "… (100000 bytes)"],
    );
}

// --- A peer that is not PostgreSQL ------------------------------------------------

/// A TCP server that reads what a client sends first, answers `reply`,
/// reads once more (perfaudit's next message, if any) and hangs up.
fn garbage_server(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream): Result<TcpStream, _> = stream else {
                return;
            };
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut buffer = [0; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(reply);
                let _ = stream.read(&mut buffer);
            });
        }
    });
    port
}

#[test]
fn a_peer_answering_garbage_is_not_taken_for_postgresql() {
    for (reply, sslmodes) in [
        // A web server: no `S` to the TLS request, then garbage.
        (
            &b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"[..],
            &["prefer"][..],
        ),
        // An SSH server: its `S` reads as yes to TLS, then garbage.
        (
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
            &["prefer", "require", "disable"],
        ),
        // A "no" to TLS followed by messages that make no sense.
        (b"N\0\0\0\0garbage garbage garbage", &["prefer", "disable"]),
    ] {
        let port = garbage_server(reply);
        for sslmode in sslmodes {
            let url = format!("host=127.0.0.1 port={port} user=alice sslmode={sslmode}");
            let result = run(common::perfaudit().args([
                "--connect-timeout",
                "10s",
                "-d",
                &url,
                "explain",
                "SELECT 1",
            ]));
            let line = result.failed(
                3,
                &["reply", "could not be read", "is this a PostgreSQL server?"],
            );
            assert!(!line.contains("bytes remaining"), "{line}");
            assert_eq!(result.stdout, "");
        }
    }
}

// --- Output -------------------------------------------------------------------

/// A file of `count` statements, whose rewrite fills any pipe's buffer.
fn many_statements(dir: &Path, count: usize) -> PathBuf {
    let path = dir.join("many.sql");
    let sql: String = (0..count)
        .map(|i| format!("SELECT * FROM payments_{i} WHERE user_id = {i};\n"))
        .collect();
    std::fs::write(&path, sql).unwrap();
    path
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_success() {
    let dir = tempfile::tempdir().unwrap();
    let sql = many_statements(dir.path(), 20_000);
    let sql = sql.to_str().unwrap();
    for args in [
        &["rewrite", "-f", sql][..],
        &["--format", "json", "rewrite", "-f", sql],
        &["completions", "bash"],
    ] {
        // As `perfaudit ... | head -c 1`: one byte is read, then the pipe closes.
        let script = format!(
            "{} | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}",
            std::iter::once(env!("CARGO_BIN_EXE_perfaudit"))
                .chain(args.iter().copied())
                .map(common::process::shell_quote)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let result = run(Command::new("bash")
            .args(["-c", &script])
            .env("HOME", "/nonexistent")
            .env_remove("DATABASE_URL"));
        assert_eq!(result.code, 0, "{args:?}: {}", result.stderr);
        assert_eq!(result.stderr, "", "{args:?}");
    }
    // Quiet even when a statement fails to parse after the pipe closed.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("many.sql"))
        .unwrap()
        .write_all(b"SELEC 1;\n")
        .unwrap();
    let mut child = common::perfaudit()
        .args(["rewrite", "-f", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdout.read_exact(&mut [0]).unwrap();
    drop(stdout);
    let output = finish(child);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn an_output_that_cannot_be_written_is_an_internal_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = common::perfaudit()
        .args(["rewrite", "SELECT * FROM payments"])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish(child);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(70), "{stderr}");
    assert!(
        stderr.starts_with("perfaudit: cannot write the output: No space left on device"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn the_exit_codes_are_documented_in_the_help() {
    let result = run(common::perfaudit().arg("--help"));
    assert_eq!(result.code, 0);
    for code in [
        "0 success",
        "2 bad input",
        "3 database error",
        "70 internal error",
    ] {
        assert!(result.stdout.contains(code), "{code}: {}", result.stdout);
    }
}
