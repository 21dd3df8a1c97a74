//! The cached decision layer: cached answers equal fresh ones, and a new bundle digest or data
//! generation never serves an old decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fidomesh::data::Snapshot;
use fidomesh::decide::{Decider, DecisionCache, Part, evaluate_uncached, requester_value};
use fidomesh::load::load_paths;
use fidomesh::mds::Mds;
use fidomesh::policy::{Bundle, BundleSource};
use fidomesh::rawjson::RawObject;
use fidomesh::requester::{ExtraKeys, of_user_info};
use fidomesh::review::{Parsed, parse};
use fidomesh::settings::Settings;
use jiff::Timestamp;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn now() -> Timestamp {
    "2026-12-15T00:00:00Z".parse().unwrap()
}

fn mk_snapshot(generation: u64) -> Snapshot {
    let loaded = load_paths(&[repo().join("manifests/examples")]).unwrap();
    let mds = Mds::from_payload_json(
        &std::fs::read_to_string(repo().join("manifests/examples/fido-mds-payload.json")).unwrap(),
    )
    .unwrap();
    Snapshot::build(
        generation,
        Arc::new(loaded.resources),
        Arc::new(Settings::default()),
        Arc::new(mds),
        now(),
    )
}

/// Every review the tests know: the examples and the shared captures from real API servers.
fn corpus() -> Vec<Value> {
    let mut out = Vec::new();
    let auth_time = now().as_second().to_string();
    for entry in std::fs::read_dir(repo().join("manifests/examples/reviews")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        out.push(serde_json::from_str(&text.replace("__AUTH_TIME__", &auth_time)).unwrap());
    }
    for entry in std::fs::read_dir(repo().join("../shared/admission-samples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let review = if v.get("request").is_some() {
            v
        } else {
            serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": v})
        };
        out.push(review);
    }
    assert!(out.len() >= 8, "corpus too small: {}", out.len());
    out
}

fn readable(review: &Value) -> Option<(RawObject, Value)> {
    let Ok(Parsed::Review(r)) = parse(&serde_json::to_vec(review).unwrap()) else {
        return None;
    };
    r.check_objects().ok()?;
    let snapshot = mk_snapshot(1);
    let requester = of_user_info(
        &r.request.user_info,
        &ExtraKeys::default(),
        &snapshot.keys,
        &snapshot.settings,
        now(),
    );
    Some((r.raw.clone(), requester_value(&requester)))
}

fn bundle() -> Bundle {
    Bundle::load_dir(&repo().join("policies"), Duration::from_secs(5)).unwrap()
}

#[test]
fn cached_decisions_equal_fresh_ones_over_the_corpus() {
    let bundle = bundle();
    let snapshot = mk_snapshot(1);
    let decider = Decider {
        prepared: Arc::new(bundle.with_data(snapshot.data()).unwrap()),
        generation: 1,
    };
    let cache = DecisionCache::new(1000, Duration::from_secs(60)).unwrap();
    let mut compared = 0;
    let mut denied = 0;
    for review in corpus() {
        let Some((request, requester)) = readable(&review) else {
            continue;
        };
        let (raw, who) = (Part::Raw(&request), Part::Value(&requester));
        let fresh = evaluate_uncached(&decider.prepared, raw, who).unwrap();
        let miss = decider.decide(raw, who, Some(&cache));
        let hit = decider.decide(raw, who, Some(&cache));
        assert!(!miss.cache_hit && hit.cache_hit);
        assert_eq!(*miss.verdict, fresh);
        assert_eq!(*hit.verdict, fresh);
        // The parsed form (dry runs, policy tests) decides the same, through its own entries.
        let parsed = request.to_value().unwrap();
        let by_value = decider.decide(Part::Value(&parsed), who, Some(&cache));
        assert!(!by_value.cache_hit);
        assert_eq!(*by_value.verdict, fresh);
        assert!(
            decider
                .decide(Part::Value(&parsed), who, Some(&cache))
                .cache_hit
        );
        // The uid is not part of the key: a retry of the same review is a hit.
        let mut retried = review.clone();
        retried["request"]["uid"] = Value::String("another-uid".into());
        let (retried, _) = readable(&retried).unwrap();
        let again = decider.decide(Part::Raw(&retried), who, Some(&cache));
        assert!(again.cache_hit);
        assert_eq!(*again.verdict, fresh);
        // Anything else is: the same review for another object is decided afresh.
        let mut other = review.clone();
        other["request"]["name"] = Value::String("another-name".into());
        let (other, _) = readable(&other).unwrap();
        let renamed = decider.decide(Part::Raw(&other), who, Some(&cache));
        assert!(!renamed.cache_hit);
        assert_eq!(
            *renamed.verdict,
            evaluate_uncached(&decider.prepared, Part::Raw(&other), who).unwrap()
        );
        compared += 1;
        denied += usize::from(!fresh.allowed());
    }
    assert!(compared >= 7, "compared {compared}");
    assert!(
        denied >= 1 && denied < compared,
        "{denied} of {compared} denied"
    );
}

#[test]
fn a_new_data_generation_never_serves_an_old_decision() {
    let bundle = bundle();
    let cache = DecisionCache::new(1000, Duration::from_secs(60)).unwrap();
    let review = corpus()
        .into_iter()
        .find(|r| r["request"]["uid"] == "7f0b2c1e-0001-4a1b-9c3d-000000000001")
        .unwrap();
    let (request, requester) = readable(&review).unwrap();

    let before = mk_snapshot(1);
    let old = Decider {
        prepared: Arc::new(bundle.with_data(before.data()).unwrap()),
        generation: 1,
    };
    assert!(
        old.decide(Part::Raw(&request), Part::Value(&requester), Some(&cache))
            .verdict
            .allowed()
    );

    // Generation 2: alice no longer holds any role, so she may not bind payments-reader.
    let mut data = before.data();
    data["heldRoles"] = serde_json::json!({});
    let new = Decider {
        prepared: Arc::new(bundle.with_data(data).unwrap()),
        generation: 2,
    };
    let d = new.decide(Part::Raw(&request), Part::Value(&requester), Some(&cache));
    assert!(!d.cache_hit);
    assert_eq!(d.verdict.deny_codes(), vec!["no-escalation"]);
}

#[test]
fn a_new_bundle_digest_never_serves_an_old_decision() {
    let cache = DecisionCache::new(1000, Duration::from_secs(60)).unwrap();
    let review = corpus()
        .into_iter()
        .find(|r| r["request"]["uid"] == "7f0b2c1e-0001-4a1b-9c3d-000000000001")
        .unwrap();
    let (request, requester) = readable(&review).unwrap();
    let snapshot = mk_snapshot(1);

    let mut source = BundleSource::read_dir(&repo().join("policies")).unwrap();
    let original = Bundle::compile(&source, Duration::from_secs(5)).unwrap();
    let d = Decider {
        prepared: Arc::new(original.with_data(snapshot.data()).unwrap()),
        generation: 1,
    };
    assert!(
        d.decide(Part::Raw(&request), Part::Value(&requester), Some(&cache))
            .verdict
            .allowed()
    );

    source.policies.push((
        "zz_freeze.rego".into(),
        "package fidomesh.admission\nimport rego.v1\ndeny contains {\"code\": \"change-freeze\", \"msg\": \"frozen\"} if input.request.operation == \"CREATE\"\n".into(),
    ));
    let frozen = Bundle::compile(&source, Duration::from_secs(5)).unwrap();
    assert_ne!(frozen.digest(), original.digest());
    let d = Decider {
        prepared: Arc::new(frozen.with_data(snapshot.data()).unwrap()),
        generation: 1,
    };
    let decision = d.decide(Part::Raw(&request), Part::Value(&requester), Some(&cache));
    assert!(!decision.cache_hit);
    assert_eq!(decision.verdict.deny_codes(), vec!["change-freeze"]);
}

#[test]
fn evaluation_errors_deny_and_are_never_cached() {
    let source = BundleSource {
        policies: vec![(
            "boom.rego".into(),
            "package fidomesh.admission\nimport rego.v1\ndeny contains {\"code\": \"x\", \"msg\": m} if {\n  input.request.kind.kind == \"Boom\"\n  m := sprintf(\"%s\", input.request.nope.deeper)\n  to_number(\"not a number\") > 0\n}\nwarn contains {\"code\": \"w\", \"msg\": \"w\"} if false\n".into(),
        )],
        data: None,
    };
    let bundle = Bundle::compile(&source, Duration::from_secs(5)).unwrap();
    let d = Decider {
        prepared: Arc::new(bundle.with_data(serde_json::json!({})).unwrap()),
        generation: 1,
    };
    let cache = DecisionCache::new(10, Duration::from_secs(60)).unwrap();
    let request =
        serde_json::json!({"uid": "u", "kind": {"kind": "Boom"}, "nope": {"deeper": "x"}});
    let nobody = serde_json::json!({});
    let first = d.decide(Part::Value(&request), Part::Value(&nobody), Some(&cache));
    assert_eq!(first.verdict.deny_codes(), vec!["policy-error"]);
    assert!(first.error.is_some());
    let second = d.decide(Part::Value(&request), Part::Value(&nobody), Some(&cache));
    assert!(!second.cache_hit, "an error must not be cached");
}

/// A MeshRole created by a requester in `groups` (no hardware key: only the group can make it an
/// admin), decided against the example data with `settings`.
fn mk_role_change_verdict(settings: Settings, groups: &[&str]) -> fidomesh::policy::Verdict {
    let loaded = load_paths(&[repo().join("manifests/examples")]).unwrap();
    let mds = Mds::from_payload_json(
        &std::fs::read_to_string(repo().join("manifests/examples/fido-mds-payload.json")).unwrap(),
    )
    .unwrap();
    let settings = Arc::new(settings);
    let snapshot = Snapshot::build(
        1,
        Arc::new(loaded.resources),
        settings.clone(),
        Arc::new(mds),
        now(),
    );
    let prepared = bundle().with_facts(snapshot.facts()).unwrap();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let user_info = k8s_openapi::api::authentication::v1::UserInfo {
        username: Some("carol@example.com".into()),
        groups: Some(groups),
        ..Default::default()
    };
    let requester = of_user_info(
        &user_info,
        &ExtraKeys::default(),
        &snapshot.keys,
        &settings,
        now(),
    );
    let request = serde_json::json!({
        "uid": "7f0b2c1e-0009-4a1b-9c3d-000000000009",
        "kind": {"group": "fidomesh.io", "version": "v1alpha1", "kind": "MeshRole"},
        "resource": {"group": "fidomesh.io", "version": "v1alpha1", "resource": "meshroles"},
        "operation": "CREATE",
        "namespace": "payments",
        "name": "auditors",
        "userInfo": serde_json::to_value(&user_info).unwrap(),
        "object": {
            "apiVersion": "fidomesh.io/v1alpha1",
            "kind": "MeshRole",
            "metadata": {"name": "auditors", "namespace": "payments"},
            "spec": {"rules": []}
        }
    });
    evaluate_uncached(
        &prepared,
        Part::Value(&request),
        Part::Value(&requester_value(&requester)),
    )
    .unwrap()
}

#[test]
fn rejects_a_role_change_by_a_default_admin_group_the_settings_replaced() {
    let escalation = |v: &fidomesh::policy::Verdict| v.deny_codes().contains(&"no-escalation");
    // The default admin group is an admin group by default …
    assert!(!escalation(&mk_role_change_verdict(
        Settings::default(),
        &["fidomesh:admins"]
    )));
    // … and no longer once the settings name other admin groups: configured sets replace the
    // bundle's defaults, they are not added to them.
    let ops_only = || Settings {
        admin_groups: ["ops-admins".to_string()].into(),
        ..Settings::default()
    };
    assert!(escalation(&mk_role_change_verdict(
        ops_only(),
        &["fidomesh:admins"]
    )));
    assert!(!escalation(&mk_role_change_verdict(
        ops_only(),
        &["ops-admins"]
    )));
    // Nobody else ever was.
    assert!(escalation(&mk_role_change_verdict(
        Settings::default(),
        &["developers"]
    )));
}
