//! Signed FIDO metadata BLOBs for tests: a generated root → intermediate → leaf chain and BLOBs
//! signed by the leaf, as the FIDO Alliance signs the real one.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use serde_json::{Value, json};

pub struct Chain {
    pub root_pem: String,
    pub intermediate: Vec<u8>,
    pub leaf: Vec<u8>,
    pub leaf_key: EncodingKey,
    pub alg: Algorithm,
}

pub fn mk_ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2035, 1, 1);
    params
}

/// A chain whose leaf has `leaf_alg`'s key type and is valid from `from` to `until`
/// (year, month, day).
pub fn mk_chain(
    leaf_alg: &'static rcgen::SignatureAlgorithm,
    from: (i32, u8, u8),
    until: (i32, u8, u8),
) -> Chain {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = mk_ca_params("fidomesh test MDS root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);

    let int_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut int_params = mk_ca_params("fidomesh test MDS intermediate");
    int_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(int_params, int_key);

    let leaf_key = KeyPair::generate_for(leaf_alg).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["mds.example.test".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "mds.example.test");
    leaf_params.is_ca = IsCa::NoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Like the real MDS signer: a TLS certificate.
    leaf_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf_params.not_before = date_time_ymd(from.0, from.1, from.2);
    leaf_params.not_after = date_time_ymd(until.0, until.1, until.2);
    let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();

    let pem = leaf_key.serialize_pem();
    let (leaf_key, alg) = if leaf_alg == &rcgen::PKCS_RSA_SHA256 {
        (
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            Algorithm::RS256,
        )
    } else if leaf_alg == &rcgen::PKCS_ED25519 {
        (
            EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
            Algorithm::EdDSA,
        )
    } else {
        (
            EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            Algorithm::ES256,
        )
    };
    Chain {
        root_pem: root.pem(),
        intermediate: intermediate.der().to_vec(),
        leaf: leaf.der().to_vec(),
        leaf_key,
        alg,
    }
}

pub fn mk_header(chain: &Chain) -> Value {
    json!({
        "alg": format!("{:?}", chain.alg),
        "typ": "JWT",
        "x5c": [STANDARD.encode(&chain.leaf), STANDARD.encode(&chain.intermediate)],
    })
}

/// A BLOB with this header and payload, signed by the chain's leaf key.
pub fn mk_blob_with(chain: &Chain, header: &Value, payload: &str) -> String {
    let message = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &chain.leaf_key, chain.alg).unwrap();
    format!("{message}.{signature}")
}

pub fn mk_blob(chain: &Chain, payload: &str) -> String {
    mk_blob_with(chain, &mk_header(chain), payload)
}
