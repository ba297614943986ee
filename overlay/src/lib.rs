//! Kernel overlayfs mounting for left4me.
