//! The webhook app in-process (the real routes, state, policies, data and decision log; no
//! socket): the answers the API server gets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[path = "common/mds_chain.rs"]
mod mds_chain;

use actix_web::{App, test, web};
use base64::Engine as _;
use fidomesh::server::decision_log::read_log;
use fidomesh::server::{AppState, ServeArgs, admin_routes, build_state, webhook_routes};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Fixture {
    state: Arc<AppState>,
    dir: tempfile::TempDir,
}

fn mk_args(dir: &Path) -> ServeArgs {
    let certs = fidomesh::server::tls::generate(
        "fidomesh",
        "fidomesh-system",
        &["localhost".into()],
        &["127.0.0.1".parse().unwrap()],
        30,
    )
    .unwrap();
    std::fs::write(dir.join("tls.crt"), certs.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), certs.key_pem).unwrap();
    ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: dir.join("tls.crt"),
        tls_key: dir.join("tls.key"),
        policies: repo().join("policies"),
        data_dir: repo().join("manifests/examples"),
        decision_log: dir.join("decisions.log"),
        settings: None,
        mds_payload: Some(repo().join("manifests/examples/fido-mds-payload.json")),
        mds_blob: None,
        mds_roots: Vec::new(),
        max_body_bytes: 64 * 1024,
        body_timeout: Duration::from_millis(300),
        eval_timeout: Duration::from_millis(500),
        eval_concurrency: Some(2),
        cache_capacity: 1000,
        cache_ttl: Duration::from_secs(60),
        extra_prefix: "fidomesh.io/".into(),
        decision_log_max_bytes: 10 * 1024 * 1024,
        decision_log_keep: 2,
        workers: Some(1),
        poll_interval: Duration::from_secs(10),
    }
}

async fn mk_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = build_state(mk_args(dir.path()), 1).await.unwrap();
    assert!(state.ready());
    Fixture { state, dir }
}

fn mk_review(name: &str) -> Value {
    let text =
        std::fs::read_to_string(repo().join(format!("manifests/examples/reviews/{name}.json")))
            .unwrap();
    let now = jiff::Timestamp::now().as_second().to_string();
    serde_json::from_str(&text.replace("__AUTH_TIME__", &now)).unwrap()
}

macro_rules! app {
    ($f:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::from($f.state.clone()))
                .configure(webhook_routes)
                .configure(admin_routes),
        )
        .await
    };
}

async fn post(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    path: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = test::TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
        .to_request();
    let resp = test::call_service(app, req).await;
    let status = resp.status().as_u16();
    let bytes = test::read_body(resp).await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

#[actix_web::test]
async fn accepts_a_holder_binding_a_role_she_holds() {
    let f = mk_fixture().await;
    let app = app!(f);
    let (status, v) = post(
        &app,
        "/validate",
        serde_json::to_vec(&mk_review("allowed-binding")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let r = &v["response"];
    assert_eq!(r["allowed"], true, "{v}");
    assert_eq!(r["uid"], "7f0b2c1e-0001-4a1b-9c3d-000000000001");
    assert!(
        r["auditAnnotations"]["policy-bundle"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(r["auditAnnotations"]["decision-id"].as_str().unwrap().len() >= 32);
    assert_eq!(r["auditAnnotations"]["authenticator"], "7eac3791daff73f9");
    let (records, torn) = read_log(&f.dir.path().join("decisions.log")).unwrap();
    assert_eq!(torn, 0);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].uid, "7f0b2c1e-0001-4a1b-9c3d-000000000001");
    assert!(records[0].allowed && records[0].hardware_backed);
    let line = std::fs::read_to_string(f.dir.path().join("decisions.log")).unwrap();
    assert!(
        !line.contains("pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8"),
        "credential ID logged"
    );
}

#[actix_web::test]
async fn rejects_an_admin_without_a_hardware_key_with_the_code_first() {
    let f = mk_fixture().await;
    let app = app!(f);
    let (status, v) = post(
        &app,
        "/validate",
        serde_json::to_vec(&mk_review("denied-binding")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let r = &v["response"];
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[hardware-key-required] "),
        "{v}"
    );
}

#[actix_web::test]
async fn dry_run_reviews_get_the_same_answer_and_are_marked_in_the_log() {
    let f = mk_fixture().await;
    let app = app!(f);
    for name in ["allowed-binding", "denied-binding"] {
        let real = mk_review(name);
        let mut dry = real.clone();
        dry["request"]["dryRun"] = json!(true);
        let (_, a) = post(&app, "/validate", serde_json::to_vec(&real).unwrap()).await;
        let (_, b) = post(&app, "/validate", serde_json::to_vec(&dry).unwrap()).await;
        assert_eq!(a["response"]["allowed"], b["response"]["allowed"]);
        assert_eq!(a["response"]["status"], b["response"]["status"]);
    }
    let (records, _) = read_log(&f.dir.path().join("decisions.log")).unwrap();
    assert_eq!(records.iter().filter(|r| r.dry_run).count(), 2);
    assert_eq!(records.iter().filter(|r| !r.dry_run).count(), 2);
}

#[actix_web::test]
async fn mutates_an_authenticator_into_canonical_form() {
    let f = mk_fixture().await;
    let app = app!(f);
    let review = mk_review("mutated-authenticator");
    let (status, v) = post(&app, "/mutate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 200);
    let r = &v["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).unwrap();
    assert_eq!(
        object["spec"]["aaguid"],
        "ee882879-721c-4913-9775-3dfcce97072a"
    );
    assert_eq!(
        object["spec"]["credentialId"],
        "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc"
    );
    assert_eq!(object["spec"]["notAfter"], "2027-05-30T00:00:00Z");
    let ann = &object["metadata"]["annotations"];
    assert_eq!(ann["fidomesh.io/applied-by"], "olivia@example.com");
    assert_eq!(ann["fidomesh.io/hardware-backed"], "false");
    assert!(ann["fidomesh.io/decision-id"].as_str().is_some());
}

#[actix_web::test]
async fn escapes_slashes_and_tildes_in_annotation_patch_paths() {
    let f = mk_fixture().await;
    let app = app!(f);
    let mut review = mk_review("allowed-binding");
    review["request"]["object"]["metadata"]["annotations"] = json!({"example.com/a~b": "keep"});
    let (_, v) = post(&app, "/mutate", serde_json::to_vec(&review).unwrap()).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["response"]["patch"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains("/metadata/annotations/fidomesh.io~1applied-by"),
        "{text}"
    );
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).unwrap();
    assert_eq!(object["metadata"]["annotations"]["example.com/a~b"], "keep");
    assert_eq!(
        object["metadata"]["annotations"]["fidomesh.io/applied-by"],
        "alice@example.com"
    );
}

#[actix_web::test]
async fn omits_the_patch_when_nothing_changes() {
    let f = mk_fixture().await;
    let app = app!(f);
    let text = std::fs::read_to_string(
        repo().join("../shared/admission-samples/kubewarden_kind-pod-create-admission-review.json"),
    )
    .unwrap();
    let (status, v) = post(&app, "/mutate", text.into_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none(), "{v}");
    assert!(v["response"].get("patchType").is_none());
}

#[actix_web::test]
async fn rejects_bodies_that_are_not_json_with_400() {
    let f = mk_fixture().await;
    let app = app!(f);
    for path in ["/validate", "/mutate"] {
        let (status, v) = post(&app, path, b"{not json".to_vec()).await;
        assert_eq!(status, 400);
        assert!(v["error"].as_str().unwrap().contains("not JSON"), "{v}");
    }
}

#[actix_web::test]
async fn rejects_json_that_is_not_an_admission_review_with_400() {
    let f = mk_fixture().await;
    let app = app!(f);
    let bare = std::fs::read(
        repo().join("../shared/admission-samples/kubewarden_pod-delete-request.json"),
    )
    .unwrap();
    for body in [
        bare,
        b"[]".to_vec(),
        br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#
            .to_vec(),
    ] {
        let (status, v) = post(&app, "/validate", body).await;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("not an admission.k8s.io/v1 AdmissionReview")
        );
    }
}

#[actix_web::test]
async fn answers_invalid_for_an_unreadable_request_and_echoes_the_uid() {
    let f = mk_fixture().await;
    let app = app!(f);
    let mut review = mk_review("allowed-binding");
    review["request"]["object"] = json!(42);
    let (status, v) = post(&app, "/validate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["uid"], "7f0b2c1e-0001-4a1b-9c3d-000000000001");
    assert_eq!(v["response"]["status"]["reason"], "InvalidRequest");
    let mut no_uid = mk_review("allowed-binding");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let (status, v) = post(&app, "/validate", serde_json::to_vec(&no_uid).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("uid")
    );
}

#[actix_web::test]
async fn answers_invalid_for_a_duplicated_member_and_echoes_a_uid_sent_once() {
    let f = mk_fixture().await;
    let app = app!(f);
    let uid = "7f0b2c1e-0001-4a1b-9c3d-000000000001";
    let text = serde_json::to_string(&mk_review("allowed-binding")).unwrap();
    // JSON with a member twice cannot be built from a map: splice the text.
    let with =
        |member: &str| text.replacen("\"request\":{", &format!("\"request\":{{{member},"), 1);
    for endpoint in ["/validate", "/mutate"] {
        let (status, v) = post(&app, endpoint, with(r#""name":"other""#).into_bytes()).await;
        assert_eq!(status, 200, "{endpoint}: {v}");
        assert_eq!(v["response"]["allowed"], false, "{endpoint}: {v}");
        assert_eq!(v["response"]["uid"], uid, "{endpoint}: {v}");
        assert_eq!(v["response"]["status"]["reason"], "InvalidRequest");
        let message = v["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("\"name\" appears twice"), "{message}");
        // With the uid itself twice there is no uid to echo: which copy would count?
        let (status, v) = post(&app, endpoint, with(r#""uid":"another""#).into_bytes()).await;
        assert_eq!(status, 200, "{endpoint}: {v}");
        assert_eq!(v["response"]["allowed"], false, "{endpoint}: {v}");
        assert_eq!(v["response"]["uid"], "", "{endpoint}: {v}");
    }
}

/// Every review the tests know (the examples and the captured samples), as sent.
fn mk_corpus() -> Vec<(String, Vec<u8>)> {
    let mut corpus: Vec<(String, Vec<u8>)> =
        ["allowed-binding", "denied-binding", "mutated-authenticator"]
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    serde_json::to_vec(&mk_review(name)).unwrap(),
                )
            })
            .collect();
    for entry in std::fs::read_dir(repo().join("../shared/admission-samples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            corpus.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert!(corpus.len() >= 6, "no review corpus found");
    corpus
}

#[actix_web::test]
async fn answers_every_truncated_or_corrupted_review_with_200_or_400_and_never_fails() {
    // What a broken proxy or a hostile client can send: every review cut short at many points,
    // and with bytes replaced by JSON's structural characters or by invalid UTF-8. Each answer is
    // an AdmissionReview (allowed or not) or a 400 with a reason: never a 5xx, never a panic.
    let f = mk_fixture().await;
    let app = app!(f);
    let mut answered = [0usize; 2];
    for (name, body) in mk_corpus() {
        let step = (body.len() / 24).max(1);
        let mut cases: Vec<Vec<u8>> = (0..body.len())
            .step_by(step)
            .map(|n| body[..n].to_vec())
            .collect();
        for at in (step / 2..body.len()).step_by(step) {
            for b in [b'"', b'{', b'}', b'\\', b',', 0xff] {
                let mut c = body.clone();
                c[at] = b;
                cases.push(c);
            }
        }
        for case in cases {
            for endpoint in ["/validate", "/mutate"] {
                let (status, v) = post(&app, endpoint, case.clone()).await;
                let shown = String::from_utf8_lossy(&case);
                match status {
                    200 => {
                        answered[0] += 1;
                        assert_eq!(v["kind"], "AdmissionReview", "{name} {endpoint}: {v}");
                        assert!(v["response"]["uid"].is_string(), "{name} {endpoint}: {v}");
                        assert!(
                            v["response"]["allowed"].is_boolean(),
                            "{name} {endpoint}: {v}"
                        );
                    }
                    400 => {
                        answered[1] += 1;
                        assert_eq!(v["code"], "bad-review", "{name} {endpoint}: {v}");
                        assert!(
                            v["error"].as_str().is_some_and(|r| !r.is_empty()),
                            "{name} {endpoint}: a 400 without a reason: {v}"
                        );
                    }
                    other => panic!("{name} {endpoint}: HTTP {other} for {shown}: {v}"),
                }
            }
        }
    }
    eprintln!("answered 200: {}, 400: {}", answered[0], answered[1]);
    // Both kinds of answer were exercised, so the corpus really reached the policy path.
    assert!(answered[0] > 100 && answered[1] > 100, "{answered:?}");
}

#[actix_web::test]
async fn answers_invalid_for_unreadable_objects_even_after_a_cached_decision() {
    // Objects are checked on a cache miss only; a changed object is always a miss.
    let f = mk_fixture().await;
    let app = app!(f);
    let review = mk_review("allowed-binding");
    for _ in 0..2 {
        let (_, v) = post(&app, "/validate", serde_json::to_vec(&review).unwrap()).await;
        assert_eq!(v["response"]["allowed"], true, "{v}");
    }
    let hits = f.state.metrics().cache_hits.get();
    assert!(hits >= 1, "the second answer must come from the cache");
    for (field, bad) in [
        ("metadata", json!({"labels": "not-a-map"})),
        ("metadata", json!({"creationTimestamp": "yesterday"})),
        ("kind", json!(7)),
    ] {
        let mut broken = review.clone();
        broken["request"]["object"][field] = bad.clone();
        for path in ["/validate", "/mutate"] {
            let (status, v) = post(&app, path, serde_json::to_vec(&broken).unwrap()).await;
            assert_eq!(status, 200);
            assert_eq!(v["response"]["allowed"], false, "{path} {field}={bad}: {v}");
            assert_eq!(v["response"]["status"]["reason"], "InvalidRequest", "{v}");
        }
    }
    // Text a member scan accepts but a full parse refuses, outside the metadata.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (label, text) in [
        ("a lone surrogate", r#""\ud800""#.to_string()),
        ("a number out of range", "1e400".to_string()),
        ("nesting deeper than 128", deep),
    ] {
        let mut broken = review.clone();
        broken["request"]["object"]["spec"]["extra"] = json!("PLACEHOLDER");
        let body = serde_json::to_string(&broken)
            .unwrap()
            .replace(r#""PLACEHOLDER""#, &text);
        for path in ["/validate", "/mutate"] {
            let (status, v) = post(&app, path, body.clone().into_bytes()).await;
            assert_eq!(status, 200, "{path} {label}: {v}");
            assert_eq!(v["response"]["allowed"], false, "{path} {label}: {v}");
            assert_eq!(
                v["response"]["status"]["reason"], "InvalidRequest",
                "{path} {label}: {v}"
            );
        }
    }
    assert_eq!(f.state.metrics().cache_hits.get(), hits);
}

#[actix_web::test]
async fn denies_when_the_decision_cannot_be_recorded() {
    // An undocumented decision is not a decision: a log that cannot write fails closed.
    let dir = tempfile::tempdir().unwrap();
    let mut args = mk_args(dir.path());
    args.decision_log = "/dev/full".into();
    let f = Fixture {
        state: build_state(args, 1).await.unwrap(),
        dir,
    };
    let app = app!(f);
    let (status, v) = post(
        &app,
        "/validate",
        serde_json::to_vec(&mk_review("allowed-binding")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let message = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("[decision-log-unavailable]"),
        "{message}"
    );
    let (_, v) = post(
        &app,
        "/mutate",
        serde_json::to_vec(&mk_review("mutated-authenticator")).unwrap(),
    )
    .await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert!(v["response"].get("patch").is_none(), "{v}");
    assert!(f.state.metrics().log_errors.get() >= 2);
}

#[actix_web::test]
async fn rejects_bodies_over_the_limit_with_413() {
    let f = mk_fixture().await;
    let app = app!(f);
    let mut review = mk_review("allowed-binding");
    review["request"]["object"]["metadata"]["annotations"] =
        json!({"padding": "x".repeat(100 * 1024)});
    let (status, v) = post(&app, "/validate", serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(v["code"], "body-too-large", "{v}");
}

#[actix_web::test]
async fn rejects_a_body_that_stops_arriving_with_408_after_the_deadline() {
    // Headers, then the start of a body, then nothing: without a deadline the handler would wait
    // for the rest for ever and hold the connection.
    let f = mk_fixture().await;
    let app = app!(f);
    for endpoint in ["/validate", "/mutate"] {
        let (mut sender, stalled) = actix_http::h1::Payload::create(false);
        sender.feed_data(bytes::Bytes::from_static(b"{\"apiVersion\":"));
        let req = test::TestRequest::post()
            .uri(endpoint)
            .insert_header(("content-type", "application/json"))
            .to_request();
        let (req, _) = req.replace_payload(actix_http::Payload::from(stalled));
        let started = std::time::Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(10), test::call_service(&app, req))
            .await
            .unwrap_or_else(|_| panic!("{endpoint}: no answer to a stalled body"));
        let waited = started.elapsed();
        assert_eq!(resp.status().as_u16(), 408, "{endpoint}");
        let v: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
        assert_eq!(v["code"], "body-timeout", "{v}");
        // The fixture's deadline is 300 ms.
        assert!(
            waited >= Duration::from_millis(300),
            "{endpoint}: {waited:?}"
        );
        drop(sender);
    }
}

#[actix_web::test]
async fn rejects_wrong_methods_and_paths() {
    let f = mk_fixture().await;
    let app = app!(f);
    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/validate").to_request()).await;
    assert_eq!(resp.status().as_u16(), 405);
    let (status, _) = post(&app, "/nope", b"{}".to_vec()).await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn exports_metrics_and_readiness() {
    let f = mk_fixture().await;
    let app = app!(f);
    let _ = post(
        &app,
        "/validate",
        serde_json::to_vec(&mk_review("allowed-binding")).unwrap(),
    )
    .await;
    let _ = post(
        &app,
        "/validate",
        serde_json::to_vec(&mk_review("allowed-binding")).unwrap(),
    )
    .await;
    let resp = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    for needle in [
        "fidomesh_requests_total{endpoint=\"validate\",result=\"allowed\"} 2",
        "fidomesh_decision_cache_hits_total 1",
        "fidomesh_decision_cache_misses_total 1",
        "fidomesh_request_duration_seconds_bucket",
        "fidomesh_decision_log_fsync_duration_seconds_count",
        "fidomesh_certificate_expiry_seconds",
        "fidomesh_ready 1",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    assert_eq!(f.state.metrics().cache_hits.get(), 1);
}

/// An ES256 issuer made in the test: its JWKS file, settings naming it, and a token minter.
struct Issuer {
    key: rcgen::KeyPair,
}

impl Issuer {
    fn new() -> Self {
        Self {
            key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }

    fn write_settings(&self, dir: &Path) -> PathBuf {
        let raw = self.key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "test-1", "alg": "ES256", "use": "sig",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]});
        let jwks_path = dir.join("jwks.json");
        std::fs::write(&jwks_path, jwks.to_string()).unwrap();
        let settings = dir.join("settings.yaml");
        std::fs::write(
            &settings,
            format!(
                "issuers:\n  - issuer: https://idp.example.com\n    audiences: [fidomesh]\n    jwks: [{}]\n    algorithms: [ES256]\n",
                jwks_path.display()
            ),
        )
        .unwrap();
        settings
    }

    fn token(&self, extra: Value) -> String {
        let now = jiff::Timestamp::now().as_second();
        let mut claims = json!({
            "iss": "https://idp.example.com", "aud": "fidomesh", "sub": "alice@example.com",
            "iat": now, "exp": now + 300, "auth_time": now, "amr": ["hwk", "user"],
            "fido_cred_id": "pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8",
        });
        fidomesh::policy::deep_merge(&mut claims, extra);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("test-1".into());
        let key =
            jsonwebtoken::EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

async fn mk_fixture_with_issuer(issuer: &Issuer) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut args = mk_args(dir.path());
    args.settings = Some(issuer.write_settings(dir.path()));
    let state = build_state(args, 1).await.unwrap();
    Fixture { state, dir }
}

async fn dry_run_call(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    token: Option<&str>,
    body: &str,
) -> (u16, Value, Option<String>) {
    let mut req = test::TestRequest::post()
        .uri("/v1/dry-run")
        .insert_header(("content-type", "application/yaml"))
        .set_payload(body.to_string());
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|h| h.to_str().unwrap().to_string());
    let bytes = test::read_body(resp).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        www,
    )
}

const DRY_BINDING: &str = "apiVersion: fidomesh.io/v1alpha1
kind: MeshRoleBinding
metadata: {name: payments-weekend, namespace: payments}
spec:
  roleRef: {name: payments-reader}
  authenticators: [{name: carol-nitrokey}]
";

#[actix_web::test]
async fn accepts_a_dry_run_for_a_verified_token_and_persists_nothing() {
    let issuer = Issuer::new();
    let f = mk_fixture_with_issuer(&issuer).await;
    let app = app!(f);
    let (status, v, _) = dry_run_call(&app, Some(&issuer.token(json!({}))), DRY_BINDING).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["requester"]["source"], "token");
    assert_eq!(
        v["requester"]["authenticator"]["hardwareBacked"], true,
        "{v}"
    );
    assert_eq!(v["decision"]["allowed"], true, "{v}");
    assert_eq!(v["linkerd"]["added"].as_array().unwrap().len(), 4);
    assert_eq!(v["dryRun"], true);
    // Nothing persisted: no decision-log line.
    let (records, _) = read_log(&f.dir.path().join("decisions.log")).unwrap();
    assert!(records.is_empty());
}

#[actix_web::test]
async fn rejects_dry_runs_without_a_valid_token_with_401_and_a_reason() {
    let issuer = Issuer::new();
    let f = mk_fixture_with_issuer(&issuer).await;
    let app = app!(f);
    let (status, v, www) = dry_run_call(&app, None, DRY_BINDING).await;
    assert_eq!(status, 401);
    assert_eq!(v["code"], "token-missing");
    assert!(www.unwrap().starts_with("Bearer"));
    let expired = issuer.token(json!({"exp": jiff::Timestamp::now().as_second() - 3600, "iat": jiff::Timestamp::now().as_second() - 4000}));
    let (status, v, _) = dry_run_call(&app, Some(&expired), DRY_BINDING).await;
    assert_eq!(status, 401);
    assert_eq!(v["code"], "token-expired", "{v}");
    let other = Issuer::new().token(json!({}));
    let (status, v, _) = dry_run_call(&app, Some(&other), DRY_BINDING).await;
    assert_eq!(status, 401);
    assert_eq!(v["code"], "token-signature-invalid", "{v}");
    assert!(
        !v.to_string().contains(&other),
        "the token must never be echoed"
    );
}

#[actix_web::test]
async fn rejects_dry_run_input_that_is_not_an_object_with_400() {
    let issuer = Issuer::new();
    let f = mk_fixture_with_issuer(&issuer).await;
    let app = app!(f);
    let (status, v, _) = dry_run_call(&app, Some(&issuer.token(json!({}))), "[1, 2, 3]").await;
    assert_eq!(status, 400);
    assert_eq!(v["code"], "bad-input");
}

fn mk_signed_mds(chain: &mds_chain::Chain, serial: u64, revoke_titan: bool) -> String {
    let sample = std::fs::read_to_string(repo().join("../shared/fido/mds3-sample.json")).unwrap();
    let mut payload: Value = serde_json::from_str(&sample).unwrap();
    payload["no"] = json!(serial);
    payload["nextUpdate"] = json!("2027-06-01");
    if revoke_titan {
        for e in payload["entries"].as_array_mut().unwrap() {
            if e["aaguid"] == "42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3" {
                e["statusReports"].as_array_mut().unwrap().insert(
                    0,
                    json!({"status": "REVOKED", "effectiveDate": "2026-12-01"}),
                );
            }
        }
    }
    mds_chain::mk_blob(chain, &payload.to_string())
}

async fn mk_fixture_with_mds(blob: &str, chain: &mds_chain::Chain) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut args = mk_args(dir.path());
    std::fs::write(dir.path().join("mds.jwt"), blob).unwrap();
    std::fs::write(dir.path().join("mds-root.pem"), &chain.root_pem).unwrap();
    args.mds_payload = None;
    args.mds_blob = Some(dir.path().join("mds.jwt"));
    args.mds_roots = vec![dir.path().join("mds-root.pem")];
    let state = build_state(args, 1).await.unwrap();
    Fixture { state, dir }
}

fn metric(state: &AppState, needle: &str) -> String {
    state
        .metrics()
        .encode()
        .lines()
        .find(|l| l.starts_with(needle))
        .unwrap_or_default()
        .to_string()
}

#[actix_web::test]
async fn accepts_a_verified_mds_blob_and_follows_a_newer_one() {
    let chain = mds_chain::mk_chain(&rcgen::PKCS_ECDSA_P256_SHA256, (2026, 1, 1), (2028, 1, 1));
    let f = mk_fixture_with_mds(&mk_signed_mds(&chain, 300, false), &chain).await;
    assert!(f.state.ready());
    let app = app!(f);
    // bob signs in with his Titan key and binds a role he holds (payments-reader).
    let mut review = mk_review("allowed-binding");
    let ui = &mut review["request"]["userInfo"];
    ui["username"] = json!("bob@example.com");
    ui["extra"]["fidomesh.io/credential-id"] = json!(["IuhtE9i70zWsJZDL4kBK9Q"]);
    ui["extra"]["fidomesh.io/aaguid"] = json!(["42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3"]);
    let body = serde_json::to_vec(&review).unwrap();
    let (_, v) = post(&app, "/validate", body.clone()).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    let before = metric(&f.state, "fidomesh_data_generation");

    // A newer BLOB revokes the Titan model: the data generation moves, bob's key is no longer
    // active, and the same review is now denied.
    std::fs::write(
        f.dir.path().join("mds.jwt"),
        mk_signed_mds(&chain, 301, true),
    )
    .unwrap();
    f.state.reload_mds();
    assert_ne!(metric(&f.state, "fidomesh_data_generation"), before);
    assert!(metric(&f.state, "fidomesh_reloads_total{source=\"mds\"}").ends_with(" 2"));
    let (_, v) = post(&app, "/validate", body).await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let message = v["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("[hardware-key-required]"), "{message}");
}

#[actix_web::test]
async fn rejects_tampered_and_older_blobs_and_keeps_the_loaded_one() {
    let chain = mds_chain::mk_chain(&rcgen::PKCS_ECDSA_P256_SHA256, (2026, 1, 1), (2028, 1, 1));
    let f = mk_fixture_with_mds(&mk_signed_mds(&chain, 300, false), &chain).await;
    assert!(f.state.ready());
    let generation = metric(&f.state, "fidomesh_data_generation");
    let good = mk_signed_mds(&chain, 305, false);
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{\"no\":999,\"entries\":[]}");
    for bad in [
        parts.join("."),
        mk_signed_mds(&chain, 299, false),
        "garbage".to_string(),
    ] {
        std::fs::write(f.dir.path().join("mds.jwt"), bad).unwrap();
        f.state.reload_mds();
        assert!(f.state.ready());
        assert_eq!(metric(&f.state, "fidomesh_data_generation"), generation);
    }
    assert!(metric(&f.state, "fidomesh_reload_errors_total{source=\"mds\"}").ends_with(" 3"));
}

#[actix_web::test]
async fn rejects_an_unverifiable_blob_at_start_by_staying_unready() {
    let chain = mds_chain::mk_chain(&rcgen::PKCS_ECDSA_P256_SHA256, (2026, 1, 1), (2028, 1, 1));
    let other = mds_chain::mk_chain(&rcgen::PKCS_ECDSA_P256_SHA256, (2026, 1, 1), (2028, 1, 1));
    // Signed by a chain whose root is not the pinned one.
    let f = mk_fixture_with_mds(&mk_signed_mds(&other, 300, false), &chain).await;
    assert!(!f.state.ready());
    let app = app!(f);
    let resp = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(resp.status().as_u16(), 503);
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    assert!(body.contains("mds:"), "{body}");
}
