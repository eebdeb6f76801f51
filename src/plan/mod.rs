//! The `plan` stage (being built: see its issue).
