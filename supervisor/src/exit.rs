//! Exit codes of `left4me-supervisor`, distinct per failure so `systemctl status` tells them
//! apart (`status=3/NOTIMPLEMENTED` is systemd naming the number; the journal has our line).

/// Something else failed (I/O, a missing user, …).
pub const EXIT_RUNTIME: i32 = 1;
/// Wrong command line.
pub const EXIT_USAGE: i32 = 2;
/// The instance spec (or host.toml) is missing or invalid.
pub const EXIT_BAD_SPEC: i32 = 3;
/// A layer is missing, escapes the state dir, or the upper dir is unusable.
pub const EXIT_BAD_LAYER: i32 = 4;
/// The kernel refused to mount or unmount.
pub const EXIT_MOUNT_FAILED: i32 = 5;
/// The game never answered a query within `ready_timeout`.
pub const EXIT_NOT_READY: i32 = 6;
