//! Load over HTTPS with keep-alive on loopback: the `fidomesh` binary with 10,000 authenticators in
//! its data and the default policies, against a floor (a plain actix-web + rustls responder that
//! returns a fixed AdmissionReview; bench code only), measured in the same run.
//!
//! Scenarios: (a) warm — one review repeated, every decision a cache hit; (b) cold — every review
//! different, every decision a policy evaluation; (c) floor — the fixed responder; (d) durable
//! floor — the fixed responder, which also makes one line durable per request in the webhook's
//! decision log (what the durability contract alone costs); (e) paced warm traffic at a fixed
//! rate for tail latency. Every phase is bounded in time; traffic goes to 127.0.0.1 only.
//!
//! `cargo bench -p fidomesh --bench load` (env: LOAD_SECONDS, LOAD_CONNECTIONS, LOAD_RATE,
//! LOAD_KEYS, LOAD_LOG_DIR, LOAD_WORKERS).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const BIN: &str = env!("CARGO_BIN_EXE_fidomesh");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cred(i: usize) -> String {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// 10,000 authenticators, 2,000 roles, 5,000 bindings as YAML.
fn write_data(dir: &Path, keys: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(dir.join("authenticators.yaml")).unwrap());
    for i in 0..keys {
        writeln!(
            f,
            "---\napiVersion: fidomesh.io/v1alpha1\nkind: Authenticator\nmetadata: {{name: key-{i}}}\nspec:\n  credentialId: {}\n  aaguid: ee882879-721c-4913-9775-3dfcce97072a\n  holder: user{i}@example.com\n  attestation: {{format: packed}}\n  notBefore: \"2026-01-01T00:00:00Z\"\n  notAfter: \"2027-06-01T00:00:00Z\"\n  serviceAccount: {{namespace: ops-sessions, name: user{i}-debug}}",
            cred(i)
        )
        .unwrap();
    }
    drop(f);
    let roles = keys / 5;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("roles.yaml")).unwrap());
    for i in 0..roles {
        writeln!(
            f,
            "---\napiVersion: fidomesh.io/v1alpha1\nkind: MeshRole\nmetadata: {{name: role-{i}, namespace: team-{}}}\nspec:\n  targets:\n    - {{kind: Server, name: api-{i}}}\n    - {{kind: HTTPRoute, group: gateway.networking.k8s.io, name: route-{i}}}",
            i % 50
        )
        .unwrap();
    }
    for i in 0..keys / 2 {
        let role = i % roles;
        writeln!(
            f,
            "---\napiVersion: fidomesh.io/v1alpha1\nkind: MeshRoleBinding\nmetadata: {{name: binding-{i}, namespace: team-{}}}\nspec:\n  roleRef: {{name: role-{role}}}\n  authenticators:\n    - {{name: key-{}}}\n    - {{name: key-{}}}",
            role % 50,
            (i * 2) % keys,
            (i * 2 + 1) % keys
        )
        .unwrap();
    }
}

/// A ~3 KB MeshRoleBinding CREATE by user0 with their registered hardware key.
fn review(name: &str) -> Vec<u8> {
    let labels: serde_json::Map<String, serde_json::Value> = (0..24)
        .map(|i| {
            (
                format!("example.com/label-{i}"),
                serde_json::json!(format!("value-{i}-abcdefgh")),
            )
        })
        .collect();
    let v = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-4000-8000-000000000000",
            "kind": {"group": "fidomesh.io", "version": "v1alpha1", "kind": "MeshRoleBinding"},
            "resource": {"group": "fidomesh.io", "version": "v1alpha1", "resource": "meshrolebindings"},
            "requestKind": {"group": "fidomesh.io", "version": "v1alpha1", "kind": "MeshRoleBinding"},
            "requestResource": {"group": "fidomesh.io", "version": "v1alpha1", "resource": "meshrolebindings"},
            "name": name,
            "namespace": "team-0",
            "operation": "CREATE",
            "userInfo": {
                "username": "user0@example.com",
                "groups": ["team-0", "system:authenticated"],
                "extra": {
                    "fidomesh.io/credential-id": [cred(0)],
                    "fidomesh.io/aaguid": ["ee882879-721c-4913-9775-3dfcce97072a"],
                    "fidomesh.io/amr": ["hwk", "user"],
                    "fidomesh.io/auth-time": [jiff::Timestamp::now().as_second().to_string()]
                }
            },
            "object": {
                "apiVersion": "fidomesh.io/v1alpha1",
                "kind": "MeshRoleBinding",
                "metadata": {"name": name, "namespace": "team-0", "labels": labels},
                "spec": {"roleRef": {"name": "role-0"}, "authenticators": [{"name": "key-1"}, {"name": "key-2"}]}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"}
        }
    });
    serde_json::to_vec(&v).unwrap()
}

/// The floor: a fixed AdmissionReview for every request. With `log`, the durable floor: before
/// answering, the same fixed responder also makes one line durable in the webhook's own decision
/// log (group commit, `fdatasync`), so that it pays what durability costs and nothing else.
fn floor_server(port: u16, cert: &Path, key: &Path, log: Option<&Path>) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let loaded = fidomesh::server::tls::load_pair(cert, key).unwrap();
    let resolver = Arc::new(fidomesh::server::tls::Resolver::new(loaded.key));
    let fixed = Bytes::from_static(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-4000-8000-000000000000","allowed":true,"status":{}}}"#,
    );
    let log = log.map(|path| {
        use fidomesh::server::decision_log::{DecisionLog, Rotation};
        let rotation = Rotation {
            max_bytes: 1 << 30,
            keep: 1,
        };
        let metrics = Arc::new(fidomesh::server::metrics::Metrics::new());
        DecisionLog::open(path, rotation, metrics).unwrap()
    });
    // A line of the size the webhook writes for the bench's review.
    let record = fidomesh::server::decision_log::Record {
        decision_id: "019a0000-0000-7000-8000-000000000000".into(),
        time: "2026-12-05T00:00:00.000000Z".into(),
        endpoint: "validate".into(),
        uid: "00000000-0000-4000-8000-000000000000".into(),
        operation: "CREATE".into(),
        resource: "fidomesh.io/v1alpha1/meshrolebindings".into(),
        namespace: Some("payments".into()),
        name: "bench-warm".into(),
        username: "user1@example.com".into(),
        authenticator: Some("0123456789abcdef".into()),
        hardware_backed: true,
        allowed: true,
        cache_hit: true,
        bundle: format!("sha256:{}", "0".repeat(64)),
        generation: 1,
        latency_us: 10,
        ..Default::default()
    };
    actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(move || {
            let (fixed, log, record) = (fixed.clone(), log.clone(), record.clone());
            actix_web::App::new().route(
                "/validate",
                actix_web::web::post().to(move |_body: actix_web::web::Bytes| {
                    let (fixed, log, record) = (fixed.clone(), log.clone(), record.clone());
                    async move {
                        if let Some(log) = log {
                            log.append(&record).await.unwrap();
                        }
                        actix_web::HttpResponse::Ok()
                            .content_type("application/json")
                            .body(fixed)
                    }
                }),
            )
        })
        .workers(2)
        .bind_rustls_0_23(
            ("127.0.0.1", port),
            fidomesh::server::tls::server_config(resolver),
        )
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}

fn wait_ready(admin: Option<u16>, port: u16, deadline: Duration) {
    let start = Instant::now();
    loop {
        let ok = match admin {
            Some(a) => std::process::Command::new("curl")
                .args(["-sf", &format!("http://127.0.0.1:{a}/readyz")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            None => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        };
        if ok {
            return;
        }
        assert!(start.elapsed() < deadline, "server on {port} not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
    /// CPU time the server process used during the phase.
    server_cpu: Duration,
}

impl Outcome {
    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let idx = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[idx]) / 1000.0
    }
    fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(port: u16, tls: &tokio_rustls::TlsConnector) -> Sender {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tls.connect(name, tcp).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// Closed loop (`rate == None`: each connection sends as fast as answers come) or open loop at a
/// total `rate` per second, for `duration`.
async fn run(
    port: u16,
    tls: tokio_rustls::TlsConnector,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
    expect: &'static str,
) -> Outcome {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let tls = tls.clone();
        let body = body.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(port, &tls).await;
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / connections as f64));
            while start.elapsed() < duration {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let req = hyper::Request::post("/validate")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(body(n)))
                    .unwrap();
                // Latency counts from the send: tokio's timer wakes up to a millisecond late, and
                // that lateness belongs to the generator, not to the server.
                let t0 = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == 200;
                        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes());
                        match bytes {
                            Ok(b)
                                if ok
                                    && b.windows(expect.len()).any(|w| w == expect.as_bytes()) =>
                            {
                                lat.push(
                                    u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX),
                                );
                            }
                            _ => errors += 1,
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        sender = connect(port, &tls).await;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut out = Outcome::default();
    for t in tasks {
        let (lat, errors) = t.await.unwrap();
        out.latencies_us.extend(lat);
        out.errors += errors;
    }
    out.elapsed = start.elapsed();
    out
}

/// CPU time (user + system, every thread) a process has used so far. `/proc` counts it in
/// USER_HZ ticks, which the kernel ABI fixes at 100 per second.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor-server") {
        let port: u16 = args[i + 1].parse().unwrap();
        let log = args.get(i + 4).map(PathBuf::from);
        floor_server(
            port,
            Path::new(&args[i + 2]),
            Path::new(&args[i + 3]),
            log.as_deref(),
        );
        return;
    }
    // `cargo test --benches` runs benches in test mode: nothing to measure then.
    if args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench") {
        println!("load: run with `cargo bench -p fidomesh --bench load`");
        return;
    }
    let seconds: u64 = env_or("LOAD_SECONDS", 6);
    let connections: usize = env_or("LOAD_CONNECTIONS", 16);
    let paced_rate: f64 = env_or("LOAD_RATE", 1000.0);
    let keys: usize = env_or("LOAD_KEYS", 10_000);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let certs = dir.join("certs");
    assert!(
        Command::new(BIN)
            .args(["certs", "--ip", "127.0.0.1", "--dns", "localhost", "--out"])
            .arg(&certs)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    write_data(&dir.join("data"), keys);
    let policies = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"));
    // LOAD_LOG_DIR puts the decision log elsewhere (e.g. on tmpfs, to separate the webhook's own
    // cost from the disk's fsync latency).
    let log_dir = std::env::var_os("LOAD_LOG_DIR").map_or_else(|| dir.to_path_buf(), PathBuf::from);
    let (port, admin, floor_port, durable_port) =
        (free_port(), free_port(), free_port(), free_port());
    let server = Kill(
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin-listen",
                &format!("127.0.0.1:{admin}"),
            ])
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .arg("--policies")
            .arg(&policies)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--decision-log")
            .arg(log_dir.join("decisions.log"))
            .args(
                std::env::var("LOAD_WORKERS")
                    .ok()
                    .map(|w| vec!["--workers".to_string(), w])
                    .unwrap_or_default(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // This bench binary, as a floor server (with a log path: the durable floor).
    let spawn_floor = |port: u16, log: Option<PathBuf>| {
        Kill(
            Command::new(std::env::current_exe().unwrap())
                .arg("--floor-server")
                .arg(port.to_string())
                .arg(certs.join("tls.crt"))
                .arg(certs.join("tls.key"))
                .args(log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let floor = spawn_floor(floor_port, None);
    let durable_floor = spawn_floor(durable_port, Some(log_dir.join("floor-decisions.log")));
    wait_ready(Some(admin), port, Duration::from_secs(60));
    wait_ready(None, floor_port, Duration::from_secs(20));
    wait_ready(None, durable_port, Duration::from_secs(20));

    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject as _;
    for c in rustls_pki_types::CertificateDer::pem_file_iter(certs.join("ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ));
    let fixed = Bytes::from(review("bench-warm"));
    eprintln!(
        "review size: {} bytes; data: {keys} authenticators",
        fixed.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dur = Duration::from_secs(seconds);
    let warm_body: Arc<dyn Fn(u64) -> Bytes + Send + Sync> = {
        let fixed = fixed.clone();
        Arc::new(move |_| fixed.clone())
    };
    // The cold bodies are made before the run so that the generator does not spend the CPU the
    // server needs; the name makes every review (and so every cache key) distinct.
    let cold_bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..200_000u64)
            .map(|n| Bytes::from(review(&format!("bench-cold-{n}"))))
            .collect(),
    );
    let cold_body: Arc<dyn Fn(u64) -> Bytes + Send + Sync> = {
        let bodies = cold_bodies.clone();
        Arc::new(move |n| bodies[(n as usize) % bodies.len()].clone())
    };
    let (server_pid, floor_pid, durable_pid) = (server.0.id(), floor.0.id(), durable_floor.0.id());
    let (mut warm, mut cold, mut floor_out, mut durable_out, mut paced) = rt.block_on(async {
        // Warm-up: fill the cache and the connections.
        let _ = run(
            port,
            tls.clone(),
            connections,
            Duration::from_secs(1),
            None,
            warm_body.clone(),
            "\"allowed\":true",
        )
        .await;
        let measured = |target: u32, port: u16, rate, body| {
            let tls = tls.clone();
            async move {
                let before = cpu_time(target);
                let mut o = run(port, tls, connections, dur, rate, body, "\"allowed\":true").await;
                o.server_cpu = cpu_time(target).saturating_sub(before);
                o
            }
        };
        let warm = measured(server_pid, port, None, warm_body.clone()).await;
        let cold = measured(server_pid, port, None, cold_body.clone()).await;
        let floor_out = measured(floor_pid, floor_port, None, warm_body.clone()).await;
        let durable_out = measured(durable_pid, durable_port, None, warm_body.clone()).await;
        let paced = measured(server_pid, port, Some(paced_rate), warm_body.clone()).await;
        (warm, cold, floor_out, durable_out, paced)
    });
    let (rss, hwm) = rss_kib(server.0.id());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "load: {connections} keep-alive HTTPS connections, {seconds} s per phase, {keys} authenticators, review {} bytes",
        fixed.len()
    );
    println!(
        "| phase | requests | errors | reviews/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/review |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, o) in [
        ("warm (all cache hits)", &mut warm),
        ("cold (all misses)", &mut cold),
        ("floor (fixed responder)", &mut floor_out),
        (
            "durable floor (fixed responder + decision log)",
            &mut durable_out,
        ),
        ("warm paced", &mut paced),
    ] {
        let (p50, p99, p999) = (o.pct(0.50), o.pct(0.99), o.pct(0.999));
        let per_review = o.server_cpu.as_secs_f64() * 1e6 / (o.latencies_us.len().max(1) as f64);
        println!(
            "| {name} | {} | {} | {:.0} | {p50:.3} | {p99:.3} | {p999:.3} | {per_review:.1} |",
            o.latencies_us.len(),
            o.errors,
            o.rate(),
        );
    }
    println!(
        "warm / floor: {:.0}%",
        100.0 * warm.rate() / floor_out.rate()
    );
    println!(
        "warm / durable floor: {:.0}%",
        100.0 * warm.rate() / durable_out.rate()
    );
    println!("paced target rate: {paced_rate:.0}/s");
    println!(
        "server RSS: {} MiB now, {} MiB peak",
        rss / 1024,
        hwm / 1024
    );
    drop(durable_floor);
    drop(floor);
    drop(server);
}
