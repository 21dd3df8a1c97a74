//! Admission over HTTPS, as the API server drives it: answers, patches, dry runs, every shared
//! sample envelope, and bad input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use base64::Engine as _;
use common::{
    Certs, Opts, SAMPLES, Server, client_trusting, configmap_review, mk_review, post_bytes,
    post_json, review, sample, sample_raw, uid, with_uid,
};
use serde_json::{Value, json};

fn is_bundle_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn decode_patch(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let b64 = response["patch"]
        .as_str()
        .unwrap_or_else(|| panic!("patch is not a base64 string: {response}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is base64");
    serde_json::from_slice(&bytes).expect("patch is an RFC 6902 JSON patch")
}

fn patched_object(review: &Value, response: &Value) -> Value {
    let patch = decode_patch(response);
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch.0).expect("patch applies to request.object");
    object
}

#[tokio::test]
async fn accepts_allowed_review_with_uid_and_audit_annotations() {
    let server = Server::start(Opts::default()).await;
    let id = uid("allowed");
    let r = server
        .validate(&with_uid(review("allowed-binding"), &id))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["uid"], id.as_str());
    let ann = &r["auditAnnotations"];
    let decision = ann["decision-id"].as_str().expect("decision-id annotation");
    assert!(!decision.is_empty());
    let bundle = ann["policy-bundle"]
        .as_str()
        .expect("policy-bundle annotation");
    assert!(is_bundle_digest(bundle), "policy-bundle {bundle}");
    // alice-yubikey's fingerprint (manifests/examples/README.md).
    assert_eq!(ann["authenticator"], "7eac3791daff73f9", "{r}");

    // The answer was not sent before its record was durable.
    let log = server.read_log();
    let rec = log.one(&id);
    assert_eq!(rec["decisionId"], decision);
    assert_eq!(rec["endpoint"], "validate");
    assert_eq!(rec["allowed"], true);
    assert_eq!(rec["bundle"], bundle);
    assert_eq!(rec["username"], "alice@example.com");
    assert_eq!(rec["hardwareBacked"], true);
    assert_eq!(rec["dryRun"], false);
    // Full credential IDs never reach the log.
    let line = serde_json::to_string(rec).unwrap();
    assert!(!line.contains("pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8"));
}

#[tokio::test]
async fn rejects_denied_review_with_403_and_rule_code() {
    let server = Server::start(Opts::default()).await;
    let id = uid("denied");
    let r = server
        .validate(&with_uid(review("denied-binding"), &id))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["uid"], id.as_str());
    assert_eq!(r["status"]["code"], 403, "{r}");
    let msg = r["status"]["message"].as_str().expect("status.message");
    assert!(msg.starts_with("[hardware-key-required]"), "message: {msg}");
    assert!(is_bundle_digest(
        r["auditAnnotations"]["policy-bundle"].as_str().unwrap()
    ));
    // mallory presented no credential: no authenticator annotation.
    assert!(r["auditAnnotations"].get("authenticator").is_none(), "{r}");
    let log = server.read_log();
    let rec = log.one(&id);
    assert_eq!(rec["allowed"], false);
    let deny: Vec<&str> = rec["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(deny.contains(&"hardware-key-required"), "{rec}");
}

#[tokio::test]
async fn accepts_mutation_with_canonical_ids_default_not_after_and_provenance() {
    let server = Server::start(Opts::default()).await;
    let id = uid("mutate");
    let sent = with_uid(review("mutated-authenticator"), &id);
    let r = server.mutate(&sent).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["uid"], id.as_str());
    let obj = patched_object(&sent, &r);
    let spec = &obj["spec"];
    assert_eq!(spec["aaguid"], "ee882879-721c-4913-9775-3dfcce97072a");
    assert_eq!(
        spec["credentialId"],
        "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc"
    );
    assert!(!spec["credentialId"].as_str().unwrap().contains('='));
    assert_eq!(spec["notAfter"], "2027-05-30T00:00:00Z");
    // Everything else is as sent.
    let orig = &sent["request"]["object"]["spec"];
    for key in ["holder", "attestation", "notBefore", "serviceAccount"] {
        assert_eq!(spec[key], orig[key], "spec.{key}");
    }
    assert_eq!(obj["metadata"]["name"], "olivia-yubikey");
    let ann = &obj["metadata"]["annotations"];
    assert_eq!(ann["fidomesh.io/applied-by"], "olivia@example.com", "{obj}");
    let fp = ann["fidomesh.io/authenticator"]
        .as_str()
        .expect("authenticator");
    assert!(
        fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
        "fingerprint {fp}"
    );
    // olivia's key is not registered yet: not hardware-backed.
    assert_eq!(ann["fidomesh.io/hardware-backed"], "false");
    let decision = ann["fidomesh.io/decision-id"]
        .as_str()
        .expect("decision-id");

    let log = server.read_log();
    let rec = log.one(&id);
    assert_eq!(rec["endpoint"], "mutate");
    assert_eq!(rec["decisionId"], decision);
    assert_eq!(rec["patchOps"], json!(decode_patch(&r).0.len()));

    // A binding by alice gets the provenance annotations only, with her registered key.
    let id = uid("mutate-binding");
    let sent = with_uid(review("allowed-binding"), &id);
    let r = server.mutate(&sent).await;
    assert_eq!(r["allowed"], true, "{r}");
    let obj = patched_object(&sent, &r);
    assert_eq!(obj["spec"], sent["request"]["object"]["spec"]);
    let ann = &obj["metadata"]["annotations"];
    assert_eq!(ann["fidomesh.io/applied-by"], "alice@example.com");
    assert_eq!(ann["fidomesh.io/authenticator"], "7eac3791daff73f9");
    assert_eq!(ann["fidomesh.io/hardware-backed"], "true");
    assert!(ann["fidomesh.io/decision-id"].is_string());
}

#[tokio::test]
async fn accepts_review_needing_no_change_without_patch() {
    let server = Server::start(Opts::default()).await;
    let mut reviews = vec![configmap_review(&uid("cm"))];
    for file in [
        "kube-rs_gke-pod-create-userinfo-extra.json",
        "kubewarden_kind-pod-create-admission-review.json",
        "kubewarden_pod-delete-request.json",
        "kubewarden_deployment-update-request.json",
    ] {
        reviews.push(sample(file));
    }
    let before = server.read_log().records.len();
    for rv in &reviews {
        let r = server.mutate(rv).await;
        assert_eq!(r["allowed"], true, "{r}");
        assert_eq!(r["uid"], rv["request"]["uid"]);
        assert!(r.get("patch").is_none(), "unexpected patch: {r}");
        assert!(r.get("patchType").is_none(), "unexpected patchType: {r}");
    }
    // Nothing changed, nothing to record.
    assert_eq!(server.read_log().records.len(), before);
}

#[tokio::test]
async fn accepts_dry_run_with_the_same_answer_and_logs_it_as_dry_run() {
    let server = Server::start(Opts::default()).await;
    for name in ["allowed-binding", "denied-binding"] {
        let (real, dry) = (uid("real"), uid("dry"));
        let a = server.validate(&with_uid(review(name), &real)).await;
        let mut dry_review = with_uid(review(name), &dry);
        dry_review["request"]["dryRun"] = json!(true);
        let b = server.validate(&dry_review).await;
        assert_eq!(a["allowed"], b["allowed"], "{name}: {a} vs {b}");
        assert_eq!(a["status"], b["status"], "{name}");
        assert_eq!(a["warnings"], b["warnings"], "{name}");
        assert_eq!(
            a["auditAnnotations"]["policy-bundle"], b["auditAnnotations"]["policy-bundle"],
            "{name}"
        );
        assert_eq!(b["uid"], dry.as_str());
        let log = server.read_log();
        let (ra, rb) = (log.one(&real), log.one(&dry));
        assert_eq!(ra["dryRun"], false, "{ra}");
        assert_eq!(rb["dryRun"], true, "{rb}");
        assert_eq!(ra["allowed"], rb["allowed"]);
        assert_eq!(ra["deny"], rb["deny"]);
        assert_eq!(ra["warn"], rb["warn"]);
    }

    // /mutate: the same patch (but the decision ID), recorded as a dry run.
    let (real, dry) = (uid("real-m"), uid("dry-m"));
    let sent = with_uid(review("mutated-authenticator"), &real);
    let a = server.mutate(&sent).await;
    let mut dry_review = with_uid(review("mutated-authenticator"), &dry);
    dry_review["request"]["dryRun"] = json!(true);
    let b = server.mutate(&dry_review).await;
    assert_eq!(a["allowed"], b["allowed"]);
    let strip = |mut v: Value| {
        v["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("fidomesh.io/decision-id");
        v
    };
    assert_eq!(
        strip(patched_object(&sent, &a)),
        strip(patched_object(&dry_review, &b))
    );
    let log = server.read_log();
    assert_eq!(log.one(&real)["dryRun"], false);
    assert_eq!(log.one(&dry)["dryRun"], true);
}

#[tokio::test]
async fn accepts_every_shared_sample_envelope_and_echoes_its_uid() {
    let mut server = Server::start(Opts::default()).await;
    for file in SAMPLES {
        let rv = sample(file);
        let want_uid = rv["request"]["uid"].as_str().unwrap().to_string();
        for endpoint in ["validate", "mutate"] {
            let r = server.post(endpoint, &rv).await.response().clone();
            assert_eq!(r["uid"], want_uid.as_str(), "{file} {endpoint}: {r}");
            if file.starts_with("k8s-api_") {
                // operation "operationValue" is no operation: an `invalid` answer, not a crash.
                assert_eq!(r["allowed"], false, "{file} {endpoint}: {r}");
                assert_eq!(r["status"]["code"], 400, "{file} {endpoint}: {r}");
                let msg = r["status"]["message"].as_str().unwrap_or_default();
                assert!(msg.contains("operationValue"), "{file} {endpoint}: {msg}");
            } else {
                // Pods and a Deployment by cluster admins: nothing fidomesh guards.
                assert_eq!(r["allowed"], true, "{file} {endpoint}: {r}");
            }
        }
    }
    // Every readable sample got a durable validate record with its uid.
    let log = server.read_log();
    for file in &SAMPLES[1..] {
        let id = sample(file)["request"]["uid"].as_str().unwrap().to_string();
        let recs = log.by_uid(&id);
        assert!(
            recs.iter().any(|r| r["endpoint"] == "validate"),
            "{file}: no validate record for {id}"
        );
    }
    assert!(server.running(), "{}", server.output_text());
}

#[tokio::test]
async fn rejects_body_that_is_not_json_with_400_and_a_reason() {
    let server = Server::start(Opts::default()).await;
    for body in [&b"hello"[..], b"{\"apiVersion\": ", b""] {
        for endpoint in ["validate", "mutate"] {
            let r = server.post_raw(endpoint, body.to_vec()).await;
            assert_eq!(r.status, 400, "{endpoint} {:?}: {}", body, r.body);
            let reason = r.body["error"].as_str().unwrap_or_default();
            assert!(reason.contains("not JSON"), "reason: {}", r.body);
        }
    }
    // Still answering.
    assert_eq!(
        server.validate(&review("allowed-binding")).await["allowed"],
        true
    );
}

#[tokio::test]
async fn rejects_json_that_is_not_an_admission_review_with_400() {
    let server = Server::start(Opts::default()).await;
    let bodies = [
        // A bare AdmissionRequest, as stored in the shared samples.
        sample_raw("kubewarden_pod-delete-request.json"),
        sample_raw("kubewarden_deployment-update-request.json"),
        // A Kubernetes object.
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}),
        // The wrong version.
        json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
               "request": review("allowed-binding")["request"].clone()}),
        // No request.
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": 7}),
        json!([1, 2, 3]),
    ];
    for body in &bodies {
        for endpoint in ["validate", "mutate"] {
            let r = server.post(endpoint, body).await;
            assert_eq!(r.status, 400, "{endpoint} {body}: {}", r.body);
            let reason = r.body["error"].as_str().unwrap_or_default();
            assert!(
                reason.contains("AdmissionReview"),
                "{endpoint}: reason {}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn rejects_unreadable_request_as_invalid_with_uid_echoed() {
    let mut server = Server::start(Opts::default()).await;
    let base = "kubewarden_kind-pod-create-admission-review.json";
    let object_42 = mk_review(base, |r| {
        r.insert("uid".into(), json!("e2e-object-42"));
        r.insert("object".into(), json!(42));
    });
    let no_uid = mk_review(base, |r| {
        r.remove("uid");
    });
    let bad_operation = mk_review(base, |r| {
        r.insert("uid".into(), json!("e2e-bad-operation"));
        r.insert("operation".into(), json!("PATCH"));
    });
    let no_kind = mk_review(base, |r| {
        r.insert("uid".into(), json!("e2e-no-kind"));
        r.remove("kind");
    });
    for (rv, want_uid, hint) in [
        (&object_42, "e2e-object-42", "object"),
        (&no_uid, "", "uid"),
        (&bad_operation, "e2e-bad-operation", "patch"),
        (&no_kind, "e2e-no-kind", "kind"),
    ] {
        for endpoint in ["validate", "mutate"] {
            let r = server.post(endpoint, rv).await.response().clone();
            assert_eq!(r["allowed"], false, "{endpoint}: {r}");
            assert_eq!(
                r["uid"].as_str().unwrap_or_default(),
                want_uid,
                "{endpoint}: {r}"
            );
            assert_eq!(r["status"]["code"], 400, "{endpoint}: {r}");
            let msg = r["status"]["message"].as_str().unwrap_or_default();
            assert!(
                msg.to_lowercase().contains(hint),
                "{endpoint}: message {msg:?}"
            );
            assert!(r.get("patch").is_none());
        }
    }
    assert!(server.running(), "{}", server.output_text());
    assert_eq!(
        server.validate(&review("allowed-binding")).await["allowed"],
        true
    );
}

#[tokio::test]
async fn rejects_body_over_the_limit_with_413() {
    let server = Server::start(Opts {
        max_body_bytes: Some(65_536),
        ..Opts::default()
    })
    .await;
    // A real review padded to 100 KB with an annotation.
    let mut big = review("allowed-binding");
    big["request"]["object"]["metadata"]["annotations"] =
        json!({"e2e/padding": "x".repeat(100 * 1024)});
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 100 * 1024);
    for endpoint in ["validate", "mutate"] {
        let r = server.post_raw(endpoint, body.clone()).await;
        assert_eq!(r.status, 413, "{endpoint}: {}", r.body);
    }
    // Just below the limit is fine.
    let mut small = review("allowed-binding");
    small["request"]["object"]["metadata"]["annotations"] =
        json!({"e2e/padding": "x".repeat(60 * 1024)});
    assert_eq!(server.validate(&small).await["allowed"], true);
}

#[tokio::test]
async fn rejects_get_on_validate_with_405_and_unknown_path_with_404() {
    let server = Server::start(Opts::default()).await;
    let client = server.client();
    for path in ["validate", "mutate"] {
        let resp = client.get(server.url(path)).send().await.expect("GET");
        assert_eq!(resp.status().as_u16(), 405, "GET /{path}");
    }
    let r = post_json(&client, &server.url("nope"), &review("allowed-binding"))
        .await
        .expect("POST /nope");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post_json(&client, &server.url("validate/extra"), &json!({}))
        .await
        .expect("POST /validate/extra");
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn rejects_plaintext_http_on_the_https_port() {
    let server = Server::start(Opts::default()).await;
    let url = format!("http://127.0.0.1:{}/validate", server.port);
    let body = serde_json::to_vec(&review("allowed-binding")).unwrap();
    let got = post_bytes(&common::plain_client(), &url, body).await;
    match got {
        Err(_) => {}
        Ok(r) => panic!("plaintext HTTP was answered: HTTP {} {}", r.status, r.body),
    }
    // The HTTPS side is unharmed.
    assert_eq!(
        server.validate(&review("allowed-binding")).await["allowed"],
        true
    );
}

#[tokio::test]
async fn rejects_client_that_does_not_trust_the_ca_at_the_handshake() {
    let server = Server::start(Opts::default()).await;
    let other = tempfile::tempdir().unwrap();
    let stranger = Certs::generate(other.path());
    let client = client_trusting(&[&stranger.ca_pem]);
    let got = post_json(&client, &server.url("validate"), &review("allowed-binding")).await;
    let err = match got {
        Err(e) => e,
        Ok(r) => panic!("a client not trusting the CA got HTTP {}", r.status),
    };
    assert!(err.is_connect(), "not a connect error: {err:?}");
    let text = format!("{err:?}");
    assert!(
        text.contains("InvalidCertificate") || text.contains("certificate"),
        "not a certificate error: {text}"
    );
    // The trusting client is served, with the leaf the server was given.
    let r = post_json(
        &server.client(),
        &server.url("validate"),
        &review("allowed-binding"),
    )
    .await
    .expect("trusting client");
    assert_eq!(r.status, 200);
    let served = r.peer_cert.expect("peer certificate");
    assert_eq!(
        served,
        common::pem_to_der(&std::fs::read(&server.tls.cert).unwrap())
    );
}
