//! The left4me spec model.
