//! Bearer-token verification (ES256): uncached, and through the verified-token cache.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use fidomesh::token::{
    ClaimNames, IssuerConfig, TokenAlgorithm, TokenVerifier, VerifiedTokenCache,
};
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

// The same allocator as the `fidomesh` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: i64 = 1_796_000_000;
const IDP: &str = "https://idp.example.com";

fn mk_fixture() -> (TokenVerifier, String) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = kp.public_key_raw();
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "idp-es", "use": "sig",
         "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])},
    ]});
    let issuer = IssuerConfig {
        issuer: IDP.into(),
        audiences: vec!["fidomesh".into()],
        jwks: vec!["/etc/fidomesh/jwks/idp.json".into()],
        algorithms: vec![TokenAlgorithm::Es256, TokenAlgorithm::Rs256],
        max_age: Duration::from_secs(3600),
        leeway: Duration::from_secs(30),
        claims: ClaimNames::default(),
    };
    let verifier = TokenVerifier::new(vec![(issuer, vec![jwks.to_string()])]).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("idp-es".into());
    let claims = json!({
        "iss": IDP, "aud": "fidomesh", "sub": "alice@example.com",
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 600,
        "groups": ["oncall", "fidomesh:admins"], "amr": ["hwk", "user"], "auth_time": NOW - 90,
        "fido_cred_id": "pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8",
        "fido_aaguid": "ee882879-721c-4913-9775-3dfcce97072a",
    });
    let encoding = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    (verifier, token)
}

fn bench(c: &mut Criterion) {
    let (verifier, token) = mk_fixture();
    let now = Timestamp::from_second(NOW).unwrap();
    assert!(verifier.verify(&token, now).is_ok());
    let cache = VerifiedTokenCache::new(10_000);
    assert_eq!(
        cache.verify(&verifier, &token, now).unwrap(),
        verifier.verify(&token, now).unwrap()
    );

    let mut group = c.benchmark_group("token");
    group.bench_function("verify_es256", |b| {
        b.iter(|| verifier.verify(black_box(&token), now).unwrap())
    });
    group.bench_function("verify_es256_cached", |b| {
        b.iter(|| cache.verify(&verifier, black_box(&token), now).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
