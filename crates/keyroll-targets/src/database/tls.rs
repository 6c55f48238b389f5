//! TLS for database connections: rustls with the `ring` provider, trusting either a
//! configured CA bundle or the system's roots (webpki-roots when the system has none).

use std::path::Path;
use std::sync::Arc;

use keyroll_core::ports::TargetError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Trust roots and the client configuration built from them, shared by every connection a
/// target makes.
pub(crate) struct TlsSetup {
    /// For tokio-postgres.
    pub client_config: Arc<ClientConfig>,
    /// For mysql_async, which builds its own configuration: the trusted certificates as DER
    /// (empty when falling back to webpki-roots, which mysql_async then uses itself).
    pub root_ders: Vec<CertificateDer<'static>>,
}

impl TlsSetup {
    pub fn load(ca_bundle: Option<&Path>) -> Result<TlsSetup, TargetError> {
        // mysql_async builds its configuration with the process-wide default provider; make
        // sure there is one even when several providers are compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = RootCertStore::empty();
        let mut ders = Vec::new();
        match ca_bundle {
            Some(path) => {
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| {
                    TargetError::Misconfigured(format!(
                        "cannot read the CA bundle {}: {e}",
                        path.display()
                    ))
                })? {
                    let cert = cert.map_err(|e| {
                        TargetError::Misconfigured(format!(
                            "the CA bundle {} is not valid PEM: {e}",
                            path.display()
                        ))
                    })?;
                    ders.push(cert);
                }
                if ders.is_empty() {
                    return Err(TargetError::Misconfigured(format!(
                        "the CA bundle {} holds no certificate",
                        path.display()
                    )));
                }
                let (_, ignored) = roots.add_parsable_certificates(ders.iter().cloned());
                if roots.is_empty() {
                    return Err(TargetError::Misconfigured(format!(
                        "no certificate in the CA bundle {} is usable as a trust anchor \
                         ({ignored} rejected)",
                        path.display()
                    )));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                ders = native.certs;
                roots.add_parsable_certificates(ders.iter().cloned());
                if roots.is_empty() {
                    tracing::warn!(
                        "no system CA certificates found; trusting the Mozilla roots \
                         (webpki-roots) for database TLS"
                    );
                    ders.clear();
                    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::Misconfigured(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsSetup {
            client_config: Arc::new(client_config),
            root_ders: ders,
        })
    }
}
