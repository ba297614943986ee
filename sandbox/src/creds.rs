//! Dropping root: to the sandbox user, no supplementary groups, no capabilities in any set
//! (effective, permitted, inheritable, bounding, ambient), `no_new_privs`.
//!
//! The order matters: groups and gid first (changing them needs `CAP_SETGID`), the bounding set
//! next (dropping needs `CAP_SETPCAP`), the uid last (after it no capability is left to do the
//! rest), then the remaining sets explicitly (a uid change clears effective and permitted but
//! not inheritable) and `no_new_privs` (so no set-uid program or file capability can give any
//! of it back).

use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use left4me_contract::passwd::Ids;

/// Errors dropping privileges.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    /// One of the calls failed.
    #[error("dropping privileges: {what}")]
    Call {
        /// Which call.
        what: &'static str,
        /// The errno.
        #[source]
        source: Errno,
    },
    /// A capability survived.
    #[error("dropping privileges: capabilities left after the drop: {0}")]
    Leftover(String),
}

fn call(what: &'static str) -> impl FnOnce(Errno) -> CredsError {
    move |source| CredsError::Call { what, source }
}

/// Becomes `ids` for good. Must run as root in a single-threaded process (the id calls are
/// per-thread system calls).
pub fn drop_to(ids: Ids) -> Result<(), CredsError> {
    let uid = Uid::from_raw(ids.uid);
    let gid = Gid::from_raw(ids.gid);
    rustix::thread::set_thread_groups(&[]).map_err(call("setgroups([])"))?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(call("setresgid"))?;
    // Every capability the kernel knows: PR_CAPBSET_DROP fails with EINVAL past the last one.
    for bit in 0..64 {
        match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
            1 << bit,
        )) {
            Ok(()) => {}
            Err(Errno::INVAL) => break,
            Err(e) => return Err(call("PR_CAPBSET_DROP")(e)),
        }
    }
    rustix::thread::clear_ambient_capability_set().map_err(call("PR_CAP_AMBIENT_CLEAR_ALL"))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(call("setresuid"))?;
    let empty = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    rustix::thread::set_capabilities(None, empty).map_err(call("capset"))?;
    rustix::thread::set_no_new_privs(true).map_err(call("PR_SET_NO_NEW_PRIVS"))?;
    let left = rustix::thread::capabilities(None).map_err(call("capget"))?;
    if left != empty {
        return Err(CredsError::Leftover(format!("{left:?}")));
    }
    Ok(())
}
