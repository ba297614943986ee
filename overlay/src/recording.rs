//! `RecordingSys`: the recording double of [`MountSys`], for the unit tests (compiled only for
//! them).
//!
//! It logs every mount call as a line of text and keeps a fake mount table that `mount_id` and
//! `mountinfo` answer from, rendered the way Linux renders it, so the tests can check the
//! *sequence* of calls for mount, replace and unmount without root.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::AtFlags;
use rustix::io::Errno;

use crate::plan::MountOptions;
use crate::sys::{ClassicMount, MountMethod, MountSys, fd_path};

/// A configuration context of [`RecordingSys`].
#[derive(Debug)]
pub struct FakeFs(u64);

/// A detached mount of [`RecordingSys`].
#[derive(Debug)]
pub struct FakeMnt(u64);

#[derive(Debug, Clone)]
struct FakeMount {
    id: u64,
    target: PathBuf,
    source: String,
    super_options: String,
    options: MountOptions,
}

#[derive(Debug, Default)]
struct FakeKernel {
    next_id: u64,
    contexts: HashMap<u64, Vec<(String, String)>>,
    detached: HashMap<u64, FakeMount>,
    /// Attached mounts, in mount order (later ones stack on earlier ones at the same target).
    mounts: Vec<FakeMount>,
}

/// A recording double: logs every mount call as a line of text and keeps a fake mount table that
/// `mount_id` and `mountinfo` answer from (everything outside it is mount id 1). It renders
/// mountinfo the way Linux does: `lowerdir+=` entries holding the path of each fd, or the string
/// given.
#[derive(Debug)]
pub struct RecordingSys {
    newest: MountMethod,
    method: OnceLock<MountMethod>,
    busy: Cell<bool>,
    calls: RefCell<Vec<String>>,
    kernel: RefCell<FakeKernel>,
}

impl Default for RecordingSys {
    fn default() -> Self {
        Self::new()
    }
}

/// The mount id [`RecordingSys`] gives everything that is not one of its mounts.
pub const FAKE_ROOT_MOUNT_ID: u64 = 1;

impl RecordingSys {
    /// A fake kernel with everything up to layers by file descriptor.
    pub fn new() -> Self {
        Self::emulating(MountMethod::LayerFds)
    }

    /// A fake kernel whose newest supported method is `newest`: `LayerPaths` refuses
    /// `FSCONFIG_SET_FD` for `lowerdir+` (6.8–6.12); `Classic` knows no `lowerdir+` at all.
    pub fn emulating(newest: MountMethod) -> Self {
        Self {
            newest,
            method: OnceLock::new(),
            busy: Cell::new(false),
            calls: RefCell::new(Vec::new()),
            kernel: RefCell::new(FakeKernel {
                next_id: 100,
                ..FakeKernel::default()
            }),
        }
    }

    /// Makes every following `unmount` fail with `EBUSY` (a process still uses the tree).
    pub fn set_busy(&self, busy: bool) {
        self.busy.set(busy);
    }

    /// The calls made so far, one line each.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// Forgets the calls recorded so far (the fake mount table stays).
    pub fn clear_calls(&self) {
        self.calls.borrow_mut().clear();
    }

    /// The targets of the attached fake mounts, in mount order.
    pub fn mount_targets(&self) -> Vec<PathBuf> {
        self.kernel
            .borrow()
            .mounts
            .iter()
            .map(|m| m.target.clone())
            .collect()
    }

    fn record(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }

    fn next_id(&self) -> u64 {
        let mut kernel = self.kernel.borrow_mut();
        kernel.next_id += 1;
        kernel.next_id
    }
}

/// Escapes like the kernel's `seq_show_option` (octal for `,= \t\n\\`).
fn escape_option(value: &[u8]) -> String {
    let mut out = String::new();
    for &b in value {
        if b",= \t\n\\".contains(&b) || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:03o}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn escape_path(path: &Path) -> String {
    escape_option(path.as_os_str().as_bytes())
}

impl MountSys for RecordingSys {
    type Fs = FakeFs;
    type Mnt = FakeMnt;

    fn method_slot(&self) -> &OnceLock<MountMethod> {
        &self.method
    }

    fn fs_open(&self) -> Result<FakeFs, Errno> {
        self.record("fsopen overlay".into());
        let id = self.next_id();
        self.kernel.borrow_mut().contexts.insert(id, Vec::new());
        Ok(FakeFs(id))
    }

    fn fs_set_string(&self, fs: &FakeFs, key: &str, value: &str) -> Result<(), Errno> {
        self.record(format!("fsconfig {key}={value}"));
        if key == "lowerdir+" && self.newest == MountMethod::Classic {
            return Err(Errno::INVAL);
        }
        let mut kernel = self.kernel.borrow_mut();
        let context = kernel.contexts.get_mut(&fs.0).ok_or(Errno::BADF)?;
        context.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    fn fs_set_fd(&self, fs: &FakeFs, key: &str, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let path = fd_path(fd);
        self.record(format!("fsconfig {key}=fd:{}", path.display()));
        if self.newest != MountMethod::LayerFds {
            return Err(Errno::INVAL);
        }
        let mut kernel = self.kernel.borrow_mut();
        let context = kernel.contexts.get_mut(&fs.0).ok_or(Errno::BADF)?;
        context.push((key.to_owned(), path.to_string_lossy().into_owned()));
        Ok(())
    }

    fn fs_create(&self, fs: &FakeFs) -> Result<(), Errno> {
        self.record("fsconfig create".into());
        let kernel = self.kernel.borrow();
        let context = kernel.contexts.get(&fs.0).ok_or(Errno::BADF)?;
        let has = |key: &str| context.iter().any(|(k, _)| k == key);
        if has("lowerdir+") && has("upperdir") && has("workdir") {
            Ok(())
        } else {
            Err(Errno::INVAL)
        }
    }

    fn fs_log(&self, _fs: &FakeFs) -> Vec<String> {
        Vec::new()
    }

    fn fs_mount(&self, fs: &FakeFs, options: MountOptions) -> Result<FakeMnt, Errno> {
        self.record(format!("fsmount {options}"));
        let id = self.next_id();
        let mut kernel = self.kernel.borrow_mut();
        let context = kernel.contexts.remove(&fs.0).ok_or(Errno::BADF)?;
        let mut source = String::from("none");
        let mut super_options = vec!["rw".to_owned()];
        for (key, value) in context {
            if key == "source" {
                source = value;
            } else {
                super_options.push(format!("{key}={}", escape_option(value.as_bytes())));
            }
        }
        let mount = FakeMount {
            id,
            target: PathBuf::new(),
            source,
            super_options: super_options.join(","),
            options,
        };
        kernel.detached.insert(id, mount);
        Ok(FakeMnt(id))
    }

    fn move_mount_onto(&self, mnt: &FakeMnt, target: BorrowedFd<'_>) -> Result<(), Errno> {
        let target = fd_path(target);
        self.record(format!("move_mount {}", target.display()));
        let mut kernel = self.kernel.borrow_mut();
        let mut mount = kernel.detached.remove(&mnt.0).ok_or(Errno::BADF)?;
        mount.target = target;
        kernel.mounts.push(mount);
        Ok(())
    }

    fn mount_classic(&self, mount: &ClassicMount<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
        let ClassicMount {
            source,
            options,
            data,
        } = *mount;
        let target = fd_path(target);
        self.record(format!(
            "mount {source} {} {options} {data}",
            target.display()
        ));
        let id = self.next_id();
        let super_options = format!("rw,{}", data.replace(' ', "\\040"));
        let mount = FakeMount {
            id,
            target,
            source: source.to_owned(),
            super_options,
            options,
        };
        self.kernel.borrow_mut().mounts.push(mount);
        Ok(())
    }

    fn unmount(&self, parent: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
        let target = fd_path(parent).join(name);
        self.record(format!("umount {}", target.display()));
        if self.busy.get() {
            return Err(Errno::BUSY);
        }
        let mut kernel = self.kernel.borrow_mut();
        let top = kernel
            .mounts
            .iter()
            .rposition(|m| m.target == target)
            .ok_or(Errno::INVAL)?;
        kernel.mounts.remove(top);
        Ok(())
    }

    fn mount_id(&self, dir: BorrowedFd<'_>, name: &str) -> Result<u64, Errno> {
        // The directory must exist, as for the real statx.
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW | AtFlags::EMPTY_PATH)?;
        let path = if name.is_empty() {
            fd_path(dir)
        } else {
            fd_path(dir).join(name)
        };
        let kernel = self.kernel.borrow();
        Ok(kernel
            .mounts
            .iter()
            .rev()
            .find(|m| m.target == path)
            .map_or(FAKE_ROOT_MOUNT_ID, |m| m.id))
    }

    fn mountinfo(&self) -> Result<Vec<u8>, Errno> {
        let mut text = format!("{FAKE_ROOT_MOUNT_ID} 0 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
        for m in &self.kernel.borrow().mounts {
            let parent = FAKE_ROOT_MOUNT_ID;
            let mut flags = vec!["rw"];
            flags.extend(m.options.pick::<Vec<_>, _>("nosuid", "nodev"));
            let flags = flags.join(",");
            text.push_str(&format!(
                "{} {parent} 0:99 / {} {flags},relatime - overlay {} {}\n",
                m.id,
                escape_path(&m.target),
                escape_option(m.source.as_bytes()),
                m.super_options,
            ));
        }
        Ok(text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_kernel() {
        assert_eq!(escape_option(b"/a b,c=d\\e"), "/a\\040b\\054c\\075d\\134e");
    }
}
