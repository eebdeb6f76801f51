//! TLS: the one rustls crypto provider of the process.
//!
//! The workspace compiles exactly one rustls backend, ring (kube's). The registry client
//! (reqwest inside oci-client) is built without a provider of its own and insists on a
//! process-wide default, so every client constructor calls [`ensure_crypto_provider`] first.

/// Install ring as the process-wide rustls provider; an already installed provider is kept.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
