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
//!
//! As with libpq (OpenSSL), a server certificate that is itself one of the
//! trusted roots is trusted, though WebPKI refuses a CA certificate used as
//! a server's (`openssl req -x509` makes one): its dates, and under
//! `verify-full` its names, are still checked.
//!
//! Each file is read as a regular file of at most [`MAX_FILE_BYTES`], opened
//! without blocking: `/dev/zero`, a FIFO or a directory given as a
//! certificate is bad input, said at once.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::settings::{ConnectionSettings, SslMode};
use crate::error::{Error, Result, clip};

/// The largest certificate or key file perfaudit reads: a chain of a dozen
/// certificates is a few tens of KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

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
        .map_err(|e| Error::internal(format!("cannot set up TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if verification == Verification::None {
        Arc::new(AcceptAnyCertificate(
            provider.signature_verification_algorithms,
        ))
    } else {
        let (store, roots) = load_roots(root_file.as_deref())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map_err(|e| Error::internal(format!("cannot set up TLS verification: {e}")))?;
        Arc::new(Verifier {
            webpki,
            roots,
            check_name: verification == Verification::ChainAndHostName,
        })
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
    let pem = read_file(&certificate, TlsFile::ClientCertificate)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFile::ClientCertificate.unusable(&certificate, &e))?;
    if chain.is_empty() {
        return Err(TlsFile::ClientCertificate.unusable(&certificate, &"no certificate found"));
    }
    let pem = read_file(&key, TlsFile::ClientKey)?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsFile::ClientKey.unusable(&key, &e))?;
    Ok(Some((chain, key)))
}

/// A file a TLS setting names, for reading it and for messages.
#[derive(Debug, Clone, Copy)]
enum TlsFile {
    RootCertificates,
    ClientCertificate,
    ClientKey,
}

impl TlsFile {
    /// What the file holds.
    fn what(self) -> &'static str {
        match self {
            TlsFile::RootCertificates => "root certificates",
            TlsFile::ClientCertificate => "client certificate",
            TlsFile::ClientKey => "client key",
        }
    }

    /// The setting that names it, and its environment variable.
    fn setting(self) -> &'static str {
        match self {
            TlsFile::RootCertificates => "sslrootcert (PGSSLROOTCERT)",
            TlsFile::ClientCertificate => "sslcert (PGSSLCERT)",
            TlsFile::ClientKey => "sslkey (PGSSLKEY)",
        }
    }

    /// `path` cannot serve as this file because of `why`: bad input (exit 2).
    fn unusable(self, path: &Path, why: &dyn std::fmt::Display) -> Error {
        Error::input(format!(
            "cannot use \"{}\" as the {}: {why}; check {}",
            clip(&path.to_string_lossy()),
            self.what(),
            self.setting()
        ))
    }
}

/// The bytes of `path`, a regular file of at most [`MAX_FILE_BYTES`].
/// Opened without blocking, so a FIFO is refused rather than waited on, and
/// read no further than the cap, so `/dev/zero` or a huge file costs nothing.
fn read_file(path: &Path, file: TlsFile) -> Result<Vec<u8>> {
    let unusable = |why: &dyn std::fmt::Display| file.unusable(path, why);
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| unusable(&format_args!("cannot open it ({e})")))?;
    let metadata = opened
        .metadata()
        .map_err(|e| unusable(&format_args!("cannot read it ({e})")))?;
    let kind = metadata.file_type();
    let not_regular = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if !kind.is_file() {
        Some("not a file")
    } else {
        None
    };
    if let Some(what) = not_regular {
        return Err(unusable(&format_args!(
            "it is {what}, not a regular file holding PEM"
        )));
    }
    let too_large = || {
        unusable(&format_args!(
            "it is larger than {} KiB, far more than any certificate or key",
            MAX_FILE_BYTES / 1024
        ))
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unusable(&format_args!("cannot read it ({e})")))?;
    // It may have grown since its size was read.
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
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

/// The trust store, and the root certificates as the file gives them (none
/// for the system's roots), to recognise a server certificate that is one.
fn load_roots(file: Option<&Path>) -> Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => {
            let pem = read_file(path, TlsFile::RootCertificates)?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsFile::RootCertificates.unusable(path, &e))?;
            let (added, _) = store.add_parsable_certificates(certificates.iter().cloned());
            if added == 0 {
                return Err(
                    TlsFile::RootCertificates.unusable(path, &"it holds no usable certificate")
                );
            }
            Ok((store, certificates))
        }
        None => {
            let system = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(system.certs);
            if store.is_empty() {
                return Err(Error::database(
                    "no system root certificates were found to verify the server with; \
                     set sslrootcert to the CA certificate that signed the server's",
                ));
            }
            Ok((store, Vec::new()))
        }
    }
}

/// `verify-ca` and `verify-full`: WebPKI's checks, the way libpq applies
/// them. Under `verify-ca` the chain must lead to a trusted root and the
/// name may differ. A server certificate that is itself one of the roots in
/// `sslrootcert` is trusted as such (WebPKI refuses a CA certificate as a
/// server's, OpenSSL trusts the root it was given): its dates, and under
/// `verify-full` its names, are still checked.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The roots of `sslrootcert`, as given.
    roots: Vec<CertificateDer<'static>>,
    /// Whether the certificate must name the host (`verify-full`).
    check_name: bool,
}

impl Verifier {
    /// Checks a certificate that is one of the trusted roots itself.
    fn trusted_root(
        &self,
        certificate: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (not_before, not_after) = validity(certificate).ok_or(CertificateError::BadEncoding)?;
        let now = now.as_secs() as i64;
        if now < not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > not_after {
            return Err(CertificateError::Expired.into());
        }
        if self.check_name {
            verify_server_name(&ParsedCertificate::try_from(certificate)?, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            // A certificate whose extended key usage rules out servers is
            // refused, whoever trusts it.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            )) => verified,
            Err(_) if self.roots.iter().any(|root| root == end_entity) => {
                self.trusted_root(end_entity, server_name, now)
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A certificate's validity period, `notBefore` and `notAfter` in seconds
/// since the Unix epoch, read from its DER (which WebPKI keeps to itself);
/// `None` when the DER is not a certificate's.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (certificate, _) = der_element(der, SEQUENCE)?;
    let (tbs, _) = der_element(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = der_element(rest, VERSION)?.1;
    }
    // serialNumber, signature, issuer
    for tag in [INTEGER, SEQUENCE, SEQUENCE] {
        rest = der_element(rest, tag)?.1;
    }
    let (validity, _) = der_element(rest, SEQUENCE)?;
    let (not_before, rest) = der_time(validity)?;
    let (not_after, _) = der_time(rest)?;
    Some((not_before, not_after))
}

/// The contents of the DER element at the start of `input`, which must
/// have `tag`, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    let (&length, rest) = rest.split_first()?;
    if found != tag {
        return None;
    }
    let (length, rest) = if length < 0x80 {
        (usize::from(length), rest)
    } else {
        let count = usize::from(length & 0x7f);
        if !(1..=4).contains(&count) || rest.len() < count {
            return None;
        }
        let (digits, rest) = rest.split_at(count);
        let length = digits.iter().fold(0, |n, &b| n << 8 | usize::from(b));
        (length, rest)
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

/// An X.509 time (UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`) in seconds since the Unix epoch, and what follows it.
fn der_time(input: &[u8]) -> Option<(i64, &[u8])> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let tag = *input.first()?;
    let year_digits = match tag {
        UTC_TIME => 2,
        GENERALIZED_TIME => 4,
        _ => return None,
    };
    let (text, rest) = der_element(input, tag)?;
    let digits = text.strip_suffix(b"Z")?;
    if digits.len() != year_digits + 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |from: usize, count: usize| {
        digits[from..from + count]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
    };
    let year = match (year_digits, number(0, year_digits)) {
        // RFC 5280: UTCTime years 50 to 99 are 19xx.
        (2, yy) if yy >= 50 => 1900 + yy,
        (2, yy) => 2000 + yy,
        (_, yyyy) => yyyy,
    };
    let [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map(|at| number(year_digits + at, 2));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let seconds = days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds, rest))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_epoch_matches_the_calendar() {
        assert_eq!(days_since_epoch(1970, 1, 1), 0);
        assert_eq!(days_since_epoch(2000, 3, 1), 11_017);
        assert_eq!(days_since_epoch(2024, 2, 29), 19_782);
        assert_eq!(days_since_epoch(1969, 12, 31), -1);
        assert_eq!(days_since_epoch(9999, 12, 31), 2_932_896);
    }

    #[test]
    fn validity_is_read_from_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["db".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(1975, 6, 2);
        params.not_after = rcgen::date_time_ymd(2077, 1, 3);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let (not_before, not_after) = validity(certificate.der()).unwrap();
        assert_eq!(not_before, days_since_epoch(1975, 6, 2) * 86_400);
        assert_eq!(not_after, days_since_epoch(2077, 1, 3) * 86_400);
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(validity(&[]), None);
    }

    #[test]
    fn files_that_are_no_regular_file_or_too_large_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let large = dir.path().join("large.pem");
        std::fs::write(&large, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let small = dir.path().join("small.pem");
        std::fs::write(&small, "pem").unwrap();
        for (path, why) in [
            (Path::new("/dev/zero"), "it is a device"),
            (fifo.as_path(), "it is a FIFO"),
            (dir.path(), "it is a directory"),
            (large.as_path(), "larger than 1024 KiB"),
            (Path::new("/nonexistent.pem"), "cannot open it"),
        ] {
            let error = read_file(path, TlsFile::ClientKey).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{error}");
            let message = error.to_string();
            assert!(message.contains(why), "{message}");
            assert!(
                message.contains(&format!("\"{}\"", path.display())),
                "{message}"
            );
            assert!(message.ends_with("check sslkey (PGSSLKEY)"), "{message}");
        }
        assert_eq!(read_file(&small, TlsFile::ClientKey).unwrap(), b"pem");
    }
}
