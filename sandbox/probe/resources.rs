//! The probe's resource actions: a fork bomb, a daemon that tries to outlive its build, a disk
//! filler (the booted escape suite checks the unit's limits stop each).

use std::io::Write as _;
use std::time::Duration;

use crate::ffi::{self, errno, errno_name};
use crate::{io_err, ret};

/// Forks children that sleep until `limit` exist or the kernel refuses one; then kills them.
pub fn fork_until_refused(limit: usize) -> String {
    let mut children = Vec::new();
    let mut failure = None;
    while children.len() < limit {
        // SAFETY: the child sleeps and exits; the probe is single-threaded.
        let pid = unsafe { ffi::fork() };
        if pid < 0 {
            failure = Some(errno());
            break;
        }
        if pid == 0 {
            // SAFETY: a plain sleep, then exit.
            unsafe {
                ffi::sleep(30);
                ffi::_exit(0);
            }
        }
        children.push(pid);
    }
    for &pid in &children {
        // SAFETY: our own children.
        unsafe {
            ffi::kill(pid, 9);
            ffi::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    match failure {
        Some(e) => format!(
            "refused after {} processes: {}",
            children.len(),
            errno_name(e)
        ),
        None => format!("ok {} processes", children.len()),
    }
}

/// Starts a detached daemon that writes its pid to `marker` every 200 ms.
pub fn daemonize(marker: &str) -> String {
    let marker = marker.to_owned();
    // SAFETY: the child detaches and loops; the parent returns at once.
    let pid = unsafe { ffi::fork() };
    if pid < 0 {
        return ret(-1);
    }
    if pid == 0 {
        // SAFETY: detach from the session, fork again so the parent can exit.
        unsafe {
            ffi::setsid();
            if ffi::fork() != 0 {
                ffi::_exit(0);
            }
        }
        loop {
            let _ = std::fs::write(&marker, format!("{}\n", std::process::id()));
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // SAFETY: reaps the first child, which exits right away.
    unsafe { ffi::waitpid(pid, std::ptr::null_mut(), 0) };
    "ok daemon started".into()
}

/// Writes zeros to `path` until a write fails.
pub fn fill(path: &str) -> String {
    let mut file = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return io_err(&e),
    };
    let chunk = vec![0x5au8; 1 << 20];
    let mut written: u64 = 0;
    loop {
        match file.write_all(&chunk) {
            Ok(()) => written += chunk.len() as u64,
            Err(e) => return format!("{} after {} MiB", io_err(&e), written >> 20),
        }
    }
}
