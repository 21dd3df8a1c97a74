//! One admission decision by the default policy bundle (`policies/`), with the facts of 10,000
//! authenticators, 400 roles and 2,000 bindings, over a ~3 KB review: an Authenticator `CREATE`
//! in which a holder registers a second key with that key (the bootstrap path, which runs the
//! most rules: hygiene, registration, hardware key and the warnings).
//!
//! - `policy/uncached_decision`: `Prepared::evaluate` (clone of the prepared engine, input
//!   conversion from the request text as sent, `deny` and `warn`), as on a cache miss.
//! - `policy/cached_decision`: `Decider::decide` with a warm `DecisionCache` (key computation over
//!   the request as sent and the requester included), as on a cache hit.
//! - `policy/cached_admission`: what admission does per review before the log and the answer:
//!   read the AdmissionReview body, build the requester from `userInfo`, key, cache hit.
//!
//! On start it writes the same evaluation for OPA to `target/policy-bench/`: `data.json` (the
//! whole data document: `policies/data.json` with the facts placed under `fidomesh`),
//! `input.json` (`{request, requester}`) and `verdict.json` (the codes regorus decided);
//! `scripts/conformance/opa_bench.py` times OPA on them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use fidomesh::data::Snapshot;
use fidomesh::decide::{Decider, DecisionCache, Part, evaluate_uncached, requester_value};
use fidomesh::mds::{Mds, ModelStatus};
use fidomesh::model::*;
use fidomesh::policy::Bundle;
use fidomesh::rawjson::RawObject;
use fidomesh::requester::{Claims, ExtraKeys, Source, of_user_info, resolve};
use fidomesh::review::{Parsed, parse};
use fidomesh::settings::Settings;
use fidomesh::translate::Resources;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

// The same allocator as the `fidomesh` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AUTHENTICATORS: usize = 10_000;
const ROLES: usize = 400;
const BINDINGS: usize = 2_000;
const NAMESPACES: usize = 50;
const YUBIKEY: &str = "ee882879-721c-4913-9775-3dfcce97072a";
const AT: &str = "2026-12-15T00:00:00Z";

fn credential(i: usize) -> String {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn mk_authenticators(n: usize) -> Vec<Authenticator> {
    let ts = |s: &str| Time(s.parse().unwrap());
    (0..n)
        .map(|i| {
            Authenticator::new(
                &format!("key-{i}"),
                AuthenticatorSpec {
                    credential_id: credential(i),
                    aaguid: YUBIKEY.into(),
                    holder: format!("user{i}@example.com"),
                    attestation: Attestation {
                        format: AttestationFormat::Packed,
                        backup_eligible: false,
                    },
                    // One key in ten is expired.
                    not_before: ts("2026-12-01T00:00:00Z"),
                    not_after: Some(if i % 10 == 0 {
                        ts("2026-12-02T00:00:00Z")
                    } else {
                        ts("2027-03-01T00:00:00Z")
                    }),
                    service_account: ServiceAccountRef {
                        namespace: "ops-sessions".into(),
                        name: format!("user{i}-debug"),
                    },
                },
            )
        })
        .collect()
}

fn mk_roles(n: usize) -> Vec<MeshRole> {
    (0..n)
        .map(|i| {
            let mut r = MeshRole::new(
                &format!("role-{i}"),
                MeshRoleSpec {
                    targets: vec![
                        RoleTarget {
                            group: None,
                            kind: TargetKind::Server,
                            name: format!("api-{i}"),
                        },
                        RoleTarget {
                            group: Some("gateway.networking.k8s.io".into()),
                            kind: TargetKind::HttpRoute,
                            name: format!("route-{i}"),
                        },
                    ],
                },
            );
            r.metadata.namespace = Some(format!("team-{}", i % NAMESPACES));
            r
        })
        .collect()
}

fn mk_bindings(n: usize, roles: usize, authenticators: usize) -> Vec<MeshRoleBinding> {
    (0..n)
        .map(|i| {
            let role = i % roles;
            let mut b = MeshRoleBinding::new(
                &format!("binding-{i}"),
                MeshRoleBindingSpec {
                    role_ref: RoleRef {
                        name: format!("role-{role}"),
                    },
                    authenticators: (0..4)
                        .map(|k| AuthenticatorSubject {
                            credential_id: None,
                            name: Some(format!("key-{}", (i * 5 + k) % authenticators)),
                        })
                        .collect(),
                },
            );
            b.metadata.namespace = Some(format!("team-{}", role % NAMESPACES));
            b
        })
        .collect()
}

fn mds() -> Mds {
    let mut mds = Mds::empty();
    mds.models.insert(
        YUBIKEY.into(),
        ModelStatus {
            description: "YubiKey 5 Series with NFC".into(),
            status: "FIDO_CERTIFIED_L2".into(),
            revoked: false,
            certification_level: Some("L2".into()),
            key_protection: vec!["hardware".into(), "secure_element".into()],
        },
    );
    mds
}

/// user42 registers a backup key, signing in with that key: the request as the API server sends
/// it (kubectl apply: last-applied annotation and managed fields included).
fn review(at: Timestamp) -> (Value, Value) {
    let holder = "user42@example.com";
    let new_credential = {
        let mut bytes = [0x5au8; 64];
        bytes[..8].copy_from_slice(b"backup42");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let spec = json!({
        "credentialId": new_credential,
        "aaguid": YUBIKEY,
        "holder": holder,
        "attestation": {"format": "packed", "backupEligible": false},
        "notBefore": "2026-12-14T00:00:00Z",
        "notAfter": "2027-06-01T00:00:00Z",
        "serviceAccount": {"namespace": "ops-sessions", "name": "user42-debug"},
    });
    let last_applied = json!({
        "apiVersion": API_VERSION,
        "kind": "Authenticator",
        "metadata": {
            "annotations": {"fidomesh.io/description": "backup YubiKey 5C NFC, kept in the office safe"},
            "labels": {"fidomesh.io/holder": "user42", "team": "payments"},
            "name": "user42-yubikey-backup",
        },
        "spec": spec,
    });
    let auth_time = at.as_second() - 120;
    let extra = json!({
        "fidomesh.io/credential-id": [new_credential],
        "fidomesh.io/aaguid": [YUBIKEY],
        "fidomesh.io/amr": ["hwk", "user", "pin"],
        "fidomesh.io/auth-time": [auth_time.to_string()],
        "fidomesh.io/att-fmt": ["packed"],
        "fidomesh.io/backup-eligible": ["false"],
        "authentication.kubernetes.io/credential-id": ["JTI=6f1c2e0a-3b7d-4c58-9a41-2f0d7e9b1c33"],
    });
    let groups = json!(["payments-oncall", "developers", "system:authenticated"]);
    let request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": GROUP, "version": VERSION, "kind": "Authenticator"},
        "resource": {"group": GROUP, "version": VERSION, "resource": "authenticators"},
        "requestKind": {"group": GROUP, "version": VERSION, "kind": "Authenticator"},
        "requestResource": {"group": GROUP, "version": VERSION, "resource": "authenticators"},
        "name": "user42-yubikey-backup",
        "operation": "CREATE",
        "userInfo": {
            "username": holder,
            "uid": "oidc:4b7e1f0c-9d2a-4e63-8f15-2c7a9b0d3e51",
            "groups": groups,
            "extra": extra,
        },
        "object": {
            "apiVersion": API_VERSION,
            "kind": "Authenticator",
            "metadata": {
                "name": "user42-yubikey-backup",
                "uid": "0c9f8e7d-6b5a-4c3d-9e2f-1a0b9c8d7e6f",
                "generation": 1,
                "creationTimestamp": "2026-12-14T23:58:00Z",
                "labels": {"fidomesh.io/holder": "user42", "team": "payments"},
                "annotations": {
                    "fidomesh.io/description": "backup YubiKey 5C NFC, kept in the office safe",
                    "kubectl.kubernetes.io/last-applied-configuration":
                        format!("{}\n", serde_json::to_string(&last_applied).unwrap()),
                },
                "managedFields": [{
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": API_VERSION,
                    "time": "2026-12-14T23:58:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:annotations": {".": {}, "f:fidomesh.io/description": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                            "f:labels": {".": {}, "f:fidomesh.io/holder": {}, "f:team": {}},
                        },
                        "f:spec": {
                            ".": {}, "f:aaguid": {}, "f:attestation": {".": {}, "f:backupEligible": {}, "f:format": {}},
                            "f:credentialId": {}, "f:holder": {}, "f:notAfter": {}, "f:notBefore": {},
                            "f:serviceAccount": {".": {}, "f:name": {}, "f:namespace": {}},
                        },
                    },
                }],
            },
            "spec": spec,
        },
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"},
    });
    (request, extra)
}

fn out_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("policy-bench")
}

fn bench(c: &mut Criterion) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let policies = workspace.join("policies");
    let at: Timestamp = AT.parse().unwrap();
    let settings = Arc::new(Settings::default());
    let resources = Arc::new(Resources {
        authenticators: mk_authenticators(AUTHENTICATORS),
        roles: mk_roles(ROLES),
        bindings: mk_bindings(BINDINGS, ROLES, AUTHENTICATORS),
    });
    let snapshot = Snapshot::build(1, resources, settings.clone(), Arc::new(mds()), at);
    let bundle = Bundle::load_dir(&policies, Duration::from_secs(5)).unwrap();
    let prepared = Arc::new(bundle.with_data(snapshot.data()).unwrap());

    let (request, extra) = review(at);
    let extra: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_value(extra).unwrap();
    let groups: Vec<String> =
        serde_json::from_value(request["userInfo"]["groups"].clone()).unwrap();
    let claims = Claims::from_user_info(
        request["userInfo"]["username"].as_str(),
        Some(&groups),
        Some(&extra),
        &ExtraKeys::default(),
    );
    let requester = requester_value(&resolve(
        claims,
        Source::Userinfo,
        &snapshot.keys,
        &settings,
        at,
    ));
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }))
    .unwrap();
    let review_bytes = body.len();
    // The request as admission holds it: the text as sent, members located.
    let raw = RawObject::from_value(&request).unwrap();
    eprintln!(
        "policy bench: review {review_bytes} bytes (AdmissionReview JSON), request {} bytes; \
         data from {AUTHENTICATORS} authenticators, {ROLES} roles, {BINDINGS} bindings ({} active)",
        serde_json::to_vec(&request).unwrap().len(),
        snapshot.translation.active.len(),
    );

    // The decision must be the full allow path: every rule evaluated, nothing denied or warned.
    let verdict = evaluate_uncached(&prepared, Part::Raw(&raw), Part::Value(&requester)).unwrap();
    assert!(
        verdict.deny.is_empty() && verdict.warn.is_empty(),
        "the benchmark review must be allowed without warnings: {verdict:?}"
    );

    // The same evaluation for OPA (scripts/conformance/opa_bench.py).
    let dir = out_dir(workspace);
    std::fs::create_dir_all(&dir).unwrap();
    let mut data: Value =
        serde_json::from_str(&std::fs::read_to_string(policies.join("data.json")).unwrap())
            .unwrap();
    // As the engine places them: each member of the facts replaces the default of its name.
    if let Value::Object(facts) = snapshot.data() {
        for (k, v) in facts {
            data["fidomesh"][k] = v;
        }
    }
    let write = |name: &str, v: &Value| {
        std::fs::write(dir.join(name), serde_json::to_vec(v).unwrap()).unwrap();
    };
    write("data.json", &data);
    write(
        "input.json",
        &json!({"request": request, "requester": requester}),
    );
    write(
        "verdict.json",
        &json!({"deny": verdict.deny_codes(), "warn": verdict.warn_codes(), "bundle": prepared.digest()}),
    );
    eprintln!(
        "policy bench: wrote data.json, input.json, verdict.json to {}",
        dir.display()
    );

    let decider = Decider {
        prepared: prepared.clone(),
        generation: snapshot.generation,
    };
    let cache = DecisionCache::new(10_000, Duration::from_secs(3600)).unwrap();
    let (raw_part, requester_part) = (Part::Raw(&raw), Part::Value(&requester));
    let warm = decider.decide(raw_part, requester_part, Some(&cache));
    assert!(!warm.cache_hit && warm.error.is_none());
    assert!(
        decider
            .decide(raw_part, requester_part, Some(&cache))
            .cache_hit
    );
    // What admission does for every review before the log and the answer: read the body, build
    // the requester from userInfo, compute the key, look it up.
    let admission = |body: &[u8]| {
        let Ok(Parsed::Review(r)) = parse(body) else {
            panic!("unreadable review")
        };
        let who = serde_json::to_string(&of_user_info(
            &r.request.user_info,
            &ExtraKeys::default(),
            &snapshot.keys,
            &settings,
            at,
        ))
        .unwrap();
        decider.decide(Part::Raw(&r.raw), Part::Text(&who), Some(&cache))
    };
    // The requester is hashed as admission holds it (text), so the first admission is a miss.
    let first = admission(&body);
    assert!(!first.cache_hit && first.error.is_none());
    assert_eq!(first.verdict, warm.verdict);
    assert!(admission(&body).cache_hit);

    let mut group = c.benchmark_group("policy");
    group.bench_function("uncached_decision", |b| {
        b.iter(|| evaluate_uncached(&prepared, black_box(raw_part), black_box(requester_part)))
    });
    group.bench_function("cached_decision", |b| {
        b.iter(|| {
            let d = decider.decide(black_box(raw_part), black_box(requester_part), Some(&cache));
            debug_assert!(d.cache_hit);
            d
        })
    });
    group.bench_function("cached_admission", |b| {
        b.iter(|| {
            let d = admission(black_box(&body));
            debug_assert!(d.cache_hit);
            d
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
