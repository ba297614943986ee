//! Test support for left4me.
