//! Finding what a throwaway system left on the host, and cleaning up after
//! test processes that died without tearing theirs down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use crate::cgroup::{self, SystemCgroups};
use crate::mounts::{self, MountEntry};

/// Every base dir is `/tmp/<BASE_PREFIX><name>-<owner pid>-<n>`, and every
/// per-system cgroup has the same final component.
pub const BASE_PREFIX: &str = "left4me-booted-";

/// What identifies a throwaway system on the host; keep it to look for
/// leftovers once the system is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The base dir (a tmpfs while the system exists).
    pub base: PathBuf,
    /// The name of the system's cgroup in every hierarchy.
    pub cgroup_leaf: String,
}

/// What is left on the host of a throwaway system.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Mounts at or beneath the base dir, or naming it in their options.
    pub mounts: Vec<MountEntry>,
    /// Processes (host pid, command line) in the system's cgroups or whose
    /// command line names the base dir.
    pub processes: Vec<(u32, String)>,
    /// The system's cgroup directories that still exist.
    pub cgroups: Vec<PathBuf>,
    /// The base dir, if it still exists.
    pub base_dir: Option<PathBuf>,
}

impl Leftovers {
    /// Looks for everything of `identity` on the host.
    pub fn find(identity: &SystemIdentity) -> Self {
        let base = identity.base.to_string_lossy().into_owned();
        let mounts = mounts::mount_table()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| {
                m.mount_point.starts_with(&identity.base) || m.super_options.contains(&base)
            })
            .collect();
        let cgroups = SystemCgroups::existing(&identity.cgroup_leaf);
        let mut processes: Vec<(u32, String)> = all_processes()
            .into_iter()
            .filter(|(_, cmdline)| cmdline.contains(&base))
            .collect();
        processes.extend(
            cgroups
                .processes()
                .into_iter()
                .map(|pid| (pid, cmdline(pid))),
        );
        processes.sort();
        processes.dedup();
        Leftovers {
            mounts,
            processes,
            cgroups: cgroups.dirs().to_vec(),
            base_dir: identity.base.exists().then(|| identity.base.clone()),
        }
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
            && self.processes.is_empty()
            && self.cgroups.is_empty()
            && self.base_dir.is_none()
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "nothing left");
        }
        for mount in &self.mounts {
            writeln!(f, "mount: {mount}")?;
        }
        for (pid, cmdline) in &self.processes {
            writeln!(f, "process {pid}: {cmdline}")?;
        }
        for dir in &self.cgroups {
            writeln!(f, "cgroup: {}", dir.display())?;
        }
        if let Some(base) = &self.base_dir {
            writeln!(f, "base dir: {}", base.display())?;
        }
        Ok(())
    }
}

/// The host's overlay and tmpfs mounts right now, for before/after
/// comparisons in tests that run alone.
pub fn overlay_and_tmpfs_mounts() -> Vec<MountEntry> {
    mounts::mount_table()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.fstype == "overlay" || m.fstype == "tmpfs")
        .collect()
}

/// Tears down the throwaway systems of test processes that died without
/// doing it themselves (killed by a timeout, say): kills what runs in their
/// cgroups, unmounts their base dirs and removes both. Systems of live
/// processes are left alone. Returns what was cleaned, for the log.
pub fn reap_stale() -> Vec<String> {
    let mut reaped = Vec::new();
    let mut leaves = cgroup::siblings_with_prefix(BASE_PREFIX);
    leaves.extend(
        std::fs::read_dir("/tmp")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name.starts_with(BASE_PREFIX)),
    );
    leaves.sort();
    leaves.dedup();
    for leaf in leaves.into_iter().filter(|leaf| owner_is_gone(leaf)) {
        let mut problems = Vec::new();
        let cgroups = SystemCgroups::existing(&leaf);
        // Killing the namespace's init ends the rest; repeat for stragglers.
        for _ in 0..50 {
            let pids = cgroups.processes();
            if pids.is_empty() {
                break;
            }
            for pid in pids.into_iter().filter_map(|pid| Pid::from_raw(pid as i32)) {
                let _ = kill_process(pid, Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = cgroups.remove(Duration::from_secs(5)) {
            problems.push(e.to_string());
        }
        let base = Path::new("/tmp").join(&leaf);
        if let Err(e) = mounts::unmount_beneath(&base) {
            problems.push(e.to_string());
        }
        if base.exists()
            && let Err(e) = std::fs::remove_dir(&base)
        {
            problems.push(format!("cannot remove {}: {e}", base.display()));
        }
        reaped.push(if problems.is_empty() {
            format!("reaped stale {leaf}")
        } else {
            format!("reaped stale {leaf} partly: {}", problems.join("; "))
        });
    }
    reaped
}

/// `<name>-<pid>-<n>`: whether process `<pid>` no longer exists.
fn owner_is_gone(leaf: &str) -> bool {
    let mut parts = leaf.rsplitn(3, '-');
    let (Some(_n), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default()
}

fn all_processes() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .map(|pid| (pid, cmdline(pid)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_comes_from_the_end_of_the_name() {
        let me = std::process::id();
        assert!(!owner_is_gone(&format!("{BASE_PREFIX}with-dashes-{me}-3")));
        assert!(owner_is_gone(&format!("{BASE_PREFIX}x-{}-0", u32::MAX - 1)));
        assert!(!owner_is_gone("garbage"));
    }

    #[test]
    fn nothing_is_found_for_an_unknown_identity() {
        let identity = SystemIdentity {
            base: PathBuf::from("/tmp/left4me-booted-nonexistent-0-0"),
            cgroup_leaf: "left4me-booted-nonexistent-0-0".to_owned(),
        };
        let leftovers = Leftovers::find(&identity);
        assert!(leftovers.is_empty(), "{leftovers}");
        assert_eq!(leftovers.to_string(), "nothing left");
    }
}
