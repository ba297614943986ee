//! A cgroup of its own, in every hierarchy, for each throwaway system.
//!
//! A booted systemd builds its unit tree beneath the root of its cgroup
//! namespace. Started from the host's cgroup, two systems running at once would
//! share `system.slice` and friends and stop each other's units. So each system
//! is moved into a fresh child cgroup first (`left4me-booted-…` beside the test
//! process's own), and sees fresh cgroup mounts rooted there.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::mounts::{MountEntry, mount_table};

/// Errors of creating, joining and removing the per-system cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove cgroup {path} (processes still in it?): {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no mount found for the cgroup hierarchy `{hierarchy}` of this process")]
    NoMount { hierarchy: String },
    #[error(transparent)]
    Mounts(#[from] crate::mounts::MountError),
}

/// One directory per cgroup hierarchy, all named alike.
#[derive(Debug)]
pub struct SystemCgroups {
    dirs: Vec<PathBuf>,
}

impl SystemCgroups {
    /// Creates `leaf` beside this process's cgroup in every hierarchy (or takes
    /// over existing ones of that name).
    pub fn create(leaf: &str) -> Result<Self, CgroupError> {
        let dirs = own_cgroup_dirs()?
            .into_iter()
            .map(|dir| dir.join(leaf))
            .collect::<Vec<_>>();
        for dir in &dirs {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CgroupError::Create {
                        path: dir.clone(),
                        source,
                    });
                }
            }
            inherit_cpuset(dir)?;
        }
        Ok(SystemCgroups { dirs })
    }

    /// The cgroups named `leaf` beside this process's own that still exist.
    pub fn existing(leaf: &str) -> Self {
        let dirs = own_cgroup_dirs()
            .unwrap_or_default()
            .into_iter()
            .map(|dir| dir.join(leaf))
            .filter(|dir| dir.is_dir())
            .collect();
        SystemCgroups { dirs }
    }

    /// The directories, one per hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Moves process `pid` into the cgroups.
    pub fn attach(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Write {
                path: procs,
                source,
            })?;
        }
        Ok(())
    }

    /// Removes what the booted systemd created beneath the cgroups; waits up
    /// to `patience` for exiting processes to leave.
    pub fn remove_children(&self, patience: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + patience;
        self.dirs
            .iter()
            .try_for_each(|dir| remove_tree(dir, false, deadline))
    }

    /// Removes the cgroups entirely.
    pub fn remove(&self, patience: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + patience;
        self.dirs
            .iter()
            .try_for_each(|dir| remove_tree(dir, true, deadline))
    }

    /// The processes in the cgroups or beneath (host pids).
    pub fn processes(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.dirs.iter().flat_map(|dir| tree_pids(dir)).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// Every cgroup directory beside this process's own whose name starts with
/// `prefix` (one entry per name, in the first hierarchy that has it).
pub fn siblings_with_prefix(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = own_cgroup_dirs()
        .unwrap_or_default()
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The directory of this process's cgroup in each mounted hierarchy.
fn own_cgroup_dirs() -> Result<Vec<PathBuf>, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let text = std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mounts = mount_table()?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            Some((fields.next()?, fields.next()?))
        })
        .map(|(controllers, cgroup)| {
            let mount =
                hierarchy_mount(&mounts, controllers).ok_or_else(|| CgroupError::NoMount {
                    hierarchy: if controllers.is_empty() {
                        "cgroup2".to_owned()
                    } else {
                        controllers.to_owned()
                    },
                })?;
            let relative = cgroup
                .strip_prefix(mount.root.as_str())
                .unwrap_or(cgroup)
                .trim_start_matches('/');
            Ok(mount.mount_point.join(relative))
        })
        .collect()
}

/// The mount of a hierarchy: cgroup2 for the empty controller list, else the
/// cgroup (v1) mount whose options carry exactly those controllers.
fn hierarchy_mount<'a>(mounts: &'a [MountEntry], controllers: &str) -> Option<&'a MountEntry> {
    mounts.iter().find(|mount| {
        if controllers.is_empty() {
            mount.fstype == "cgroup2"
        } else {
            let options: Vec<&str> = mount.super_options.split(',').collect();
            mount.fstype == "cgroup" && controllers.split(',').all(|c| options.contains(&c))
        }
    })
}

/// A new v1 cpuset cgroup starts with no CPUs and cannot take processes.
fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(current) = std::fs::read_to_string(&own) else {
            continue;
        };
        if !current.trim().is_empty() {
            continue;
        }
        let parent = dir.parent().expect("a cgroup has a parent").join(file);
        let value = std::fs::read_to_string(&parent).map_err(|source| CgroupError::Read {
            path: parent.clone(),
            source,
        })?;
        std::fs::write(&own, value.trim()).map_err(|source| CgroupError::Write {
            path: own.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Removes the cgroup directories beneath `dir` (and `dir` too if
/// `including_self`), deepest first, retrying while they are busy.
fn remove_tree(dir: &Path, including_self: bool, deadline: Instant) -> Result<(), CgroupError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // gone already
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path(), true, deadline)?;
        }
    }
    if !including_self {
        return Ok(());
    }
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(16) && Instant::now() < deadline => {
                // EBUSY: a process is still leaving.
                thread::sleep(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Pids listed in `dir`/cgroup.procs and beneath.
fn tree_pids(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(tree_pids(&entry.path()));
            }
        }
    }
    pids
}

/// The lines `fstype options relpath` that recreate the host's
/// `/sys/fs/cgroup` layout inside the cgroup namespace (read by stage2.sh).
pub fn namespace_mount_lines() -> Result<String, CgroupError> {
    let mounts = mount_table()?;
    let controllers = known_controllers();
    Ok(mount_lines(&mounts, &controllers))
}

fn known_controllers() -> Vec<String> {
    std::fs::read_to_string("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn mount_lines(mounts: &[MountEntry], controllers: &[String]) -> String {
    let top = Path::new("/sys/fs/cgroup");
    let mut lines = String::new();
    for mount in mounts {
        let Ok(relative) = mount.mount_point.strip_prefix(top) else {
            continue;
        };
        let relpath = match relative.to_str() {
            Some("") => ".",
            Some(path) => path,
            None => continue,
        };
        let mut options: Vec<&str> = mount
            .super_options
            .split(',')
            .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
            .collect();
        match mount.fstype.as_str() {
            "tmpfs" if relpath == "." => options.retain(|o| o.starts_with("mode=")),
            "cgroup" if !options.iter().any(|o| controllers.iter().any(|c| c == o)) => {
                options.insert(0, "none");
            }
            "cgroup" | "cgroup2" => {}
            _ => continue,
        }
        let options = if options.is_empty() {
            "rw".to_owned()
        } else {
            options.join(",")
        };
        lines.push_str(&format!("{} {options} {relpath}\n", mount.fstype));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::parse_mountinfo;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 27 0:40 / /sys/fs/cgroupx rw,relatime - tmpfs tmpfs rw
";

    #[test]
    fn recreates_a_hybrid_layout() {
        let controllers = vec!["cpu".to_owned(), "memory".to_owned()];
        assert_eq!(
            mount_lines(&parse_mountinfo(HYBRID), &controllers),
            "\
tmpfs mode=755 .
cgroup cpu cpu
cgroup memory memory
cgroup none,xattr,name=systemd systemd
cgroup2 rw unified
"
        );
    }

    #[test]
    fn recreates_a_unified_layout() {
        let text =
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            mount_lines(&parse_mountinfo(text), &[]),
            "cgroup2 nsdelegate,memory_recursiveprot .\n"
        );
    }

    #[test]
    fn finds_hierarchy_mounts() {
        let mounts = parse_mountinfo(HYBRID);
        let find = |c| hierarchy_mount(&mounts, c).map(|m| m.mount_point.clone());
        assert_eq!(find("name=systemd"), Some("/sys/fs/cgroup/systemd".into()));
        assert_eq!(find(""), Some("/sys/fs/cgroup/unified".into()));
        assert_eq!(find("memory"), Some("/sys/fs/cgroup/memory".into()));
        assert_eq!(find("blkio"), None);
    }
}
