//! Git: revision, dirty state, tree hashes (content-addressed image tags).
