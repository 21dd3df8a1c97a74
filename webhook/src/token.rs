//! Bearer tokens for the HTTP API (dry-run, audit; DESIGN section 4).
//!
//! A token is a JWS-signed JWT from one of the issuers in the settings (`issuers:`). Each issuer
//! pins one or more JWKS documents on disk; keys are selected by `kid`, so an issuer can rotate
//! keys with an overlap (old and new key both listed). Every key gets an explicit algorithm list,
//! matched to its type (RSA: `RS256`/`PS256`, P-256: `ES256`, Ed25519: `EdDSA`); `none` and the
//! symmetric `HS*` family are never accepted. The signature is verified with `jsonwebtoken`,
//! which also checks `iss` and `aud`; the time checks (`exp`, `nbf`, `iat` with a maximum age,
//! a small leeway) are done here against an injected clock, so tests are exact.
//!
//! The verified claims map into [`Claims`] (username, groups, `amr`, `auth_time`, credential ID,
//! AAGUID; claim names configurable per issuer); the caller then runs
//! [`crate::requester::resolve`] with [`crate::requester::Source::Token`].
//!
//! Every failure is a [`TokenError`] with a stable [`TokenError::code`] and a message for people.
//! Neither ever contains the token; attacker-chosen strings (`iss`, `kid`, `alg`) are shortened
//! and stripped of control characters before they appear.
//!
//! [`VerifiedTokenCache`] keeps verified tokens, keyed by a BLAKE3 digest of the token, until the
//! token stops being valid (`exp`, or `iat` + maximum age), and only for the key set that
//! verified them. [`ReloadableVerifier`] re-reads the JWKS files on demand and swaps the key set
//! in atomically, keeping the previous one on any error.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::requester::Claims;

/// Tokens longer than this are refused before any parsing (see
/// [`TokenVerifier::with_max_token_bytes`]).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The largest leeway an issuer may configure.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// JWKS files larger than this are refused.
pub const MAX_JWKS_BYTES: u64 = 1024 * 1024;

/// RSA keys shorter than this are left out of a key set.
pub const MIN_RSA_BITS: usize = 2048;

// ---------------------------------------------------------------------------------------------
// Configuration (the `issuers:` section of the settings)
// ---------------------------------------------------------------------------------------------

/// A signature algorithm a bearer token may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TokenAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys).
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PSS with SHA-256 (RSA keys).
    #[serde(rename = "PS256")]
    Ps256,
    /// ECDSA on P-256 with SHA-256 (EC keys on P-256).
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (OKP keys on Ed25519).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl TokenAlgorithm {
    /// The JOSE name (`RS256`, `PS256`, `ES256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    fn from_jose(alg: &str) -> Option<Self> {
        match alg {
            "RS256" => Some(Self::Rs256),
            "PS256" => Some(Self::Ps256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Ps256 => Algorithm::PS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn fits(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (Self::Rs256 | Self::Ps256, KeyKind::Rsa)
                | (Self::Es256, KeyKind::EcP256)
                | (Self::EdDsa, KeyKind::Ed25519)
        )
    }
}

impl std::fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which JWT claims carry which requester facts. Names are top-level claim names, used as
/// written (no path syntax, so names such as `https://example.com/groups` work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClaimNames {
    /// The username (required in every token). Default `sub`.
    pub username: String,
    /// The groups: a list of strings or one string. Default `groups`.
    pub groups: String,
    /// Authentication methods (RFC 8176): a list or a space-separated string. Default `amr`.
    pub amr: String,
    /// When the user authenticated (Unix seconds). Default `auth_time`.
    pub auth_time: String,
    /// The WebAuthn credential ID used to sign in. Default `fido_cred_id`.
    pub credential_id: String,
    /// The authenticator model. Default `fido_aaguid`.
    pub aaguid: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            username: "sub".into(),
            groups: "groups".into(),
            amr: "amr".into(),
            auth_time: "auth_time".into(),
            credential_id: "fido_cred_id".into(),
            aaguid: "fido_aaguid".into(),
        }
    }
}

/// One trusted token issuer (an entry of the settings' `issuers:` list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value of this issuer's tokens.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// JWKS documents on disk (public keys, each with a `kid`). Several files and several keys
    /// per file are allowed, so keys can rotate with an overlap.
    pub jwks: Vec<PathBuf>,
    /// The algorithms this issuer's keys may use. A key gets those that fit its type (and only
    /// its own `alg` when the JWK names one).
    pub algorithms: Vec<TokenAlgorithm>,
    /// The oldest a token may be, counted from `iat`. Default `1h`.
    #[serde(default = "default_max_age", with = "crate::settings::human_duration")]
    pub max_age: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default `30s`, at most `5m`.
    #[serde(default = "default_leeway", with = "crate::settings::human_duration")]
    pub leeway: Duration,
    /// Claim names.
    #[serde(default)]
    pub claims: ClaimNames,
}

fn default_max_age() -> Duration {
    Duration::from_secs(3600)
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

impl IssuerConfig {
    /// Checks one issuer's configuration; the message names the issuer and the field.
    pub fn validate(&self) -> Result<(), String> {
        let who = &self.issuer;
        if who.trim().is_empty() {
            return Err("issuers: issuer must not be empty".into());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(format!(
                "issuers[{who}]: audiences must list at least one non-empty audience"
            ));
        }
        if self.jwks.is_empty() {
            return Err(format!(
                "issuers[{who}]: jwks must list at least one JWKS file"
            ));
        }
        if self.algorithms.is_empty() {
            return Err(format!(
                "issuers[{who}]: algorithms must list at least one of RS256, PS256, ES256, EdDSA"
            ));
        }
        let unique: BTreeSet<_> = self.algorithms.iter().collect();
        if unique.len() != self.algorithms.len() {
            return Err(format!("issuers[{who}]: algorithms lists one twice"));
        }
        if self.max_age.is_zero() {
            return Err(format!("issuers[{who}]: maxAge must be positive"));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(format!("issuers[{who}]: leeway must be at most 5m"));
        }
        let names = &self.claims;
        for (field, name) in [
            ("username", &names.username),
            ("groups", &names.groups),
            ("amr", &names.amr),
            ("authTime", &names.auth_time),
            ("credentialId", &names.credential_id),
            ("aaguid", &names.aaguid),
        ] {
            if name.trim().is_empty() {
                return Err(format!("issuers[{who}]: claims.{field} must not be empty"));
            }
        }
        Ok(())
    }
}

/// Checks a whole `issuers:` list: each entry, and no issuer listed twice.
pub fn validate_issuers(issuers: &[IssuerConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for issuer in issuers {
        issuer.validate()?;
        if !seen.insert(issuer.issuer.as_str()) {
            return Err(format!("issuers[{}]: listed twice", issuer.issuer));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a bearer token was refused. Every variant answers HTTP 401; [`TokenError::code`] is a
/// stable identifier for logs and metrics, the message is for people. Neither contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer …` header was sent.
    #[error("no bearer token: send Authorization: Bearer <token>")]
    Missing,
    /// The Authorization header uses another scheme than Bearer.
    #[error("the Authorization header is not a Bearer token")]
    NotBearer,
    /// The server trusts no issuer, so no bearer token can be accepted.
    #[error("bearer tokens are not accepted: no token issuer is configured")]
    NoIssuers,
    /// The token is longer than the size limit.
    #[error("the token is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The token's length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a JWS compact JWT (wrong shape, not base64url, not JSON).
    #[error("not a signed JWT: {0}")]
    Malformed(&'static str),
    /// The header says `alg: none` (an unsigned token).
    #[error("unsigned tokens (alg none) are never accepted")]
    AlgNone,
    /// The header names a symmetric (HMAC) algorithm; with public keys that is the
    /// algorithm-confusion attack.
    #[error(
        "symmetric algorithm {alg} is never accepted; tokens must be signed with an issuer's private key"
    )]
    SymmetricAlgorithm {
        /// The header's `alg` (shortened).
        alg: String,
    },
    /// The header names an algorithm fidomesh does not support at all.
    #[error("unsupported algorithm {alg}; supported: RS256, PS256, ES256, EdDSA")]
    UnsupportedAlgorithm {
        /// The header's `alg` (shortened).
        alg: String,
    },
    /// The algorithm is supported but not allowed for the selected key (its type, its JWK `alg`,
    /// or the issuer's algorithm list).
    #[error("algorithm {alg} is not allowed for key {kid} of issuer {issuer}")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
        /// The key ID.
        kid: String,
        /// The issuer.
        issuer: String,
    },
    /// The header lists `crit` extensions, which fidomesh does not understand.
    #[error("critical header extensions (crit) are not supported")]
    CriticalHeader,
    /// The `iss` claim names no configured issuer.
    #[error("issuer {issuer} is not trusted")]
    UnknownIssuer {
        /// The token's `iss` (shortened).
        issuer: String,
    },
    /// The header has no `kid`, so no pinned key can be selected.
    #[error("the token header has no kid; keys are selected by kid")]
    MissingKid,
    /// No key of the token's issuer has this `kid` (and no other issuer's key either).
    #[error("issuer {issuer} has no key {kid}")]
    UnknownKid {
        /// The header's `kid` (shortened).
        kid: String,
        /// The issuer.
        issuer: String,
    },
    /// The `kid` belongs to another configured issuer, not to the token's `iss`.
    #[error("key {kid} belongs to another issuer than {issuer}")]
    KidOfOtherIssuer {
        /// The header's `kid` (shortened).
        kid: String,
        /// The token's issuer.
        issuer: String,
    },
    /// The signature part is not base64url.
    #[error("the signature is not base64url")]
    MalformedSignature,
    /// The signature does not verify with the selected key: the header, the payload or the
    /// signature was changed, or another key signed it.
    #[error("the signature does not verify with key {kid} of issuer {issuer}")]
    BadSignature {
        /// The key ID.
        kid: String,
        /// The issuer.
        issuer: String,
    },
    /// The pinned key cannot be used by the crypto backend (a broken JWKS entry).
    #[error("key {kid} of issuer {issuer} is not usable: {detail}")]
    KeyUnusable {
        /// The key ID.
        kid: String,
        /// The issuer.
        issuer: String,
        /// What the crypto backend said.
        detail: String,
    },
    /// A required claim (`iss`, `aud`, `exp`, `iat`, the username claim) is absent.
    #[error("the token has no {claim} claim")]
    MissingClaim {
        /// The claim's name.
        claim: String,
    },
    /// A claim has the wrong type or an impossible value.
    #[error("the {claim} claim is invalid: {why}")]
    InvalidClaim {
        /// The claim's name.
        claim: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `aud` names none of the issuer's audiences.
    #[error("the token's audience is not one of {expected}")]
    WrongAudience {
        /// The accepted audiences, comma-separated.
        expected: String,
    },
    /// `exp` has passed (beyond the leeway).
    #[error("the token expired at {expired_at}")]
    Expired {
        /// When it expired (RFC 3339).
        expired_at: String,
    },
    /// `nbf` is still in the future (beyond the leeway).
    #[error("the token is not valid before {not_before}")]
    NotYetValid {
        /// Its `nbf` (RFC 3339).
        not_before: String,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("the token claims to be issued in the future, at {issued_at}")]
    IssuedInFuture {
        /// Its `iat` (RFC 3339).
        issued_at: String,
    },
    /// The token was issued longer ago than the issuer's maximum age.
    #[error("the token was issued at {issued_at}, longer ago than the maximum age of {max_age}")]
    TooOld {
        /// Its `iat` (RFC 3339).
        issued_at: String,
        /// The issuer's maximum age (humantime).
        max_age: String,
    },
}

impl TokenError {
    /// A stable identifier for logs, metrics and the 401 answer's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "token-missing",
            Self::NotBearer => "token-not-bearer",
            Self::NoIssuers => "token-no-issuers",
            Self::TooLarge { .. } => "token-too-large",
            Self::Malformed(_) => "token-malformed",
            Self::AlgNone => "token-alg-none",
            Self::SymmetricAlgorithm { .. } => "token-alg-symmetric",
            Self::UnsupportedAlgorithm { .. } => "token-alg-unsupported",
            Self::AlgorithmNotAllowed { .. } => "token-alg-not-allowed",
            Self::CriticalHeader => "token-crit-unsupported",
            Self::UnknownIssuer { .. } => "token-issuer-unknown",
            Self::MissingKid => "token-kid-missing",
            Self::UnknownKid { .. } => "token-kid-unknown",
            Self::KidOfOtherIssuer { .. } => "token-kid-other-issuer",
            Self::MalformedSignature => "token-signature-malformed",
            Self::BadSignature { .. } => "token-signature-invalid",
            Self::KeyUnusable { .. } => "token-key-unusable",
            Self::MissingClaim { .. } => "token-claim-missing",
            Self::InvalidClaim { .. } => "token-claim-invalid",
            Self::WrongAudience { .. } => "token-audience-mismatch",
            Self::Expired { .. } => "token-expired",
            Self::NotYetValid { .. } => "token-not-yet-valid",
            Self::IssuedInFuture { .. } => "token-issued-in-future",
            Self::TooOld { .. } => "token-too-old",
        }
    }

    /// The `WWW-Authenticate` header value for the 401 answer (RFC 6750 section 3).
    pub fn www_authenticate(&self) -> String {
        match self {
            Self::Missing | Self::NotBearer => "Bearer realm=\"fidomesh\"".to_string(),
            other => {
                // A quoted-string of visible ASCII (HTTP header values allow nothing else).
                let description: String = other
                    .to_string()
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => '\'',
                        ' ' => ' ',
                        c if c.is_ascii_graphic() => c,
                        _ => '?',
                    })
                    .collect();
                format!(
                    "Bearer realm=\"fidomesh\", error=\"invalid_token\", error_description=\"{description}\""
                )
            }
        }
    }
}

/// Why a key set could not be built (configuration, files, JWKS documents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The issuer configuration is invalid.
    #[error("token issuers: {0}")]
    Config(String),
    /// A JWKS file could not be read.
    #[error("issuer {issuer}: cannot read JWKS file {path}: {detail}")]
    Read {
        /// The issuer.
        issuer: String,
        /// The file.
        path: String,
        /// The I/O error.
        detail: String,
    },
    /// A JWKS document is not JSON of the shape `{"keys": [...]}`.
    #[error("issuer {issuer}: JWKS {source_name} is not a JWK set: {detail}")]
    Parse {
        /// The issuer.
        issuer: String,
        /// The file (or `#index` for texts given directly).
        source_name: String,
        /// What is wrong.
        detail: String,
    },
    /// Two different keys of one issuer share a `kid`.
    #[error("issuer {issuer}: two different keys have kid {kid}")]
    DuplicateKid {
        /// The issuer.
        issuer: String,
        /// The key ID.
        kid: String,
    },
    /// None of an issuer's keys can be used (each left out for a reason).
    #[error("issuer {issuer}: no usable key ({reasons})")]
    NoUsableKeys {
        /// The issuer.
        issuer: String,
        /// Why each key was left out.
        reasons: String,
    },
    /// jsonwebtoken has no crypto backend (exactly one of its crypto features must be on).
    #[error("jsonwebtoken has no crypto provider")]
    NoCryptoProvider,
}

// ---------------------------------------------------------------------------------------------
// Key sets
// ---------------------------------------------------------------------------------------------

/// The type of a pinned public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, at least 2048 bits.
    Rsa,
    /// EC on P-256.
    EcP256,
    /// OKP on Ed25519.
    Ed25519,
}

/// A JWK left out of a key set, and why (for the log at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The issuer.
    pub issuer: String,
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// Why it was left out.
    pub reason: String,
}

struct PinnedKey {
    key: DecodingKey,
    algorithms: Vec<TokenAlgorithm>,
    // The public key material, to tell a harmless duplicate from a conflicting one.
    material: String,
}

struct IssuerKeys {
    config: IssuerConfig,
    keys: HashMap<String, PinnedKey>,
    // One jsonwebtoken validation per allowed algorithm: signature, `iss` and `aud`.
    validations: Vec<(TokenAlgorithm, Validation)>,
}

/// Verifies bearer tokens against the pinned keys of the configured issuers. Pure: built from
/// the issuer configuration and the JWKS texts; the clock is a parameter of [`Self::verify`].
pub struct TokenVerifier {
    issuers: Vec<IssuerKeys>,
    max_token_bytes: usize,
    fingerprint: [u8; 32],
    skipped: Vec<SkippedKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| (i.config.issuer.as_str(), i.keys.len()))
                    .collect::<Vec<_>>(),
            )
            .field("max_token_bytes", &self.max_token_bytes)
            .field("fingerprint", &self.fingerprint_hex())
            .finish()
    }
}

/// A token that verified, with what the cache needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The requester claims.
    pub claims: Claims,
    /// The issuer.
    pub issuer: String,
    /// The key that verified it.
    pub kid: String,
    /// The algorithm.
    pub algorithm: TokenAlgorithm,
    /// Its `exp`.
    pub expires_at: Timestamp,
    /// The first instant it verifies at (`nbf` and `iat`, less the leeway).
    pub valid_from: Timestamp,
    /// The last instant it verifies at (`exp`, or `iat` + maximum age, plus the leeway).
    pub valid_until: Timestamp,
}

/// Reads an issuer's JWKS files (in the order listed). The only I/O of this module.
pub fn load_jwks_files(issuer: &IssuerConfig) -> Result<Vec<String>, JwksError> {
    issuer
        .jwks
        .iter()
        .map(|path| {
            let read_error = |detail: String| JwksError::Read {
                issuer: issuer.issuer.clone(),
                path: path.display().to_string(),
                detail,
            };
            let size = std::fs::metadata(path)
                .map_err(|e| read_error(e.to_string()))?
                .len();
            if size > MAX_JWKS_BYTES {
                return Err(read_error(format!(
                    "{size} bytes, over the limit of {MAX_JWKS_BYTES}"
                )));
            }
            std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))
        })
        .collect()
}

impl TokenVerifier {
    /// A verifier that trusts no issuer: every token is refused with [`TokenError::NoIssuers`].
    pub fn empty() -> Self {
        Self {
            issuers: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            fingerprint: *blake3::hash(b"fidomesh token verifier: no issuers").as_bytes(),
            skipped: Vec::new(),
        }
    }

    /// Builds the key sets: each issuer with the texts of its JWKS documents (in the order of
    /// `IssuerConfig::jwks`). Keys that cannot be used (no `kid`, symmetric, encryption-only,
    /// wrong curve, RSA under 2048 bits, no allowed algorithm) are left out and listed in
    /// [`Self::skipped_keys`]; an issuer left with no key at all is an error.
    pub fn new(issuers: Vec<(IssuerConfig, Vec<String>)>) -> Result<Self, JwksError> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(JwksError::NoCryptoProvider);
        }
        let configs: Vec<IssuerConfig> = issuers.iter().map(|(c, _)| c.clone()).collect();
        validate_issuers(&configs).map_err(JwksError::Config)?;

        let mut hasher = blake3::Hasher::new();
        hasher.update(b"fidomesh token verifier v1");
        let mut skipped = Vec::new();
        let mut built = Vec::with_capacity(issuers.len());
        for (config, texts) in issuers {
            let config_json = serde_json::to_vec(&config).unwrap_or_default();
            hasher.update(&(config_json.len() as u64).to_le_bytes());
            hasher.update(&config_json);
            let mut keys: HashMap<String, PinnedKey> = HashMap::new();
            let mut reasons = Vec::new();
            for (index, text) in texts.iter().enumerate() {
                hasher.update(&(text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
                let source_name = config
                    .jwks
                    .get(index)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| format!("#{index}"));
                for entry in parse_jwks(text).map_err(|detail| JwksError::Parse {
                    issuer: config.issuer.clone(),
                    source_name,
                    detail,
                })? {
                    match pin_key(&entry, &config.algorithms) {
                        Ok((kid, key)) => match keys.get(&kid) {
                            Some(existing) if existing.material == key.material => {}
                            Some(_) => {
                                return Err(JwksError::DuplicateKid {
                                    issuer: config.issuer.clone(),
                                    kid,
                                });
                            }
                            None => {
                                keys.insert(kid, key);
                            }
                        },
                        Err(reason) => {
                            let kid = entry.get("kid").and_then(Value::as_str).map(shown);
                            reasons.push(format!(
                                "{}: {reason}",
                                kid.as_deref().unwrap_or("(no kid)")
                            ));
                            skipped.push(SkippedKey {
                                issuer: config.issuer.clone(),
                                kid,
                                reason,
                            });
                        }
                    }
                }
            }
            if keys.is_empty() {
                return Err(JwksError::NoUsableKeys {
                    issuer: config.issuer.clone(),
                    reasons: if reasons.is_empty() {
                        "the JWK sets are empty".to_string()
                    } else {
                        reasons.join("; ")
                    },
                });
            }
            let validations = config
                .algorithms
                .iter()
                .map(|alg| {
                    let mut v = Validation::new(alg.jsonwebtoken());
                    // Time is checked here against the injected clock, and required claims
                    // with their own reasons; jsonwebtoken checks signature, `iss` and `aud`.
                    v.required_spec_claims = HashSet::new();
                    v.validate_exp = false;
                    v.validate_nbf = false;
                    v.leeway = 0;
                    v.validate_aud = true;
                    v.set_audience(&config.audiences);
                    v.set_issuer(&[config.issuer.as_str()]);
                    (*alg, v)
                })
                .collect();
            built.push(IssuerKeys {
                config,
                keys,
                validations,
            });
        }
        Ok(Self {
            issuers: built,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            fingerprint: *hasher.finalize().as_bytes(),
            skipped,
        })
    }

    /// Reads every issuer's JWKS files ([`load_jwks_files`]) and builds the key sets.
    pub fn from_files(issuers: &[IssuerConfig]) -> Result<Self, JwksError> {
        let sources = issuers
            .iter()
            .map(|i| Ok((i.clone(), load_jwks_files(i)?)))
            .collect::<Result<Vec<_>, JwksError>>()?;
        Self::new(sources)
    }

    /// The same verifier with another token size limit.
    pub fn with_max_token_bytes(mut self, limit: usize) -> Self {
        self.max_token_bytes = limit;
        self
    }

    /// The token size limit in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// A digest of the configuration and every JWKS text: equal digests, equal key sets.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// [`Self::fingerprint`] as hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    /// The keys left out at load time, and why (log them).
    pub fn skipped_keys(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The configured issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerConfig> {
        self.issuers.iter().map(|i| &i.config)
    }

    /// The key IDs pinned for an issuer, sorted.
    pub fn key_ids(&self, issuer: &str) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .issuers
            .iter()
            .filter(|i| i.config.issuer == issuer)
            .flat_map(|i| i.keys.keys().map(String::as_str))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Verifies a token at `now` and maps its claims into the requester's [`Claims`].
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, TokenError> {
        self.verify_token(token, now).map(|v| v.claims)
    }

    /// Verifies a token at `now`, with the details the cache and the log need.
    pub fn verify_token(&self, token: &str, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge {
                size: token.len(),
                limit: self.max_token_bytes,
            });
        }
        if self.issuers.is_empty() {
            return Err(TokenError::NoIssuers);
        }
        let (header_b64, payload_b64, signature_b64) = split_compact(token)?;

        // The header decides which key and algorithm may verify the token.
        let header = decode_object(header_b64).ok_or(TokenError::Malformed(
            "the header is not base64url-encoded JSON",
        ))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(_) => return Err(TokenError::Malformed("the header's alg is not a string")),
            None => return Err(TokenError::Malformed("the header has no alg")),
        };
        let algorithm = classify_alg(alg)?;
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }

        // The issuer named in the (not yet verified) payload selects the key set; the signature
        // check below then proves the whole payload, `iss` included.
        let unverified = decode_object(payload_b64).ok_or(TokenError::Malformed(
            "the payload is not base64url-encoded JSON",
        ))?;
        let iss = match unverified.get("iss") {
            Some(Value::String(iss)) => iss.as_str(),
            Some(_) => {
                return Err(TokenError::InvalidClaim {
                    claim: "iss".into(),
                    why: "not a string",
                });
            }
            None => {
                return Err(TokenError::MissingClaim {
                    claim: "iss".into(),
                });
            }
        };
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| TokenError::UnknownIssuer { issuer: shown(iss) })?;
        let issuer_name = issuer.config.issuer.clone();
        let kid = match header.get("kid") {
            Some(Value::String(kid)) => kid.as_str(),
            Some(_) => return Err(TokenError::Malformed("the header's kid is not a string")),
            None => return Err(TokenError::MissingKid),
        };
        let Some(key) = issuer.keys.get(kid) else {
            let elsewhere = self
                .issuers
                .iter()
                .any(|i| i.config.issuer != issuer.config.issuer && i.keys.contains_key(kid));
            return Err(if elsewhere {
                TokenError::KidOfOtherIssuer {
                    kid: shown(kid),
                    issuer: issuer_name,
                }
            } else {
                TokenError::UnknownKid {
                    kid: shown(kid),
                    issuer: issuer_name,
                }
            });
        };
        let not_allowed = || TokenError::AlgorithmNotAllowed {
            alg: algorithm.as_str().to_string(),
            kid: shown(kid),
            issuer: issuer_name.clone(),
        };
        if !key.algorithms.contains(&algorithm) {
            return Err(not_allowed());
        }
        let validation = issuer
            .validations
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, v)| v)
            .ok_or_else(not_allowed)?;
        if signature_b64.is_empty() {
            return Err(TokenError::MalformedSignature);
        }

        // Signature (and `iss`, `aud`) with jsonwebtoken.
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature {
                    kid: shown(kid),
                    issuer: issuer_name.clone(),
                },
                ErrorKind::Base64(_) => TokenError::MalformedSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience {
                    expected: issuer.config.audiences.join(", "),
                },
                ErrorKind::InvalidIssuer => TokenError::UnknownIssuer { issuer: shown(iss) },
                ErrorKind::InvalidClaimFormat(claim) => TokenError::InvalidClaim {
                    claim,
                    why: "wrong type",
                },
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => not_allowed(),
                ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                    TokenError::Malformed("the token does not decode")
                }
                other => TokenError::KeyUnusable {
                    kid: shown(kid),
                    issuer: issuer_name.clone(),
                    detail: format!("{other:?}"),
                },
            })?;
        let claims = data.claims;
        check_claims(&issuer.config, &claims, now).map(|times| VerifiedToken {
            claims: map_claims(&issuer.config.claims, &claims),
            issuer: issuer_name.clone(),
            kid: kid.to_string(),
            algorithm,
            expires_at: times.expires_at,
            valid_from: times.valid_from,
            valid_until: times.valid_until,
        })
    }
}

struct Times {
    expires_at: Timestamp,
    valid_from: Timestamp,
    valid_until: Timestamp,
}

// The claim checks after the signature verified, each with its own reason.
fn check_claims(
    config: &IssuerConfig,
    claims: &Map<String, Value>,
    now: Timestamp,
) -> Result<Times, TokenError> {
    // `aud`: jsonwebtoken refused a mismatch already; a missing `aud` is refused here.
    let audiences: Vec<&str> = match claims.get("aud") {
        None | Some(Value::Null) => {
            return Err(TokenError::MissingClaim {
                claim: "aud".into(),
            });
        }
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: "aud".into(),
                why: "not a string or a list of strings",
            });
        }
    };
    if !audiences
        .iter()
        .any(|a| config.audiences.iter().any(|c| c == a))
    {
        return Err(TokenError::WrongAudience {
            expected: config.audiences.join(", "),
        });
    }

    let leeway = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
    let max_age = i64::try_from(config.max_age.as_secs()).unwrap_or(i64::MAX);
    let now_s = now.as_second();
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingClaim {
        claim: "exp".into(),
    })?;
    if now_s > exp.saturating_add(leeway) {
        return Err(TokenError::Expired {
            expired_at: rfc3339(exp),
        });
    }
    let nbf = numeric_date(claims, "nbf")?;
    if let Some(nbf) = nbf
        && now_s < nbf.saturating_sub(leeway)
    {
        return Err(TokenError::NotYetValid {
            not_before: rfc3339(nbf),
        });
    }
    let iat = numeric_date(claims, "iat")?.ok_or(TokenError::MissingClaim {
        claim: "iat".into(),
    })?;
    if iat > now_s.saturating_add(leeway) {
        return Err(TokenError::IssuedInFuture {
            issued_at: rfc3339(iat),
        });
    }
    let oldest = iat.saturating_add(max_age).saturating_add(leeway);
    if now_s > oldest {
        return Err(TokenError::TooOld {
            issued_at: rfc3339(iat),
            max_age: humantime::format_duration(config.max_age).to_string(),
        });
    }
    let username = &config.claims.username;
    match claims.get(username) {
        None | Some(Value::Null) => {
            return Err(TokenError::MissingClaim {
                claim: username.clone(),
            });
        }
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::String(_)) => {
            return Err(TokenError::InvalidClaim {
                claim: username.clone(),
                why: "empty",
            });
        }
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: username.clone(),
                why: "not a string",
            });
        }
    }
    let groups = &config.claims.groups;
    match claims.get(groups) {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: groups.clone(),
                why: "not a string or a list of strings",
            });
        }
    }
    let from = nbf.unwrap_or(iat).max(iat).saturating_sub(leeway);
    let until = exp.saturating_add(leeway).min(oldest);
    Ok(Times {
        expires_at: ts(exp),
        valid_from: ts(from),
        valid_until: ts(until),
    })
}

// The requester facts; malformed optional facts are "not proven", never an error.
fn map_claims(names: &ClaimNames, claims: &Map<String, Value>) -> Claims {
    let mut not_proven = Vec::new();
    let username = claims
        .get(&names.username)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    let groups = match claims.get(&names.groups) {
        Some(Value::String(g)) => vec![g.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut single = |name: &str, what: &str| -> Option<String> {
        match claims.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(Value::String(_)) => {
                not_proven.push(format!("{what} is empty"));
                None
            }
            Some(_) => {
                not_proven.push(format!("{what} is not a string"));
                None
            }
        }
    };
    let credential_id = single(&names.credential_id, "credential ID");
    let aaguid = single(&names.aaguid, "AAGUID");
    let amr = match claims.get(&names.amr) {
        None | Some(Value::Null) => Vec::new(),
        // Some providers flatten the list into one space- or comma-separated string.
        Some(Value::String(s)) => s
            .split([' ', ','])
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => {
            if !items.iter().all(Value::is_string) {
                not_proven.push("amr has entries that are not strings".to_string());
            }
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        }
        Some(_) => {
            not_proven.push("amr is not a list of strings".to_string());
            Vec::new()
        }
    };
    let auth_time = match claims.get(&names.auth_time) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => seconds_of(n).or_else(|| {
            not_proven.push("auth time is not a number of seconds".to_string());
            None
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok().or_else(|| {
            not_proven.push("auth time is not a number of seconds".to_string());
            None
        }),
        Some(_) => {
            not_proven.push("auth time is not a number of seconds".to_string());
            None
        }
    };
    Claims {
        username,
        groups,
        credential_id,
        aaguid,
        amr,
        auth_time,
        not_proven,
    }
}

// A NumericDate claim (RFC 7519): a JSON number of seconds, fractions rounded down.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => seconds_of(n).map(Some).ok_or(TokenError::InvalidClaim {
            claim: name.to_string(),
            why: "not a representable number of seconds",
        }),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: name.to_string(),
            why: "not a number of seconds",
        }),
    }
}

fn seconds_of(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Within the range jiff can represent, so the result is always a valid instant.
    (f.is_finite() && (-1.0e11..=1.0e11).contains(&f)).then(|| f.floor() as i64)
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(if seconds < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn rfc3339(seconds: i64) -> String {
    match Timestamp::from_second(seconds) {
        Ok(t) => t.to_string(),
        Err(_) => format!("{seconds} (Unix seconds)"),
    }
}

fn split_compact(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        (Some(_), Some(_), Some(_), None) => {
            Err(TokenError::Malformed("the header or the payload is empty"))
        }
        _ if token.split('.').count() == 5 => Err(TokenError::Malformed(
            "encrypted tokens (JWE) are not accepted",
        )),
        _ => Err(TokenError::Malformed(
            "expected three base64url parts separated by dots",
        )),
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice::<Map<String, Value>>(&bytes).ok()
}

fn classify_alg(alg: &str) -> Result<TokenAlgorithm, TokenError> {
    if let Some(a) = TokenAlgorithm::from_jose(alg) {
        return Ok(a);
    }
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    if alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
        return Err(TokenError::SymmetricAlgorithm { alg: shown(alg) });
    }
    Err(TokenError::UnsupportedAlgorithm { alg: shown(alg) })
}

/// An attacker-chosen string, made safe for messages and logs: at most 64 characters, printable
/// ASCII without quotes or backslashes.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

fn parse_jwks(text: &str) -> Result<Vec<Map<String, Value>>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "expected an object with a \"keys\" list".to_string())?;
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            k.as_object()
                .cloned()
                .ok_or_else(|| format!("keys[{i}] is not an object"))
        })
        .collect()
}

fn b64_len(jwk: &Map<String, Value>, member: &str) -> Result<(String, Vec<u8>), String> {
    let text = jwk
        .get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no \"{member}\""))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("\"{member}\" is not base64url"))?;
    Ok((text.to_string(), bytes))
}

// One JWK into a pinned key, or the reason it is left out.
fn pin_key(
    jwk: &Map<String, Value>,
    allowed: &[TokenAlgorithm],
) -> Result<(String, PinnedKey), String> {
    let kid = match jwk.get("kid") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        _ => return Err("no kid (keys are selected by kid)".into()),
    };
    if let Some(usage) = jwk.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err("not a signature key (use is not \"sig\")".into());
    }
    if let Some(ops) = jwk.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")))
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
    let (kind, key, material) = match kty {
        "RSA" => {
            let (n_text, n) = b64_len(jwk, "n")?;
            let (e_text, e) = b64_len(jwk, "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of about {bits} bits, under {MIN_RSA_BITS}"
                ));
            }
            if e.is_empty() {
                return Err("empty RSA exponent".into());
            }
            (
                KeyKind::Rsa,
                DecodingKey::from_rsa_raw_components(&n, &e),
                format!("RSA:{n_text}:{e_text}"),
            )
        }
        "EC" if crv == "P-256" => {
            let (x_text, x) = b64_len(jwk, "x")?;
            let (y_text, y) = b64_len(jwk, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes each".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                KeyKind::EcP256,
                DecodingKey::from_ec_der(&point),
                format!("EC:{x_text}:{y_text}"),
            )
        }
        "EC" => {
            return Err(format!(
                "EC curve {} is not supported (P-256 only)",
                shown(crv)
            ));
        }
        "OKP" if crv == "Ed25519" => {
            let (x_text, x) = b64_len(jwk, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 public keys are 32 bytes".into());
            }
            (
                KeyKind::Ed25519,
                DecodingKey::from_ed_der(&x),
                format!("OKP:{x_text}"),
            )
        }
        "OKP" => {
            return Err(format!(
                "OKP curve {} is not supported (Ed25519 only)",
                shown(crv)
            ));
        }
        "oct" => return Err("symmetric keys are never accepted".into()),
        other => return Err(format!("key type {} is not supported", shown(other))),
    };
    let algorithms: Vec<TokenAlgorithm> = match jwk.get("alg") {
        None | Some(Value::Null) => allowed.iter().copied().filter(|a| a.fits(kind)).collect(),
        Some(Value::String(alg)) => match TokenAlgorithm::from_jose(alg) {
            Some(a) if !a.fits(kind) => {
                return Err(format!("its alg {a} does not fit its key type"));
            }
            Some(a) if !allowed.contains(&a) => {
                return Err(format!("its alg {a} is not in the issuer's algorithms"));
            }
            Some(a) => vec![a],
            None => return Err(format!("its alg {} is not supported", shown(alg))),
        },
        Some(_) => return Err("alg is not a string".into()),
    };
    if algorithms.is_empty() {
        return Err("none of the issuer's algorithms fits its key type".into());
    }
    Ok((
        kid,
        PinnedKey {
            key,
            algorithms,
            material,
        },
    ))
}

/// Takes the token out of an `Authorization` header value (`Bearer <token>`, scheme in any case).
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, TokenError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(TokenError::Missing);
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::NotBearer);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(token)
}

// ---------------------------------------------------------------------------------------------
// Cache of verified tokens
// ---------------------------------------------------------------------------------------------

/// The longest a verified token stays cached, whatever its `exp`.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

struct CachedToken {
    verifier: [u8; 32],
    valid_from: i64,
    valid_until: i64,
    ttl: Duration,
    claims: Claims,
}

struct UntilTokenEnds;

impl moka::Expiry<[u8; 32], Arc<CachedToken>> for UntilTokenEnds {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<CachedToken>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &[u8; 32],
        value: &Arc<CachedToken>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Verified tokens by BLAKE3 digest of the token (the token itself is not kept), each until it
/// stops being valid. An entry answers only for the key set ([`TokenVerifier::fingerprint`])
/// that verified it and only inside its validity window at the caller's `now`, so cached and
/// uncached answers are equal; failures are never cached.
pub struct VerifiedTokenCache {
    entries: moka::sync::Cache<[u8; 32], Arc<CachedToken>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for VerifiedTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("entries", &self.entries.entry_count())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl VerifiedTokenCache {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilTokenEnds)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Verifies a token through the cache.
    pub fn verify(
        &self,
        verifier: &TokenVerifier,
        token: &str,
        now: Timestamp,
    ) -> Result<Claims, TokenError> {
        if token.len() > verifier.max_token_bytes {
            return Err(TokenError::TooLarge {
                size: token.len(),
                limit: verifier.max_token_bytes,
            });
        }
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let at = now.as_second();
        if let Some(entry) = self.entries.get(&key)
            && entry.verifier == verifier.fingerprint
            && (entry.valid_from..=entry.valid_until).contains(&at)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry.claims.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        match verifier.verify_token(token, now) {
            Ok(v) => {
                let valid_until = v.valid_until.as_second();
                let left = u64::try_from(valid_until.saturating_sub(at)).unwrap_or(0);
                let ttl = Duration::from_secs(left).min(MAX_CACHE_TTL);
                self.entries.insert(
                    key,
                    Arc::new(CachedToken {
                        verifier: verifier.fingerprint,
                        valid_from: v.valid_from.as_second(),
                        valid_until,
                        ttl,
                        claims: v.claims.clone(),
                    }),
                );
                Ok(v.claims)
            }
            Err(e) => {
                self.entries.invalidate(&key);
                Err(e)
            }
        }
    }

    /// Answers served from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Answers that needed a verification.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries held (approximate, as moka counts).
    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Forgets everything (for example after the issuers changed).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}

// ---------------------------------------------------------------------------------------------
// Reloading the JWKS files
// ---------------------------------------------------------------------------------------------

/// A [`TokenVerifier`] whose JWKS files are re-read on [`Self::reload`]; the key set is swapped
/// in atomically, and on any error the previous one stays in service.
pub struct ReloadableVerifier {
    issuers: Vec<IssuerConfig>,
    current: ArcSwap<TokenVerifier>,
}

impl std::fmt::Debug for ReloadableVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableVerifier")
            .field("current", &self.current.load())
            .finish()
    }
}

impl ReloadableVerifier {
    /// Reads the files and builds the first key set (an error here means: no bearer tokens).
    pub fn load(issuers: Vec<IssuerConfig>) -> Result<Self, JwksError> {
        let first = if issuers.is_empty() {
            TokenVerifier::empty()
        } else {
            TokenVerifier::from_files(&issuers)?
        };
        Ok(Self {
            issuers,
            current: ArcSwap::from_pointee(first),
        })
    }

    /// The key set in service.
    pub fn current(&self) -> Arc<TokenVerifier> {
        self.current.load_full()
    }

    /// Re-reads the JWKS files. `Ok(true)` when the key set changed and was swapped in,
    /// `Ok(false)` when nothing changed; on `Err` the previous key set stays in service.
    pub fn reload(&self) -> Result<bool, JwksError> {
        if self.issuers.is_empty() {
            return Ok(false);
        }
        let next = TokenVerifier::from_files(&self.issuers)?
            .with_max_token_bytes(self.current.load().max_token_bytes);
        if next.fingerprint == self.current.load().fingerprint {
            return Ok(false);
        }
        self.current.store(Arc::new(next));
        Ok(true)
    }

    /// The JWKS files to watch (reload when one of them, or its directory, changes).
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        self.issuers
            .iter()
            .flat_map(|i| i.jwks.iter().cloned())
            .collect()
    }
}
