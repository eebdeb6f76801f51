//! The `kube` stage (being built: see its issue).
