//! The signed FIDO metadata BLOB (MDS3): the real sample payload, signed here by a generated
//! root → intermediate → leaf chain, verified against pinned roots at an exact time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;

#[path = "common/mds_chain.rs"]
mod mds_chain;
use mds_chain::{Chain, mk_blob, mk_blob_with, mk_ca_params, mk_chain, mk_header};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use fidomesh::mds::Mds;
use fidomesh::mds_blob::{MdsBlobError, MdsRoots, VerifiedBlob, verify_blob};
use jiff::Timestamp;
use rcgen::KeyPair;
use serde_json::{Value, json};

// The verification time: inside the test leaf's validity, before the sample's nextUpdate
// (2026-11-01).
fn at() -> Timestamp {
    "2026-07-01T00:00:00Z".parse().unwrap()
}

fn sample() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fido/mds3-sample.json"
        ))
        .unwrap()
    })
}

// ------------------------------------------------------------------------------------------
// Builders: a root → intermediate → leaf chain, and BLOBs signed by the leaf
// ------------------------------------------------------------------------------------------

fn es_chain() -> &'static Chain {
    static CHAIN: OnceLock<Chain> = OnceLock::new();
    CHAIN.get_or_init(|| mk_chain(&rcgen::PKCS_ECDSA_P256_SHA256, (2026, 1, 1), (2027, 1, 1)))
}

fn mk_roots(chain: &Chain) -> MdsRoots {
    MdsRoots::from_pems([chain.root_pem.as_str()]).unwrap()
}

fn mk_payload(changes: Value) -> String {
    let mut payload: Value = serde_json::from_str(sample()).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        payload[k] = v.clone();
    }
    payload.to_string()
}

fn rejects(result: Result<VerifiedBlob, MdsBlobError>, code: &str) -> MdsBlobError {
    let err = result.unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    err
}

// ------------------------------------------------------------------------------------------
// Accepted
// ------------------------------------------------------------------------------------------

// Every AAGUID of the sample: latest status, revoked, highest certification level, key
// protection (worked out from the sample with jq, independently of the Rust code).
const EXPECTED: &[(&str, &str, bool, Option<&str>, &str)] = &[
    (
        "fcb1bcb4-f370-078c-6993-bc24d0ae3fbe",
        "NOT_FIDO_CERTIFIED",
        false,
        None,
        "hardware,secure_element",
    ),
    (
        "4d41190c-7beb-4a84-8018-adf265a6352d",
        "FIDO_CERTIFIED_L2",
        false,
        Some("L2"),
        "hardware,secure_element",
    ),
    (
        "fa2b99dc-9e39-4257-8f92-4a30d23c4118",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "4599062e-6926-4fe7-9566-9e8fb1aedaa0",
        "FIDO_CERTIFIED_L2",
        false,
        Some("L2"),
        "hardware,secure_element",
    ),
    (
        "08987058-cadc-4b81-b6e1-30de50dcbe96",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware",
    ),
    (
        "8caf7e7b-6c8b-46a9-b36b-5d04740d7463",
        "NOT_FIDO_CERTIFIED",
        false,
        None,
        "hardware,secure_element",
    ),
    (
        "ee041bce-25e5-4cdb-8f86-897fd6418464",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "2cd2f727-f6ca-44da-8f48-5c2e5da000a2",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "software",
    ),
    (
        "149a2021-8ef6-4133-96b8-81f8d5b7f1f5",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "9a272558-5cfa-4424-be37-65509677b77d",
        "FIDO_CERTIFIED_L3plus",
        false,
        Some("L3plus"),
        "hardware,secure_element",
    ),
    (
        "0b8b05a4-ebd4-4b0b-8f5f-33d7b6e606ab",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "1e906e14-77af-46bc-ae9f-fe6ef18257e4",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,tee",
    ),
    (
        "9ddd1817-af5a-4672-a2b9-3e3dd95000a9",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,tee",
    ),
    (
        "42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "7409272d-1ff9-4e10-9fc9-ac0019c124fd",
        "FIDO_CERTIFIED_L2",
        false,
        Some("L2"),
        "hardware,secure_element",
    ),
    (
        "6028b017-b1d4-4c02-b4b3-afcdafc96bb2",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "software",
    ),
    (
        "eabb46cc-e241-80bf-ae9e-96fa6d2975cf",
        "FIDO_CERTIFIED_L2",
        false,
        Some("L2"),
        "hardware,secure_element",
    ),
    (
        "53414d53-554e-4700-0000-000000000000",
        "NOT_FIDO_CERTIFIED",
        false,
        None,
        "hardware,tee",
    ),
    (
        "cc45f64e-52a2-451b-831a-4edd8022a202",
        "NOT_FIDO_CERTIFIED",
        false,
        None,
        "hardware",
    ),
    (
        "c1f9a0bc-1dd2-404a-b27f-8e29047a43fd",
        "FIDO_CERTIFIED_L2",
        false,
        Some("L2"),
        "hardware,secure_element",
    ),
    (
        "cb69481e-8ff7-4039-93ec-0a2729a154a8",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "ee882879-721c-4913-9775-3dfcce97072a",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "ba86dc56-635f-4141-aef6-00227b1b9af6",
        "REVOKED",
        true,
        None,
        "software",
    ),
    (
        "531126d6-e717-415c-9320-3d9aa6981239",
        "NOT_FIDO_CERTIFIED",
        false,
        None,
        "software",
    ),
    (
        "77010bd7-212a-4fc9-b236-d2ca5e9d4084",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
    (
        "833b721a-ff5f-4d00-bb2e-bdda3ec01e29",
        "FIDO_CERTIFIED_L1",
        false,
        Some("L1"),
        "hardware,secure_element",
    ),
];

#[test]
fn accepts_the_signed_sample_with_each_models_status() {
    let chain = es_chain();
    let verified = verify_blob(&mk_blob(chain, sample()), &mk_roots(chain), at(), None).unwrap();
    assert_eq!(verified.serial, 291);
    assert_eq!(verified.next_update.to_string(), "2026-11-01");
    assert_eq!(verified.algorithm, "ES256");
    assert_eq!(verified.chain_len, 2);
    assert_eq!(verified.signer, "CN=mds.example.test");
    assert_eq!(
        verified.signer_not_after.unwrap().to_string(),
        "2027-01-01T00:00:00Z"
    );
    let mds = &verified.mds;
    assert_eq!(mds.models.len(), EXPECTED.len());
    for (aaguid, status, revoked, level, protection) in EXPECTED {
        let m = mds
            .model(aaguid)
            .unwrap_or_else(|| panic!("{aaguid} missing"));
        assert_eq!(&m.status, status, "{aaguid}");
        assert_eq!(m.revoked, *revoked, "{aaguid}");
        assert_eq!(m.certification_level.as_deref(), *level, "{aaguid}");
        assert_eq!(m.key_protection.join(","), *protection, "{aaguid}");
    }
    let truu = mds.model("BA86DC56-635F-4141-AEF6-00227B1B9AF6").unwrap();
    assert_eq!(truu.description, "TruU Windows Authenticator");
    assert!(mds.is_revoked("ba86dc56-635f-4141-aef6-00227b1b9af6"));
    // Nothing lost or changed between the unsigned payload and the verified BLOB.
    assert_eq!(mds, &Mds::from_payload_json(sample()).unwrap());
}

#[test]
fn accepts_an_rs256_blob_like_the_real_service() {
    let chain = mk_chain(&rcgen::PKCS_RSA_SHA256, (2026, 1, 1), (2027, 1, 1));
    let verified = verify_blob(&mk_blob(&chain, sample()), &mk_roots(&chain), at(), None).unwrap();
    assert_eq!(verified.algorithm, "RS256");
    assert_eq!(verified.serial, 291);
}

#[test]
fn accepts_an_eddsa_blob_and_several_roots() {
    let chain = mk_chain(&rcgen::PKCS_ED25519, (2026, 1, 1), (2027, 1, 1));
    let other = es_chain();
    // Two PEM files, the right root in the second.
    let roots = MdsRoots::from_pems([other.root_pem.as_str(), chain.root_pem.as_str()]).unwrap();
    assert_eq!(roots.len(), 2);
    let verified = verify_blob(&mk_blob(&chain, sample()), &roots, at(), None).unwrap();
    assert_eq!(verified.algorithm, "EdDSA");
}

#[test]
fn accepts_the_same_or_a_newer_serial_and_unknown_fields() {
    let chain = es_chain();
    let roots = mk_roots(chain);
    let blob = mk_blob(chain, sample());
    // The same BLOB read again, and one newer than the loaded serial.
    assert!(verify_blob(&blob, &roots, at(), Some(291)).is_ok());
    assert!(verify_blob(&blob, &roots, at(), Some(120)).is_ok());
    // Unknown fields and statuses are kept, not fatal; trailing whitespace in the file too.
    let payload = mk_payload(json!({
        "no": 292,
        "futureField": {"x": 1},
        "entries": [{
            "aaguid": "01234567-89ab-cdef-0123-456789abcdef",
            "metadataStatement": {"description": "Future Key", "newThing": true},
            "statusReports": [{"status": "FIPS140_CERTIFIED_L3", "effectiveDate": "2026-05-01"}],
        }],
    }));
    let verified = verify_blob(
        &format!("{}\n", mk_blob(chain, &payload)),
        &roots,
        at(),
        Some(291),
    )
    .unwrap();
    assert_eq!(verified.serial, 292);
    let future = verified
        .mds
        .model("01234567-89ab-cdef-0123-456789abcdef")
        .unwrap();
    assert_eq!(future.status, "FIPS140_CERTIFIED_L3");
    assert!(!future.revoked);
}

#[test]
fn accepts_the_real_mds_chain_to_globalsign_r3() {
    // The public x5c chain of a real BLOB (EV TLS leaf, EKU serverAuth + clientAuth) builds to
    // the pinned GlobalSign Root CA - R3 while the leaf is valid; only the signature (made up
    // here) then fails. After the leaf's notAfter (2026-08-26) the chain is refused.
    let chain_pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fido/mds3-blob-x5c-chain.pem"
    ))
    .unwrap();
    let x5c: Vec<String> = pem_bodies(&chain_pem);
    assert_eq!(x5c.len(), 2);
    let header = json!({"alg": "RS256", "typ": "JWT", "x5c": x5c});
    let blob = format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(sample()),
        B64.encode([7u8; 256])
    );
    let roots = MdsRoots::from_pems([GLOBALSIGN_ROOT_R3]).unwrap();
    let in_validity: Timestamp = "2026-03-15T00:00:00Z".parse().unwrap();
    rejects(
        verify_blob(&blob, &roots, in_validity, None),
        "mds-signature-invalid",
    );
    let after: Timestamp = "2026-09-01T00:00:00Z".parse().unwrap();
    rejects(
        verify_blob(&blob, &roots, after, None),
        "mds-certificate-expired",
    );
    // And to a generated root it does not lead at all.
    rejects(
        verify_blob(&blob, &mk_roots(es_chain()), in_validity, None),
        "mds-untrusted-chain",
    );
}

/// A real signed BLOB, when one is at hand: `cargo info fido_mds3_attestation_ca@0.1.1-rc.2`
/// unpacks one (`data/ca_list.jwt`, `no` 237, nextUpdate 2026-04-01) into cargo's registry
/// cache (see `../shared/fido/README.md`). Run with
/// `FIDOMESH_REAL_MDS_BLOB=…/ca_list.jwt cargo test --release -p fidomesh --test mds_blob -- --ignored`.
#[test]
#[ignore = "needs a real MDS BLOB file in FIDOMESH_REAL_MDS_BLOB"]
fn accepts_a_real_mds_blob() {
    let path = std::env::var("FIDOMESH_REAL_MDS_BLOB")
        .expect("set FIDOMESH_REAL_MDS_BLOB to the path of a real MDS3 BLOB");
    let blob = std::fs::read_to_string(path).unwrap();
    let roots = MdsRoots::from_pems([GLOBALSIGN_ROOT_R3]).unwrap();
    let at: Timestamp = "2026-03-15T00:00:00Z".parse().unwrap();
    let verified = verify_blob(&blob, &roots, at, None).unwrap();
    assert_eq!(verified.algorithm, "RS256");
    assert_eq!(verified.serial, 237);
    assert_eq!(verified.next_update.to_string(), "2026-04-01");
    assert!(
        verified.signer.contains("CN=mds.fidoalliance.org"),
        "{}",
        verified.signer
    );
    assert!(verified.mds.models.len() > 100);
    // A tampered copy fails; the same BLOB after the signer expired fails.
    let (header, rest) = blob.trim().split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mid = payload.len() / 2;
    let flipped = if &payload[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!(
        "{header}.{}{flipped}{}.{signature}",
        &payload[..mid],
        &payload[mid + 1..]
    );
    rejects(
        verify_blob(&tampered, &roots, at, None),
        "mds-signature-invalid",
    );
    let late: Timestamp = "2026-09-01T00:00:00Z".parse().unwrap();
    rejects(
        verify_blob(&blob, &roots, late, None),
        "mds-certificate-expired",
    );
}

fn pem_bodies(pem: &str) -> Vec<String> {
    pem.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|rest| {
            rest.split("-----END CERTIFICATE-----")
                .next()
                .unwrap()
                .split_whitespace()
                .collect()
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// Rejected, each with a clear reason
// ------------------------------------------------------------------------------------------

#[test]
fn rejects_a_wrong_root() {
    let chain = es_chain();
    let blob = mk_blob(chain, sample());
    // Another root by another name.
    let mut params = mk_ca_params("someone else's root");
    let other = params
        .self_signed(&KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
        .unwrap();
    let roots = MdsRoots::from_pems([other.pem().as_str()]).unwrap();
    let err = rejects(
        verify_blob(&blob, &roots, at(), None),
        "mds-untrusted-chain",
    );
    assert_eq!(
        err.to_string(),
        "FIDO metadata BLOB: the x5c chain does not lead to a pinned root (no pinned root or x5c certificate issued it)"
    );
    // A root with the very name of the real one, but another key.
    params = mk_ca_params("fidomesh test MDS root");
    let impostor = params
        .self_signed(&KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
        .unwrap();
    let roots = MdsRoots::from_pems([impostor.pem().as_str()]).unwrap();
    let err = rejects(
        verify_blob(&blob, &roots, at(), None),
        "mds-untrusted-chain",
    );
    assert!(
        err.to_string()
            .ends_with("(a certificate's signature does not verify with its issuer's key)"),
        "{err}"
    );
}

#[test]
fn rejects_a_chain_missing_its_intermediate() {
    let chain = es_chain();
    let header = json!({"alg": "ES256", "x5c": [STANDARD.encode(&chain.leaf)]});
    rejects(
        verify_blob(
            &mk_blob_with(chain, &header, sample()),
            &mk_roots(chain),
            at(),
            None,
        ),
        "mds-untrusted-chain",
    );
}

#[test]
fn rejects_a_tampered_payload() {
    let chain = es_chain();
    let blob = mk_blob(chain, sample());
    let parts: Vec<&str> = blob.split('.').collect();
    // Un-revoke TruU, keep the signature.
    let forged = sample().replace("\"REVOKED\"", "\"FIDO_CERTIFIED\"");
    assert_ne!(forged, sample());
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(&forged), parts[2]);
    let err = rejects(
        verify_blob(&tampered, &mk_roots(chain), at(), None),
        "mds-signature-invalid",
    );
    assert_eq!(
        err.to_string(),
        "FIDO metadata BLOB: the signature does not verify with the signer's certificate"
    );
}

#[test]
fn rejects_an_expired_leaf_at_the_verification_time() {
    let chain = mk_chain(&rcgen::PKCS_ECDSA_P256_SHA256, (2025, 6, 1), (2026, 6, 1));
    let blob = mk_blob(&chain, sample());
    let roots = mk_roots(&chain);
    // Valid while the leaf is.
    let before: Timestamp = "2026-05-31T00:00:00Z".parse().unwrap();
    assert!(verify_blob(&blob, &roots, before, None).is_ok());
    let err = rejects(
        verify_blob(&blob, &roots, at(), None),
        "mds-certificate-expired",
    );
    assert_eq!(
        err.to_string(),
        "FIDO metadata BLOB: a certificate of the x5c chain expired at 2026-06-01T00:00:00Z (verified at 2026-07-01T00:00:00Z)"
    );
    // Not yet valid, likewise.
    let early: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    rejects(
        verify_blob(&blob, &roots, early, None),
        "mds-certificate-not-yet-valid",
    );
}

#[test]
fn rejects_a_chain_without_x5c() {
    let chain = es_chain();
    let roots = mk_roots(chain);
    for header in [
        json!({"alg": "ES256", "typ": "JWT"}),
        json!({"alg": "ES256", "x5c": []}),
        json!({"alg": "ES256", "x5c": "MIIB"}),
    ] {
        let err = rejects(
            verify_blob(&mk_blob_with(chain, &header, sample()), &roots, at(), None),
            "mds-x5c-missing",
        );
        assert_eq!(
            err.to_string(),
            "FIDO metadata BLOB: the header has no x5c certificate chain"
        );
    }
    let header = json!({"alg": "ES256", "x5c": ["not base64!"]});
    rejects(
        verify_blob(&mk_blob_with(chain, &header, sample()), &roots, at(), None),
        "mds-bad-certificate",
    );
}

#[test]
fn rejects_an_older_serial_than_the_loaded_one() {
    let chain = es_chain();
    let err = rejects(
        verify_blob(&mk_blob(chain, sample()), &mk_roots(chain), at(), Some(292)),
        "mds-serial-backwards",
    );
    assert_eq!(
        err.to_string(),
        "FIDO metadata BLOB: serial no 291 is older than the loaded serial 292"
    );
}

#[test]
fn rejects_a_stale_blob() {
    let chain = es_chain();
    let roots = mk_roots(chain);
    let blob = mk_blob(chain, sample());
    // On the nextUpdate day itself it is still current; the day after, stale.
    assert!(verify_blob(&blob, &roots, "2026-11-01T23:59:59Z".parse().unwrap(), None).is_ok());
    let err = rejects(
        verify_blob(&blob, &roots, "2026-11-02T00:00:00Z".parse().unwrap(), None),
        "mds-stale",
    );
    assert_eq!(
        err.to_string(),
        "FIDO metadata BLOB: stale, nextUpdate 2026-11-01 is before 2026-11-02"
    );
    let no_date = mk_blob(chain, &mk_payload(json!({"nextUpdate": "soon"})));
    rejects(
        verify_blob(&no_date, &roots, at(), None),
        "mds-next-update-invalid",
    );
}

#[test]
fn rejects_algorithms_that_do_not_fit_the_signer() {
    let chain = es_chain();
    let roots = mk_roots(chain);
    let mut header = mk_header(chain);
    header["alg"] = json!("RS256");
    let err = rejects(
        verify_blob(&mk_blob_with(chain, &header, sample()), &roots, at(), None),
        "mds-alg-key-mismatch",
    );
    assert_eq!(
        err.to_string(),
        "FIDO metadata BLOB: algorithm RS256 does not fit the signer's EC P-256 key"
    );
    for alg in ["none", "HS256"] {
        header["alg"] = json!(alg);
        let message = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(sample())
        );
        rejects(
            verify_blob(&format!("{message}."), &roots, at(), None),
            "mds-alg-unsupported",
        );
    }
}

#[test]
fn rejects_garbage_and_bad_roots() {
    let chain = es_chain();
    let roots = mk_roots(chain);
    for garbage in ["", "not a blob", "a.b", "!!!.???.***"] {
        rejects(verify_blob(garbage, &roots, at(), None), "mds-malformed");
    }
    // Signed, but the payload is not an MDS3 payload.
    rejects(
        verify_blob(&mk_blob(chain, "[1, 2, 3]"), &roots, at(), None),
        "mds-payload-invalid",
    );
    assert!(matches!(
        MdsRoots::from_pems(["no certificates here"]),
        Err(MdsBlobError::NoRoots)
    ));
    let not_a_cert = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(b"hello")
    );
    assert_eq!(
        MdsRoots::from_pems([not_a_cert.as_str()])
            .unwrap_err()
            .code(),
        "mds-bad-root"
    );
}

// GlobalSign Root CA - R3 (SHA-256 CB:B5:22:D7:B7:F1:27:AD:6A:01:13:86:5B:DF:1C:D4:10:2E:7D:07:59:AF:63:5A:7C:F4:72:0D:C9:63:C5:3B),
// the root of the real MDS signer's chain; from Debian's ca-certificates.
const GLOBALSIGN_ROOT_R3: &str = "\
-----BEGIN CERTIFICATE-----
MIIDXzCCAkegAwIBAgILBAAAAAABIVhTCKIwDQYJKoZIhvcNAQELBQAwTDEgMB4G
A1UECxMXR2xvYmFsU2lnbiBSb290IENBIC0gUjMxEzARBgNVBAoTCkdsb2JhbFNp
Z24xEzARBgNVBAMTCkdsb2JhbFNpZ24wHhcNMDkwMzE4MTAwMDAwWhcNMjkwMzE4
MTAwMDAwWjBMMSAwHgYDVQQLExdHbG9iYWxTaWduIFJvb3QgQ0EgLSBSMzETMBEG
A1UEChMKR2xvYmFsU2lnbjETMBEGA1UEAxMKR2xvYmFsU2lnbjCCASIwDQYJKoZI
hvcNAQEBBQADggEPADCCAQoCggEBAMwldpB5BngiFvXAg7aEyiie/QV2EcWtiHL8
RgJDx7KKnQRfJMsuS+FggkbhUqsMgUdwbN1k0ev1LKMPgj0MK66X17YUhhB5uzsT
gHeMCOFJ0mpiLx9e+pZo34knlTifBtc+ycsmWQ1z3rDI6SYOgxXG71uL0gRgykmm
KPZpO/bLyCiR5Z2KYVc3rHQU3HTgOu5yLy6c+9C7v/U9AOEGM+iCK65TpjoWc4zd
QQ4gOsC0p6Hpsk+QLjJg6VfLuQSSaGjlOCZgdbKfd/+RFO+uIEn8rUAVSNECMWEZ
XriX7613t2Saer9fwRPvm2L7DWzgVGkWqQPabumDk3F2xmmFghcCAwEAAaNCMEAw
DgYDVR0PAQH/BAQDAgEGMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFI/wS3+o
LkUkrk1Q+mOai97i3Ru8MA0GCSqGSIb3DQEBCwUAA4IBAQBLQNvAUKr+yAzv95ZU
RUm7lgAJQayzE4aGKAczymvmdLm6AC2upArT9fHxD4q/c2dKg8dEe3jgr25sbwMp
jjM5RcOO5LlXbKr8EpbsU8Yt5CRsuZRj+9xTaGdWPoO4zzUhw8lo/s7awlOqzJCK
6fBdRoyV3XpYKBovHd7NADdBj+1EbddTKJd+82cEHhXXipa0095MJ6RMG3NzdvQX
mcIfeg7jLQitChws/zyrVQ4PkX4268NXSb7hLi18YIvDQVETI53O9zJrlAGomecs
Mx86OyXShkDOOyyGeMlhLxS67ttVb9+E7gUJTb0o2HLO02JQZR7rkpeDMdmztcpH
WD9f
-----END CERTIFICATE-----
";
