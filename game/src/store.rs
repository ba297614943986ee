//! The immutable game versions (to be written).
