//! The end-to-end harness: starts the release binary on 127.0.0.1 with its own certificates,
//! decision log and (when a test changes them) policies and data, and talks to it over HTTPS as
//! the API server does.
//!
//! Every server listens on free ports, keeps its files in a temp dir, and is killed when its
//! [`Server`] is dropped. Every wait and every load loop is bounded.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `../shared` beside the repository (override: `FIDOMESH_SHARED`).
pub fn shared() -> PathBuf {
    std::env::var_os("FIDOMESH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"))
}

/// The release binary under test (override: `FIDOMESH_BIN`). A missing binary fails the test.
pub fn bin() -> PathBuf {
    let path = std::env::var_os("FIDOMESH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/release/fidomesh"
            ))
        });
    assert!(
        path.is_file(),
        "the fidomesh binary is missing at {}: build it first with \
         `cargo build --release -p fidomesh` (or point FIDOMESH_BIN at it)",
        path.display()
    );
    path
}

/// A unique request uid.
pub fn uid(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A CA and serving pair made by `fidomesh certs --ip 127.0.0.1 --dns localhost`.
#[derive(Clone)]
pub struct Certs {
    /// The directory holding `ca.crt`, `tls.crt`, `tls.key`.
    pub dir: PathBuf,
    /// The CA (PEM).
    pub ca_pem: Vec<u8>,
    /// The serving certificate (PEM).
    pub cert_pem: Vec<u8>,
    /// The serving key (PEM).
    pub key_pem: Vec<u8>,
}

impl Certs {
    /// Runs `fidomesh certs` into `dir` (each run makes a new CA).
    pub fn generate(dir: &Path) -> Self {
        let out = Command::new(bin())
            .args(["certs", "--ip", "127.0.0.1", "--dns", "localhost", "--out"])
            .arg(dir)
            .output()
            .expect("running fidomesh certs");
        assert!(
            out.status.success(),
            "fidomesh certs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |name: &str| std::fs::read(dir.join(name)).expect(name);
        Self {
            dir: dir.to_path_buf(),
            ca_pem: read("ca.crt"),
            cert_pem: read("tls.crt"),
            key_pem: read("tls.key"),
        }
    }

    /// The DER of the serving (leaf) certificate.
    pub fn leaf_der(&self) -> Vec<u8> {
        pem_to_der(&self.cert_pem)
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let mut inside = false;
    let mut b64 = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            inside = true;
        } else if line == "-----END CERTIFICATE-----" {
            break;
        } else if inside {
            b64.push_str(line);
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM certificate")
}

// ---------------------------------------------------------------------------------------------
// Clients

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .tls_info(true)
}

/// An HTTPS client that trusts only the given CAs (PEM), with keep-alive.
pub fn client_trusting(cas: &[&[u8]]) -> reqwest::Client {
    let certs: Vec<reqwest::Certificate> = cas
        .iter()
        .map(|pem| reqwest::Certificate::from_pem(pem).expect("CA PEM"))
        .collect();
    builder()
        .tls_certs_only(certs)
        .build()
        .expect("HTTPS client")
}

/// Like [`client_trusting`], but every request opens a new connection (a new TLS handshake).
pub fn fresh_client_trusting(cas: &[&[u8]]) -> reqwest::Client {
    let certs: Vec<reqwest::Certificate> = cas
        .iter()
        .map(|pem| reqwest::Certificate::from_pem(pem).expect("CA PEM"))
        .collect();
    builder()
        .tls_certs_only(certs)
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTPS client")
}

/// A plaintext client (admin port).
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client")
}

/// An HTTP answer: status and body (JSON when it parses, else the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// The DER of the certificate the server presented, when known.
    pub peer_cert: Option<Vec<u8>>,
}

impl Reply {
    /// `body.response`, asserting HTTP 200 and an AdmissionReview envelope.
    pub fn response(&self) -> &Value {
        assert_eq!(self.status, 200, "HTTP status; body: {}", self.body);
        assert_eq!(
            self.body["apiVersion"], "admission.k8s.io/v1",
            "{}",
            self.body
        );
        assert_eq!(self.body["kind"], "AdmissionReview", "{}", self.body);
        let r = &self.body["response"];
        assert!(r.is_object(), "no response in {}", self.body);
        r
    }
}

/// POSTs a body (JSON value or raw bytes) and reads the answer.
pub async fn post_bytes(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Reply, reqwest::Error> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let peer_cert = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec);
    let bytes = resp.bytes().await?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Reply {
        status,
        body,
        peer_cert,
    })
}

/// POSTs a JSON value.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Reply, reqwest::Error> {
    post_bytes(client, url, serde_json::to_vec(body).expect("JSON")).await
}

// ---------------------------------------------------------------------------------------------
// Reviews

/// `manifests/examples/reviews/NAME.json` with `__AUTH_TIME__` set to now.
pub fn review(name: &str) -> Value {
    let path = repo().join(format!("manifests/examples/reviews/{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let text = text.replace("__AUTH_TIME__", &now_secs().to_string());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same review with another `request.uid`.
pub fn with_uid(mut review: Value, uid: &str) -> Value {
    review["request"]["uid"] = Value::String(uid.to_string());
    review
}

/// The shared admission samples (`../shared/admission-samples`).
pub const SAMPLES: [&str; 5] = [
    "k8s-api_admissionreview-v1-all-fields.json",
    "kube-rs_gke-pod-create-userinfo-extra.json",
    "kubewarden_deployment-update-request.json",
    "kubewarden_kind-pod-create-admission-review.json",
    "kubewarden_pod-delete-request.json",
];

/// The file of a shared sample, as stored (a bare AdmissionRequest stays bare).
pub fn sample_raw(file: &str) -> Value {
    let path = shared().join("admission-samples").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Wraps a bare AdmissionRequest as the API server POSTs it.
pub fn wrap(request: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// A shared sample as an AdmissionReview (bare requests wrapped).
pub fn sample(file: &str) -> Value {
    let v = sample_raw(file);
    if v.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
        v
    } else {
        wrap(v)
    }
}

/// A review built on a shared sample: `edit` changes its `request`.
pub fn mk_review(file: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut review = sample(file);
    let request = review["request"].as_object_mut().expect("request object");
    edit(request);
    review
}

/// A ConfigMap CREATE by `kubernetes-admin` (the kind-cluster Pod sample, with kind, resource
/// and object replaced). No rule guards ConfigMaps: allowed, nothing to mutate.
pub fn configmap_review(uid: &str) -> Value {
    mk_review("kubewarden_kind-pod-create-admission-review.json", |r| {
        let gvk = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
        let gvr = json!({"group": "", "version": "v1", "resource": "configmaps"});
        r.insert("uid".into(), json!(uid));
        r.insert("kind".into(), gvk.clone());
        r.insert("requestKind".into(), gvk);
        r.insert("resource".into(), gvr.clone());
        r.insert("requestResource".into(), gvr);
        r.insert("name".into(), json!("e2e-settings"));
        r.insert("namespace".into(), json!("default"));
        r.insert(
            "object".into(),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "e2e-settings", "namespace": "default"},
                "data": {"greeting": "hello"}
            }),
        );
    })
}

/// bob (registered Titan key, holds `payments-reader` only) binds `payments-refunds`: denied
/// `no-escalation` with the example data.
pub fn bob_binds_refunds(uid: &str) -> Value {
    let mut r = review("allowed-binding");
    let req = &mut r["request"];
    req["uid"] = json!(uid);
    req["name"] = json!("bob-refunds");
    req["userInfo"] = json!({
        "username": "bob@example.com",
        "groups": ["system:authenticated"],
        "extra": {
            "fidomesh.io/credential-id": ["IuhtE9i70zWsJZDL4kBK9Q"],
            "fidomesh.io/aaguid": ["42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3"],
            "fidomesh.io/amr": ["hwk", "user"],
            "fidomesh.io/auth-time": [now_secs().to_string()]
        }
    });
    req["object"] = json!({
        "apiVersion": "fidomesh.io/v1alpha1",
        "kind": "MeshRoleBinding",
        "metadata": {"name": "bob-refunds", "namespace": "payments"},
        "spec": {"roleRef": {"name": "payments-refunds"}, "authenticators": [{"name": "bob-titan"}]}
    });
    r
}

/// The deny codes of a `/validate` message (`[code] msg; [code] msg`).
pub fn deny_codes(response: &Value) -> Vec<String> {
    let msg = response["status"]["message"].as_str().unwrap_or_default();
    msg.split("; ")
        .filter_map(|part| {
            part.strip_prefix('[')
                .and_then(|rest| rest.split_once(']'))
                .map(|(code, _)| code.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Files

/// Copies the files of `from` whose name satisfies `keep` into `to` (created).
pub fn copy_files(from: &Path, to: &Path, keep: impl Fn(&str) -> bool) {
    std::fs::create_dir_all(to).expect("creating dir");
    for entry in std::fs::read_dir(from).expect("reading dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_file() && keep(&name) {
            std::fs::copy(&path, to.join(&name)).expect("copying");
        }
    }
}

/// A copy of the repository's policies (`*.rego`, `data.json`) in `to`.
pub fn copy_policies(to: &Path) {
    copy_files(&repo().join("policies"), to, |n| {
        n.ends_with(".rego") || n == "data.json"
    });
}

/// A copy of the example resources (`manifests/examples/*.yaml`) in `to`.
pub fn copy_examples(to: &Path) {
    copy_files(&repo().join("manifests/examples"), to, |n| {
        n.ends_with(".yaml")
    });
}

/// Writes `path` atomically: a hidden temp file in the same directory, then a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) {
    let dir = path.parent().expect("parent");
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let tmp = dir.join(format!(".{name}.e2e-tmp"));
    std::fs::write(&tmp, contents).expect("writing temp file");
    std::fs::rename(&tmp, path).expect("renaming temp file");
}

// ---------------------------------------------------------------------------------------------
// Decision log

/// A decision log as a reader sees it.
#[derive(Debug, Default)]
pub struct LogRead {
    /// The readable records, in order.
    pub records: Vec<Value>,
    /// Unreadable (torn) lines: (line index among non-empty lines, text).
    pub torn: Vec<(usize, String)>,
    /// Non-empty lines.
    pub lines: usize,
    /// Whether the file ends with a newline (or is empty).
    pub ends_with_newline: bool,
}

impl LogRead {
    /// The records of one request uid.
    pub fn by_uid(&self, uid: &str) -> Vec<&Value> {
        self.records.iter().filter(|r| r["uid"] == uid).collect()
    }

    /// The one record of a uid (panics unless exactly one).
    pub fn one(&self, uid: &str) -> &Value {
        let found = self.by_uid(uid);
        assert_eq!(found.len(), 1, "records for uid {uid}: {found:?}");
        found[0]
    }
}

const RECORD_FIELDS: [&str; 17] = [
    "decisionId",
    "time",
    "endpoint",
    "uid",
    "operation",
    "resource",
    "name",
    "username",
    "hardwareBacked",
    "allowed",
    "deny",
    "warn",
    "cacheHit",
    "bundle",
    "generation",
    "dryRun",
    "latencyUs",
];

/// Reads a decision log like `read_log`: one JSON record a line; a line that is not a whole
/// record is skipped and counted.
pub fn read_log(path: &Path) -> LogRead {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = LogRead {
        ends_with_newline: bytes.is_empty() || bytes.last() == Some(&b'\n'),
        ..LogRead::default()
    };
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let index = out.lines;
        out.lines += 1;
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if RECORD_FIELDS.iter().all(|f| v.get(f).is_some()) => out.records.push(v),
            _ => out
                .torn
                .push((index, String::from_utf8_lossy(line).into_owned())),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// The value of one sample (`name{labels}`) in a Prometheus/OpenMetrics text; 0 when absent.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `probe` every 100 ms until it yields a value, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// The certificate files a server is started with.
#[derive(Debug, Clone)]
pub struct Tls {
    /// `--tls-cert`.
    pub cert: PathBuf,
    /// `--tls-key`.
    pub key: PathBuf,
    /// The CA clients trust (PEM).
    pub ca_pem: Vec<u8>,
}

/// How to start a server. Every input left `None` gets a default: the repository's policies
/// and example resources, fresh certificates and a decision log in the server's temp dir.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// `--policies` (default: the repository's `policies/`).
    pub policies: Option<PathBuf>,
    /// `--data-dir` (default: the repository's `manifests/examples/`).
    pub data_dir: Option<PathBuf>,
    /// Certificates (default: `fidomesh certs` into the temp dir).
    pub tls: Option<Tls>,
    /// `--decision-log` (default: `decisions.log` in the temp dir).
    pub decision_log: Option<PathBuf>,
    /// `--max-body-bytes`.
    pub max_body_bytes: Option<usize>,
    /// `--poll-interval` (default `1s`).
    pub poll_interval: Option<String>,
    /// More flags.
    pub extra: Vec<String>,
    /// The server's working directory (for relative paths; default: the test's).
    pub cwd: Option<PathBuf>,
    /// Wait only until the process answers `/healthz`, not until it is ready.
    pub allow_unready: bool,
}

/// A running `fidomesh serve`; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The HTTPS port.
    pub port: u16,
    /// The plaintext admin port.
    pub admin: u16,
    /// The server's temp dir (certificates, log, output).
    pub dir: tempfile::TempDir,
    /// The certificate files and CA.
    pub tls: Tls,
    /// The decision log.
    pub log: PathBuf,
    /// The policy directory.
    pub policies: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// stdout and stderr of the server.
    pub output: PathBuf,
    client: reqwest::Client,
}

async fn wait_ready(
    child: &mut Child,
    admin: u16,
    probe: &str,
    output: &Path,
    limit: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let client = plain_client();
    let url = format!("http://127.0.0.1:{admin}/{probe}");
    let text = || std::fs::read_to_string(output).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited ({status}):\n{}", text()));
        }
        if let Ok(resp) = client.get(&url).send().await
            && resp.status().as_u16() == 200
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready after {limit:?}:\n{}", text()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// Starts a server and waits (at most 20 s) until `/readyz` answers 200 (`/healthz` with
    /// [`Opts::allow_unready`]).
    pub async fn start(opts: Opts) -> Self {
        let bin = bin();
        let dir = tempfile::Builder::new()
            .prefix("fidomesh-e2e-")
            .tempdir()
            .expect("temp dir");
        let tls = opts.tls.clone().unwrap_or_else(|| {
            let certs = Certs::generate(&dir.path().join("certs"));
            Tls {
                cert: certs.dir.join("tls.crt"),
                key: certs.dir.join("tls.key"),
                ca_pem: certs.ca_pem,
            }
        });
        let policies = opts
            .policies
            .clone()
            .unwrap_or_else(|| repo().join("policies"));
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| repo().join("manifests/examples"));
        let log = opts
            .decision_log
            .clone()
            .unwrap_or_else(|| dir.path().join("decisions.log"));
        let output = dir.path().join("server.out");
        let poll = opts.poll_interval.clone().unwrap_or_else(|| "1s".into());

        // A port picked free can be taken before the server binds it: retry with new ports.
        let mut last_output = String::new();
        for _attempt in 0..3 {
            let (port, admin) = (free_port(), free_port());
            if port == admin {
                continue;
            }
            let out = std::fs::File::create(&output).expect("output file");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--admin-listen")
                .arg(format!("127.0.0.1:{admin}"))
                .arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key)
                .arg("--policies")
                .arg(&policies)
                .arg("--data-dir")
                .arg(&data_dir)
                .arg("--mds-payload")
                .arg(repo().join("manifests/examples/fido-mds-payload.json"))
                .arg("--decision-log")
                .arg(&log)
                .arg("--poll-interval")
                .arg(&poll)
                .arg("--workers")
                .arg("2");
            if let Some(max) = opts.max_body_bytes {
                cmd.arg("--max-body-bytes").arg(max.to_string());
            }
            if let Some(cwd) = &opts.cwd {
                cmd.current_dir(cwd);
            }
            cmd.args(&opts.extra)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("dup output")))
                .stderr(Stdio::from(out));
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let probe = if opts.allow_unready {
                "healthz"
            } else {
                "readyz"
            };
            match wait_ready(&mut child, admin, probe, &output, Duration::from_secs(20)).await {
                Ok(()) => {
                    let client = client_trusting(&[&tls.ca_pem]);
                    return Self {
                        child: Some(child),
                        port,
                        admin,
                        dir,
                        tls,
                        log,
                        policies,
                        data_dir,
                        output,
                        client,
                    };
                }
                Err(text) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let clash = text.contains("listening on") || text.contains("in use");
                    last_output = text;
                    if !clash {
                        break;
                    }
                    eprintln!("retrying the server start after a port clash:\n{last_output}");
                }
            }
        }
        panic!("the server did not become ready:\n{last_output}");
    }

    /// What the server printed so far.
    pub fn output_text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// `http://127.0.0.1:ADMIN/PATH`.
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.admin,
            path.trim_start_matches('/')
        )
    }

    /// A keep-alive client trusting only this server's CA.
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// POSTs JSON to a webhook path with this server's client; a transport error panics.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        post_json(&self.client, &self.url(path), body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:?}\n{}", self.output_text()))
    }

    /// POSTs raw bytes to a webhook path; a transport error panics.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        post_bytes(&self.client, &self.url(path), body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:?}\n{}", self.output_text()))
    }

    /// `/validate`, asserting an AdmissionReview answer; returns `response`.
    pub async fn validate(&self, review: &Value) -> Value {
        self.post("validate", review).await.response().clone()
    }

    /// `/mutate`, asserting an AdmissionReview answer; returns `response`.
    pub async fn mutate(&self, review: &Value) -> Value {
        self.post("mutate", review).await.response().clone()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = plain_client()
            .get(self.admin_url("metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().await.expect("metrics text")
    }

    /// One metric sample (`name{labels}`), 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }

    /// The status of `/readyz`.
    pub async fn readyz(&self) -> u16 {
        plain_client()
            .get(self.admin_url("readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// The decision log as a reader sees it.
    pub fn read_log(&self) -> LogRead {
        read_log(&self.log)
    }

    /// SIGKILLs the server (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// SIGTERMs the server (as the kubelet does to stop a Pod) and waits at most `limit` for it to
    /// exit; `None` if it did not (it is SIGKILLed then).
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Requests answered as expected.
    pub ok: usize,
    /// Requests that failed (transport error, wrong status, wrong uid): a description each.
    pub failures: Vec<String>,
}

/// Makes the body of request number `n` with the given uid; returns (path, body).
pub type MakeBody = Arc<dyn Fn(usize, &str) -> (&'static str, Value) + Send + Sync>;

/// Background requests: each task sends bounded requests until stopped, `limit` requests or
/// `deadline`, whichever comes first.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadStats>>,
    /// The uids answered with HTTP 200 and the uid echoed, across tasks, as they arrive.
    pub answered: Arc<Mutex<Vec<String>>>,
    /// The failures so far, across tasks, as they happen.
    pub failed: Arc<Mutex<Vec<String>>>,
}

impl Load {
    /// Starts one task per client against `base` (`https://127.0.0.1:PORT`).
    pub fn spawn(
        base: &str,
        clients: Vec<reqwest::Client>,
        make: MakeBody,
        limit: usize,
        deadline: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let tasks = clients
            .into_iter()
            .enumerate()
            .map(|(t, client)| {
                let stop = stop.clone();
                let answered = answered.clone();
                let failed = failed.clone();
                let make = make.clone();
                let base = base.trim_end_matches('/').to_string();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut stats = LoadStats::default();
                    for n in 0..limit {
                        if stop.load(Ordering::Acquire) || started.elapsed() >= deadline {
                            break;
                        }
                        let id = uid(&format!("load{t}"));
                        let (path, body) = make(n, &id);
                        let failure = match post_json(&client, &format!("{base}/{path}"), &body)
                            .await
                        {
                            Ok(r) if r.status == 200 && r.body["response"]["uid"] == id => {
                                stats.ok += 1;
                                answered.lock().expect("lock").push(id);
                                continue;
                            }
                            Ok(r) => {
                                format!("task {t} request {n} ({id}): HTTP {} {}", r.status, r.body)
                            }
                            Err(e) => format!("task {t} request {n} ({id}): {e:?}"),
                        };
                        failed.lock().expect("lock").push(failure.clone());
                        stats.failures.push(failure);
                    }
                    stats
                })
            })
            .collect();
        Self {
            stop,
            tasks,
            answered,
            failed,
        }
    }

    /// How many requests have been answered so far.
    pub fn answered_count(&self) -> usize {
        self.answered.lock().expect("lock").len()
    }

    /// Waits (at most 15 s) until `at_least` requests have been answered; panics with the
    /// failures so far when they do not come.
    pub async fn wait_answered(&self, at_least: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.answered_count() < at_least {
            if Instant::now() >= deadline {
                let failed = self.failed.lock().expect("lock");
                panic!(
                    "timed out waiting for {at_least} answered requests ({what}): {} answered, \
                     {} failed, first failures: {:#?}",
                    self.answered_count(),
                    failed.len(),
                    &failed[..failed.len().min(5)]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every task and adds up what they saw.
    pub async fn finish(self) -> LoadStats {
        self.stop.store(true, Ordering::Release);
        let mut total = LoadStats::default();
        for t in self.tasks {
            let s = t.await.expect("load task");
            total.ok += s.ok;
            total.failures.extend(s.failures);
        }
        total
    }
}
