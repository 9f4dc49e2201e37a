//! Processes by pid, as another process may have started them: whether one runs, and stopping it,
//! only when its command line names the control plane's folder (a pid from a stale state file may
//! belong to someone else by now).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `pid` runs (a zombie does not). For a process this one just started: its command
/// line may read empty for a moment after the exec, so [`ours`] would not tell yet.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// Whether `pid` runs and its command line names `dir`: then it is ours (for pids read from a
/// state file, which may belong to someone else by now).
pub fn ours(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let dir = dir.to_string_lossy();
    alive(pid)
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).contains(dir.as_ref()))
}

/// Sends `signal` (a name: TERM, KILL, STOP, CONT) to `pid`.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops `pid` if it is ours: TERM, up to 5 s, then KILL.
pub fn stop(pid: u32, dir: &Path) {
    if !ours(pid, dir) {
        return;
    }
    signal(pid, "TERM");
    for _ in 0..50 {
        if !ours(pid, dir) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(pid, "KILL");
}

/// Kills `pid` at once (an API server "crash") and waits until it is gone.
pub fn kill(pid: u32, dir: &Path) {
    if ours(pid, dir) {
        signal(pid, "KILL");
    }
    while ours(pid, dir) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
