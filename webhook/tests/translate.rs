//! Translation, specified by its properties (DESIGN section 3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use base64::Engine as _;
use fidomesh::linkerd::LinkerdObject;
use fidomesh::mds::Mds;
use fidomesh::model::*;
use fidomesh::settings::Settings;
use fidomesh::translate::*;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::ObjectMeta;

const YUBIKEY: &str = "ee882879-721c-4913-9775-3dfcce97072a";
const REVOKED_TRUU: &str = "ba86dc56-635f-4141-aef6-00227b1b9af6";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cred(seed: u8) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([seed; 32])
}

fn mk_key(name: &str, seed: u8, not_before: &str, not_after: Option<&str>) -> Authenticator {
    Authenticator::new(
        name,
        AuthenticatorSpec {
            credential_id: cred(seed),
            aaguid: YUBIKEY.into(),
            holder: format!("{name}@example.com"),
            attestation: Attestation {
                format: AttestationFormat::Packed,
                backup_eligible: false,
            },
            not_before: Time(ts(not_before)),
            not_after: not_after.map(|t| Time(ts(t))),
            service_account: ServiceAccountRef {
                namespace: "ops-sessions".into(),
                name: format!("{name}-debug"),
            },
        },
    )
}

fn mk_valid_key(name: &str, seed: u8) -> Authenticator {
    mk_key(
        name,
        seed,
        "2026-12-01T00:00:00Z",
        Some("2027-03-01T00:00:00Z"),
    )
}

fn mk_role(ns: &str, name: &str, targets: Vec<RoleTarget>) -> MeshRole {
    let mut r = MeshRole::new(name, MeshRoleSpec { targets });
    r.metadata.namespace = Some(ns.into());
    r
}

fn mk_target(kind: TargetKind, name: &str) -> RoleTarget {
    RoleTarget {
        group: None,
        kind,
        name: name.into(),
    }
}

fn by_name(n: &str) -> AuthenticatorSubject {
    AuthenticatorSubject {
        credential_id: None,
        name: Some(n.into()),
    }
}

fn by_cred(seed: u8) -> AuthenticatorSubject {
    AuthenticatorSubject {
        credential_id: Some(cred(seed)),
        name: None,
    }
}

fn mk_binding(
    ns: &str,
    name: &str,
    role: &str,
    subjects: Vec<AuthenticatorSubject>,
) -> MeshRoleBinding {
    let mut b = MeshRoleBinding::new(
        name,
        MeshRoleBindingSpec {
            role_ref: RoleRef { name: role.into() },
            authenticators: subjects,
        },
    );
    b.metadata.namespace = Some(ns.into());
    b
}

fn mk_resources(keys: Vec<Authenticator>, bindings: Vec<MeshRoleBinding>) -> Resources {
    Resources {
        authenticators: keys,
        roles: vec![mk_role(
            "payments",
            "reader",
            vec![
                mk_target(TargetKind::Server, "payments-api"),
                mk_target(TargetKind::Namespace, "payments"),
            ],
        )],
        bindings,
    }
}

fn run(res: &Resources, at: &str) -> Translation {
    translate(res, &Settings::default(), &Mds::empty(), ts(at))
}

fn authns(t: &Translation) -> Vec<&fidomesh::linkerd::MeshTLSAuthentication> {
    t.objects
        .iter()
        .filter_map(|o| match o {
            LinkerdObject::MeshTLSAuthentication(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn yaml(t: &Translation) -> String {
    serde_json::to_string(&t).unwrap()
}

#[test]
fn accepts_key_exactly_at_not_before() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    let t = run(&res, "2026-12-01T00:00:00Z");
    assert_eq!(t.objects.len(), 3, "{t:#?}");
    assert!(t.dropped.is_empty());
}

#[test]
fn rejects_key_exactly_at_not_after() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    let t = run(&res, "2027-03-01T00:00:00Z");
    assert!(t.objects.is_empty());
    assert_eq!(t.dropped.len(), 1);
    assert_eq!(t.dropped[0].reason, DropReason::Expired);
    let before = run(&res, "2026-11-30T23:59:59Z");
    assert_eq!(before.dropped[0].reason, DropReason::NotYetValid);
}

#[test]
fn defaults_missing_not_after_from_max_key_age() {
    let res = mk_resources(
        vec![mk_key("alice", 1, "2026-12-01T00:00:00Z", None)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    // 180 days after 2026-12-01 is 2027-05-30.
    assert_eq!(run(&res, "2027-05-29T23:59:59Z").objects.len(), 3);
    assert!(run(&res, "2027-05-30T00:00:00Z").objects.is_empty());
    assert_eq!(
        run(&res, "2027-01-01T00:00:00Z").next_change,
        Some(ts("2027-05-30T00:00:00Z"))
    );
}

#[test]
fn empty_bindings_produce_no_objects() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding("payments", "oncall", "reader", vec![])],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    assert!(t.objects.is_empty());
    assert_eq!(t.grants.len(), 1);
    assert!(t.grants[0].fingerprints.is_empty());
}

#[test]
fn bindings_without_active_keys_produce_no_objects() {
    let res = mk_resources(
        vec![mk_key(
            "old",
            1,
            "2026-01-01T00:00:00Z",
            Some("2026-02-01T00:00:00Z"),
        )],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("old"), by_name("ghost"), by_cred(99)],
        )],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    assert!(t.objects.is_empty());
    let reasons: Vec<_> = t.dropped.iter().map(|d| d.reason).collect();
    assert_eq!(
        reasons,
        vec![
            DropReason::Unknown,
            DropReason::Unknown,
            DropReason::Expired
        ]
    );
}

#[test]
fn identical_input_in_shuffled_order_gives_identical_output() {
    let keys: Vec<_> = (1..=8).map(|i| mk_valid_key(&format!("k{i}"), i)).collect();
    let mut roles = vec![
        mk_role(
            "payments",
            "reader",
            vec![
                mk_target(TargetKind::Namespace, "payments"),
                mk_target(TargetKind::Server, "b"),
                mk_target(TargetKind::Server, "a"),
            ],
        ),
        mk_role(
            "checkout",
            "debug",
            vec![mk_target(TargetKind::HttpRoute, "cart")],
        ),
    ];
    let mut bindings = vec![
        mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("k3"), by_name("k1"), by_cred(2)],
        ),
        mk_binding(
            "checkout",
            "devs",
            "debug",
            vec![by_name("k5"), by_name("k4")],
        ),
        mk_binding(
            "payments",
            "leads",
            "reader",
            vec![by_cred(8), by_name("k7")],
        ),
    ];
    let forward = Resources {
        authenticators: keys.clone(),
        roles: roles.clone(),
        bindings: bindings.clone(),
    };
    let mut shuffled_keys = keys;
    shuffled_keys.reverse();
    shuffled_keys.swap(1, 5);
    roles.reverse();
    bindings.rotate_left(1);
    for b in &mut bindings {
        b.spec.authenticators.reverse();
    }
    let backward = Resources {
        authenticators: shuffled_keys,
        roles,
        bindings,
    };
    let a = run(&forward, "2026-12-15T00:00:00Z");
    let b = run(&backward, "2026-12-15T00:00:00Z");
    assert_eq!(yaml(&a), yaml(&b));
    assert_eq!(a.objects.len(), (1 + 3) + (1 + 1) + (1 + 3));
}

#[test]
fn one_mesh_tls_authentication_per_binding_with_sorted_deduplicated_identity_refs() {
    let mut shared_sa = mk_valid_key("carol", 3);
    shared_sa.spec.service_account.name = "alice-debug".into();
    let res = mk_resources(
        vec![mk_valid_key("bob", 2), mk_valid_key("alice", 1), shared_sa],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("bob"), by_name("alice"), by_name("carol")],
        )],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    let m = authns(&t);
    assert_eq!(m.len(), 1);
    let refs: Vec<_> = m[0]
        .spec
        .identity_refs
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.namespace.as_deref().unwrap(),
                r.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            ("ServiceAccount", "ops-sessions", "alice-debug"),
            ("ServiceAccount", "ops-sessions", "bob-debug")
        ]
    );
    assert!(m[0].spec.identities.is_none());
    // Every AuthorizationPolicy requires exactly that one MeshTLSAuthentication.
    for o in &t.objects {
        if let LinkerdObject::AuthorizationPolicy(p) = o {
            assert_eq!(p.spec.required_authentication_refs.len(), 1);
            assert_eq!(
                p.spec.required_authentication_refs[0].name,
                m[0].metadata.name.clone().unwrap()
            );
        }
    }
}

#[test]
fn a_key_named_by_name_and_by_credential_id_is_granted_once() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice"), by_cred(1)],
        )],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    assert_eq!(t.grants[0].fingerprints.len(), 1);
    let annotation =
        &t.objects[0].metadata().annotations.as_ref().unwrap()[AUTHENTICATORS_ANNOTATION];
    assert_eq!(annotation.split(',').count(), 1);
    assert_eq!(authns(&t)[0].spec.identity_refs.as_ref().unwrap().len(), 1);
}

#[test]
fn next_change_is_the_earliest_future_boundary() {
    let res = mk_resources(
        vec![
            mk_key("a", 1, "2026-12-01T00:00:00Z", Some("2027-02-01T00:00:00Z")),
            mk_key("b", 2, "2026-12-20T00:00:00Z", Some("2027-03-01T00:00:00Z")),
            mk_key("c", 3, "2026-01-01T00:00:00Z", Some("2026-12-10T00:00:00Z")),
            mk_key("d", 4, "2026-12-01T00:00:00Z", Some("2026-12-31T00:00:00Z")),
        ],
        vec![],
    );
    assert_eq!(
        run(&res, "2026-12-15T00:00:00Z").next_change,
        Some(ts("2026-12-20T00:00:00Z"))
    );
    assert_eq!(
        run(&res, "2026-12-20T00:00:00Z").next_change,
        Some(ts("2026-12-31T00:00:00Z"))
    );
    assert_eq!(run(&res, "2027-03-01T00:00:00Z").next_change, None);
}

#[test]
fn drops_revoked_models_disallowed_aaguids_and_synced_passkeys() {
    let mut revoked = mk_valid_key("revoked", 1);
    revoked.spec.aaguid = REVOKED_TRUU.into();
    let mut synced = mk_valid_key("synced", 2);
    synced.spec.attestation.backup_eligible = true;
    let res = mk_resources(
        vec![revoked, synced, mk_valid_key("fine", 3)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("revoked"), by_name("synced"), by_name("fine")],
        )],
    );
    let mds = Mds::from_payload_json(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../manifests/examples/fido-mds-payload.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let at = ts("2026-12-15T00:00:00Z");
    let t = translate(&res, &Settings::default(), &mds, at);
    let reasons: Vec<_> = t
        .dropped
        .iter()
        .map(|d| (d.subject.as_str(), d.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("name:revoked", DropReason::RevokedModel),
            ("name:synced", DropReason::SyncedPasskeyNotAllowed)
        ]
    );
    assert_eq!(t.grants[0].fingerprints.len(), 1);

    let permissive = Settings {
        allow_synced_passkeys: true,
        ..Settings::default()
    };
    assert_eq!(
        translate(&res, &permissive, &mds, at).grants[0]
            .fingerprints
            .len(),
        2
    );

    let strict = Settings {
        allowed_aaguids: ["42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3".to_string()].into(),
        ..Settings::default()
    };
    let t = translate(&res, &strict, &Mds::empty(), at);
    assert!(
        t.dropped
            .iter()
            .any(|d| d.reason == DropReason::AaguidNotAllowed)
    );
    assert!(t.objects.is_empty());
}

#[test]
fn reports_shared_credentials_and_grants_neither() {
    let res = mk_resources(
        vec![mk_valid_key("one", 1), mk_valid_key("two", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("one")],
        )],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    assert!(t.objects.is_empty());
    assert!(matches!(
        &t.problems[..],
        [Problem::DuplicateCredential { authenticators, .. }] if authenticators == &["one", "two"]
    ));
    assert_eq!(t.dropped[0].reason, DropReason::DuplicateCredential);
}

#[test]
fn reports_bindings_to_missing_roles() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "writer",
            vec![by_name("alice")],
        )],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    assert!(t.objects.is_empty());
    assert_eq!(
        t.problems,
        vec![Problem::MissingRole {
            binding: "payments/oncall".into(),
            role: "writer".into()
        }]
    );
}

#[test]
fn a_role_in_another_namespace_is_not_found() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "checkout",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    assert_eq!(run(&res, "2026-12-15T00:00:00Z").problems.len(), 1);
}

#[test]
fn names_over_253_characters_are_cut_with_a_hash_suffix_and_stay_unique() {
    let long_a = format!("{}a", "x".repeat(240));
    let long_b = format!("{}b", "x".repeat(240));
    let mut res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![
            mk_binding("payments", &long_a, "reader", vec![by_name("alice")]),
            mk_binding("payments", &long_b, "reader", vec![by_name("alice")]),
        ],
    );
    res.roles[0].spec.targets = vec![mk_target(TargetKind::Server, &"s".repeat(200))];
    let t = run(&res, "2026-12-15T00:00:00Z");
    let names: Vec<String> = t
        .objects
        .iter()
        .map(|o| o.metadata().name.clone().unwrap())
        .collect();
    assert_eq!(names.len(), 4);
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 4, "{names:?}");
    for n in &names {
        assert!(n.len() <= MAX_NAME, "{n}");
        assert!(fidomesh::load::is_dns1123_subdomain(n), "{n}");
    }
    for o in &t.objects {
        for v in o.metadata().labels.as_ref().unwrap().values() {
            assert!(v.len() <= MAX_LABEL_VALUE, "{v}");
            assert!(v.chars().last().unwrap().is_ascii_alphanumeric());
        }
    }
}

#[test]
fn object_name_keeps_short_names_and_cuts_long_ones_deterministically() {
    assert_eq!(object_name(&["fidomesh", "oncall"]), "fidomesh-oncall");
    let long = "y".repeat(300);
    let cut = object_name(&["fidomesh", &long]);
    assert_eq!(cut.len(), MAX_NAME);
    assert_eq!(cut, object_name(&["fidomesh", &long]));
    assert_ne!(cut, object_name(&["fidomesh", &format!("{long}z")]));
}

#[test]
fn objects_carry_labels_and_fingerprint_annotation_never_the_credential_id() {
    let res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    let fp = CredentialId::parse(&cred(1)).unwrap().fingerprint().clone();
    for o in &t.objects {
        let m = o.metadata();
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], "fidomesh");
        assert_eq!(labels[BINDING_LABEL], "oncall");
        assert_eq!(labels[ROLE_LABEL], "reader");
        assert_eq!(
            m.annotations.as_ref().unwrap()[AUTHENTICATORS_ANNOTATION],
            fp.as_str()
        );
        assert_eq!(m.namespace.as_deref(), Some("payments"));
    }
    assert!(!yaml(&t).contains(&cred(1)));
}

#[test]
fn one_authorization_policy_per_distinct_target() {
    let mut res = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    res.roles[0].spec.targets = vec![
        mk_target(TargetKind::Server, "api"),
        mk_target(TargetKind::Server, "api"),
        RoleTarget {
            group: Some("gateway.networking.k8s.io".into()),
            kind: TargetKind::HttpRoute,
            name: "read".into(),
        },
        mk_target(TargetKind::HttpRoute, "read"),
        RoleTarget {
            group: Some("gateway.networking.k8s.io".into()),
            kind: TargetKind::GrpcRoute,
            name: "rpc".into(),
        },
    ];
    let t = run(&res, "2026-12-15T00:00:00Z");
    let policies: Vec<_> = t
        .objects
        .iter()
        .filter_map(|o| match o {
            LinkerdObject::AuthorizationPolicy(p) => Some(&p.spec.target_ref),
            _ => None,
        })
        .collect();
    assert_eq!(policies.len(), 4, "{policies:#?}");
}

#[test]
fn active_lists_every_active_key_bound_or_not() {
    let res = mk_resources(
        vec![
            mk_valid_key("alice", 1),
            mk_key(
                "old",
                2,
                "2026-01-01T00:00:00Z",
                Some("2026-02-01T00:00:00Z"),
            ),
        ],
        vec![],
    );
    let t = run(&res, "2026-12-15T00:00:00Z");
    assert_eq!(
        t.active,
        vec![CredentialId::parse(&cred(1)).unwrap().fingerprint().clone()]
    );
}

#[test]
fn translation_does_not_depend_on_metadata_noise() {
    let mut key = mk_valid_key("alice", 1);
    key.metadata = ObjectMeta {
        name: Some("alice".into()),
        resource_version: Some("42".into()),
        ..ObjectMeta::default()
    };
    let a = mk_resources(
        vec![key],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    let b = mk_resources(
        vec![mk_valid_key("alice", 1)],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![by_name("alice")],
        )],
    );
    assert_eq!(
        yaml(&run(&a, "2026-12-15T00:00:00Z")),
        yaml(&run(&b, "2026-12-15T00:00:00Z"))
    );
}
