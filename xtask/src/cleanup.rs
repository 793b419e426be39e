//! Clean-up on interruption: every QEMU (or guest process) the xtask starts and every network
//! namespace it creates is registered here; Ctrl-C (SIGINT/SIGTERM) kills and deletes them all
//! before exiting. Normal exits clean up through `Drop` as usual.

use std::sync::Mutex;

static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a child process.
pub fn add_pid(pid: u32) {
    PIDS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Forgets a child process (it was waited for).
pub fn remove_pid(pid: u32) {
    PIDS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

/// Registers a network namespace.
pub fn add_netns(name: &str) {
    NAMESPACES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.to_string());
}

/// Forgets a network namespace (it was deleted).
pub fn remove_netns(name: &str) {
    NAMESPACES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|n| n != name);
}

/// Kills every registered process and deletes every registered namespace.
pub fn run_now() {
    for pid in PIDS.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    for ns in NAMESPACES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .status();
    }
}

/// Installs the Ctrl-C handler (once per process).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        eprintln!("\nxtask: interrupted: stopping guests and removing network namespaces");
        run_now();
        std::process::exit(130);
    });
}
