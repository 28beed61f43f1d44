//! A real PgBouncer in transaction mode in front of the test server, on a
//! Unix socket in a private temp dir: what `perfaudit` meets behind a
//! transaction pooler, where a server connection is a client's only for
//! one transaction.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perfaudit::db::ConnectionSettings;

/// The port in the socket's name (`.s.PGSQL.6432`); the socket is in a dir
/// of its own, so any port serves.
const PORT: u16 = 6432;

/// A running PgBouncer, stopped (and its dir removed) on drop.
pub struct Pooler {
    child: Child,
    dir: tempfile::TempDir,
}

impl Pooler {
    /// Starts PgBouncer in front of the server `server` reaches (its
    /// socket), with `pool_size` server connections per database and user.
    pub fn start(server: &ConnectionSettings, pool_size: usize) -> Pooler {
        let binary = which("pgbouncer").unwrap_or_else(|| {
            panic!(
                "PgBouncer is not installed, and the tests of perfaudit behind a transaction \
                 pooler need it: install it (`apt-get install pgbouncer` on Debian or Ubuntu, \
                 as .ci/run does) and run the tests again"
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        let user = &server.user;
        std::fs::write(path.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            path.join("pgbouncer.ini"),
            format!(
                "[databases]\n\
                 * = host={host} port={port}\n\
                 [pgbouncer]\n\
                 listen_addr =\n\
                 listen_port = {PORT}\n\
                 unix_socket_dir = {dir}\n\
                 auth_type = trust\n\
                 auth_file = {dir}/users.txt\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 100\n\
                 ignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {dir}/pgbouncer.log\n",
                host = server.hosts[0],
                port = server.ports[0],
                dir = path.display(),
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        command
            .arg(path.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // PgBouncer, like PostgreSQL, refuses to run as root.
        if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            for file in ["users.txt", "pgbouncer.ini"] {
                std::os::unix::fs::chown(path.join(file), Some(uid), Some(gid)).unwrap();
            }
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("start pgbouncer");
        let mut pooler = Pooler { child, dir };
        pooler.wait_until_listening();
        pooler
    }

    fn wait_until_listening(&mut self) {
        let socket = self.dir.path().join(format!(".s.PGSQL.{PORT}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.path().join("pgbouncer.log"));
                panic!("pgbouncer exited ({status}): {log:?}");
            }
            assert!(Instant::now() < deadline, "pgbouncer did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `server`'s settings, pointed at the pooler instead.
    pub fn settings(&self, server: &ConnectionSettings) -> ConnectionSettings {
        ConnectionSettings::unix_socket(self.dir.path(), PORT, &server.user, &server.dbname)
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([Path::new("/usr/sbin").to_owned()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `postgres` system user's uid and gid.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}
