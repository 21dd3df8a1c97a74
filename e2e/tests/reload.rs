//! Hot reload under load: serving certificate (in-place rewrite and the kubelet's `..data`
//! symlink swap), a broken certificate pair, the policy bundle, and the data directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{
    Certs, Load, MakeBody, Opts, Server, Tls, bob_binds_refunds, client_trusting, configmap_review,
    copy_examples, copy_policies, deny_codes, fresh_client_trusting, post_json, review, uid,
    with_uid, write_atomic,
};
use serde_json::Value;

/// Requests per load task, and the longest a load may run.
const LOAD_LIMIT: usize = 2000;
const LOAD_DEADLINE: Duration = Duration::from_secs(20);
/// The longest a reload may take to show (the poll interval is 1 s).
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// Alternating reviews: alice's allowed binding on /validate and olivia's key on /mutate.
fn admission_mix() -> MakeBody {
    let allowed = review("allowed-binding");
    let mutated = review("mutated-authenticator");
    Arc::new(move |n, id| {
        if n % 2 == 0 {
            ("validate", with_uid(allowed.clone(), id))
        } else {
            ("mutate", with_uid(mutated.clone(), id))
        }
    })
}

/// A keep-alive client and a new-connection-per-request client, both trusting `cas`.
fn load_clients(cas: &[&[u8]]) -> Vec<reqwest::Client> {
    vec![client_trusting(cas), fresh_client_trusting(cas)]
}

/// A new handshake by a client trusting only `ca`: the leaf served, or the error.
async fn handshake(server: &Server, ca: &[u8]) -> Result<Vec<u8>, String> {
    let client = fresh_client_trusting(&[ca]);
    let body = with_uid(review("allowed-binding"), &uid("probe"));
    match post_json(&client, &server.url("validate"), &body).await {
        Ok(r) if r.status == 200 => r.peer_cert.ok_or_else(|| "no peer certificate".into()),
        Ok(r) => Err(format!("HTTP {} {}", r.status, r.body)),
        Err(e) => Err(format!("{e:?}")),
    }
}

async fn assert_serving(server: &Server, certs: &Certs, stale_ca: &[u8]) {
    let leaf = handshake(server, &certs.ca_pem)
        .await
        .unwrap_or_else(|e| panic!("a client trusting the served CA failed: {e}"));
    assert_eq!(leaf, certs.leaf_der(), "the served leaf");
    let stale = handshake(server, stale_ca).await;
    assert!(
        stale.is_err(),
        "a client trusting only the other CA was served"
    );
}

/// Runs load from two clients trusting both CAs, rotates with `rotate`, waits until new
/// handshakes see `new`, and asserts that no request failed.
async fn rotate_under_load(server: &Server, old: &Certs, new: &Certs, rotate: impl FnOnce()) {
    assert_serving(server, old, &new.ca_pem).await;
    let reloads_before = server
        .metric("fidomesh_reloads_total{source=\"certificate\"}")
        .await;
    let load = Load::spawn(
        &server.url(""),
        load_clients(&[&old.ca_pem, &new.ca_pem]),
        admission_mix(),
        LOAD_LIMIT,
        LOAD_DEADLINE,
    );
    load.wait_answered(200, "requests before the rotation")
        .await;
    rotate();
    let new_leaf = new.leaf_der();
    common::eventually(
        "new handshakes to see the new certificate",
        RELOAD_WAIT,
        || {
            let new_leaf = new_leaf.clone();
            async move {
                handshake(server, &new.ca_pem)
                    .await
                    .ok()
                    .filter(|leaf| *leaf == new_leaf)
            }
        },
    )
    .await;
    let after = load.answered_count();
    let before_rotation = after;
    load.wait_answered(after + 300, "requests after the rotation")
        .await;
    let stats = load.finish().await;
    assert!(
        stats.failures.is_empty(),
        "{} of {} requests failed during the rotation: {:#?}\n{}",
        stats.failures.len(),
        stats.ok + stats.failures.len(),
        &stats.failures[..stats.failures.len().min(10)],
        server.output_text()
    );
    assert!(stats.ok >= 500, "only {} requests ran", stats.ok);
    eprintln!(
        "rotation: {} requests answered, none failed; rotation seen after {before_rotation} \
         answered; refused reloads on the way: {}",
        stats.ok,
        server
            .metric("fidomesh_reload_errors_total{source=\"certificate\"}")
            .await
    );
    assert_serving(server, new, &old.ca_pem).await;
    assert!(
        server
            .metric("fidomesh_reloads_total{source=\"certificate\"}")
            .await
            > reloads_before
    );
    assert_eq!(server.readyz().await, 200);
}

fn current_certs(server: &Server) -> Certs {
    Certs {
        dir: server.tls.cert.parent().unwrap().to_path_buf(),
        ca_pem: server.tls.ca_pem.clone(),
        cert_pem: std::fs::read(&server.tls.cert).unwrap(),
        key_pem: std::fs::read(&server.tls.key).unwrap(),
    }
}

#[tokio::test]
async fn accepts_in_place_certificate_rewrite_without_failed_requests() {
    let server = Server::start(Opts::default()).await;
    let old = current_certs(&server);
    let other = tempfile::tempdir().unwrap();
    let new = Certs::generate(other.path());
    let (cert, key) = (server.tls.cert.clone(), server.tls.key.clone());
    rotate_under_load(&server, &old, &new, || {
        // Overwrite both files in place, one after the other (cert-manager's csi driver style).
        std::fs::write(&cert, &new.cert_pem).unwrap();
        std::fs::write(&key, &new.key_pem).unwrap();
    })
    .await;
}

/// The kubelet's projected-volume layout: `..data -> ..<timestamp>/`, `tls.crt -> ..data/tls.crt`.
fn kubelet_dir(root: &Path, stamp: &str) -> Certs {
    let certs = Certs::generate(&root.join(stamp));
    std::os::unix::fs::symlink(stamp, root.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), root.join(f)).unwrap();
    }
    certs
}

/// The kubelet's atomic update: the new files in a new timestamped dir, a `..data_tmp` link
/// to it renamed over `..data`, then the old dir removed.
fn kubelet_swap(root: &Path, old_stamp: &str, new_stamp: &str, new: &Certs) {
    let dir = root.join(new_stamp);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), &new.ca_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &new.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &new.key_pem).unwrap();
    std::os::unix::fs::symlink(new_stamp, root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join(old_stamp)).unwrap();
}

#[tokio::test]
async fn accepts_kubelet_symlink_swap_without_failed_requests() {
    let root = tempfile::tempdir().unwrap();
    let old_stamp = "..2026_12_04_21_00_00.000000001";
    let new_stamp = "..2026_12_04_21_05_00.000000002";
    let old = kubelet_dir(root.path(), old_stamp);
    let server = Server::start(Opts {
        tls: Some(Tls {
            cert: root.path().join("tls.crt"),
            key: root.path().join("tls.key"),
            ca_pem: old.ca_pem.clone(),
        }),
        ..Opts::default()
    })
    .await;
    // The new pair is made beforehand so that the load's clients can trust its CA.
    let staged = tempfile::tempdir().unwrap();
    let new = Certs::generate(staged.path());
    rotate_under_load(&server, &old, &new, || {
        kubelet_swap(root.path(), old_stamp, new_stamp, &new);
    })
    .await;
    // The paths the server was given are still the symlinks, now through the new dir.
    assert_eq!(
        std::fs::read(root.path().join("tls.crt")).unwrap(),
        new.cert_pem
    );
    assert!(!root.path().join(old_stamp).exists());
}

#[tokio::test]
async fn rejects_broken_certificate_pair_and_keeps_serving_the_old_one() {
    let server = Server::start(Opts::default()).await;
    let old = current_certs(&server);
    let other = tempfile::tempdir().unwrap();
    let new = Certs::generate(other.path());
    let errors = "fidomesh_reload_errors_total{source=\"certificate\"}";
    assert_eq!(server.metric(errors).await, 0.0);
    let load = Load::spawn(
        &server.url(""),
        load_clients(&[&old.ca_pem, &new.ca_pem]),
        admission_mix(),
        LOAD_LIMIT,
        LOAD_DEADLINE,
    );
    load.wait_answered(20, "requests before the broken pair")
        .await;

    // 1. A certificate with the key of another certificate.
    std::fs::write(&server.tls.cert, &new.cert_pem).unwrap();
    common::eventually("the mismatched pair to be refused", RELOAD_WAIT, || async {
        (server.metric(errors).await >= 1.0).then_some(())
    })
    .await;
    assert_serving(&server, &old, &new.ca_pem).await;

    // 2. Garbage in both files.
    let before = server.metric(errors).await;
    std::fs::write(&server.tls.cert, b"not a certificate\n").unwrap();
    std::fs::write(&server.tls.key, b"-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
    common::eventually("the garbage pair to be refused", RELOAD_WAIT, || async {
        (server.metric(errors).await > before).then_some(())
    })
    .await;
    assert_serving(&server, &old, &new.ca_pem).await;
    assert_eq!(server.readyz().await, 200);
    let answered = load.answered_count();
    load.wait_answered(answered + 20, "requests with the broken pair on disk")
        .await;

    let stats = load.finish().await;
    assert!(
        stats.failures.is_empty(),
        "requests failed while a broken pair was on disk: {:#?}",
        &stats.failures[..stats.failures.len().min(10)]
    );

    // 3. A good pair again is taken.
    write_atomic(&server.tls.key, &new.key_pem);
    write_atomic(&server.tls.cert, &new.cert_pem);
    common::eventually("the good pair to be served", RELOAD_WAIT, || async {
        handshake(&server, &new.ca_pem)
            .await
            .ok()
            .filter(|leaf| *leaf == new.leaf_der())
    })
    .await;
}

const E2E_RULE: &str = r#"package fidomesh.admission

import rego.v1

# End-to-end test rule: refuses every ConfigMap CREATE.
deny contains {"code": "e2e-test", "msg": "ConfigMap CREATE is refused by the e2e rule"} if {
	input.request.operation == "CREATE"
	input.request.kind.kind == "ConfigMap"
}
"#;

const BROKEN_RULE: &str =
    "package fidomesh.admission\n\nimport rego.v1\n\ndeny contains {\"code\": \"broken\" if {\n";

/// (allowed, deny codes, policy-bundle digest) of a review on /validate.
async fn decision(server: &Server, review: &Value) -> (bool, Vec<String>, String) {
    let r = server.validate(review).await;
    (
        r["allowed"].as_bool().expect("allowed"),
        deny_codes(&r),
        r["auditAnnotations"]["policy-bundle"]
            .as_str()
            .expect("policy-bundle")
            .to_string(),
    )
}

#[tokio::test]
async fn accepts_policy_change_under_load_and_refuses_a_broken_bundle() {
    let policies = tempfile::tempdir().unwrap();
    copy_policies(policies.path());
    let server = Server::start(Opts {
        policies: Some(policies.path().to_path_buf()),
        ..Opts::default()
    })
    .await;
    let cm = || configmap_review(&uid("cm"));
    let alice = || with_uid(review("allowed-binding"), &uid("alice"));
    let (allowed, _, digest_1) = decision(&server, &cm()).await;
    assert!(allowed, "a ConfigMap is allowed by the shipped policies");

    let template_cm = configmap_review("x");
    let template_alice = review("allowed-binding");
    let load = Load::spawn(
        &server.url(""),
        load_clients(&[&server.tls.ca_pem]),
        Arc::new(move |n, id| {
            if n % 2 == 0 {
                ("validate", with_uid(template_cm.clone(), id))
            } else {
                ("validate", with_uid(template_alice.clone(), id))
            }
        }),
        LOAD_LIMIT,
        LOAD_DEADLINE,
    );
    load.wait_answered(50, "requests before the policy change")
        .await;

    // A new rule, written atomically.
    write_atomic(&policies.path().join("e2e.rego"), E2E_RULE.as_bytes());
    let digest_2 = common::eventually(
        "the ConfigMap decision to change to [e2e-test]",
        RELOAD_WAIT,
        || async {
            let r = server.validate(&cm()).await;
            let digest = r["auditAnnotations"]["policy-bundle"].as_str()?.to_string();
            (r["allowed"] == false
                && r["status"]["message"].as_str()?.starts_with("[e2e-test]")
                && digest != digest_1)
                .then_some(digest)
        },
    )
    .await;
    let (allowed, _, d) = decision(&server, &alice()).await;
    assert!(allowed, "the other rules still hold");
    assert_eq!(d, digest_2);

    // A broken file: refused, the previous bundle keeps serving.
    let errors = "fidomesh_reload_errors_total{source=\"policies\"}";
    let before = server.metric(errors).await;
    std::fs::write(policies.path().join("zz-broken.rego"), BROKEN_RULE).unwrap();
    common::eventually("the broken bundle to be refused", RELOAD_WAIT, || async {
        (server.metric(errors).await > before).then_some(())
    })
    .await;
    let (allowed, codes, d) = decision(&server, &cm()).await;
    assert!(!allowed);
    assert_eq!(codes, vec!["e2e-test".to_string()]);
    assert_eq!(d, digest_2, "the previous bundle keeps serving");
    let (allowed, _, d) = decision(&server, &alice()).await;
    assert!(allowed);
    assert_eq!(d, digest_2);
    assert_eq!(server.readyz().await, 200);

    let answered = load.answered_count();
    load.wait_answered(answered + 50, "requests after the broken bundle")
        .await;
    let stats = load.finish().await;
    assert!(
        stats.failures.is_empty(),
        "{} requests failed during the policy reloads: {:#?}",
        stats.failures.len(),
        &stats.failures[..stats.failures.len().min(10)]
    );

    // Both files gone: back to the shipped bundle.
    std::fs::remove_file(policies.path().join("zz-broken.rego")).unwrap();
    std::fs::remove_file(policies.path().join("e2e.rego")).unwrap();
    common::eventually("the shipped bundle to serve again", RELOAD_WAIT, || async {
        let (allowed, _, d) = decision(&server, &cm()).await;
        (allowed && d == digest_1).then_some(())
    })
    .await;
}

const BOB_REFUNDS: &str = r#"# e2e: bob joins the refund operators.
apiVersion: fidomesh.io/v1alpha1
kind: MeshRoleBinding
metadata:
  name: e2e-bob-refunds
  namespace: payments
spec:
  roleRef: {name: payments-refunds}
  authenticators:
    - name: bob-titan
"#;

#[tokio::test]
async fn accepts_data_change_and_decides_with_the_new_bindings() {
    let data = tempfile::tempdir().unwrap();
    copy_examples(data.path());
    let server = Server::start(Opts {
        data_dir: Some(data.path().to_path_buf()),
        ..Opts::default()
    })
    .await;
    let generation = "fidomesh_data_generation";
    let gen_1 = server.metric(generation).await;

    // bob holds payments-reader only: binding payments-refunds is an escalation.
    let (allowed, codes, _) = decision(&server, &bob_binds_refunds(&uid("bob"))).await;
    assert!(!allowed);
    assert!(codes.contains(&"no-escalation".to_string()), "{codes:?}");

    // A binding gives bob the role: the same request is now allowed.
    write_atomic(&data.path().join("e2e-bob.yaml"), BOB_REFUNDS.as_bytes());
    common::eventually(
        "bob's escalation to become allowed",
        RELOAD_WAIT,
        || async {
            let (allowed, _, _) = decision(&server, &bob_binds_refunds(&uid("bob"))).await;
            allowed.then_some(())
        },
    )
    .await;
    assert!(server.metric(generation).await > gen_1);
    let id = uid("bob-logged");
    let (allowed, _, _) = decision(&server, &bob_binds_refunds(&id)).await;
    assert!(allowed);
    let rec = server.read_log().one(&id).clone();
    assert!(rec["generation"].as_f64().unwrap() > gen_1, "{rec}");

    // The binding removed: denied again.
    std::fs::remove_file(data.path().join("e2e-bob.yaml")).unwrap();
    common::eventually(
        "bob's escalation to be denied again",
        RELOAD_WAIT,
        || async {
            let (allowed, codes, _) = decision(&server, &bob_binds_refunds(&uid("bob"))).await;
            (!allowed && codes.contains(&"no-escalation".to_string())).then_some(())
        },
    )
    .await;

    // alice's Authenticator removed: her binding is no longer backed by a registered key.
    let (allowed, _, _) = decision(&server, &review("allowed-binding")).await;
    assert!(allowed);
    let path = data.path().join("authenticators.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: alice-yubikey"))
        .collect();
    assert_eq!(kept.len() + 1, text.split("\n---\n").count());
    write_atomic(&path, kept.join("\n---\n").as_bytes());
    common::eventually("alice's binding to be denied", RELOAD_WAIT, || async {
        let r = server.validate(&review("allowed-binding")).await;
        (r["allowed"] == false && deny_codes(&r).contains(&"hardware-key-required".to_string()))
            .then_some(())
    })
    .await;
    assert_eq!(server.readyz().await, 200);
}

#[tokio::test]
async fn rejects_requests_while_the_bundle_at_start_is_broken_until_it_is_fixed() {
    let policies = tempfile::tempdir().unwrap();
    copy_policies(policies.path());
    std::fs::write(policies.path().join("zz-broken.rego"), BROKEN_RULE).unwrap();
    let server = Server::start(Opts {
        policies: Some(policies.path().to_path_buf()),
        allow_unready: true,
        ..Opts::default()
    })
    .await;
    // Fail closed: unready, and no decision without a bundle.
    assert_eq!(server.readyz().await, 503);
    assert!(
        server
            .metric("fidomesh_reload_errors_total{source=\"policies\"}")
            .await
            >= 1.0
    );
    assert_eq!(server.metric("fidomesh_ready").await, 0.0);
    for endpoint in ["validate", "mutate"] {
        let r = server.post(endpoint, &review("allowed-binding")).await;
        assert_eq!(r.status, 503, "{endpoint}: {}", r.body);
    }
    // Fixed on disk: picked up without a restart.
    std::fs::remove_file(policies.path().join("zz-broken.rego")).unwrap();
    common::eventually("the server to become ready", RELOAD_WAIT, || async {
        (server.readyz().await == 200).then_some(())
    })
    .await;
    assert_eq!(server.metric("fidomesh_ready").await, 1.0);
    assert_eq!(
        server.validate(&review("allowed-binding")).await["allowed"],
        true
    );
}

#[tokio::test]
async fn accepts_configmap_style_policy_swap() {
    // The policies mounted from a ConfigMap: `..data -> ..<timestamp>/`, `x.rego -> ..data/x.rego`.
    let root = tempfile::tempdir().unwrap();
    let old_stamp = "..2026_12_04_21_00_00.000000001";
    let new_stamp = "..2026_12_04_21_05_00.000000002";
    copy_policies(&root.path().join(old_stamp));
    std::os::unix::fs::symlink(old_stamp, root.path().join("..data")).unwrap();
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    for name in names(&root.path().join(old_stamp)) {
        std::os::unix::fs::symlink(format!("..data/{name}"), root.path().join(&name)).unwrap();
    }
    let server = Server::start(Opts {
        policies: Some(root.path().to_path_buf()),
        ..Opts::default()
    })
    .await;
    let (allowed, _, digest_1) = decision(&server, &configmap_review(&uid("cm"))).await;
    assert!(allowed);

    // The kubelet's update, all at once: new dir, new link, swap, old dir removed.
    copy_policies(&root.path().join(new_stamp));
    std::fs::write(root.path().join(new_stamp).join("e2e.rego"), E2E_RULE).unwrap();
    std::os::unix::fs::symlink("..data/e2e.rego", root.path().join("e2e.rego")).unwrap();
    std::os::unix::fs::symlink(new_stamp, root.path().join("..data_tmp")).unwrap();
    std::fs::rename(root.path().join("..data_tmp"), root.path().join("..data")).unwrap();
    std::fs::remove_dir_all(root.path().join(old_stamp)).unwrap();

    common::eventually("the swapped bundle to serve", RELOAD_WAIT, || async {
        let (allowed, codes, digest) = decision(&server, &configmap_review(&uid("cm"))).await;
        (!allowed && codes == ["e2e-test"] && digest != digest_1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn accepts_policy_and_data_changes_with_relative_paths() {
    // `fidomesh serve --policies policies --data-dir data`, as scripts/demo.sh runs it.
    let cwd = tempfile::tempdir().unwrap();
    copy_policies(&cwd.path().join("policies"));
    copy_examples(&cwd.path().join("data"));
    let server = Server::start(Opts {
        cwd: Some(cwd.path().to_path_buf()),
        policies: Some("policies".into()),
        data_dir: Some("data".into()),
        ..Opts::default()
    })
    .await;
    let (allowed, _, _) = decision(&server, &configmap_review(&uid("cm"))).await;
    assert!(allowed);
    write_atomic(&cwd.path().join("policies/e2e.rego"), E2E_RULE.as_bytes());
    common::eventually(
        "the new rule to be loaded from a relative --policies",
        RELOAD_WAIT,
        || async {
            let (allowed, codes, _) = decision(&server, &configmap_review(&uid("cm"))).await;
            (!allowed && codes == ["e2e-test"]).then_some(())
        },
    )
    .await;
    write_atomic(
        &cwd.path().join("data/e2e-bob.yaml"),
        BOB_REFUNDS.as_bytes(),
    );
    common::eventually(
        "the new binding to be loaded from a relative --data-dir",
        RELOAD_WAIT,
        || async {
            let (allowed, _, _) = decision(&server, &bob_binds_refunds(&uid("bob"))).await;
            allowed.then_some(())
        },
    )
    .await;
}
