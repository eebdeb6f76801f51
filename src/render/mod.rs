//! The `render` stage (being built: see its issue).
