//! A throwaway certificate authority and a server certificate signed by it, for servers
//! started with TLS. Clients trust the CA by its PEM file ([`TestCa::write`]).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::Result;
use crate::process::{ServiceAccount, write_private};

/// PEM text of a fresh CA certificate and of a server certificate and key for
/// `127.0.0.1`, `::1` and `localhost`.
pub struct TestCa {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

/// Where [`TestCa::write`] put the files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn generate() -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "keyroll-testkit throwaway CA");
        ca.distinguished_name = dn;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        server.distinguished_name = dn;
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer)?;
        Ok(TestCa {
            ca_cert_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }

    /// Writes `ca.crt`, `server.crt` and `server.key` (mode 0600) into `dir`, owned by `acct`.
    pub fn write(&self, dir: &Path, acct: Option<&ServiceAccount>) -> Result<TlsFiles> {
        let files = TlsFiles {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        };
        write_private(&files.ca_cert, self.ca_cert_pem.as_bytes(), 0o644, acct)?;
        write_private(
            &files.server_cert,
            self.server_cert_pem.as_bytes(),
            0o644,
            acct,
        )?;
        write_private(
            &files.server_key,
            self.server_key_pem.as_bytes(),
            0o600,
            acct,
        )?;
        Ok(files)
    }
}
