//! The mount system calls, behind a narrow trait.
//!
//! [`MountSys`] is every call that changes or reads the mount table. [`RealSys`] makes the real
//! calls (through `rustix`); [`RecordingSys`] is a double that records each call as a line of text
//! and keeps a fake mount table, so the *sequence* of calls for mount, replace and unmount is
//! unit-tested without root. The implementation is passed in as a parameter everywhere.
//!
//! File system calls that need no privilege (`openat2`, `mkdirat`, `fchown`, xattrs) are made
//! directly through `rustix` in the module that owns the concern; the helpers they share are here.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::plan::MountOptions;

/// How overlayfs is mounted; chosen once per [`MountSys`] by probing the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountMethod {
    /// New mount API, every layer handed over as the file descriptor we resolved
    /// (`fsconfig(FSCONFIG_SET_FD, "lowerdir+")`, Linux 6.13+). No path is looked up twice.
    LayerFds,
    /// New mount API, layers as `lowerdir+` strings (Linux 6.8+). The strings are
    /// `/proc/self/fd/N` of the resolved descriptors, so the kernel still opens what we checked.
    LayerPaths,
    /// Classic `mount(2)` with one `lowerdir=` option string, `/proc/self/fd/N` paths as above;
    /// the whole option string must fit in one page.
    Classic,
}

impl fmt::Display for MountMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LayerFds => "fsconfig lowerdir+ by file descriptor (Linux 6.13+)",
            Self::LayerPaths => "fsconfig lowerdir+ by /proc/self/fd path (Linux 6.8+)",
            Self::Classic => "mount(2) with a lowerdir= option string",
        })
    }
}

/// The mount system calls left4me makes. Errors are raw errnos; callers add the context.
pub trait MountSys {
    /// An overlayfs configuration context (`fsopen`).
    type Fs;
    /// A detached mount (`fsmount`).
    type Mnt;

    /// Where the probed [`MountMethod`] is kept, so the kernel is probed once.
    fn method_slot(&self) -> &OnceLock<MountMethod>;
    /// `fsopen("overlay", FSOPEN_CLOEXEC)`.
    fn fs_open(&self) -> Result<Self::Fs, Errno>;
    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    fn fs_set_string(&self, fs: &Self::Fs, key: &str, value: &str) -> Result<(), Errno>;
    /// `fsconfig(FSCONFIG_SET_FD, key, fd)`.
    fn fs_set_fd(&self, fs: &Self::Fs, key: &str, fd: BorrowedFd<'_>) -> Result<(), Errno>;
    /// `fsconfig(FSCONFIG_CMD_CREATE)`.
    fn fs_create(&self, fs: &Self::Fs) -> Result<(), Errno>;
    /// The messages the kernel logged on the context (read from the fs fd), for error reports.
    fn fs_log(&self, fs: &Self::Fs) -> Vec<String>;
    /// `fsmount(fs, FSMOUNT_CLOEXEC, attrs)`.
    fn fs_mount(&self, fs: &Self::Fs, options: MountOptions) -> Result<Self::Mnt, Errno>;
    /// `move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
    /// attach onto the directory `target` refers to, without looking up any path.
    fn move_mount_onto(&self, mnt: &Self::Mnt, target: BorrowedFd<'_>) -> Result<(), Errno>;
    /// Classic `mount(source, "/proc/self/fd/TARGET", "overlay", flags, data)`.
    fn mount_classic(
        &self,
        source: &str,
        target: BorrowedFd<'_>,
        options: MountOptions,
        data: &str,
    ) -> Result<(), Errno>;
    /// `umount2("/proc/self/fd/PARENT/NAME", UMOUNT_NOFOLLOW)`: unmounts the topmost mount at
    /// `NAME` inside the directory `parent`, without holding a reference to the mount itself.
    fn unmount(&self, parent: BorrowedFd<'_>, name: &str) -> Result<(), Errno>;
    /// The mount id (`statx` `STATX_MNT_ID`) of `name` inside `dir`, or of `dir` itself when
    /// `name` is empty. Symlinks are not followed.
    fn mount_id(&self, dir: BorrowedFd<'_>, name: &str) -> Result<u64, Errno>;
    /// The contents of `/proc/self/mountinfo`.
    fn mountinfo(&self) -> Result<Vec<u8>, Errno>;
}

/// `/proc/self/fd/N` for a descriptor: a path the kernel resolves to exactly that file.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Where a descriptor points (readlink of `/proc/self/fd/N`), for messages and comparisons.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    std::fs::read_link(proc_fd_path(fd))
        .unwrap_or_else(|_| PathBuf::from(format!("<fd {}>", fd.as_raw_fd())))
}

/// Resolution flags that refuse every symlink and every escape.
pub const RESOLVE_STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// `openat2(dir, path, flags | O_CLOEXEC, mode, resolve)`, retried on `EAGAIN` (which openat2
/// returns when a concurrent rename made a `RESOLVE_BENEATH` walk unverifiable).
pub fn openat2_retry(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, mode, resolve) {
            Err(Errno::AGAIN) if attempts < 16 => attempts += 1,
            other => return other,
        }
    }
}

/// Whether `name` in `dir` is a symlink (not followed). `openat2` with `O_NOFOLLOW |
/// O_DIRECTORY` reports a symlink as `ENOTDIR`; this tells the two apart for the error message.
pub fn is_symlink_at(dir: BorrowedFd<'_>, name: &Path) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink())
}

/// The real system calls.
#[derive(Debug, Default)]
pub struct RealSys {
    method: OnceLock<MountMethod>,
}

impl RealSys {
    /// Probes the kernel on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `method` without probing (tests and benchmarks of the fallbacks).
    pub fn with_method(method: MountMethod) -> Self {
        let slot = OnceLock::new();
        let _ = slot.set(method);
        Self { method: slot }
    }
}

fn mount_attrs(options: MountOptions) -> MountAttrFlags {
    let mut attrs = MountAttrFlags::empty();
    if options.nosuid {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOSUID;
    }
    if options.nodev {
        attrs |= MountAttrFlags::MOUNT_ATTR_NODEV;
    }
    attrs
}

impl MountSys for RealSys {
    type Fs = OwnedFd;
    type Mnt = OwnedFd;

    fn method_slot(&self) -> &OnceLock<MountMethod> {
        &self.method
    }

    fn fs_open(&self) -> Result<OwnedFd, Errno> {
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
    }

    fn fs_set_string(&self, fs: &OwnedFd, key: &str, value: &str) -> Result<(), Errno> {
        rustix::mount::fsconfig_set_string(fs, key, value)
    }

    fn fs_set_fd(&self, fs: &OwnedFd, key: &str, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::mount::fsconfig_set_fd(fs, key, fd)
    }

    fn fs_create(&self, fs: &OwnedFd) -> Result<(), Errno> {
        rustix::mount::fsconfig_create(fs)
    }

    fn fs_log(&self, fs: &OwnedFd) -> Vec<String> {
        let mut messages = Vec::new();
        let mut buf = [0u8; 1024];
        // Each read returns one message; ENODATA when the log is empty. Bounded for safety.
        for _ in 0..64 {
            match rustix::io::read(fs, &mut buf) {
                Ok(n) if n > 0 => {
                    messages.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned());
                }
                _ => break,
            }
        }
        messages
    }

    fn fs_mount(&self, fs: &OwnedFd, options: MountOptions) -> Result<OwnedFd, Errno> {
        rustix::mount::fsmount(fs, FsMountFlags::FSMOUNT_CLOEXEC, mount_attrs(options))
    }

    fn move_mount_onto(&self, mnt: &OwnedFd, target: BorrowedFd<'_>) -> Result<(), Errno> {
        rustix::mount::move_mount(
            mnt,
            "",
            target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
    }

    fn mount_classic(
        &self,
        source: &str,
        target: BorrowedFd<'_>,
        options: MountOptions,
        data: &str,
    ) -> Result<(), Errno> {
        let mut flags = MountFlags::empty();
        if options.nosuid {
            flags |= MountFlags::NOSUID;
        }
        if options.nodev {
            flags |= MountFlags::NODEV;
        }
        let data = CString::new(data).map_err(|_| Errno::INVAL)?;
        rustix::mount::mount(
            source,
            proc_fd_path(target).as_str(),
            "overlay",
            flags,
            Some(data.as_c_str()),
        )
    }

    fn unmount(&self, parent: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
        let path = format!("{}/{name}", proc_fd_path(parent));
        rustix::mount::unmount(path.as_str(), UnmountFlags::NOFOLLOW)
    }

    fn mount_id(&self, dir: BorrowedFd<'_>, name: &str) -> Result<u64, Errno> {
        let mut flags = AtFlags::SYMLINK_NOFOLLOW;
        if name.is_empty() {
            flags |= AtFlags::EMPTY_PATH;
        }
        let stx = rustix::fs::statx(dir, name, flags, StatxFlags::MNT_ID)?;
        if StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::MNT_ID) {
            Ok(stx.stx_mnt_id)
        } else {
            Err(Errno::NOSYS)
        }
    }

    fn mountinfo(&self) -> Result<Vec<u8>, Errno> {
        std::fs::read("/proc/self/mountinfo")
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
    }
}

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

    fn mount_classic(
        &self,
        source: &str,
        target: BorrowedFd<'_>,
        options: MountOptions,
        data: &str,
    ) -> Result<(), Errno> {
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
            let mut flags = String::from("rw");
            if m.options.nosuid {
                flags.push_str(",nosuid");
            }
            if m.options.nodev {
                flags.push_str(",nodev");
            }
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

    #[test]
    fn method_names() {
        assert_eq!(
            MountMethod::LayerFds.to_string(),
            "fsconfig lowerdir+ by file descriptor (Linux 6.13+)"
        );
        let sys = RealSys::with_method(MountMethod::Classic);
        assert_eq!(sys.method_slot().get(), Some(&MountMethod::Classic));
        assert_eq!(RealSys::new().method_slot().get(), None);
    }
}
