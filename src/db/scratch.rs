//! A throwaway PostgreSQL cluster: `initdb` into a fresh temp dir, a
//! postmaster listening on a Unix socket in that dir only, and, on drop, the
//! server stopped and the dir removed.
//!
//! Every exit path is covered: normal return and errors (drop), panics
//! (drop during unwinding), SIGINT and SIGTERM (turned into a normal return by
//! [`crate::interrupt`]), and even a killed perfaudit: the postmaster is
//! started with a parent-death signal, so it shuts down when we die.
//!
//! PostgreSQL refuses to run as root; when perfaudit runs as root it runs
//! `initdb` and `postgres` as the `postgres` system user, which then owns
//! the temp dir.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Gid, Pid, Uid, User, chown};

use super::settings::ConnectionSettings;
use crate::error::{Error, Result};

/// The superuser of every scratch cluster, whoever runs perfaudit.
pub const SUPERUSER: &str = "postgres";
/// The name of every scratch dir starts so.
const DIR_PREFIX: &str = "perfaudit-";
/// In each scratch dir, locked by the perfaudit process that owns it.
const OWNER_LOCK: &str = "perfaudit.lock";
/// A dir younger than this is never taken for a leftover: its owner may be
/// between creating it and locking it.
const LEFTOVER_MIN_AGE: Duration = Duration::from_secs(2);
/// The port in the socket's name. The socket lives in a private dir, so the
/// usual port cannot clash with another server.
const SOCKET_PORT: u16 = 5432;
/// Longest Unix socket path the kernel accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long a healthy postmaster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an immediate shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for the server of a throwaway cluster: durability is worthless
/// here, speed is not.
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_wal_size", "4GB"),
    ("shared_buffers", "256MB"),
    ("max_connections", "200"),
    ("log_min_messages", "warning"),
    ("log_line_prefix", "%m [%p] "),
];

/// What to start beyond the defaults (tests use these).
#[derive(Debug, Clone, Default)]
pub struct ScratchOptions {
    /// Also listen on 127.0.0.1, on a free port, where roles log in with a
    /// password (`scram-sha-256`). The Unix socket always trusts.
    pub tcp: bool,
    /// Serve TLS on the TCP listener with this certificate.
    pub tls: Option<ScratchTls>,
    /// More `postgresql.conf` settings, e.g. `shared_preload_libraries`.
    pub settings: Vec<(String, String)>,
}

/// A PEM certificate (chain) and its private key.
#[derive(Debug, Clone)]
pub struct ScratchTls {
    /// The server certificate, followed by any intermediates.
    pub certificate_pem: String,
    /// The certificate's private key.
    pub key_pem: String,
    /// The CA that signs client certificates (`ssl_ca_file`): with it the
    /// server asks clients for a certificate, and `pg_stat_ssl` shows the
    /// one presented.
    pub client_ca_pem: Option<String>,
}

/// A running throwaway cluster. Dropping it stops the server and removes
/// every file.
pub struct ScratchCluster {
    postmaster: Postmaster,
    socket_dir: PathBuf,
    tcp_port: Option<u16>,
    // Held while the cluster lives; a dir whose lock is free is a leftover.
    _owner_lock: File,
    // Dropped last, after the server is stopped.
    dir: tempfile::TempDir,
}

impl ScratchCluster {
    /// Creates and starts a cluster. Takes about a second.
    pub async fn start(options: &ScratchOptions) -> Result<ScratchCluster> {
        let bindir = find_server_binaries()?;
        let owner = server_user()?;
        remove_leftovers(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| scratch_error(format!("cannot create a temp dir: {e}")))?;
        let owner_lock = lock_owner(dir.path())?;
        let socket_dir = dir.path().to_path_buf();
        let socket_path = socket_dir.join(format!(".s.PGSQL.{SOCKET_PORT}"));
        if socket_path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(scratch_error(format!(
                "the socket path \"{}\" is longer than {MAX_SOCKET_PATH} bytes; set TMPDIR to a shorter directory",
                socket_path.display()
            )));
        }
        if let Some(owner) = &owner {
            owner.give(&socket_dir)?;
        }
        let data_dir = socket_dir.join("data");
        initdb(&bindir, &data_dir, owner.as_ref()).await?;

        let tcp_port = if options.tcp {
            Some(free_tcp_port()?)
        } else {
            None
        };
        if options.tcp {
            write_owned(
                &data_dir.join("pg_hba.conf"),
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
                owner.as_ref(),
            )?;
        }
        let mut settings: Vec<(String, String)> = SERVER_SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings.push((
            "listen_addresses".into(),
            if options.tcp { "127.0.0.1" } else { "" }.into(),
        ));
        settings.push((
            "unix_socket_directories".into(),
            socket_dir.display().to_string(),
        ));
        settings.push(("port".into(), tcp_port.unwrap_or(SOCKET_PORT).to_string()));
        if let Some(tls) = &options.tls {
            write_owned(
                &data_dir.join("server.crt"),
                &tls.certificate_pem,
                owner.as_ref(),
            )?;
            write_owned(&data_dir.join("server.key"), &tls.key_pem, owner.as_ref())?;
            settings.push(("ssl".into(), "on".into()));
            if let Some(ca) = &tls.client_ca_pem {
                write_owned(&data_dir.join("client_ca.crt"), ca, owner.as_ref())?;
                settings.push(("ssl_ca_file".into(), "client_ca.crt".into()));
            }
        }
        settings.extend(options.settings.iter().cloned());

        let log_path = socket_dir.join("postgres.log");
        let postmaster =
            Postmaster::spawn(&bindir, &data_dir, &settings, &log_path, owner.as_ref())?;
        let mut cluster = ScratchCluster {
            postmaster,
            socket_dir,
            tcp_port,
            _owner_lock: owner_lock,
            dir,
        };
        cluster.wait_until_ready(&data_dir, &log_path).await?;
        Ok(cluster)
    }

    /// Settings to reach `dbname` on this cluster as the superuser, over the
    /// Unix socket.
    pub fn settings(&self, dbname: &str) -> ConnectionSettings {
        ConnectionSettings::unix_socket(
            &self.socket_dir,
            self.tcp_port.unwrap_or(SOCKET_PORT),
            SUPERUSER,
            dbname,
        )
    }

    /// The TCP port, when started with [`ScratchOptions::tcp`].
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_port
    }

    /// The directory holding the data, the socket and the server log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.postmaster.pid.as_raw() as u32
    }

    async fn wait_until_ready(&mut self, data_dir: &Path, log_path: &Path) -> Result<()> {
        let pid_file = data_dir.join("postmaster.pid");
        let started = Instant::now();
        loop {
            // Line 8 of postmaster.pid is the server's status (PostgreSQL 10+),
            // the same signal pg_ctl waits for.
            if let Ok(contents) = std::fs::read_to_string(&pid_file)
                && contents.lines().nth(7).map(str::trim) == Some("ready")
            {
                return Ok(());
            }
            if let Some(status) = self.postmaster.exit_status() {
                return Err(scratch_error(format!(
                    "the server exited during startup ({status}); its log says: {}",
                    log_tail(log_path)
                )));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(scratch_error(format!(
                    "the server did not become ready within {}s; its log says: {}",
                    START_TIMEOUT.as_secs(),
                    log_tail(log_path)
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        self.postmaster.stop();
    }
}

/// The postmaster process, reaped by a thread of its own.
///
/// The thread that spawns a process is the "parent" for the parent-death
/// signal; a dedicated thread that lives exactly as long as the postmaster
/// means the signal fires when the process dies, not when some worker
/// thread happens to exit.
struct Postmaster {
    pid: Pid,
    exited: mpsc::Receiver<io::Result<ExitStatus>>,
    status: Option<String>,
}

impl Postmaster {
    fn spawn(
        bindir: &Path,
        data_dir: &Path,
        settings: &[(String, String)],
        log_path: &Path,
        owner: Option<&ServerUser>,
    ) -> Result<Postmaster> {
        let log = File::create(log_path)
            .map_err(|e| scratch_error(format!("cannot create the server log: {e}")))?;
        let stderr = log
            .try_clone()
            .map_err(|e| scratch_error(format!("cannot create the server log: {e}")))?;
        let mut command = std::process::Command::new(bindir.join("postgres"));
        command.arg("-D").arg(data_dir);
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own process group: a Ctrl-C at the terminal reaches
            // perfaudit, which then stops the server in order.
            .process_group(0);
        if let Some(owner) = owner {
            command.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
        }
        // SAFETY: the closure runs in the child between fork and exec and only
        // calls prctl(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(io::Error::from)
            });
        }
        let (spawned_tx, spawned_rx) = mpsc::channel();
        let (exited_tx, exited) = mpsc::channel();
        std::thread::Builder::new()
            .name("postmaster-reaper".into())
            .spawn(move || match command.spawn() {
                Ok(mut child) => {
                    let _ = spawned_tx.send(Ok(child.id()));
                    let _ = exited_tx.send(child.wait());
                }
                Err(e) => {
                    let _ = spawned_tx.send(Err(e));
                }
            })
            .map_err(|e| scratch_error(format!("cannot start a thread: {e}")))?;
        let pid = spawned_rx
            .recv()
            .map_err(|_| scratch_error("the thread starting the server died"))?
            .map_err(|e| scratch_error(format!("cannot start postgres: {e}")))?;
        Ok(Postmaster {
            pid: Pid::from_raw(pid as i32),
            exited,
            status: None,
        })
    }

    /// The exit status, once the postmaster has exited.
    fn exit_status(&mut self) -> Option<String> {
        if self.status.is_none()
            && let Ok(result) = self.exited.try_recv()
        {
            self.status = Some(match result {
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            });
        }
        self.status.clone()
    }

    /// Immediate shutdown (nothing here is worth a checkpoint), then a kill
    /// of the whole process group if it does not go in time.
    fn stop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        let _ = kill(self.pid, Signal::SIGQUIT);
        if self.exited.recv_timeout(STOP_TIMEOUT).is_err() {
            let _ = killpg(self.pid, Signal::SIGKILL);
            let _ = self.exited.recv_timeout(STOP_TIMEOUT);
        }
        self.status = Some("stopped".into());
    }
}

/// Creates and locks the dir's owner lock; the lock lives as long as this
/// process holds the file (the kernel drops it when the process dies, even
/// by SIGKILL).
fn lock_owner(dir: &Path) -> Result<File> {
    let file = File::create(dir.join(OWNER_LOCK))
        .map_err(|e| scratch_error(format!("cannot create the owner lock: {e}")))?;
    file.try_lock()
        .map_err(|e| scratch_error(format!("cannot lock the owner lock: {e}")))?;
    Ok(file)
}

/// Removes the scratch dirs of perfaudit processes that died without
/// cleaning up (SIGKILL, a second Ctrl-C): their owner lock is free and no
/// postmaster runs in them any more (the parent-death signal stopped it).
/// Dirs this user may not read, or that look alive, are left alone.
fn remove_leftovers(temp_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return;
    };
    for dir in entries.flatten().map(|entry| entry.path()) {
        let is_scratch = dir
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(DIR_PREFIX));
        if is_scratch && is_leftover(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn is_leftover(dir: &Path) -> bool {
    let Ok(lock) = File::open(dir.join(OWNER_LOCK)) else {
        return false;
    };
    let old_enough = lock
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|modified| modified.elapsed().unwrap_or_default() >= LEFTOVER_MIN_AGE);
    let postmaster_alive = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .ok()
        .and_then(|pid_file| pid_file.lines().next()?.trim().parse::<i32>().ok())
        .is_some_and(|pid| kill(Pid::from_raw(pid), None).is_ok());
    old_enough && !postmaster_alive && lock.try_lock().is_ok()
}

/// The unprivileged user PostgreSQL runs as when perfaudit runs as root.
struct ServerUser {
    uid: Uid,
    gid: Gid,
}

impl ServerUser {
    fn give(&self, path: &Path) -> Result<()> {
        chown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
            scratch_error(format!(
                "cannot hand \"{}\" to the postgres user: {e}",
                path.display()
            ))
        })
    }
}

/// `None` when not root: the server then runs as ourselves.
fn server_user() -> Result<Option<ServerUser>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(ServerUser {
            uid: user.uid,
            gid: user.gid,
        })),
        _ => Err(scratch_error(
            "PostgreSQL refuses to run as root and there is no \"postgres\" user to run it as; \
             create one (useradd --system postgres) or run perfaudit as a normal user",
        )),
    }
}

/// Writes a file readable by the server only (the key file must be).
fn write_owned(path: &Path, contents: &str, owner: Option<&ServerUser>) -> Result<()> {
    let write = || -> io::Result<()> {
        let mut file = File::create(path)?;
        file.write_all(contents.as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
    };
    write().map_err(|e| scratch_error(format!("cannot write \"{}\": {e}", path.display())))?;
    match owner {
        Some(owner) => owner.give(path),
        None => Ok(()),
    }
}

async fn initdb(bindir: &Path, data_dir: &Path, owner: Option<&ServerUser>) -> Result<()> {
    let mut command = tokio::process::Command::new(bindir.join("initdb"));
    command
        .arg("-D")
        .arg(data_dir)
        .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"])
        .current_dir(data_dir.parent().expect("data dir has a parent"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(owner) = owner {
        command.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
    let output = command
        .output()
        .await
        .map_err(|e| scratch_error(format!("cannot run initdb: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(scratch_error(format!(
            "initdb failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Names the directory of the server binaries, overriding the search (for
/// picking one of several installed versions).
pub const BINDIR_VARIABLE: &str = "PERFAUDIT_PG_BINDIR";

/// Finds a directory holding `initdb` and `postgres`: `PERFAUDIT_PG_BINDIR`
/// if set, else on `PATH`, then `pg_config --bindir`, then the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_server_binaries() -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os(BINDIR_VARIABLE) {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(scratch_error(format!(
                "{BINDIR_VARIABLE} is \"{}\", which holds no initdb and postgres; point it at \
                 the server's bin directory, or unset it and install the server \
                 (Debian/Ubuntu: apt-get install postgresql)",
                crate::error::clip(&dir.to_string_lossy())
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .filter_map(|dir| std::fs::canonicalize(dir.join("initdb")).ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf));
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    on_path
        .chain(from_pg_config)
        .chain(debian.into_iter().map(|(_, dir)| dir))
        .find(|dir| has_server(dir))
        .ok_or_else(|| {
            scratch_error(
                "the PostgreSQL server binaries (initdb, postgres) are not on PATH, not where \
                 pg_config --bindir points, nor under /usr/lib/postgresql/*/bin; install them \
                 (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) \
                 or put their directory on PATH",
            )
        })
}

/// A port nobody listens on now (the kernel's pick), for the TCP listener.
fn free_tcp_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| scratch_error(format!("cannot find a free TCP port: {e}")))
}

/// The last lines of the server log, for error messages.
fn log_tail(log_path: &Path) -> String {
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(nothing)".into()
    } else {
        tail
    }
}

fn scratch_error(message: impl std::fmt::Display) -> Error {
    Error::database(format!("cannot start the scratch PostgreSQL: {message}"))
}
