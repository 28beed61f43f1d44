//! perfaudit as a process: a private TMPDIR for a run, so that what it
//! leaves there — a scratch cluster's files, its server processes — is
//! visible; signals sent to it; waiting for it with a hang guard.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// A private TMPDIR under /tmp, usable by the postgres user when the tests
/// run as root (a scratch cluster's server then runs as that user).
pub fn private_tmpdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("pa-tmp-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Processes whose working directory lies under `dir` (a postmaster and its
/// backends run in their data directory), with their command lines.
pub fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cwd.starts_with(dir)
                .then(|| (pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// Waits (up to 30s) until a server process under `dir` shows `title` in
/// its process title (`INSERT` while seeding, `EXPLAIN` while explaining).
pub fn wait_for_server_title(dir: &Path, title: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_under(dir)
        .iter()
        .any(|(_, cmdline)| cmdline.contains(title))
    {
        assert!(
            Instant::now() < deadline,
            "no server process showed {title}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `tmp` holds no file and no server process.
pub fn assert_nothing_left(tmp: &Path) {
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(processes_under(tmp), [], "server processes left behind");
}

/// Starts `perfaudit --scratch` with a seed large enough to take a while, in
/// the private TMPDIR `tmp`, and returns once it is seeding.
pub fn spawn_seeding(tmp: &Path) -> Child {
    let child = crate::common::perfaudit()
        .env("TMPDIR", tmp)
        .args([
            "--scratch",
            "--scratch-rows",
            "50000000",
            "explain",
            "SELECT 1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_server_title(tmp, "INSERT");
    child
}

/// Sends `signal` to `child`.
pub fn send(child: &Child, signal: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// How long a run may take before it counts as hung (a signalled one
/// included: it cancels, cleans up and exits). A hang guard for a debug
/// build on a busy machine, not a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Sends SIGINT or SIGTERM to `child` (its stderr piped) and waits for it:
/// it must exit in time with 130 or 143 and say it was interrupted.
/// Returns its stderr.
pub fn stop_with(child: Child, signal: Signal) -> String {
    let (code, name) = match signal {
        Signal::SIGINT => (130, "SIGINT"),
        Signal::SIGTERM => (143, "SIGTERM"),
        Signal::SIGHUP => (129, "SIGHUP"),
        other => panic!("perfaudit stops cleanly on SIGINT, SIGTERM and SIGHUP, not {other}"),
    };
    send(&child, signal);
    let output = finish(child);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "{stderr}"
    );
    stderr
}

/// Waits for `child` (its output piped) to exit, at most [`PATIENCE`]:
/// a run that hangs is killed and the test fails, rather than the test
/// hanging with it.
pub fn finish(child: Child) -> std::process::Output {
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(PATIENCE) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            panic!("perfaudit did not finish within {PATIENCE:?}");
        }
    }
}

/// `arg` as one word for a POSIX shell.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Runs the shell command line `command` on a pseudo-terminal (with
/// `script`), where perfaudit draws progress bars and fits tables to the
/// width, in a clean environment; what the terminal showed is on stdout.
pub fn on_a_terminal(command: &str) -> std::process::Output {
    std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHELL", "/bin/sh")
        .env("TERM", "xterm")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run script")
}
