//! Serving certificates: loading, hot reload, and self-made certificates for `fidomesh certs`.
//!
//! The served pair lives behind an atomic pointer read on every handshake. A reload reads both
//! files, checks that the key matches the certificate, and only then swaps; a broken new pair is
//! refused (error log, metric) and the old one keeps serving. Established connections are never
//! touched, so a rotation drops no request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate pair was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The PEM holds no certificate or no usable key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key does not belong to the certificate, or rustls refuses it.
    #[error("certificate and key: {0}")]
    Pair(String),
    /// A certificate could not be made.
    #[error("making certificates: {0}")]
    Generate(String),
}

/// A loaded pair and when its leaf expires.
pub struct Loaded {
    /// The pair for rustls.
    pub key: Arc<CertifiedKey>,
    /// Unix seconds of the leaf's `notAfter`.
    pub not_after: i64,
}

/// Reads and checks a certificate chain and its key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let cert_pem = std::fs::read(cert).map_err(|error| TlsError::Io {
        path: cert.to_path_buf(),
        error,
    })?;
    let key_pem = std::fs::read(key).map_err(|error| TlsError::Io {
        path: key.to_path_buf(),
        error,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Pem {
            path: cert.to_path_buf(),
            message: "no certificate in the file".into(),
        });
    };
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            message: format!("unreadable certificate: {e}"),
        })?
        .1
        .validity()
        .not_after
        .timestamp();
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let certified = CertifiedKey::from_der(chain, private, &provider)
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    // from_der accepts "unknown" consistency; a reload must prove the pair matches.
    certified
        .keys_match()
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    Ok(Loaded {
        key: Arc::new(certified),
        not_after,
    })
}

/// Serves whatever pair is current.
#[derive(Debug)]
pub struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl Resolver {
    /// A resolver serving `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: ArcSwap::new(key),
        }
    }

    /// Serves `key` from the next handshake on.
    pub fn swap(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }

    /// The pair being served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A rustls server configuration serving through `resolver`.
pub fn server_config(resolver: Arc<Resolver>) -> rustls::ServerConfig {
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(resolver)
}

/// What `fidomesh certs` writes.
pub struct Generated {
    /// CA certificate (PEM).
    pub ca_pem: String,
    /// Serving certificate (PEM).
    pub cert_pem: String,
    /// Serving key (PEM).
    pub key_pem: String,
}

/// Makes a CA and a serving certificate for `service.namespace.svc` (plus extra DNS names and
/// IP addresses), valid for `days`.
pub fn generate(
    service: &str,
    namespace: &str,
    extra_dns: &[String],
    ips: &[std::net::IpAddr],
    days: i64,
) -> Result<Generated, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let now = time_now();
    let until = now + days * 86_400;
    let to_time = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or_else(|_| rcgen::date_time_ymd(2100, 1, 1))
    };

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("fidomesh CA for {service}.{namespace}"),
    );
    ca.distinguished_name = dn;
    ca.not_before = to_time(now - 300);
    ca.not_after = to_time(until + 86_400);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let mut names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        service.to_string(),
    ];
    names.extend(extra_dns.iter().cloned());
    let mut params = CertificateParams::new(names).map_err(err)?;
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = to_time(now - 300);
    params.not_after = to_time(until);
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    Ok(Generated {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn time_now() -> i64 {
    jiff::Timestamp::now().as_second()
}
