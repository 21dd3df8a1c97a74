//! Bearer tokens for the HTTP API (DESIGN section 4): tokens minted here with real keys of each
//! type (P-256, RSA-2048, Ed25519), verified against pinned JWKS at an exact injected time.
//! Every refusal is checked for its own reason code, and no message ever carries the token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use fidomesh::data::KeyRecord;
use fidomesh::model::{AttestationFormat, CredentialId};
use fidomesh::requester::{Source, resolve};
use fidomesh::settings::Settings;
use fidomesh::token::{
    ClaimNames, IssuerConfig, JwksError, ReloadableVerifier, TokenAlgorithm, TokenError,
    TokenVerifier, VerifiedTokenCache, bearer_token,
};
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const IDP: &str = "https://idp.example.com";
const OTHER_IDP: &str = "https://other-idp.example.com";
const AUD: &str = "fidomesh";
const ALICE_CRED: &str = "pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8";
const YUBIKEY: &str = "ee882879-721c-4913-9775-3dfcce97072a";
const NOW: i64 = 1_796_000_000; // 2026-11-30T00:53:20Z

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

// ------------------------------------------------------------------------------------------
// Builders: keys, JWKS, issuers, tokens
// ------------------------------------------------------------------------------------------

struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

fn mk_es256_key(kid: &str) -> TestKey {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = kp.public_key_raw();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }),
        public_pem: kp.public_key_pem(),
    }
}

fn mk_ed25519_key(kid: &str) -> TestKey {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    TestKey {
        kid: kid.into(),
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": B64.encode(kp.public_key_raw()),
        }),
        public_pem: kp.public_key_pem(),
    }
}

// RSA key generation is slow: one key pair per test binary, shared.
fn rsa_pair() -> &'static rcgen::KeyPair {
    static PAIR: OnceLock<rcgen::KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap())
}

fn mk_rsa_key(kid: &str, alg: Algorithm) -> TestKey {
    use rcgen::PublicKeyData as _;
    use x509_parser::prelude::FromDer as _;
    let kp = rsa_pair();
    let spki_der = kp.subject_public_key_info();
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der).unwrap();
    let x509_parser::public_key::PublicKey::RSA(rsa) = spki.parsed().unwrap() else {
        panic!("not an RSA key");
    };
    let unsigned = |b: &[u8]| {
        B64.encode(
            b.iter()
                .skip_while(|x| **x == 0)
                .copied()
                .collect::<Vec<_>>(),
        )
    };
    TestKey {
        kid: kid.into(),
        alg,
        encoding: EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({
            "kty": "RSA", "kid": kid,
            "n": unsigned(rsa.modulus), "e": unsigned(rsa.exponent),
        }),
        public_pem: kp.public_key_pem(),
    }
}

fn mk_jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn mk_issuer(issuer: &str, algorithms: &[TokenAlgorithm]) -> IssuerConfig {
    IssuerConfig {
        issuer: issuer.into(),
        audiences: vec![AUD.into(), "fidomesh-audit".into()],
        jwks: vec![format!("/etc/fidomesh/jwks/{}.json", issuer.len()).into()],
        algorithms: algorithms.to_vec(),
        max_age: Duration::from_secs(3600),
        leeway: Duration::from_secs(30),
        claims: ClaimNames::default(),
    }
}

const ALL_ALGS: &[TokenAlgorithm] = &[
    TokenAlgorithm::Es256,
    TokenAlgorithm::Rs256,
    TokenAlgorithm::Ps256,
    TokenAlgorithm::EdDsa,
];

fn mk_verifier(keys: &[&TestKey]) -> TokenVerifier {
    TokenVerifier::new(vec![(mk_issuer(IDP, ALL_ALGS), vec![mk_jwks(keys)])]).unwrap()
}

fn mk_claims() -> Value {
    json!({
        "iss": IDP,
        "aud": AUD,
        "sub": "alice@example.com",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 600,
        "groups": ["oncall", "fidomesh:admins"],
        "amr": ["hwk", "user"],
        "auth_time": NOW - 90,
        "fido_cred_id": ALICE_CRED,
        "fido_aaguid": "EE882879-721C-4913-9775-3DFCCE97072A",
    })
}

fn mk_claims_with(changes: Value) -> Value {
    let mut claims = mk_claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn mk_token(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn mk_raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        signature
    )
}

fn es_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| mk_es256_key("idp-es-2026"))
}

// Refused with `code`; the message and the WWW-Authenticate value never carry the token.
fn assert_rejects(verifier: &TokenVerifier, token: &str, code: &str) -> TokenError {
    let err = verifier.verify(token, now()).unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    let text = format!("{err} {err:?} {}", err.www_authenticate());
    for part in token.split('.').filter(|p| p.len() >= 8) {
        assert!(
            !text.contains(part),
            "error shows part of the token: {text}"
        );
    }
    err
}

// ------------------------------------------------------------------------------------------
// Accepted
// ------------------------------------------------------------------------------------------

#[test]
fn accepts_es256() {
    let key = es_key();
    let claims = mk_verifier(&[key])
        .verify(&mk_token(key, &mk_claims()), now())
        .unwrap();
    assert_eq!(claims.username, "alice@example.com");
    assert_eq!(claims.groups, vec!["oncall", "fidomesh:admins"]);
    assert_eq!(claims.amr, vec!["hwk", "user"]);
    assert_eq!(claims.auth_time, Some(NOW - 90));
    assert_eq!(claims.credential_id.as_deref(), Some(ALICE_CRED));
    assert_eq!(
        claims.aaguid.as_deref(),
        Some("EE882879-721C-4913-9775-3DFCCE97072A")
    );
    assert!(claims.not_proven.is_empty(), "{:?}", claims.not_proven);
}

#[test]
fn accepts_rs256() {
    let key = mk_rsa_key("idp-rsa", Algorithm::RS256);
    let v = mk_verifier(&[&key]);
    let verified = v
        .verify_token(&mk_token(&key, &mk_claims()), now())
        .unwrap();
    assert_eq!(verified.algorithm, TokenAlgorithm::Rs256);
    assert_eq!(verified.kid, "idp-rsa");
    assert_eq!(verified.issuer, IDP);
}

#[test]
fn accepts_ps256() {
    let key = mk_rsa_key("idp-rsa", Algorithm::PS256);
    let verified = mk_verifier(&[&key])
        .verify_token(&mk_token(&key, &mk_claims()), now())
        .unwrap();
    assert_eq!(verified.algorithm, TokenAlgorithm::Ps256);
}

#[test]
fn accepts_eddsa() {
    let key = mk_ed25519_key("idp-ed");
    let verified = mk_verifier(&[&key])
        .verify_token(&mk_token(&key, &mk_claims()), now())
        .unwrap();
    assert_eq!(verified.algorithm, TokenAlgorithm::EdDsa);
    assert_eq!(verified.claims.username, "alice@example.com");
}

#[test]
fn accepts_rotated_key_set_during_overlap() {
    let old = mk_es256_key("idp-2026-05");
    let new = mk_es256_key("idp-2026-08");
    let old_token = mk_token(&old, &mk_claims());
    let new_token = mk_token(&new, &mk_claims());

    // Before: only the old key.
    let before = mk_verifier(&[&old]);
    assert!(before.verify(&old_token, now()).is_ok());
    assert_rejects(&before, &new_token, "token-kid-unknown");

    // Overlap: both keys, in one JWKS or split across two files; both tokens verify.
    let overlap = mk_verifier(&[&old, &new]);
    assert_eq!(overlap.key_ids(IDP), vec!["idp-2026-05", "idp-2026-08"]);
    assert!(overlap.verify(&old_token, now()).is_ok());
    assert!(overlap.verify(&new_token, now()).is_ok());
    let mut two_files = mk_issuer(IDP, &[TokenAlgorithm::Es256]);
    two_files.jwks.push("/etc/fidomesh/jwks/next.json".into());
    let split =
        TokenVerifier::new(vec![(two_files, vec![mk_jwks(&[&old]), mk_jwks(&[&new])])]).unwrap();
    assert!(split.verify(&old_token, now()).is_ok());
    assert!(split.verify(&new_token, now()).is_ok());

    // After: the old key is gone, and so are its tokens.
    let after = mk_verifier(&[&new]);
    assert!(after.verify(&new_token, now()).is_ok());
    assert_rejects(&after, &old_token, "token-kid-unknown");
}

#[test]
fn accepts_within_the_leeway_exactly() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    // exp 30 s ago with a 30 s leeway: still valid; 31 s: expired.
    let at_edge = mk_token(key, &mk_claims_with(json!({"exp": NOW - 30})));
    assert!(v.verify(&at_edge, now()).is_ok());
    let past_edge = mk_token(key, &mk_claims_with(json!({"exp": NOW - 31})));
    assert_rejects(&v, &past_edge, "token-expired");
    // nbf 30 s ahead: valid; 31 s: not yet.
    let nbf_edge = mk_token(key, &mk_claims_with(json!({"nbf": NOW + 30})));
    assert!(v.verify(&nbf_edge, now()).is_ok());
    let nbf_past = mk_token(key, &mk_claims_with(json!({"nbf": NOW + 31})));
    assert_rejects(&v, &nbf_past, "token-not-yet-valid");
    // iat exactly max age + leeway ago: valid; one second more: too old.
    let old_edge = mk_token(key, &mk_claims_with(json!({"iat": NOW - 3630})));
    assert!(v.verify(&old_edge, now()).is_ok());
    let too_old = mk_token(key, &mk_claims_with(json!({"iat": NOW - 3631})));
    assert_rejects(&v, &too_old, "token-too-old");
}

#[test]
fn accepts_audience_lists_and_fractional_dates() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    let listed = mk_token(
        key,
        &mk_claims_with(
            json!({"aud": ["someone-else", "fidomesh-audit"], "exp": (NOW + 600) as f64 + 0.5}),
        ),
    );
    let verified = v.verify_token(&listed, now()).unwrap();
    assert_eq!(verified.expires_at.as_second(), NOW + 600);
    // Valid until the earlier of exp + leeway and iat + max age + leeway.
    assert_eq!(verified.valid_until.as_second(), NOW + 630);
    assert_eq!(verified.valid_from.as_second(), NOW - 90);
}

#[test]
fn accepts_configured_claim_names_into_the_requester() {
    let key = es_key();
    let mut issuer = mk_issuer(IDP, &[TokenAlgorithm::Es256]);
    issuer.claims = ClaimNames {
        username: "email".into(),
        groups: "https://fidomesh.io/groups".into(),
        amr: "methods".into(),
        auth_time: "authenticated_at".into(),
        credential_id: "cid".into(),
        aaguid: "model".into(),
    };
    let v = TokenVerifier::new(vec![(issuer, vec![mk_jwks(&[key])])]).unwrap();
    let token = mk_token(
        key,
        &json!({
            "iss": IDP, "aud": AUD, "iat": NOW - 60, "exp": NOW + 600,
            "sub": "0f6c2a", "email": "alice@example.com",
            "https://fidomesh.io/groups": "oncall",
            "methods": "hwk user",
            "authenticated_at": (NOW - 90).to_string(),
            "cid": ALICE_CRED, "model": YUBIKEY,
        }),
    );
    let claims = v.verify(&token, now()).unwrap();
    assert_eq!(claims.username, "alice@example.com");
    assert_eq!(claims.groups, vec!["oncall"]);
    assert_eq!(claims.amr, vec!["hwk", "user"]);
    assert_eq!(claims.auth_time, Some(NOW - 90));

    // The same shape as from userInfo, with `source: "token"`.
    let keys = HashMap::from([(
        CredentialId::parse(ALICE_CRED)
            .unwrap()
            .fingerprint()
            .clone(),
        KeyRecord {
            name: "alice-yubikey".into(),
            holder: "alice@example.com".into(),
            aaguid: YUBIKEY.into(),
            format: AttestationFormat::Packed,
            backup_eligible: false,
            active: true,
        },
    )]);
    let requester = resolve(claims, Source::Token, &keys, &Settings::default(), now());
    assert_eq!(requester.source, Source::Token);
    let facts = requester.authenticator.as_ref().unwrap();
    assert!(facts.hardware_backed && facts.fresh, "{requester:?}");
    assert_eq!(
        serde_json::to_value(&requester).unwrap()["source"],
        json!("token")
    );
}

#[test]
fn accepts_malformed_optional_facts_as_not_proven() {
    let key = es_key();
    let token = mk_token(
        key,
        &mk_claims_with(json!({"fido_cred_id": 42, "auth_time": "soon", "amr": {"x": 1}})),
    );
    let claims = mk_verifier(&[key]).verify(&token, now()).unwrap();
    assert_eq!(claims.credential_id, None);
    assert_eq!(claims.auth_time, None);
    assert!(claims.amr.is_empty());
    assert_eq!(
        claims.not_proven,
        vec![
            "credential ID is not a string",
            "amr is not a list of strings",
            "auth time is not a number of seconds"
        ]
    );
}

#[test]
fn accepts_bearer_headers() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(
        bearer_token(Some("bearer   abc.def.ghi ")),
        Ok("abc.def.ghi")
    );
    assert_eq!(bearer_token(None), Err(TokenError::Missing));
    assert_eq!(bearer_token(Some("Bearer ")), Err(TokenError::Missing));
    assert_eq!(
        bearer_token(Some("Basic YWxpY2U6c2VjcmV0")),
        Err(TokenError::NotBearer)
    );
    assert_eq!(
        TokenError::Missing.www_authenticate(),
        "Bearer realm=\"fidomesh\""
    );
    let expired = TokenError::Expired {
        expired_at: "2026-01-01T00:00:00Z".into(),
    };
    assert_eq!(
        expired.www_authenticate(),
        "Bearer realm=\"fidomesh\", error=\"invalid_token\", error_description=\"the token expired at 2026-01-01T00:00:00Z\""
    );
}

// ------------------------------------------------------------------------------------------
// Rejected, each with its own reason
// ------------------------------------------------------------------------------------------

#[test]
fn rejects_alg_none() {
    let v = mk_verifier(&[es_key()]);
    for alg in ["none", "None", "NONE"] {
        let token = mk_raw_token(&json!({"alg": alg, "kid": es_key().kid}), &mk_claims(), "");
        assert_rejects(&v, &token, "token-alg-none");
    }
}

#[test]
fn rejects_hs256_signed_with_the_public_key() {
    // Algorithm confusion: an HMAC "signature" keyed with the issuer's public key bytes.
    let es = es_key();
    let rsa = mk_rsa_key("idp-rsa", Algorithm::RS256);
    let v = mk_verifier(&[es, &rsa]);
    for (key, secret) in [
        (es, es.public_pem.clone()),
        (&rsa, rsa.public_pem.clone()),
        (es, mk_jwks(&[es])),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &mk_claims(),
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap();
        let err = assert_rejects(&v, &token, "token-alg-symmetric");
        assert_eq!(
            err.to_string(),
            "symmetric algorithm HS256 is never accepted; tokens must be signed with an issuer's private key"
        );
    }
}

#[test]
fn rejects_unknown_kid() {
    let stranger = mk_es256_key("idp-es-2027");
    let v = mk_verifier(&[es_key()]);
    let err = assert_rejects(&v, &mk_token(&stranger, &mk_claims()), "token-kid-unknown");
    assert_eq!(
        err.to_string(),
        "issuer https://idp.example.com has no key idp-es-2027"
    );
}

#[test]
fn rejects_kid_of_another_issuer() {
    let ours = es_key();
    let theirs = mk_es256_key("other-es-1");
    let v = TokenVerifier::new(vec![
        (mk_issuer(IDP, ALL_ALGS), vec![mk_jwks(&[ours])]),
        (mk_issuer(OTHER_IDP, ALL_ALGS), vec![mk_jwks(&[&theirs])]),
    ])
    .unwrap();
    // Signed by the other issuer's key but claiming to come from ours.
    let token = mk_token(&theirs, &mk_claims());
    let err = assert_rejects(&v, &token, "token-kid-other-issuer");
    assert_eq!(
        err.to_string(),
        "key other-es-1 belongs to another issuer than https://idp.example.com"
    );
    // The same token with its own issuer verifies.
    let own = mk_token(&theirs, &mk_claims_with(json!({"iss": OTHER_IDP})));
    assert!(v.verify(&own, now()).is_ok());
}

#[test]
fn rejects_expired() {
    let key = es_key();
    let token = mk_token(key, &mk_claims_with(json!({"exp": NOW - 3600})));
    let err = assert_rejects(&mk_verifier(&[key]), &token, "token-expired");
    assert_eq!(err.to_string(), "the token expired at 2026-11-29T23:53:20Z");
}

#[test]
fn rejects_not_yet_valid() {
    let key = es_key();
    let token = mk_token(key, &mk_claims_with(json!({"nbf": NOW + 300})));
    let err = assert_rejects(&mk_verifier(&[key]), &token, "token-not-yet-valid");
    assert_eq!(
        err.to_string(),
        "the token is not valid before 2026-11-30T00:58:20Z"
    );
}

#[test]
fn rejects_too_old_by_iat() {
    let key = es_key();
    // Still unexpired, but issued two hours ago with a one-hour maximum age.
    let token = mk_token(
        key,
        &mk_claims_with(json!({"iat": NOW - 7200, "nbf": null, "exp": NOW + 3600})),
    );
    let err = assert_rejects(&mk_verifier(&[key]), &token, "token-too-old");
    assert_eq!(
        err.to_string(),
        "the token was issued at 2026-11-29T22:53:20Z, longer ago than the maximum age of 1h"
    );
}

#[test]
fn rejects_issued_in_the_future() {
    let key = es_key();
    let token = mk_token(key, &mk_claims_with(json!({"iat": NOW + 600, "nbf": null})));
    assert_rejects(&mk_verifier(&[key]), &token, "token-issued-in-future");
}

#[test]
fn rejects_wrong_audience() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    for aud in [json!("kubernetes"), json!(["kubernetes", "grafana"])] {
        let token = mk_token(key, &mk_claims_with(json!({ "aud": aud })));
        let err = assert_rejects(&v, &token, "token-audience-mismatch");
        assert_eq!(
            err.to_string(),
            "the token's audience is not one of fidomesh, fidomesh-audit"
        );
    }
}

#[test]
fn rejects_wrong_issuer() {
    let key = es_key();
    let token = mk_token(
        key,
        &mk_claims_with(json!({"iss": "https://idp.example.com.evil.test"})),
    );
    let err = assert_rejects(&mk_verifier(&[key]), &token, "token-issuer-unknown");
    assert_eq!(
        err.to_string(),
        "issuer https://idp.example.com.evil.test is not trusted"
    );
}

#[test]
fn rejects_tampered_payload() {
    let key = es_key();
    let token = mk_token(key, &mk_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = B64.encode(
        mk_claims_with(json!({"sub": "mallory@example.com", "groups": ["fidomesh:admins"]}))
            .to_string(),
    );
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    let err = assert_rejects(&mk_verifier(&[key]), &tampered, "token-signature-invalid");
    assert_eq!(
        err.to_string(),
        "the signature does not verify with key idp-es-2026 of issuer https://idp.example.com"
    );
}

#[test]
fn rejects_tampered_signature() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    let token = mk_token(key, &mk_claims());
    let (message, signature) = token.rsplit_once('.').unwrap();
    // One character changed in the middle: still base64url, no longer the signature.
    let mut sig: Vec<char> = signature.chars().collect();
    let mid = sig.len() / 2;
    sig[mid] = if sig[mid] == 'A' { 'B' } else { 'A' };
    let flipped = format!("{message}.{}", sig.into_iter().collect::<String>());
    assert_rejects(&v, &flipped, "token-signature-invalid");
    // Truncated: the wrong length for ES256.
    assert_rejects(
        &v,
        &format!("{message}.{}", &signature[..20]),
        "token-signature-invalid",
    );
    // Not base64url at all, or missing.
    assert_rejects(&v, &format!("{message}.%%%%"), "token-signature-malformed");
    assert_rejects(&v, &format!("{message}."), "token-signature-malformed");
}

#[test]
fn rejects_missing_required_claims() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    for claim in ["iss", "aud", "exp", "iat", "sub"] {
        let token = mk_token(key, &mk_claims_with(json!({ claim: null })));
        let err = assert_rejects(&v, &token, "token-claim-missing");
        assert_eq!(err.to_string(), format!("the token has no {claim} claim"));
    }
    // Present but unusable.
    for (changes, claim) in [
        (json!({"exp": "tomorrow"}), "exp"),
        (json!({"sub": ""}), "sub"),
        (json!({"sub": 7}), "sub"),
        (json!({"groups": [1, 2]}), "groups"),
        (json!({"iss": ["a", "b"]}), "iss"),
    ] {
        let token = mk_token(key, &mk_claims_with(changes));
        let err = assert_rejects(&v, &token, "token-claim-invalid");
        assert!(
            err.to_string()
                .starts_with(&format!("the {claim} claim is invalid")),
            "{err}"
        );
    }
}

#[test]
fn rejects_token_over_the_size_limit() {
    let key = es_key();
    let padding = "x".repeat(20_000);
    let big = mk_token(key, &mk_claims_with(json!({ "padding": padding })));
    let v = mk_verifier(&[key]);
    let err = assert_rejects(&v, &big, "token-too-large");
    assert!(
        err.to_string().ends_with("over the limit of 16384 bytes"),
        "{err}"
    );
    // A tighter limit, and the cache refuses before hashing.
    let small = mk_verifier(&[key]).with_max_token_bytes(256);
    let token = mk_token(key, &mk_claims());
    assert_rejects(&small, &token, "token-too-large");
    let cache = VerifiedTokenCache::new(16);
    assert_eq!(
        cache.verify(&small, &token, now()).unwrap_err().code(),
        "token-too-large"
    );
}

#[test]
fn rejects_garbage_that_is_not_a_jwt() {
    let v = mk_verifier(&[es_key()]);
    let header = B64.encode(r#"{"alg":"ES256","kid":"idp-es-2026"}"#);
    for garbage in [
        "",
        "not a token",
        "abc.def",
        "a.b.c.d",
        "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        "!!!.???.***",
        &format!("{}.{}.sig", B64.encode("[1,2,3]"), B64.encode("{}")),
        &format!("{header}.{}.sig", B64.encode("not json")),
        &format!("{header}..sig"),
    ] {
        let err = assert_rejects(&v, garbage, "token-malformed");
        assert!(err.to_string().starts_with("not a signed JWT: "), "{err}");
    }
}

#[test]
fn rejects_algorithm_not_allowed_for_the_key() {
    let es = es_key();
    let rsa = mk_rsa_key("idp-rsa", Algorithm::PS256);
    // The issuer allows ES256 and RS256 only: PS256 with its RSA key is refused.
    let v = TokenVerifier::new(vec![(
        mk_issuer(IDP, &[TokenAlgorithm::Es256, TokenAlgorithm::Rs256]),
        vec![mk_jwks(&[es, &rsa])],
    )])
    .unwrap();
    let err = assert_rejects(&v, &mk_token(&rsa, &mk_claims()), "token-alg-not-allowed");
    assert_eq!(
        err.to_string(),
        "algorithm PS256 is not allowed for key idp-rsa of issuer https://idp.example.com"
    );
    // RS256 named for the EC key: wrong key type.
    let header = json!({"alg": "RS256", "kid": es.kid});
    assert_rejects(
        &v,
        &mk_raw_token(&header, &mk_claims(), "c2lnbmF0dXJl"),
        "token-alg-not-allowed",
    );
    // Something unsupported altogether.
    let header = json!({"alg": "ES512", "kid": es.kid});
    assert_rejects(
        &v,
        &mk_raw_token(&header, &mk_claims(), "c2lnbmF0dXJl"),
        "token-alg-unsupported",
    );
}

#[test]
fn rejects_missing_kid_and_critical_headers() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    let no_kid =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &mk_claims(), &key.encoding).unwrap();
    assert_rejects(&v, &no_kid, "token-kid-missing");
    let crit = json!({"alg": "ES256", "kid": key.kid, "crit": ["exp"]});
    assert_rejects(
        &v,
        &mk_raw_token(&crit, &mk_claims(), "c2lnbmF0dXJl"),
        "token-crit-unsupported",
    );
}

#[test]
fn rejects_everything_without_issuers() {
    let token = mk_token(es_key(), &mk_claims());
    assert_rejects(&TokenVerifier::empty(), &token, "token-no-issuers");
}

#[test]
fn rejects_each_case_with_its_own_code() {
    // One token per refusal above; the codes are all different except where the cause is the
    // same: a tampered payload and a tampered signature are both "the signature does not
    // verify" (nothing can tell which part was changed).
    let es = es_key();
    let v = mk_verifier(&[es]);
    let stranger = mk_es256_key("nobody");
    let with = |changes: Value| mk_token(es, &mk_claims_with(changes));
    let hs = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(es.kid.clone());
        jsonwebtoken::encode(
            &header,
            &mk_claims(),
            &EncodingKey::from_secret(es.public_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let cases = [
        mk_raw_token(&json!({"alg": "none", "kid": es.kid}), &mk_claims(), ""),
        hs,
        mk_token(&stranger, &mk_claims()),
        with(json!({"exp": NOW - 3600})),
        with(json!({"nbf": NOW + 3600})),
        with(json!({"iat": NOW - 7200, "nbf": null, "exp": NOW + 60})),
        with(json!({"aud": "kubernetes"})),
        with(json!({"iss": "https://evil.test"})),
        {
            let t = with(json!({}));
            let (m, s) = t.rsplit_once('.').unwrap();
            format!("{m}.{}", &s[..20])
        },
        with(json!({"exp": null})),
        "x".repeat(20_000),
        "garbage".to_string(),
    ];
    let codes: Vec<&str> = cases
        .iter()
        .map(|t| v.verify(t, now()).unwrap_err().code())
        .collect();
    let unique: BTreeSet<&str> = codes.iter().copied().collect();
    assert_eq!(unique.len(), codes.len(), "{codes:?}");
}

// ------------------------------------------------------------------------------------------
// Key sets
// ------------------------------------------------------------------------------------------

#[test]
fn rejects_unusable_jwks_entries() {
    let es = es_key();
    let mut no_kid = es.jwk.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let jwks = json!({"keys": [
        es.jwk,
        no_kid,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "small", "n": B64.encode([0xC1u8; 128]), "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed-rs", "alg": "RS256", "x": B64.encode([7u8; 32])},
    ]});
    let v = TokenVerifier::new(vec![(mk_issuer(IDP, ALL_ALGS), vec![jwks.to_string()])]).unwrap();
    assert_eq!(v.key_ids(IDP), vec!["idp-es-2026"]);
    let reasons: Vec<String> = v
        .skipped_keys()
        .iter()
        .map(|s| format!("{}: {}", s.kid.as_deref().unwrap_or("-"), s.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            "-: no kid (keys are selected by kid)",
            "hmac: symmetric keys are never accepted",
            "p384: EC curve P-384 is not supported (P-256 only)",
            "small: RSA key of about 1024 bits, under 2048",
            "enc: not a signature key (use is not \"sig\")",
            "ed-rs: its alg RS256 does not fit its key type",
        ]
    );

    // An issuer left with no key, two keys sharing a kid, a file that is not a JWK set.
    let only_bad = json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]});
    let err = TokenVerifier::new(vec![(mk_issuer(IDP, ALL_ALGS), vec![only_bad.to_string()])])
        .unwrap_err();
    assert!(matches!(err, JwksError::NoUsableKeys { .. }), "{err}");
    let twin = mk_es256_key("idp-es-2026");
    let err = TokenVerifier::new(vec![(
        mk_issuer(IDP, ALL_ALGS),
        vec![mk_jwks(&[es, &twin])],
    )])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "issuer https://idp.example.com: two different keys have kid idp-es-2026"
    );
    let err = TokenVerifier::new(vec![(mk_issuer(IDP, ALL_ALGS), vec!["[]".into()])]).unwrap_err();
    assert!(matches!(err, JwksError::Parse { .. }), "{err}");
    // ES256 keys only, but the issuer allows RS256 only.
    let err = TokenVerifier::new(vec![(
        mk_issuer(IDP, &[TokenAlgorithm::Rs256]),
        vec![mk_jwks(&[es])],
    )])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("none of the issuer's algorithms fits its key type"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------------------
// The cache of verified tokens
// ------------------------------------------------------------------------------------------

#[test]
fn accepts_cached_answers_equal_to_uncached() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    let cache = VerifiedTokenCache::new(64);
    let token = mk_token(key, &mk_claims());
    let direct = v.verify(&token, now()).unwrap();
    assert_eq!(cache.verify(&v, &token, now()).unwrap(), direct);
    assert_eq!(cache.verify(&v, &token, now()).unwrap(), direct);
    assert_eq!((cache.hits(), cache.misses()), (1, 1));
    assert_eq!(cache.entry_count(), 1);
}

#[test]
fn rejects_cached_tokens_past_their_validity() {
    let key = es_key();
    let v = mk_verifier(&[key]);
    let cache = VerifiedTokenCache::new(64);
    let token = mk_token(key, &mk_claims());
    assert!(cache.verify(&v, &token, now()).is_ok());
    // exp + leeway is NOW + 630: a second later, the cache does not answer, the verifier does.
    let later = Timestamp::from_second(NOW + 631).unwrap();
    assert_eq!(
        cache.verify(&v, &token, later).unwrap_err(),
        v.verify(&token, later).unwrap_err()
    );
    // Before nbf - leeway, likewise.
    let earlier = Timestamp::from_second(NOW - 91).unwrap();
    assert_eq!(
        cache.verify(&v, &token, earlier).unwrap_err().code(),
        "token-not-yet-valid"
    );
    // Failures are never cached.
    assert_eq!(cache.hits(), 0);
}

#[test]
fn rejects_cached_tokens_of_a_removed_key() {
    let old = mk_es256_key("idp-2026-05");
    let new = mk_es256_key("idp-2026-08");
    let overlap = mk_verifier(&[&old, &new]);
    let after = mk_verifier(&[&new]);
    let cache = VerifiedTokenCache::new(64);
    let token = mk_token(&old, &mk_claims());
    assert!(cache.verify(&overlap, &token, now()).is_ok());
    assert!(cache.verify(&overlap, &token, now()).is_ok());
    assert_eq!(
        cache.verify(&after, &token, now()).unwrap_err().code(),
        "token-kid-unknown"
    );
}

// ------------------------------------------------------------------------------------------
// JWKS files re-read when they change
// ------------------------------------------------------------------------------------------

#[test]
fn accepts_reloaded_jwks_files() {
    let old = mk_es256_key("idp-2026-05");
    let new = mk_es256_key("idp-2026-08");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp.json");
    std::fs::write(&path, mk_jwks(&[&old])).unwrap();
    let mut issuer = mk_issuer(IDP, &[TokenAlgorithm::Es256]);
    issuer.jwks = vec![path.clone()];
    let reloading = ReloadableVerifier::load(vec![issuer]).unwrap();
    assert_eq!(reloading.watched_paths(), vec![path.clone()]);
    let old_token = mk_token(&old, &mk_claims());
    let new_token = mk_token(&new, &mk_claims());
    assert!(reloading.current().verify(&old_token, now()).is_ok());

    // Unchanged file: nothing swapped.
    assert_eq!(reloading.reload(), Ok(false));
    // Rotated to the new key.
    std::fs::write(&path, mk_jwks(&[&new])).unwrap();
    assert_eq!(reloading.reload(), Ok(true));
    assert!(reloading.current().verify(&new_token, now()).is_ok());
    assert_eq!(
        reloading
            .current()
            .verify(&old_token, now())
            .unwrap_err()
            .code(),
        "token-kid-unknown"
    );
    // A broken file is refused and the key set in service stays.
    std::fs::write(&path, "{\"keys\": [").unwrap();
    assert!(matches!(reloading.reload(), Err(JwksError::Parse { .. })));
    assert!(reloading.current().verify(&new_token, now()).is_ok());
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(reloading.reload(), Err(JwksError::Read { .. })));
    assert!(reloading.current().verify(&new_token, now()).is_ok());
}

// ------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------

fn manifest(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../manifests/identity/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn accepts_the_example_settings_and_jwks() {
    let settings = Settings::from_yaml(&manifest("settings.yaml")).unwrap();
    assert_eq!(settings.issuers.len(), 1);
    let issuer = &settings.issuers[0];
    assert_eq!(issuer.issuer, IDP);
    assert_eq!(issuer.audiences, vec!["fidomesh"]);
    assert_eq!(
        issuer.algorithms,
        vec![TokenAlgorithm::Es256, TokenAlgorithm::Rs256]
    );
    assert_eq!(issuer.max_age, Duration::from_secs(3600));
    assert_eq!(issuer.leeway, Duration::from_secs(30));
    assert_eq!(issuer.claims.credential_id, "fido_cred_id");
    // The example JWKS holds two keys (a rotation overlap) that the verifier accepts.
    let v =
        TokenVerifier::new(vec![(issuer.clone(), vec![manifest("jwks-example.json")])]).unwrap();
    assert_eq!(v.key_ids(IDP).len(), 2);
    assert!(v.skipped_keys().is_empty(), "{:?}", v.skipped_keys());
}

#[test]
fn accepts_settings_without_issuers() {
    let s = Settings::from_yaml("freshness: 5m\n").unwrap();
    assert!(s.issuers.is_empty());
    // Serializing default settings does not grow an `issuers` key.
    assert!(!serde_yaml::to_string(&s).unwrap().contains("issuers"));
}

#[test]
fn rejects_bad_issuer_settings() {
    let base =
        "issuers:\n- issuer: https://idp.example.com\n  audiences: [fidomesh]\n  jwks: [/j.json]\n";
    assert!(Settings::from_yaml(&format!("{base}  algorithms: [ES256]\n")).is_ok());
    for (extra, needle) in [
        ("  algorithms: [HS256]\n", "unknown variant `HS256`"),
        (
            "  algorithms: [ES256]\n  leway: 30s\n",
            "unknown field `leway`",
        ),
        ("  algorithms: []\n", "algorithms must list at least one"),
        (
            "  algorithms: [ES256, ES256]\n",
            "algorithms lists one twice",
        ),
        (
            "  algorithms: [ES256]\n  leeway: 10m\n",
            "leeway must be at most 5m",
        ),
        (
            "  algorithms: [ES256]\n  maxAge: 0s\n",
            "maxAge must be positive",
        ),
        (
            "  algorithms: [ES256]\n  claims: {user: sub}\n",
            "unknown field `user`",
        ),
        ("", "missing field `algorithms`"),
        (
            "  algorithms: [ES256]\n- issuer: https://idp.example.com\n  audiences: [x]\n  jwks: [/k.json]\n  algorithms: [RS256]\n",
            "listed twice",
        ),
    ] {
        let err = Settings::from_yaml(&format!("{base}{extra}")).unwrap_err();
        assert!(err.to_string().contains(needle), "{extra:?}: {err}");
    }
    let no_aud = "issuers:\n- issuer: https://idp.example.com\n  audiences: []\n  jwks: [/j.json]\n  algorithms: [ES256]\n";
    assert!(
        Settings::from_yaml(no_aud)
            .unwrap_err()
            .to_string()
            .contains("audiences must list at least one")
    );
}

#[test]
fn rejects_hostile_header_strings_with_safe_messages() {
    // Attacker-chosen kid, iss and alg: shortened, control characters and quotes replaced, and
    // the WWW-Authenticate value stays visible ASCII (what an HTTP header value may carry).
    let key = es_key();
    let v = mk_verifier(&[key]);
    let hostile = format!("é\u{0}\"\\\r\n{}", "k".repeat(200));
    let token = mk_raw_token(
        &json!({"alg": "ES256", "kid": hostile}),
        &mk_claims(),
        "c2lnbmF0dXJl",
    );
    let err = assert_rejects(&v, &token, "token-kid-unknown");
    let kid = match &err {
        TokenError::UnknownKid { kid, .. } => kid.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(kid, format!("??????{}...", "k".repeat(58)));
    let header = err.www_authenticate();
    assert!(
        header.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
        "{header}"
    );
    for (claims, code) in [
        (
            mk_claims_with(json!({ "iss": hostile })),
            "token-issuer-unknown",
        ),
        (mk_claims(), "token-alg-unsupported"),
    ] {
        let alg = if code == "token-alg-unsupported" {
            hostile.as_str()
        } else {
            "ES256"
        };
        let token = mk_raw_token(
            &json!({"alg": alg, "kid": key.kid}),
            &claims,
            "c2lnbmF0dXJl",
        );
        let err = assert_rejects(&v, &token, code);
        let text = err.to_string();
        assert!(!text.contains(['\u{0}', '\r', '\n', '"']), "{text:?}");
        assert!(text.len() < 200, "{text}");
        assert!(err.www_authenticate().is_ascii());
    }
}
