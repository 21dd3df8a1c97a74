//! Prometheus metrics (text exposition format). Labels are low-cardinality by construction:
//! endpoints, results and reload sources are fixed sets.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate`, `mutate`, `dry-run`, `audit`.
    pub endpoint: &'static str,
    /// `allowed`, `denied`, `patched`, `invalid`, `bad-request`, `error`.
    pub result: &'static str,
}

/// Labels naming an endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The endpoint.
    pub endpoint: &'static str,
}

/// Labels naming what was reloaded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `certificate`, `policies`, `data`, `settings`, `mds`.
    pub source: &'static str,
}

/// Every metric the webhook exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and result.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by endpoint.
    pub latency: Family<EndpointLabels, Histogram>,
    /// Policy evaluation time (misses only).
    pub eval_seconds: Histogram,
    /// Decision cache hits.
    pub cache_hits: Counter,
    /// Decision cache misses.
    pub cache_misses: Counter,
    /// Decision cache entries.
    pub cache_entries: Gauge,
    /// Data generation in use.
    pub data_generation: Gauge,
    /// Policy bundle loads that succeeded.
    pub bundle_loads: Counter,
    /// Reloads refused, by source.
    pub reload_errors: Family<SourceLabels, Counter>,
    /// Successful reloads, by source.
    pub reloads: Family<SourceLabels, Counter>,
    /// Decision log fsync latency.
    pub log_fsync_seconds: Histogram,
    /// Decision log write failures.
    pub log_errors: Counter,
    /// Seconds until the served certificate expires.
    pub cert_expiry_seconds: Gauge<f64, AtomicU64>,
    /// 1 when ready.
    pub ready: Gauge,
    /// Evaluations that failed or timed out (denied as `policy-error`).
    pub eval_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fidomesh");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by endpoint and result",
            requests.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register(
            "request_duration_seconds",
            "Request latency by endpoint",
            latency.clone(),
        );
        let eval_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 18));
        registry.register(
            "policy_eval_duration_seconds",
            "Policy evaluation time (cache misses)",
            eval_seconds.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "decision_cache_hits",
            "Decision cache hits",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "decision_cache_misses",
            "Decision cache misses",
            cache_misses.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "decision_cache_entries",
            "Decisions held in the cache",
            cache_entries.clone(),
        );
        let data_generation = Gauge::default();
        registry.register(
            "data_generation",
            "Generation of the facts in use",
            data_generation.clone(),
        );
        let bundle_loads = Counter::default();
        registry.register(
            "policy_bundle_loads",
            "Policy bundles loaded",
            bundle_loads.clone(),
        );
        let reload_errors = Family::<SourceLabels, Counter>::default();
        registry.register(
            "reload_errors",
            "Reloads refused (the previous input keeps serving)",
            reload_errors.clone(),
        );
        let reloads = Family::<SourceLabels, Counter>::default();
        registry.register("reloads", "Reloads applied", reloads.clone());
        let log_fsync_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        registry.register(
            "decision_log_fsync_duration_seconds",
            "Decision log group-commit fsync latency",
            log_fsync_seconds.clone(),
        );
        let log_errors = Counter::default();
        registry.register(
            "decision_log_errors",
            "Decision log writes that failed (requests denied)",
            log_errors.clone(),
        );
        let cert_expiry_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until the served certificate expires",
            cert_expiry_seconds.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when certificate, policies and data are loaded",
            ready.clone(),
        );
        let eval_errors = Counter::default();
        registry.register(
            "policy_eval_errors",
            "Evaluations that failed or timed out",
            eval_errors.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            eval_seconds,
            cache_hits,
            cache_misses,
            cache_entries,
            data_generation,
            bundle_loads,
            reload_errors,
            reloads,
            log_fsync_seconds,
            log_errors,
            cert_expiry_seconds,
            ready,
            eval_errors,
        }
    }

    /// Counts one request.
    pub fn request(&self, endpoint: &'static str, result: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, result })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    /// Counts a refused reload.
    pub fn reload_error(&self, source: &'static str) {
        self.reload_errors
            .get_or_create(&SourceLabels { source })
            .inc();
    }

    /// Counts an applied reload.
    pub fn reloaded(&self, source: &'static str) {
        self.reloads.get_or_create(&SourceLabels { source }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
