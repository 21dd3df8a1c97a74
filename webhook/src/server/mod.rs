//! `fidomesh serve`: the admission webhook over HTTPS, with health and metrics on a plaintext
//! admin port.
//!
//! The handlers parse, call the core pipeline ([`crate::review`], [`crate::requester`],
//! [`crate::decide`]) and map the result; they hold no policy logic of their own.

pub mod decision_log;
pub mod metrics;
pub mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use anyhow::Context as _;
use arc_swap::ArcSwapOption;
use notify::Watcher as _;
use tokio::sync::Semaphore;
use tracing::{Instrument as _, error, info, warn};

use crate::data::Snapshot;
use crate::decide::{Decider, DecisionCache, Part};
use crate::mds::Mds;
use crate::policy::{Bundle, Verdict, Violation};
use crate::requester::{ExtraKeys, Source};
use crate::review::{self, Parsed};
use crate::settings::Settings;

use decision_log::{DecisionLog, Record, Rotation};
use metrics::Metrics;

/// Arguments of `fidomesh serve` (every flag is also an environment variable).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// HTTPS address of the webhook.
    #[arg(long, env = "FIDOMESH_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plaintext address of /healthz, /readyz and /metrics.
    #[arg(long, env = "FIDOMESH_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// Serving certificate chain (PEM); re-read when it changes.
    #[arg(long, env = "FIDOMESH_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Serving key (PEM); re-read when it changes.
    #[arg(long, env = "FIDOMESH_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Policy bundle directory (`*.rego`, `data.json`); reloaded when it changes.
    #[arg(long, env = "FIDOMESH_POLICIES")]
    pub policies: PathBuf,
    /// Directory of fidomesh resources (YAML); watched.
    #[arg(long, env = "FIDOMESH_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Decision log file (JSON lines).
    #[arg(long, env = "FIDOMESH_DECISION_LOG")]
    pub decision_log: PathBuf,
    /// Settings file (YAML).
    #[arg(long, env = "FIDOMESH_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// A decoded FIDO MDS3 payload (JSON).
    #[arg(long, env = "FIDOMESH_MDS_PAYLOAD")]
    pub mds_payload: Option<PathBuf>,
    /// A signed FIDO MDS3 BLOB (JWS); verified against `--mds-root` and reloaded when it changes.
    #[arg(
        long,
        env = "FIDOMESH_MDS_BLOB",
        conflicts_with = "mds_payload",
        requires = "mds_roots"
    )]
    pub mds_blob: Option<PathBuf>,
    /// A pinned root certificate (PEM) for the MDS BLOB's x5c chain; may repeat.
    #[arg(long = "mds-root", env = "FIDOMESH_MDS_ROOTS", value_delimiter = ',')]
    pub mds_roots: Vec<PathBuf>,
    /// Largest request body accepted (bytes); larger bodies get 413.
    #[arg(long, env = "FIDOMESH_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Time a request body has to arrive in full once its headers have; slower bodies get 408.
    #[arg(long, env = "FIDOMESH_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// Deadline of one policy evaluation.
    #[arg(long, env = "FIDOMESH_EVAL_TIMEOUT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub eval_timeout: Duration,
    /// Evaluations running at once (default: twice the cores).
    #[arg(long, env = "FIDOMESH_EVAL_CONCURRENCY")]
    pub eval_concurrency: Option<usize>,
    /// Decisions held in the cache.
    #[arg(long, env = "FIDOMESH_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,
    /// How long a cached decision is kept.
    #[arg(long, env = "FIDOMESH_CACHE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// Prefix of the `userInfo.extra` keys.
    #[arg(long, env = "FIDOMESH_EXTRA_PREFIX", default_value = "fidomesh.io/")]
    pub extra_prefix: String,
    /// Rotate the decision log at this size (bytes).
    #[arg(long, env = "FIDOMESH_DECISION_LOG_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub decision_log_max_bytes: u64,
    /// Rotated decision logs kept.
    #[arg(long, env = "FIDOMESH_DECISION_LOG_KEEP", default_value_t = 5)]
    pub decision_log_keep: usize,
    /// HTTP worker threads (default: the cores).
    #[arg(long, env = "FIDOMESH_WORKERS")]
    pub workers: Option<usize>,
    /// Re-check certificate, policy and data files at this interval as well as on change events.
    #[arg(long, env = "FIDOMESH_POLL_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
}

/// The policy engine and facts serving right now.
pub struct Live {
    /// The bundle.
    pub bundle: Arc<Bundle>,
    /// The facts.
    pub snapshot: Arc<Snapshot>,
    /// Bundle + facts, prepared.
    pub decider: Decider,
}

/// Everything the handlers share.
pub struct AppState {
    live: ArcSwapOption<Live>,
    bundle: ArcSwapOption<Bundle>,
    snapshot: ArcSwapOption<Snapshot>,
    cache: DecisionCache,
    log: DecisionLog,
    metrics: Arc<Metrics>,
    settings: Arc<Settings>,
    mds: arc_swap::ArcSwap<Mds>,
    // The serial of the BLOB in service (never goes backwards), and whether a configured BLOB
    // has verified (trust inputs fail closed: no verified BLOB, not ready).
    mds_serial: Mutex<Option<u64>>,
    mds_ok: AtomicBool,
    extra_keys: ExtraKeys,
    permits: Arc<Semaphore>,
    eval_timeout: Duration,
    cert_ready: AtomicBool,
    generation: AtomicU64,
    reload: Mutex<()>,
    problems: Mutex<BTreeMap<&'static str, String>>,
    resolver: Arc<tls::Resolver>,
    tokens: arc_swap::ArcSwap<crate::token::TokenVerifier>,
    token_cache: crate::token::VerifiedTokenCache,
    args: ServeArgs,
}

/// Errors the HTTP layer answers; one mapping to status codes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not an AdmissionReview.
    #[error(transparent)]
    BadReview(#[from] review::ReviewError),
    /// Policies or data are not loaded yet.
    #[error("not ready: policies or data are not loaded")]
    NotReady,
    /// The bearer token was refused.
    #[error(transparent)]
    Unauthorized(#[from] crate::token::TokenError),
    /// A dry-run input cannot be used.
    #[error(transparent)]
    DryRun(#[from] crate::dryrun::DryRunError),
    /// The body is larger than `--max-body-bytes`.
    #[error("the body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// The body could not be read from the connection.
    #[error("the body could not be read: {0}")]
    Payload(String),
    /// The body did not arrive within `--body-timeout`.
    #[error("the body did not arrive within {} ms", .0.as_millis())]
    BodyTimeout(Duration),
    /// Something failed that is not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadReview(_) | Self::DryRun(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Payload(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let code = match self {
            Self::Unauthorized(e) => {
                response.insert_header(("WWW-Authenticate", e.www_authenticate()));
                e.code()
            }
            Self::BadReview(_) => "bad-review",
            Self::DryRun(_) => "bad-input",
            Self::NotReady => "not-ready",
            Self::TooLarge(_) => "body-too-large",
            Self::Payload(_) => "bad-body",
            Self::BodyTimeout(_) => "body-timeout",
            Self::Internal(_) => "internal",
        };
        response.json(serde_json::json!({
            "error": self.to_string(),
            "code": code,
        }))
    }
}

impl AppState {
    /// True when the certificate, the policies and the data are loaded.
    pub fn ready(&self) -> bool {
        self.cert_ready.load(Ordering::Acquire)
            && self.mds_ok.load(Ordering::Acquire)
            && self.live.load().is_some()
    }

    fn set_problem(&self, source: &'static str, problem: Option<String>) {
        if let Ok(mut p) = self.problems.lock() {
            match problem {
                Some(e) => {
                    p.insert(source, e);
                }
                None => {
                    p.remove(source);
                }
            }
        }
    }

    fn update_ready_metric(&self) {
        self.metrics.ready.set(i64::from(self.ready()));
    }

    /// The decision cache.
    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn install(&self, bundle: Arc<Bundle>, snapshot: Arc<Snapshot>) -> Result<(), String> {
        let prepared = bundle
            .with_facts(snapshot.facts())
            .map_err(|e| e.to_string())?;
        let generation = snapshot.generation;
        self.live.store(Some(Arc::new(Live {
            bundle,
            snapshot,
            decider: Decider {
                prepared: Arc::new(prepared),
                generation,
            },
        })));
        self.metrics
            .data_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        // Old entries can never match again (their generation or digest is gone); free them.
        self.cache.clear();
        self.update_ready_metric();
        Ok(())
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Loads the policy bundle; on failure the previous one keeps serving.
    pub fn reload_policies(&self) {
        let Ok(_guard) = self.reload.lock() else {
            return;
        };
        match Bundle::load_dir(&self.args.policies, self.eval_timeout) {
            Ok(bundle) => {
                if self
                    .bundle
                    .load()
                    .as_ref()
                    .is_some_and(|b| b.digest() == bundle.digest())
                {
                    return;
                }
                let digest = bundle.digest().to_string();
                let bundle = Arc::new(bundle);
                match self.snapshot.load_full() {
                    Some(snapshot) => match self.install(bundle.clone(), snapshot) {
                        Ok(()) => self.bundle.store(Some(bundle)),
                        Err(e) => return self.refuse("policies", e),
                    },
                    None => self.bundle.store(Some(bundle)),
                }
                self.metrics.bundle_loads.inc();
                self.metrics.reloaded("policies");
                self.set_problem("policies", None);
                info!(bundle = %digest, "policy bundle loaded");
            }
            Err(e) => self.refuse("policies", e.to_string()),
        }
        self.update_ready_metric();
    }

    /// Loads the resources of the data directory; on failure the previous ones keep serving.
    pub fn reload_data(&self) {
        let Ok(_guard) = self.reload.lock() else {
            return;
        };
        match crate::load::load_paths(std::slice::from_ref(&self.args.data_dir)) {
            Ok(loaded) => {
                // Only the resources are kept; where each came from is for error messages of
                // the command line, so it goes before the facts are built.
                let crate::load::Loaded { resources, .. } = loaded;
                let snapshot = Arc::new(Snapshot::build(
                    self.next_generation(),
                    Arc::new(resources),
                    self.settings.clone(),
                    self.mds.load_full(),
                    jiff::Timestamp::now(),
                ));
                for p in &snapshot.translation.problems {
                    warn!(problem = %p, "data problem");
                }
                self.place_snapshot(snapshot);
            }
            Err(e) => self.refuse("data", e.to_string()),
        }
        self.update_ready_metric();
    }

    /// Recomputes the instant-dependent facts (keys expiring or becoming valid).
    pub fn refresh_clock(&self) {
        let Ok(_guard) = self.reload.lock() else {
            return;
        };
        if let Some(current) = self.snapshot.load_full() {
            let snapshot = Arc::new(current.at(self.next_generation(), jiff::Timestamp::now()));
            info!(
                generation = snapshot.generation,
                "facts recomputed at their next change"
            );
            self.place_snapshot(snapshot);
        }
    }

    fn place_snapshot(&self, snapshot: Arc<Snapshot>) {
        if let Some(bundle) = self.bundle.load_full()
            && let Err(e) = self.install(bundle, snapshot.clone())
        {
            return self.refuse("data", e);
        }
        let generation = snapshot.generation;
        self.snapshot.store(Some(snapshot));
        self.metrics.reloaded("data");
        self.set_problem("data", None);
        info!(generation, "data loaded");
    }

    fn refuse(&self, source: &'static str, error: String) {
        error!(source, %error, "reload refused; the previous input keeps serving");
        self.metrics.reload_error(source);
        self.set_problem(source, Some(error));
    }

    /// Verifies the configured MDS BLOB; a verified newer BLOB replaces the metadata and bumps
    /// the data generation. On failure the previous metadata keeps serving (none at start: the
    /// server stays unready).
    pub fn reload_mds(&self) {
        let (Some(blob), roots) = (&self.args.mds_blob, &self.args.mds_roots) else {
            return;
        };
        let outcome = (|| -> anyhow::Result<Option<crate::mds_blob::VerifiedBlob>> {
            let texts = roots
                .iter()
                .map(|p| {
                    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let roots = crate::mds_blob::MdsRoots::from_pems(texts.iter().map(String::as_str))?;
            let text = std::fs::read_to_string(blob)
                .with_context(|| format!("reading {}", blob.display()))?;
            let previous = self.mds_serial.lock().ok().and_then(|s| *s);
            let verified =
                crate::mds_blob::verify_blob(&text, &roots, jiff::Timestamp::now(), previous)?;
            // The same BLOB again: nothing to do.
            Ok((Some(verified.serial) != previous).then_some(verified))
        })();
        match outcome {
            Ok(None) => {}
            Ok(Some(verified)) => {
                info!(serial = verified.serial, signer = %verified.signer, "FIDO metadata BLOB verified");
                if let Ok(mut s) = self.mds_serial.lock() {
                    *s = Some(verified.serial);
                }
                self.mds.store(Arc::new(verified.mds));
                self.mds_ok.store(true, Ordering::Release);
                self.metrics.reloaded("mds");
                self.set_problem("mds", None);
                // The revoked-model drops and data.fidomesh.mds follow the new metadata.
                if let Ok(_guard) = self.reload.lock()
                    && let Some(current) = self.snapshot.load_full()
                {
                    let snapshot = Arc::new(Snapshot::build(
                        self.next_generation(),
                        current.resources.clone(),
                        current.settings.clone(),
                        self.mds.load_full(),
                        jiff::Timestamp::now(),
                    ));
                    self.place_snapshot(snapshot);
                }
            }
            Err(e) => self.refuse("mds", format!("{e:#}")),
        }
        self.update_ready_metric();
    }

    /// Re-reads the issuers' JWKS files; on failure the previous keys keep verifying.
    pub fn reload_jwks(&self) {
        if self.settings.issuers.is_empty() {
            return;
        }
        match crate::token::TokenVerifier::from_files(&self.settings.issuers) {
            Ok(v) => {
                if v.fingerprint() != self.tokens.load().fingerprint() {
                    self.tokens.store(Arc::new(v));
                    self.metrics.reloaded("jwks");
                    info!("token issuer keys reloaded");
                }
                self.set_problem("jwks", None);
            }
            Err(e) => self.refuse("jwks", e.to_string()),
        }
    }

    /// Reloads the serving certificate; on failure the old one keeps serving.
    pub fn reload_certificate(&self) {
        match tls::load_pair(&self.args.tls_cert, &self.args.tls_key) {
            Ok(loaded) => {
                let current = self.resolver.current();
                if current.cert != loaded.key.cert {
                    self.resolver.swap(loaded.key);
                    self.metrics.reloaded("certificate");
                    info!("serving certificate reloaded");
                }
                self.set_cert_expiry(loaded.not_after);
                self.set_problem("certificate", None);
            }
            Err(e) => self.refuse("certificate", e.to_string()),
        }
    }

    fn set_cert_expiry(&self, not_after: i64) {
        let left = not_after.saturating_sub(jiff::Timestamp::now().as_second());
        self.metrics.cert_expiry_seconds.set(left as f64);
    }
}

/// Runs the webhook until the process is stopped.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    actix_web::rt::System::new().block_on(async move { run(args, workers).await })
}

/// Builds the shared state: settings, metadata, decision log, certificate, policies and data.
/// A certificate that cannot be read is fatal (nothing can be served); policies and data that
/// cannot be loaded leave the server unready until they can.
pub async fn build_state(mut args: ServeArgs, workers: usize) -> anyhow::Result<Arc<AppState>> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // File events carry absolute paths; watching and matching need the same form. Not
    // `canonicalize`: that would resolve the kubelet's symlinks and miss their swaps.
    for path in [
        &mut args.tls_cert,
        &mut args.tls_key,
        &mut args.policies,
        &mut args.data_dir,
        &mut args.decision_log,
    ] {
        *path =
            std::path::absolute(&*path).with_context(|| format!("resolving {}", path.display()))?;
    }
    let metrics = Arc::new(Metrics::new());
    let settings = Arc::new(crate::cli::read_settings(args.settings.as_ref())?);
    let mds = Arc::new(crate::cli::read_mds(args.mds_payload.as_ref())?);
    let log = DecisionLog::open(
        &args.decision_log,
        Rotation {
            max_bytes: args.decision_log_max_bytes,
            keep: args.decision_log_keep,
        },
        metrics.clone(),
    )
    .with_context(|| format!("opening decision log {}", args.decision_log.display()))?;
    let first = tls::load_pair(&args.tls_cert, &args.tls_key).context("serving certificate")?;
    let resolver = Arc::new(tls::Resolver::new(first.key.clone()));
    let tokens =
        crate::token::TokenVerifier::from_files(&settings.issuers).context("token issuers")?;
    let concurrency = args.eval_concurrency.unwrap_or(workers * 2).max(1);
    let state = Arc::new(AppState {
        live: ArcSwapOption::empty(),
        bundle: ArcSwapOption::empty(),
        snapshot: ArcSwapOption::empty(),
        cache: DecisionCache::new(args.cache_capacity, args.cache_ttl)?,
        log,
        metrics,
        settings,
        mds: arc_swap::ArcSwap::new(mds),
        mds_serial: Mutex::new(None),
        mds_ok: AtomicBool::new(true),
        extra_keys: ExtraKeys::with_prefix(&args.extra_prefix),
        permits: Arc::new(Semaphore::new(concurrency)),
        eval_timeout: args.eval_timeout,
        cert_ready: AtomicBool::new(true),
        generation: AtomicU64::new(0),
        reload: Mutex::new(()),
        problems: Mutex::new(BTreeMap::new()),
        resolver,
        tokens: arc_swap::ArcSwap::from_pointee(tokens),
        token_cache: crate::token::VerifiedTokenCache::new(10_000),
        args,
    });
    state.set_cert_expiry(first.not_after);
    let s = state.clone();
    if state.args.mds_blob.is_some() {
        state.mds_ok.store(false, Ordering::Release);
    }
    tokio::task::spawn_blocking(move || {
        s.reload_mds();
        s.reload_policies();
        s.reload_data();
    })
    .await
    .map_err(|e| anyhow::anyhow!("initial load: {e}"))?;
    Ok(state)
}

/// The webhook routes (HTTPS port).
pub fn webhook_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/validate").route(web::post().to(validate)))
        .service(web::resource("/mutate").route(web::post().to(mutate)))
        .service(web::resource("/v1/dry-run").route(web::post().to(dry_run)));
}

/// The admin routes (plaintext port).
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/healthz",
        web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
    )
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(metrics_text));
}

async fn run(args: ServeArgs, workers: usize) -> anyhow::Result<()> {
    let state = build_state(args.clone(), workers).await?;
    let resolver = state.resolver.clone();
    if !state.ready() {
        warn!("not ready: fix the errors above; the inputs are watched and retried");
    }
    spawn_watchers(state.clone())?;
    spawn_clock(state.clone());

    let app_state = web::Data::from(state.clone());
    let webhook = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(app_state.clone())
            .configure(webhook_routes)
    })
    .workers(workers)
    .bind_rustls_0_23(args.listen, tls::server_config(resolver))
    .with_context(|| format!("listening on {}", args.listen))?
    .run();
    let admin_state = web::Data::from(state.clone());
    let admin = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(admin_state.clone())
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
            )
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .bind(args.admin_listen)
    .with_context(|| format!("listening on {}", args.admin_listen))?
    .run();
    info!(listen = %args.listen, admin = %args.admin_listen, "fidomesh webhook serving");
    let (a, b) = tokio::join!(webhook, admin);
    a?;
    b?;
    Ok(())
}

/// What a watcher saw change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changed {
    Certificate,
    Policies,
    Data,
    Jwks,
    Mds,
}

fn spawn_watchers(state: Arc<AppState>) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Changed>();
    let args = &state.args;
    let cert_dirs: Vec<PathBuf> = [&args.tls_cert, &args.tls_key]
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    let policies = args.policies.clone();
    let data = args.data_dir.clone();
    let jwks_dirs: Vec<PathBuf> = state
        .settings
        .issuers
        .iter()
        .flat_map(|i| i.jwks.iter())
        .filter_map(|p| std::path::absolute(p).ok())
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    let (c_dirs, p_dir, d_dir) = (cert_dirs.clone(), policies.clone(), data.clone());
    let j_dirs = jwks_dirs.clone();
    let mds_dir: Option<PathBuf> = state
        .args
        .mds_blob
        .as_ref()
        .and_then(|p| std::path::absolute(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let m_dir = mds_dir.clone();
    let sender = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if c_dirs.iter().any(|d| path.starts_with(d)) {
                let _ = sender.send(Changed::Certificate);
            }
            if path.starts_with(&p_dir) {
                let _ = sender.send(Changed::Policies);
            }
            if path.starts_with(&d_dir) {
                let _ = sender.send(Changed::Data);
            }
            if j_dirs.iter().any(|d| path.starts_with(d)) {
                let _ = sender.send(Changed::Jwks);
            }
            if m_dir.as_ref().is_some_and(|d| path.starts_with(d)) {
                let _ = sender.send(Changed::Mds);
            }
        }
    })?;
    for dir in &cert_dirs {
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    }
    watcher.watch(&policies, notify::RecursiveMode::NonRecursive)?;
    watcher.watch(&data, notify::RecursiveMode::Recursive)?;
    for dir in jwks_dirs.iter().chain(mds_dir.iter()) {
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    }

    // Events come in bursts (an editor or the kubelet writes several files): wait a moment,
    // take everything pending, then reload each input once.
    let s = state.clone();
    actix_web::rt::spawn(async move {
        let _watcher = watcher;
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut changed = vec![first];
            while let Ok(more) = rx.try_recv() {
                changed.push(more);
            }
            reload_changed(&s, &changed).await;
        }
    });
    // A slow poll as well, in case an event was missed (some volume types send none).
    let s = state;
    let poll = s.args.poll_interval;
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(poll).await;
            let _ = tx.send(Changed::Certificate);
            let _ = tx.send(Changed::Jwks);
            let _ = tx.send(Changed::Mds);
            if !s.ready() {
                let _ = tx.send(Changed::Policies);
                let _ = tx.send(Changed::Data);
            }
        }
    });
    Ok(())
}

async fn reload_changed(state: &Arc<AppState>, changed: &[Changed]) {
    let s = state.clone();
    let changed = changed.to_vec();
    let _ = tokio::task::spawn_blocking(move || {
        if changed.contains(&Changed::Certificate) {
            s.reload_certificate();
        }
        if changed.contains(&Changed::Policies) {
            s.reload_policies();
        }
        if changed.contains(&Changed::Data) {
            s.reload_data();
        }
        if changed.contains(&Changed::Jwks) {
            s.reload_jwks();
        }
        if changed.contains(&Changed::Mds) {
            s.reload_mds();
        }
    })
    .await;
}

// Recomputes the facts when a key expires or becomes valid (the snapshot's next refresh).
fn spawn_clock(state: Arc<AppState>) {
    actix_web::rt::spawn(async move {
        loop {
            let wait = state
                .live
                .load()
                .as_ref()
                .and_then(|l| l.snapshot.next_refresh)
                .map(|t| {
                    let secs = t
                        .as_second()
                        .saturating_sub(jiff::Timestamp::now().as_second());
                    Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(0) + 1)
                })
                .unwrap_or(Duration::from_secs(3600))
                .min(Duration::from_secs(3600));
            tokio::time::sleep(wait).await;
            let due = state
                .live
                .load()
                .as_ref()
                .and_then(|l| l.snapshot.next_refresh)
                .is_some_and(|t| t <= jiff::Timestamp::now());
            if due {
                let s = state.clone();
                let _ = tokio::task::spawn_blocking(move || s.refresh_clock()).await;
            }
        }
    });
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.ready() {
        HttpResponse::Ok().body("ready\n")
    } else {
        let problems = state
            .problems
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        HttpResponse::ServiceUnavailable().body(format!("not ready\n{problems}\n"))
    }
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    state
        .metrics
        .cache_entries
        .set(i64::try_from(state.cache.len()).unwrap_or(i64::MAX));
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// The deny code when the decision log cannot make a record durable.
pub const LOG_UNAVAILABLE: &str = "decision-log-unavailable";

struct Decided {
    verdict: Arc<Verdict>,
    cache_hit: bool,
    digest: String,
    generation: u64,
}

/// Decides a review: a cache hit, or (objects checked first) an evaluation. `Err` is the reason the
/// review's objects cannot be read, for an `invalid` answer.
async fn decide(
    state: &AppState,
    live: &Arc<Live>,
    review: &review::Review,
    requester: &str,
) -> Result<Decided, String> {
    let decider = &live.decider;
    let digest = decider.prepared.digest().to_string();
    let key = state.cache.key_for(
        &digest,
        decider.generation,
        Part::Raw(&review.raw),
        Part::Text(requester),
    );
    if let Some(v) = state.cache.get(&key) {
        state.metrics.cache_hits.inc();
        return Ok(Decided {
            verdict: v,
            cache_hit: true,
            digest,
            generation: decider.generation,
        });
    }
    state.metrics.cache_misses.inc();
    review.check_objects()?;
    let fail = |msg: String| {
        state.metrics.eval_errors.inc();
        Arc::new(Verdict {
            deny: vec![Violation {
                code: crate::policy::POLICY_ERROR.to_string(),
                msg,
            }],
            warn: Vec::new(),
        })
    };
    // The input is built on the evaluation thread: parsing the request into engine values is
    // work for the bounded pool, not for the HTTP workers.
    let (request, requester) = (review.raw.text().into_owned(), requester.to_owned());
    let verdict = match state.permits.clone().acquire_owned().await {
        Err(_) => fail("the policy engine is shutting down; denied to fail closed".into()),
        Ok(permit) => {
            let prepared = decider.prepared.clone();
            let started = Instant::now();
            let job = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                Decider::input(Part::Text(&request), Part::Text(&requester))
                    .and_then(|input| prepared.evaluate(input))
            });
            // regorus enforces the deadline itself; this bound also covers a stuck thread pool.
            let outcome =
                tokio::time::timeout(state.eval_timeout + Duration::from_millis(250), job).await;
            state
                .metrics
                .eval_seconds
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(Ok(v))) => {
                    let v = Arc::new(v);
                    state.cache.insert(key, v.clone());
                    v
                }
                // Text the member scan accepted but a full parse refuses: the review is
                // unreadable, not a policy failure.
                Ok(Ok(Err(crate::policy::PolicyError::Input(e)))) => {
                    return Err(format!("request cannot be read: {e}"));
                }
                Ok(Ok(Err(e))) => {
                    warn!(error = %e, "policy evaluation failed");
                    fail(format!(
                        "the policy could not be evaluated ({e}); denied to fail closed"
                    ))
                }
                Ok(Err(e)) => fail(format!(
                    "policy evaluation aborted ({e}); denied to fail closed"
                )),
                Err(_) => fail(format!(
                    "policy evaluation exceeded its {} ms deadline; denied to fail closed",
                    state.eval_timeout.as_millis()
                )),
            }
        }
    };
    Ok(Decided {
        verdict,
        cache_hit: false,
        digest,
        generation: decider.generation,
    })
}

fn requester_for(
    state: &AppState,
    live: &Live,
    review: &review::Review,
) -> crate::requester::Requester {
    crate::requester::of_user_info(
        &review.request.user_info,
        &state.extra_keys,
        &live.snapshot.keys,
        &live.snapshot.settings,
        jiff::Timestamp::now(),
    )
}

fn record_for(
    endpoint: &str,
    review: &review::Review,
    requester: &crate::requester::Requester,
    decision_id: &str,
    started: Instant,
) -> Record {
    let r = &review.request;
    Record {
        decision_id: decision_id.to_string(),
        time: jiff::Timestamp::now().to_string(),
        endpoint: endpoint.to_string(),
        uid: r.uid.clone(),
        operation: review::operation_str(&r.operation).to_string(),
        resource: format!(
            "{}/{}/{}",
            r.resource.group, r.resource.version, r.resource.resource
        ),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        username: requester.username.clone(),
        authenticator: requester
            .authenticator
            .as_ref()
            .map(|a| a.fingerprint.as_str().to_string()),
        hardware_backed: requester
            .authenticator
            .as_ref()
            .is_some_and(|a| a.hardware_backed),
        allowed: true,
        deny: Vec::new(),
        warn: Vec::new(),
        cache_hit: false,
        bundle: String::new(),
        generation: 0,
        dry_run: r.dry_run,
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        patch_ops: None,
    }
}

/// The deny code recorded for a review that could not be read.
pub const INVALID_REQUEST: &str = "invalid-request";

// An unreadable review is still a decision (it is refused): it gets its line too. The answer is
// `invalid` whether or not the line could be written, so a failure is only logged.
async fn log_invalid(state: &AppState, endpoint: &str, uid: &str, reason: &str, started: Instant) {
    let live = state.live.load_full();
    let record = Record {
        decision_id: uuid::Uuid::now_v7().to_string(),
        time: jiff::Timestamp::now().to_string(),
        endpoint: endpoint.to_string(),
        uid: uid.to_string(),
        operation: String::new(),
        resource: String::new(),
        namespace: None,
        name: String::new(),
        username: String::new(),
        authenticator: None,
        hardware_backed: false,
        allowed: false,
        deny: vec![INVALID_REQUEST.to_string()],
        warn: Vec::new(),
        cache_hit: false,
        bundle: live
            .as_ref()
            .map(|l| l.bundle.digest().to_string())
            .unwrap_or_default(),
        generation: live.as_ref().map_or(0, |l| l.snapshot.generation),
        dry_run: false,
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        patch_ops: None,
    };
    if let Err(e) = state.log.append(&record).await {
        error!(error = %e, %reason, "decision log write failed for an invalid review");
    }
}

/// The `invalid` answer to a review that cannot be read, logged like every decision.
async fn answer_invalid(
    state: &AppState,
    endpoint: &'static str,
    uid: &str,
    reason: &str,
    started: Instant,
) -> HttpResponse {
    log_invalid(state, endpoint, uid, reason, started).await;
    state
        .metrics
        .request(endpoint, "invalid", started.elapsed().as_secs_f64());
    review_json(&review::invalid(uid, reason))
}

fn review_json(
    review: &kube::core::admission::AdmissionReview<kube::core::DynamicObject>,
) -> HttpResponse {
    match review::to_wire(review) {
        Ok(body) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        Err(e) => ApiError::Internal(e.to_string()).error_response(),
    }
}

/// Reads a request body up to the configured limit (413 beyond it) and deadline (408 after it), as
/// JSON like every error. Without the deadline a client that stops sending mid-body would hold its
/// connection and the handler for ever.
async fn read_body(state: &AppState, payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let (limit, deadline) = (state.args.max_body_bytes, state.args.body_timeout);
    match tokio::time::timeout(deadline, payload.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(body))) => Ok(body),
        Ok(Ok(Err(e))) => Err(ApiError::Payload(e.to_string())),
        Ok(Err(_)) => Err(ApiError::TooLarge(limit)),
        Err(_) => Err(ApiError::BodyTimeout(deadline)),
    }
}

/// What the admission handlers do before deciding: read the review, answer bad input, check
/// readiness. `Err` is the early answer.
async fn admit(
    state: &AppState,
    endpoint: &'static str,
    payload: web::Payload,
    started: Instant,
) -> Result<(Box<review::Review>, Arc<Live>), Result<HttpResponse, ApiError>> {
    let elapsed = || started.elapsed().as_secs_f64();
    let body = match read_body(state, payload).await {
        Ok(b) => b,
        Err(e) => {
            state.metrics.request(endpoint, "bad-request", elapsed());
            return Err(Err(e));
        }
    };
    let review = match review::parse(&body) {
        Ok(Parsed::Review(r)) => r,
        Ok(Parsed::Unreadable { uid, reason }) => {
            return Err(Ok(
                answer_invalid(state, endpoint, &uid, &reason, started).await
            ));
        }
        Err(e) => {
            state.metrics.request(endpoint, "bad-request", elapsed());
            return Err(Err(e.into()));
        }
    };
    match state.live.load_full() {
        Some(live) => Ok((review, live)),
        None => {
            state.metrics.request(endpoint, "error", elapsed());
            Err(Err(ApiError::NotReady))
        }
    }
}

async fn validate(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let (review, live) = match admit(&state, "validate", payload, started).await {
        Ok(admitted) => admitted,
        Err(early) => return early,
    };
    let r = &review.request;
    let span = tracing::info_span!(
        "admission",
        endpoint = "validate",
        uid = %r.uid,
        kind = %r.kind.kind,
        namespace = r.namespace.as_deref().unwrap_or(""),
        operation = review::operation_str(&r.operation),
        allowed = tracing::field::Empty,
        cache_hit = tracing::field::Empty,
        digest = tracing::field::Empty,
    );
    async move {
        let requester = requester_for(&state, &live, &review);
        // Serialized once: the cache key hashes it, a miss parses it into the input.
        let requester_json =
            serde_json::to_string(&requester).map_err(|e| ApiError::Internal(e.to_string()))?;
        let decided = match decide(&state, &live, &review, &requester_json).await {
            Ok(decided) => decided,
            Err(reason) => {
                let uid = &review.request.uid;
                return Ok(answer_invalid(&state, "validate", uid, &reason, started).await);
            }
        };
        let decision_id = uuid::Uuid::now_v7().to_string();
        let mut record = record_for("validate", &review, &requester, &decision_id, started);
        record.allowed = decided.verdict.allowed();
        record.deny = decided
            .verdict
            .deny_codes()
            .iter()
            .map(|s| s.to_string())
            .collect();
        record.warn = decided
            .verdict
            .warn_codes()
            .iter()
            .map(|s| s.to_string())
            .collect();
        record.cache_hit = decided.cache_hit;
        record.bundle = decided.digest.clone();
        record.generation = decided.generation;
        let span = tracing::Span::current();
        span.record("allowed", record.allowed);
        span.record("cache_hit", record.cache_hit);
        span.record("digest", decided.digest.as_str());

        let mut verdict = (*decided.verdict).clone();
        if let Err(e) = state.log.append(&record).await {
            // An undocumented decision is not a decision: fail closed.
            error!(error = %e, "decision log write failed");
            verdict.deny.push(Violation {
                code: LOG_UNAVAILABLE.to_string(),
                msg: "the decision could not be recorded; denied to fail closed".to_string(),
            });
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("decision-id".to_string(), decision_id);
        annotations.insert("policy-bundle".to_string(), decided.digest);
        if let Some(a) = &requester.authenticator {
            annotations.insert(
                "authenticator".to_string(),
                a.fingerprint.as_str().to_string(),
            );
        }
        let result = if verdict.allowed() {
            "allowed"
        } else {
            "denied"
        };
        state
            .metrics
            .request("validate", result, started.elapsed().as_secs_f64());
        Ok(review_json(&review::validate_response(
            &review,
            &verdict,
            annotations,
        )))
    }
    .instrument(span)
    .await
}

async fn mutate(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let (review, live) = match admit(&state, "mutate", payload, started).await {
        Ok(admitted) => admitted,
        Err(early) => return early,
    };
    if let Err(reason) = review.check_objects() {
        let uid = &review.request.uid;
        return Ok(answer_invalid(&state, "mutate", uid, &reason, started).await);
    }
    let r = &review.request;
    let span = tracing::info_span!(
        "admission",
        endpoint = "mutate",
        uid = %r.uid,
        kind = %r.kind.kind,
        namespace = r.namespace.as_deref().unwrap_or(""),
        operation = review::operation_str(&r.operation),
        patched = tracing::field::Empty,
    );
    async move {
        let requester = requester_for(&state, &live, &review);
        let decision_id = uuid::Uuid::now_v7().to_string();
        // Mutation edits the object, so it reads the whole request (fidomesh resources only).
        let raw = if review::is_fidomesh(&review.request) {
            match review.raw.to_value() {
                Ok(raw) => raw,
                Err(e) => {
                    let (uid, reason) = (&review.request.uid, format!("request cannot be read: {e}"));
                    return Ok(answer_invalid(&state, "mutate", uid, &reason, started).await);
                }
            }
        } else {
            serde_json::Value::Null
        };
        let patch = review::mutate(&raw, &requester, &live.snapshot.settings, &decision_id)
            .and_then(|m| review::patch_for(&raw, &m));
        let ops = patch.as_ref().map_or(0, |p| p.0.len());
        tracing::Span::current().record("patched", ops);
        let response = review::mutate_response(&review, patch)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if ops > 0 {
            let mut record = record_for("mutate", &review, &requester, &decision_id, started);
            record.patch_ops = Some(ops);
            record.bundle = live.bundle.digest().to_string();
            record.generation = live.snapshot.generation;
            if let Err(e) = state.log.append(&record).await {
                error!(error = %e, "decision log write failed");
                state.metrics.request("mutate", "error", started.elapsed().as_secs_f64());
                let denied = review::deny_response(
                    &review,
                    500,
                    format!("[{LOG_UNAVAILABLE}] the change could not be recorded; denied to fail closed"),
                );
                return Ok(review_json(&denied));
            }
        }
        let result = if ops > 0 { "patched" } else { "allowed" };
        state.metrics.request("mutate", result, started.elapsed().as_secs_f64());
        Ok(review_json(&response))
    }
    .instrument(span)
    .await
}

/// Query of `/v1/dry-run`.
#[derive(Debug, serde::Deserialize)]
pub struct DryRunQuery {
    /// The operation to simulate for a plain object (default CREATE).
    #[serde(default)]
    pub operation: Option<String>,
}

/// The requester of an HTTP API call: a verified bearer token, joined with the registered keys.
fn token_requester(
    state: &AppState,
    live: &Live,
    req: &actix_web::HttpRequest,
) -> Result<crate::requester::Requester, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let now = jiff::Timestamp::now();
    let verified = crate::token::bearer_token(header)
        .and_then(|token| state.token_cache.verify(&state.tokens.load(), token, now));
    let claims = match verified {
        Ok(c) => c,
        Err(e) => {
            // The reason, never the token.
            warn!(code = e.code(), reason = %e, "bearer token refused");
            return Err(e.into());
        }
    };
    Ok(crate::requester::resolve(
        claims,
        Source::Token,
        &live.snapshot.keys,
        &live.snapshot.settings,
        now,
    ))
}

async fn dry_run(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    query: web::Query<DryRunQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = read_body(&state, payload).await?;
    let Some(live) = state.live.load_full() else {
        return Err(ApiError::NotReady);
    };
    let requester = match token_requester(&state, &live, &req) {
        Ok(r) => r,
        Err(e) => {
            state
                .metrics
                .request("dry-run", "unauthorized", started.elapsed().as_secs_f64());
            return Err(e);
        }
    };
    let operation = query
        .operation
        .clone()
        .unwrap_or_else(|| "CREATE".to_string())
        .to_ascii_uppercase();
    if !matches!(operation.as_str(), "CREATE" | "UPDATE" | "DELETE") {
        return Err(ApiError::DryRun(crate::dryrun::DryRunError::Shape(
            format!("operation {operation:?} is not CREATE, UPDATE or DELETE"),
        )));
    }
    let st = state.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let docs = crate::dryrun::parse_body(&body)?;
        crate::dryrun::run(
            docs,
            &operation,
            &requester,
            &live.snapshot,
            &live.decider,
            Some(&st.cache),
            jiff::Timestamp::now(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            state
                .metrics
                .request("dry-run", "bad-request", started.elapsed().as_secs_f64());
            return Err(e.into());
        }
    };
    let result = match &answer.decision {
        Some(d) if !d.allowed => "denied",
        _ => "allowed",
    };
    state
        .metrics
        .request("dry-run", result, started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().json(answer))
}
