//! The `build` stage (being built: see its issue).
