//! The signed FIDO metadata BLOB (MDS3, `--mds-blob FILE --mds-root PEM…`).
//!
//! The BLOB is a JWS in compact form whose header carries the signer's certificate chain in
//! `x5c` (leaf first). Verification, in this order, each failure with its own
//! [`MdsBlobError`]:
//!
//! 1. the JWS shape and a header with a supported asymmetric `alg` and an `x5c` chain;
//! 2. the chain, built with rustls-webpki from the leaf through the other `x5c` certificates to
//!    one of the pinned roots, every certificate valid at the verification time (injected). The
//!    extended key usage is not restricted: the real MDS signer is an EV TLS server certificate
//!    (EKU serverAuth + clientAuth), and there is no MDS-specific EKU, so any EKU is accepted;
//!    trust comes from pinning the roots;
//! 3. the signature, with jsonwebtoken and a key made from the leaf's SubjectPublicKeyInfo; the
//!    header's `alg` must fit the leaf's key type (RSA: RS/PS 256/384/512, P-256: ES256, P-384:
//!    ES384, Ed25519: EdDSA);
//! 4. the payload, read tolerantly by [`Mds::from_payload_json`]: unknown fields and statuses
//!    are kept, not fatal;
//! 5. `nextUpdate` not before the verification date (UTC), and the serial `no` not below the
//!    one already loaded (equal is accepted: the same BLOB read again).
//!
//! Pure: the caller reads the files and passes the time.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde_json::{Map, Value};

use crate::mds::{Mds, MdsError};

/// Why a BLOB (or a root) was refused.
#[derive(Debug, thiserror::Error)]
pub enum MdsBlobError {
    /// No pinned root was given.
    #[error("FIDO metadata: no pinned root certificate (--mds-root)")]
    NoRoots,
    /// A pinned root does not parse as a certificate usable as a trust anchor.
    #[error("FIDO metadata: pinned root #{index} is not a usable certificate: {detail}")]
    BadRoot {
        /// Its position among the roots given.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// Not a JWS in compact form (shape, base64url, header JSON).
    #[error("FIDO metadata BLOB: not a JWS in compact form: {0}")]
    Malformed(&'static str),
    /// The header names `none`, an HMAC algorithm or an unknown one.
    #[error("FIDO metadata BLOB: algorithm {alg} is not accepted (RS/PS/ES/EdDSA only)")]
    UnsupportedAlgorithm {
        /// The header's `alg` (shortened).
        alg: String,
    },
    /// The header lists `crit` extensions.
    #[error("FIDO metadata BLOB: critical header extensions (crit) are not supported")]
    CriticalHeader,
    /// The header has no `x5c` chain (or an empty one).
    #[error("FIDO metadata BLOB: the header has no x5c certificate chain")]
    MissingX5c,
    /// An `x5c` entry is not base64 DER of a certificate.
    #[error("FIDO metadata BLOB: x5c[{index}] is not a certificate: {detail}")]
    BadCertificate {
        /// Its position in `x5c` (0 is the leaf).
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// The chain does not lead to any pinned root: no pinned root issued it, or one with the
    /// right name but another key did not sign it.
    #[error("FIDO metadata BLOB: the x5c chain does not lead to a pinned root ({0})")]
    UntrustedChain(&'static str),
    /// A certificate of the chain has expired at the verification time.
    #[error(
        "FIDO metadata BLOB: a certificate of the x5c chain expired at {not_after} (verified at {at})"
    )]
    CertificateExpired {
        /// Its notAfter.
        not_after: String,
        /// The verification time.
        at: String,
    },
    /// A certificate of the chain is not yet valid at the verification time.
    #[error(
        "FIDO metadata BLOB: a certificate of the x5c chain is not valid before {not_before} (verified at {at})"
    )]
    CertificateNotYetValid {
        /// Its notBefore.
        not_before: String,
        /// The verification time.
        at: String,
    },
    /// The chain is refused for another reason (signatures, constraints, algorithms).
    #[error("FIDO metadata BLOB: the x5c chain is invalid: {0}")]
    BadChain(String),
    /// The header's `alg` does not fit the leaf certificate's key.
    #[error("FIDO metadata BLOB: algorithm {alg} does not fit the signer's {key} key")]
    AlgorithmKeyMismatch {
        /// The header's `alg`.
        alg: String,
        /// The leaf's key type.
        key: &'static str,
    },
    /// The leaf's key type is not supported.
    #[error("FIDO metadata BLOB: the signer's key type is not supported: {0}")]
    UnsupportedKey(String),
    /// The signature does not verify with the leaf's key (payload or signature changed).
    #[error("FIDO metadata BLOB: the signature does not verify with the signer's certificate")]
    BadSignature,
    /// The payload is not an MDS3 payload.
    #[error("FIDO metadata BLOB: {0}")]
    Payload(#[from] MdsError),
    /// `nextUpdate` is missing or not a date.
    #[error("FIDO metadata BLOB: nextUpdate is missing or not a date (YYYY-MM-DD)")]
    NextUpdateInvalid,
    /// `nextUpdate` is before the verification date: the BLOB is stale.
    #[error("FIDO metadata BLOB: stale, nextUpdate {next_update} is before {today}")]
    Stale {
        /// The payload's `nextUpdate`.
        next_update: Date,
        /// The verification date (UTC).
        today: Date,
    },
    /// The serial number is lower than the one already loaded.
    #[error("FIDO metadata BLOB: serial no {got} is older than the loaded serial {previous}")]
    SerialWentBackwards {
        /// The serial already loaded.
        previous: u64,
        /// This BLOB's serial.
        got: u64,
    },
}

impl MdsBlobError {
    /// A stable identifier for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoots => "mds-no-roots",
            Self::BadRoot { .. } => "mds-bad-root",
            Self::Malformed(_) => "mds-malformed",
            Self::UnsupportedAlgorithm { .. } => "mds-alg-unsupported",
            Self::CriticalHeader => "mds-crit-unsupported",
            Self::MissingX5c => "mds-x5c-missing",
            Self::BadCertificate { .. } => "mds-bad-certificate",
            Self::UntrustedChain(_) => "mds-untrusted-chain",
            Self::CertificateExpired { .. } => "mds-certificate-expired",
            Self::CertificateNotYetValid { .. } => "mds-certificate-not-yet-valid",
            Self::BadChain(_) => "mds-bad-chain",
            Self::AlgorithmKeyMismatch { .. } => "mds-alg-key-mismatch",
            Self::UnsupportedKey(_) => "mds-key-unsupported",
            Self::BadSignature => "mds-signature-invalid",
            Self::Payload(_) => "mds-payload-invalid",
            Self::NextUpdateInvalid => "mds-next-update-invalid",
            Self::Stale { .. } => "mds-stale",
            Self::SerialWentBackwards { .. } => "mds-serial-backwards",
        }
    }
}

/// The pinned roots a BLOB's chain must lead to.
#[derive(Debug, Clone)]
pub struct MdsRoots {
    anchors: Vec<TrustAnchor<'static>>,
}

impl MdsRoots {
    /// Roots from the texts of one or more PEM files (each may hold several certificates).
    pub fn from_pems<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, MdsBlobError> {
        let mut ders = Vec::new();
        for text in texts {
            for (i, der) in CertificateDer::pem_slice_iter(text.as_bytes()).enumerate() {
                let der = der.map_err(|e| MdsBlobError::BadRoot {
                    index: ders.len() + i,
                    detail: e.to_string(),
                })?;
                ders.push(der);
            }
        }
        Self::from_ders(&ders)
    }

    /// Roots from DER certificates.
    pub fn from_ders(certs: &[CertificateDer<'_>]) -> Result<Self, MdsBlobError> {
        if certs.is_empty() {
            return Err(MdsBlobError::NoRoots);
        }
        let anchors = certs
            .iter()
            .enumerate()
            .map(|(index, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| MdsBlobError::BadRoot {
                        index,
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { anchors })
    }

    /// How many roots are pinned.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// True when no root is pinned (never, for roots built by the constructors).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A BLOB that verified.
#[derive(Debug, Clone)]
pub struct VerifiedBlob {
    /// The model facts (for `data.fidomesh.mds`).
    pub mds: Mds,
    /// The payload's serial number `no`.
    pub serial: u64,
    /// The payload's `nextUpdate`.
    pub next_update: Date,
    /// The signing algorithm.
    pub algorithm: String,
    /// The signer certificate's subject.
    pub signer: String,
    /// When the signer certificate expires.
    pub signer_not_after: Option<Timestamp>,
    /// Certificates in `x5c`.
    pub chain_len: usize,
    /// BLAKE3 of the BLOB text (hex), to tell BLOBs apart in logs.
    pub digest: String,
}

/// Accepts `x5c` chains whatever their extended key usage (see the module documentation).
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        // Still refuse a malformed EKU extension.
        for id in iter {
            id?;
        }
        Ok(())
    }
}

/// Verifies a BLOB (the file's text) against the pinned roots at `at`. `previous_serial` is the
/// serial of the BLOB in service, if any; a lower serial is refused.
pub fn verify_blob(
    blob: &str,
    roots: &MdsRoots,
    at: Timestamp,
    previous_serial: Option<u64>,
) -> Result<VerifiedBlob, MdsBlobError> {
    if roots.is_empty() {
        return Err(MdsBlobError::NoRoots);
    }
    let blob = blob.trim();
    let mut parts = blob.split('.');
    let (header_b64, payload_b64, signature_b64) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => (h, p, s),
            _ => {
                return Err(MdsBlobError::Malformed(
                    "expected three base64url parts separated by dots",
                ));
            }
        };

    // 1. The header.
    let header: Map<String, Value> = URL_SAFE_LENIENT
        .decode(header_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(MdsBlobError::Malformed(
            "the header is not base64url-encoded JSON",
        ))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(MdsBlobError::Malformed("the header has no alg"))?;
    let algorithm = blob_algorithm(alg).ok_or_else(|| MdsBlobError::UnsupportedAlgorithm {
        alg: alg
            .chars()
            .take(32)
            .filter(char::is_ascii_graphic)
            .collect(),
    })?;
    if header.contains_key("crit") {
        return Err(MdsBlobError::CriticalHeader);
    }
    let x5c = match header.get("x5c") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(MdsBlobError::MissingX5c),
    };
    let ders = x5c
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let text = item.as_str().ok_or_else(|| MdsBlobError::BadCertificate {
                index,
                detail: "not a string".into(),
            })?;
            STANDARD
                .decode(text)
                .map(CertificateDer::from)
                .map_err(|_| MdsBlobError::BadCertificate {
                    index,
                    detail: "not base64 (standard alphabet)".into(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (leaf, intermediates) = ders.split_first().ok_or(MdsBlobError::MissingX5c)?;

    // 2. The chain, to a pinned root, at `at`.
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| MdsBlobError::BadCertificate {
        index: 0,
        detail: e.to_string(),
    })?;
    let seconds = u64::try_from(at.as_second()).unwrap_or(0);
    let time = UnixTime::since_unix_epoch(Duration::from_secs(seconds));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &roots.anchors,
        intermediates,
        time,
        AnyExtendedKeyUsage,
        None,
        None,
    )
    .map_err(|e| chain_error(e, at))?;

    // 3. The signature, with the leaf's key.
    let (key_type, key, signer, signer_not_after) = leaf_key(leaf)?;
    if !fits(algorithm, key_type) {
        return Err(MdsBlobError::AlgorithmKeyMismatch {
            alg: alg.to_string(),
            key: key_type.name(),
        });
    }
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let message = blob
        .get(..signed_len)
        .ok_or(MdsBlobError::Malformed("the signed part is out of range"))?;
    match jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), &key, algorithm) {
        Ok(true) => {}
        Ok(false) => return Err(MdsBlobError::BadSignature),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::Base64(_) => {
                return Err(MdsBlobError::Malformed("the signature is not base64url"));
            }
            _ => return Err(MdsBlobError::BadSignature),
        },
    }

    // 4. The payload, tolerantly.
    let payload = URL_SAFE_LENIENT
        .decode(payload_b64)
        .map_err(|_| MdsBlobError::Malformed("the payload is not base64url"))?;
    let text = String::from_utf8(payload)
        .map_err(|_| MdsBlobError::Malformed("the payload is not UTF-8"))?;
    let mds = Mds::from_payload_json(&text)?;

    // 5. Freshness and serial.
    let next_update: Date = mds
        .next_update
        .as_deref()
        .and_then(|d| d.trim().parse().ok())
        .ok_or(MdsBlobError::NextUpdateInvalid)?;
    let today = at.to_zoned(TimeZone::UTC).date();
    if next_update < today {
        return Err(MdsBlobError::Stale { next_update, today });
    }
    if let Some(previous) = previous_serial
        && mds.serial < previous
    {
        return Err(MdsBlobError::SerialWentBackwards {
            previous,
            got: mds.serial,
        });
    }
    Ok(VerifiedBlob {
        serial: mds.serial,
        next_update,
        algorithm: alg.to_string(),
        signer,
        signer_not_after,
        chain_len: ders.len(),
        digest: blake3::hash(blob.as_bytes()).to_hex().to_string(),
        mds,
    })
}

// JWS compact parts carry no padding; a padded BLOB is accepted all the same.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn blob_algorithm(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKey {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl LeafKey {
    fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Ed25519 => "Ed25519",
        }
    }
}

fn fits(alg: Algorithm, key: LeafKey) -> bool {
    use Algorithm::*;
    matches!(
        (alg, key),
        (RS256 | RS384 | RS512 | PS256 | PS384 | PS512, LeafKey::Rsa)
            | (ES256, LeafKey::EcP256)
            | (ES384, LeafKey::EcP384)
            | (EdDSA, LeafKey::Ed25519)
    )
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";

// The leaf's key type, a jsonwebtoken key from its SubjectPublicKeyInfo, its subject and
// notAfter.
fn leaf_key(
    der: &CertificateDer<'_>,
) -> Result<(LeafKey, DecodingKey, String, Option<Timestamp>), MdsBlobError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(der.as_ref()).map_err(|e| MdsBlobError::BadCertificate {
            index: 0,
            detail: e.to_string(),
        })?;
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.as_ref();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let (kind, key) = match key_oid.as_str() {
        // The BIT STRING holds the PKCS#1 RSAPublicKey.
        OID_RSA => (LeafKey::Rsa, DecodingKey::from_rsa_der(bits)),
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            // The BIT STRING holds the uncompressed point.
            match curve.as_str() {
                OID_P256 => (LeafKey::EcP256, DecodingKey::from_ec_der(bits)),
                OID_P384 => (LeafKey::EcP384, DecodingKey::from_ec_der(bits)),
                other => {
                    return Err(MdsBlobError::UnsupportedKey(format!(
                        "EC curve {other} (P-256 and P-384 only)"
                    )));
                }
            }
        }
        OID_ED25519 => (LeafKey::Ed25519, DecodingKey::from_ed_der(bits)),
        other => {
            return Err(MdsBlobError::UnsupportedKey(format!(
                "public key algorithm {other}"
            )));
        }
    };
    let subject = cert.subject().to_string();
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp()).ok();
    Ok((kind, key, subject, not_after))
}

fn chain_error(e: webpki::Error, at: Timestamp) -> MdsBlobError {
    let when = |t: UnixTime| {
        i64::try_from(t.as_secs())
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .map(|t| t.to_string())
            .unwrap_or_else(|| format!("{} (Unix seconds)", t.as_secs()))
    };
    match e {
        webpki::Error::UnknownIssuer => {
            MdsBlobError::UntrustedChain("no pinned root or x5c certificate issued it")
        }
        webpki::Error::InvalidSignatureForPublicKey => MdsBlobError::UntrustedChain(
            "a certificate's signature does not verify with its issuer's key",
        ),
        webpki::Error::CertExpired { not_after, .. } => MdsBlobError::CertificateExpired {
            not_after: when(not_after),
            at: at.to_string(),
        },
        webpki::Error::CertNotValidYet { not_before, .. } => MdsBlobError::CertificateNotYetValid {
            not_before: when(not_before),
            at: at.to_string(),
        },
        other => MdsBlobError::BadChain(other.to_string()),
    }
}
