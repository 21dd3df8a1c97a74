//! The deployment manifests (`manifests/deploy/`) against the binary they deploy: a typo in an
//! environment variable, a path outside every volume or a webhook that judges its own namespace
//! would only show in a cluster; here it fails the build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args as _, FromArgMatches as _};
use fidomesh::server::ServeArgs;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize as _;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/deploy")
}

/// Every document of every YAML file under `manifests/deploy/`, by kind.
fn mk_documents() -> BTreeMap<String, Vec<serde_yaml::Value>> {
    let mut by_kind: BTreeMap<String, Vec<serde_yaml::Value>> = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap().to_string();
            by_kind.entry(kind).or_default().push(v);
        }
    }
    assert!(
        by_kind.len() >= 5,
        "too few manifests: {:?}",
        by_kind.keys()
    );
    by_kind
}

fn mk_one<T: serde::de::DeserializeOwned>(
    docs: &BTreeMap<String, Vec<serde_yaml::Value>>,
    kind: &str,
) -> T {
    let all = &docs[kind];
    assert_eq!(all.len(), 1, "one {kind}");
    serde_yaml::from_value(all[0].clone()).unwrap()
}

fn webhook_container(d: &Deployment) -> Container {
    let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .find(|c| c.name == "webhook")
        .cloned()
        .unwrap()
}

/// The labels a namespace carries in a cluster: its own, and `kubernetes.io/metadata.name`,
/// which the API server sets on every namespace.
fn namespace_labels(name: &str, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = own.clone();
    labels.insert("kubernetes.io/metadata.name".into(), name.into());
    labels
}

/// Whether a label selector selects these labels (no selector selects everything).
fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(s) = selector else { return true };
    let by_labels = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown selector operator {other}"),
        }
    });
    by_labels && by_expressions
}

/// One webhook, whichever configuration it is in.
struct Hook {
    name: String,
    path: String,
    service: (String, String, i32),
    versions: Vec<String>,
    side_effects: String,
    failure_policy: Option<String>,
    timeout: Option<i32>,
    namespaces: Option<LabelSelector>,
    rules: Vec<RuleWithOperations>,
}

// Mutating and validating webhooks are different types with the same fields.
macro_rules! hooks_of {
    ($config:expr) => {
        $config.webhooks.unwrap().into_iter().map(|w| {
            let s = w.client_config.service.unwrap();
            Hook {
                name: w.name,
                path: s.path.clone().unwrap(),
                service: (s.name, s.namespace, s.port.unwrap_or(443)),
                versions: w.admission_review_versions,
                side_effects: w.side_effects,
                failure_policy: w.failure_policy,
                timeout: w.timeout_seconds,
                namespaces: w.namespace_selector,
                rules: w.rules.unwrap_or_default(),
            }
        })
    };
}

fn mk_hooks(docs: &BTreeMap<String, Vec<serde_yaml::Value>>) -> Vec<Hook> {
    let mutating: MutatingWebhookConfiguration = mk_one(docs, "MutatingWebhookConfiguration");
    let validating: ValidatingWebhookConfiguration = mk_one(docs, "ValidatingWebhookConfiguration");
    let hooks: Vec<Hook> = hooks_of!(mutating).chain(hooks_of!(validating)).collect();
    assert!(hooks.len() >= 3, "{} webhooks", hooks.len());
    hooks
}

fn judges(hook: &Hook, group: &str, resource: &str) -> bool {
    hook.rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
    })
}

#[test]
fn accepts_the_deployment_as_serve_reads_it() {
    let docs = mk_documents();
    let deployment: Deployment = mk_one(&docs, "Deployment");
    let container = webhook_container(&deployment);
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("serve"));

    // Every variable must be one `serve` reads (a typo would be silently ignored by clap), and
    // its value must parse: it is passed as the flag that variable stands for.
    let command = ServeArgs::augment_args(clap::Command::new("serve"));
    let flag_of: BTreeMap<String, String> = command
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_string();
            Some((env, a.get_long()?.to_string()))
        })
        .collect();
    let mut argv: Vec<String> = args.clone();
    for var in container.env.iter().flatten() {
        if var.name.starts_with("MIMALLOC_") {
            continue; // the allocator's, not ours
        }
        let flag = flag_of
            .get(&var.name)
            .unwrap_or_else(|| panic!("`fidomesh serve` reads no variable {}", var.name));
        argv.push(format!("--{flag}"));
        argv.push(var.value.clone().unwrap());
    }
    let matches = command
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let serve = ServeArgs::from_arg_matches(&matches).unwrap();

    // The root file system is read-only: every path must sit on a mounted volume, and the
    // decision log on a writable one.
    let mounts = container.volume_mounts.clone().unwrap();
    let mount_of = |path: &Path| {
        mounts
            .iter()
            .find(|m| path.starts_with(&m.mount_path))
            .unwrap_or_else(|| panic!("{} is on no volume", path.display()))
            .clone()
    };
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    for path in [
        &serve.tls_cert,
        &serve.tls_key,
        &serve.policies,
        &serve.data_dir,
    ] {
        mount_of(path);
    }
    assert_ne!(mount_of(&serve.decision_log).read_only, Some(true));
    if let Some(settings) = &serve.settings {
        mount_of(settings);
    }

    // Probes and ports: the admin port serves /readyz and /healthz; the Service's target port is
    // the container's HTTPS port, on the address `serve` listens on.
    let port = |name: &str| {
        container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no port {name}"))
            .container_port
    };
    assert_eq!(port("https"), i32::from(serve.listen.port()));
    assert_eq!(port("admin"), i32::from(serve.admin_listen.port()));
    let probe_path = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        let get = p.unwrap().http_get.clone().unwrap();
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("admin".into())
        );
        get.path.unwrap()
    };
    assert_eq!(probe_path(container.readiness_probe.as_ref()), "/readyz");
    assert_eq!(probe_path(container.liveness_probe.as_ref()), "/healthz");

    // A graceful stop: a pause for the endpoint removal, then the drain, within the grace period.
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let pause = container
        .lifecycle
        .and_then(|l| l.pre_stop)
        .and_then(|h| h.sleep)
        .expect("a preStop sleep")
        .seconds;
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    assert!(
        pause > 0 && pause + 10 <= grace,
        "pause {pause}s, grace {grace}s"
    );
}

#[test]
fn accepts_webhooks_that_call_the_service_and_never_judge_their_own_namespace() {
    let docs = mk_documents();
    let deployment: Deployment = mk_one(&docs, "Deployment");
    let container = webhook_container(&deployment);
    let eval_timeout_ms: f64 = container
        .env
        .iter()
        .flatten()
        .find(|v| v.name == "FIDOMESH_EVAL_TIMEOUT")
        .map(|v| {
            humantime::parse_duration(v.value.as_deref().unwrap())
                .unwrap()
                .as_secs_f64()
                * 1000.0
        })
        .unwrap_or(500.0);
    let service: Service = mk_one(&docs, "Service");
    let service_port = service.spec.unwrap().ports.unwrap()[0].port;
    let namespace: Namespace = mk_one(&docs, "Namespace");
    let own = namespace.metadata.name.clone().unwrap();
    let own_labels = namespace_labels(&own, &namespace.metadata.labels.unwrap_or_default());
    let plain = |name: &str| namespace_labels(name, &BTreeMap::new());

    for hook in mk_hooks(&docs) {
        let name = &hook.name;
        assert_eq!(
            hook.service,
            (
                service.metadata.name.clone().unwrap(),
                own.clone(),
                service_port
            ),
            "{name}"
        );
        assert!(
            ["/mutate", "/validate"].contains(&hook.path.as_str()),
            "{name}"
        );
        assert_eq!(hook.versions, ["v1"], "{name}");
        // Each decision writes a log line, marked dryRun for a dry run: no other side effect.
        assert!(
            ["None", "NoneOnDryRun"].contains(&hook.side_effects.as_str()),
            "{name}"
        );
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"), "{name}");
        let timeout = hook.timeout.expect("an explicit timeout");
        assert!(
            (1..=30).contains(&timeout) && f64::from(timeout) * 1000.0 > 2.0 * eval_timeout_ms,
            "{name}: timeout {timeout}s against an evaluation deadline of {eval_timeout_ms} ms"
        );
        // Judging its own namespace could stop fidomesh from starting its own Pods.
        assert!(
            !selects(hook.namespaces.as_ref(), &own_labels),
            "{name} judges {own}"
        );
        // Workloads: never the control plane's namespaces, which fidomesh may need to recover.
        if judges(&hook, "", "pods") {
            for ns in ["kube-system", "kube-node-lease"] {
                assert!(
                    !selects(hook.namespaces.as_ref(), &plain(ns)),
                    "{name} judges pods in {ns}"
                );
            }
            assert!(selects(hook.namespaces.as_ref(), &plain("ops-sessions")));
        }
        // Policy objects: judged everywhere else, kube-system included (no way around them).
        if judges(&hook, "policy.linkerd.io", "authorizationpolicies") {
            assert!(
                selects(hook.namespaces.as_ref(), &plain("kube-system")),
                "{name}"
            );
        }
    }
    let hooks = mk_hooks(&docs);
    assert!(hooks.iter().any(|h| judges(h, "", "pods")));
    assert!(
        hooks
            .iter()
            .any(|h| judges(h, "policy.linkerd.io", "authorizationpolicies"))
    );
    assert!(
        hooks
            .iter()
            .any(|h| judges(h, "fidomesh.io", "meshrolebindings"))
    );
}
