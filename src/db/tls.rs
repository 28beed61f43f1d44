//! TLS with rustls, following libpq's `sslmode` semantics.
//!
//! | sslmode       | TLS              | verifies                                |
//! |---------------|------------------|-----------------------------------------|
//! | `disable`     | never            | —                                       |
//! | `prefer`      | if offered       | nothing                                 |
//! | `require`     | always           | the chain, only if a root cert is set   |
//! | `verify-ca`   | always           | the chain                               |
//! | `verify-full` | always           | the chain and the host name             |
//!
//! Root certificates come from `sslrootcert` (a PEM file), else
//! `~/.postgresql/root.crt` as in libpq, else the system's roots;
//! `sslrootcert=system` asks for the system's roots explicitly. A client
//! certificate, for servers that authenticate clients by certificate, comes
//! from `sslcert` / `sslkey`, else libpq's `~/.postgresql/postgresql.crt`
//! and `.key` when they exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::settings::{ConnectionSettings, SslMode};
use crate::error::{Error, Result};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    None,
    Chain,
    ChainAndHostName,
}

/// Builds the TLS connector for `settings`. For `sslmode=disable` the
/// connector is never used, but one type for every mode keeps the pool simple.
pub fn connector(settings: &ConnectionSettings) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root_file = root_certificate_file(settings);
    let verification = match settings.sslmode {
        SslMode::Disable | SslMode::Prefer => Verification::None,
        SslMode::Require if root_file.is_some() => Verification::Chain,
        SslMode::Require => Verification::None,
        SslMode::VerifyCa => Verification::Chain,
        SslMode::VerifyFull => Verification::ChainAndHostName,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::database(format!("cannot set up TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if verification == Verification::None {
        Arc::new(AcceptAnyCertificate(
            provider.signature_verification_algorithms,
        ))
    } else {
        let roots = Arc::new(load_roots(root_file.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| Error::database(format!("cannot set up TLS verification: {e}")))?;
        match verification {
            Verification::Chain => Arc::new(ChainOnly(webpki)),
            _ => webpki,
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_identity(settings)? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            Error::input(format!(
                "the client certificate and key do not go together: {e}; check sslcert and \
                 sslkey (PGSSLCERT, PGSSLKEY)"
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The client certificate chain and key to present, if any: `sslcert` (a
/// given file must be readable, and its key: `sslkey` or the default key
/// file), else libpq's default files when both exist.
fn client_identity(
    settings: &ConnectionSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    let default = |name: &str| {
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".postgresql").join(name))
    };
    let (certificate, key) = match (&settings.sslcert, &settings.sslkey) {
        (Some(certificate), key) => (
            certificate.clone(),
            key.clone()
                .or_else(|| default("postgresql.key"))
                .unwrap_or_default(),
        ),
        (None, key) => {
            let certificate = default("postgresql.crt").filter(|path| path.is_file());
            let key = key.clone().or_else(|| default("postgresql.key"));
            match (certificate, key) {
                (Some(certificate), Some(key)) if key.is_file() => (certificate, key),
                _ => return Ok(None),
            }
        }
    };
    let unreadable = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::input(format!(
            "cannot read the client {what} in \"{}\": {e}; check sslcert and sslkey \
             (PGSSLCERT, PGSSLKEY)",
            path.display()
        ))
    };
    let chain = CertificateDer::pem_file_iter(&certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable("certificate", &certificate, &e))?;
    if chain.is_empty() {
        return Err(unreadable(
            "certificate",
            &certificate,
            &"no certificate found",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| unreadable("key", &key, &e))?;
    Ok(Some((chain, key)))
}

/// `sslrootcert`, else libpq's default file when it exists; `None` means the
/// system's roots.
fn root_certificate_file(settings: &ConnectionSettings) -> Option<PathBuf> {
    match &settings.sslrootcert {
        Some(path) if path == Path::new("system") => None,
        Some(path) => Some(path.clone()),
        None => std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".postgresql/root.crt"))
            .filter(|path| path.is_file()),
    }
}

fn load_roots(file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::database(format!(
                        "cannot read the root certificates in \"{}\": {e}; check sslrootcert / PGSSLROOTCERT",
                        path.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(Error::database(format!(
                    "\"{}\" holds no usable root certificate; check sslrootcert / PGSSLROOTCERT",
                    path.display()
                )));
            }
        }
        None => {
            let system = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(system.certs);
            if roots.is_empty() {
                return Err(Error::database(
                    "no system root certificates were found to verify the server with; \
                     set sslrootcert to the CA certificate that signed the server's",
                ));
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted root; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: encrypt, trust any
/// certificate (libpq does the same). The handshake signatures are still
/// checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
