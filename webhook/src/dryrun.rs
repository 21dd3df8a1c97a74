//! Dry run: what would happen to an object, through the same pipeline as admission, without
//! persisting anything.
//!
//! The input is an AdmissionReview, one Kubernetes object, or a set of fidomesh resources. The
//! answer carries the decision (with the codes of the rules that fired), the mutating patch and
//! the patched object, and the Linkerd objects the translation would add, change or remove.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use crate::data::Snapshot;
use crate::decide::{Decider, DecisionCache, Part, requester_value};
use crate::linkerd::LinkerdObject;
use crate::load::{Loaded, Origin};
use crate::policy::Verdict;
use crate::requester::Requester;
use crate::review::{self, Parsed};
use crate::translate::{Resources, translate};

/// Why a dry-run input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// The body is not JSON or YAML.
    #[error("input is neither JSON nor YAML: {0}")]
    Syntax(String),
    /// The body is an AdmissionReview that cannot be read.
    #[error(transparent)]
    Review(#[from] review::ReviewError),
    /// The AdmissionReview's request cannot be read.
    #[error("request cannot be read: {0}")]
    Unreadable(String),
    /// The input is none of the accepted shapes.
    #[error(
        "input must be an AdmissionReview, a Kubernetes object, or a list of fidomesh resources: {0}"
    )]
    Shape(String),
    /// A fidomesh resource in the input is invalid.
    #[error(transparent)]
    Resource(#[from] crate::load::LoadError),
}

/// The decision part of an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionAnswer {
    /// Whether the request would be admitted.
    pub allowed: bool,
    /// The denials.
    pub deny: Vec<crate::policy::Violation>,
    /// The warnings.
    pub warn: Vec<crate::policy::Violation>,
    /// Codes of every rule that fired (deny and warn), sorted.
    pub rules_fired: Vec<String>,
    /// Policy bundle digest.
    pub bundle: String,
    /// Data generation.
    pub generation: u64,
}

/// Changes to the generated Linkerd objects.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkerdChanges {
    /// Objects that would be created.
    pub added: Vec<LinkerdObject>,
    /// Objects that would change (their new form).
    pub changed: Vec<LinkerdObject>,
    /// `Kind namespace/name` of objects that would be deleted.
    pub removed: Vec<String>,
}

/// The answer of a dry run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRunAnswer {
    /// The decision, for an object or review (absent for a set of resources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionAnswer>,
    /// The RFC 6902 patch the mutating webhook would return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<json_patch::Patch>,
    /// The object after the patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patched_object: Option<Value>,
    /// What the translation would change.
    pub linkerd: LinkerdChanges,
    /// The requester the decision was made for.
    pub requester: Requester,
    /// Always true: nothing was persisted.
    pub dry_run: bool,
}

/// Reads a dry-run body (JSON, or YAML with one or more documents).
pub fn parse_body(body: &[u8]) -> Result<Vec<Value>, DryRunError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(vec![v]);
    }
    let text = std::str::from_utf8(body).map_err(|e| DryRunError::Syntax(e.to_string()))?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| DryRunError::Syntax(e.to_string()))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// Wraps an object into the AdmissionRequest the API server would send for it.
pub fn request_for_object(object: &Value, operation: &str, requester: &Requester) -> Value {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(json!(""));
    let namespace = object.pointer("/metadata/namespace").cloned();
    let mut request = json!({
        "uid": uuid::Uuid::now_v7().to_string(),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": plural(kind)},
        "name": name,
        "operation": operation,
        "userInfo": {"username": requester.username, "groups": requester.groups},
        "object": if operation == "DELETE" { Value::Null } else { object.clone() },
        "oldObject": if operation == "CREATE" { Value::Null } else { object.clone() },
        "dryRun": true,
    });
    if let (Some(ns), Some(map)) = (namespace, request.as_object_mut()) {
        map.insert("namespace".into(), ns);
    }
    request
}

// The resource name the API server would use: the lowercase plural of the kind.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("policy") {
        format!("{}ies", lower.trim_end_matches('y'))
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// Runs a dry run for the parsed documents.
pub fn run(
    docs: Vec<Value>,
    operation: &str,
    requester: &Requester,
    snapshot: &Snapshot,
    decider: &Decider,
    cache: Option<&DecisionCache>,
    now: Timestamp,
) -> Result<DryRunAnswer, DryRunError> {
    // A `List` (what `kubectl get -o yaml` prints) stands for its items.
    let docs = match docs.as_slice() {
        [list] if list.get("kind").and_then(Value::as_str) == Some("List") => list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => docs,
    };
    let fidomesh_only = !docs.is_empty()
        && docs.iter().all(|d| {
            d.get("apiVersion").and_then(Value::as_str) == Some(crate::model::API_VERSION)
        });
    match docs.as_slice() {
        [single] if single.get("kind").and_then(Value::as_str) == Some("AdmissionReview") => {
            let parsed = review::parse_value(single.clone())?;
            let review = match parsed {
                Parsed::Review(r) => r,
                Parsed::Unreadable { reason, .. } => return Err(DryRunError::Unreadable(reason)),
            };
            let request = review
                .raw
                .to_value()
                .map_err(|e| DryRunError::Unreadable(e.to_string()))?;
            let object = request.get("object").cloned().filter(|o| !o.is_null());
            decide_object(request, object, requester, snapshot, decider, cache, now)
        }
        [single] => {
            if single.get("kind").is_none() {
                return Err(DryRunError::Shape("no kind".into()));
            }
            let request = request_for_object(single, operation, requester);
            decide_object(
                request,
                Some(single.clone()),
                requester,
                snapshot,
                decider,
                cache,
                now,
            )
        }
        _ if fidomesh_only => {
            let changes = linkerd_changes(&docs, snapshot, now)?;
            Ok(DryRunAnswer {
                decision: None,
                patch: None,
                patched_object: None,
                linkerd: changes,
                requester: requester.clone(),
                dry_run: true,
            })
        }
        [] => Err(DryRunError::Shape("empty input".into())),
        _ => Err(DryRunError::Shape(
            "several documents are accepted only when all are fidomesh resources".into(),
        )),
    }
}

fn decide_object(
    request: Value,
    object: Option<Value>,
    requester: &Requester,
    snapshot: &Snapshot,
    decider: &Decider,
    cache: Option<&DecisionCache>,
    now: Timestamp,
) -> Result<DryRunAnswer, DryRunError> {
    let decision_id = uuid::Uuid::now_v7().to_string();
    let mutated = review::mutate(&request, requester, &snapshot.settings, &decision_id);
    let patch = mutated
        .as_ref()
        .and_then(|m| review::patch_for(&request, m));
    // The validating webhook sees the object after mutation, so decide on that.
    let mut decided_request = request.clone();
    if let (Some(m), Some(map)) = (&mutated, decided_request.as_object_mut()) {
        map.insert("object".into(), m.clone());
    }
    let decision = decider.decide(
        Part::Value(&decided_request),
        Part::Value(&requester_value(requester)),
        cache,
    );
    let verdict: &Verdict = &decision.verdict;
    let mut fired: Vec<String> = verdict
        .deny
        .iter()
        .chain(verdict.warn.iter())
        .map(|v| v.code.clone())
        .collect();
    fired.sort();
    fired.dedup();
    let effective = mutated.clone().or(object);
    let linkerd = match &effective {
        Some(o)
            if o.get("apiVersion").and_then(Value::as_str) == Some(crate::model::API_VERSION) =>
        {
            let deleting = request.get("operation").and_then(Value::as_str) == Some("DELETE");
            if deleting {
                removal_changes(o, snapshot, now)?
            } else {
                linkerd_changes(std::slice::from_ref(o), snapshot, now)?
            }
        }
        _ => LinkerdChanges::default(),
    };
    Ok(DryRunAnswer {
        decision: Some(DecisionAnswer {
            allowed: verdict.allowed(),
            deny: verdict.deny.clone(),
            warn: verdict.warn.clone(),
            rules_fired: fired,
            bundle: decision.digest,
            generation: decision.generation,
        }),
        patch,
        patched_object: mutated,
        linkerd,
        requester: requester.clone(),
        dry_run: true,
    })
}

fn key_of(v: &Value) -> (String, String, String) {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// The resources of `base` without those whose `(kind, namespace, name)` is in `drop`.
fn without(
    base: &Resources,
    drop: &std::collections::HashSet<(String, String, String)>,
) -> Resources {
    let keep = |kind: &str, meta: &kube::core::ObjectMeta| {
        !drop.contains(&(
            kind.to_string(),
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        ))
    };
    Resources {
        authenticators: base
            .authenticators
            .iter()
            .filter(|a| keep("Authenticator", &a.metadata))
            .cloned()
            .collect(),
        roles: base
            .roles
            .iter()
            .filter(|r| keep("MeshRole", &r.metadata))
            .cloned()
            .collect(),
        bindings: base
            .bindings
            .iter()
            .filter(|b| keep("MeshRoleBinding", &b.metadata))
            .cloned()
            .collect(),
    }
}

/// The resources of `snapshot` with `docs` applied on top (same kind and name replaces).
fn overlay(docs: &[Value], snapshot: &Snapshot) -> Result<Resources, DryRunError> {
    let mut incoming = Loaded::default();
    for (index, d) in docs.iter().enumerate() {
        incoming.add_value(
            Origin {
                file: "<dry-run>".into(),
                index,
            },
            d.clone(),
        )?;
    }
    let replaced: std::collections::HashSet<(String, String, String)> =
        docs.iter().map(key_of).collect();
    let mut res = without(&snapshot.resources, &replaced);
    res.authenticators.extend(incoming.resources.authenticators);
    res.roles.extend(incoming.resources.roles);
    res.bindings.extend(incoming.resources.bindings);
    Ok(res)
}

fn removal_changes(
    object: &Value,
    snapshot: &Snapshot,
    now: Timestamp,
) -> Result<LinkerdChanges, DryRunError> {
    let gone = std::collections::HashSet::from([key_of(object)]);
    let after = without(&snapshot.resources, &gone);
    Ok(diff(snapshot, &after, now))
}

fn linkerd_changes(
    docs: &[Value],
    snapshot: &Snapshot,
    now: Timestamp,
) -> Result<LinkerdChanges, DryRunError> {
    let after = overlay(docs, snapshot)?;
    Ok(diff(snapshot, &after, now))
}

fn diff(snapshot: &Snapshot, after: &Resources, now: Timestamp) -> LinkerdChanges {
    let before = translate(&snapshot.resources, &snapshot.settings, &snapshot.mds, now);
    let after = translate(after, &snapshot.settings, &snapshot.mds, now);
    let index =
        |t: &crate::translate::Translation| -> BTreeMap<(String, String, String), LinkerdObject> {
            t.objects
                .iter()
                .map(|o| {
                    let (k, ns, n) = o.sort_key();
                    ((k.to_string(), ns.to_string(), n.to_string()), o.clone())
                })
                .collect()
        };
    let (old, new) = (index(&before), index(&after));
    let mut changes = LinkerdChanges::default();
    for (key, obj) in &new {
        match old.get(key) {
            None => changes.added.push(obj.clone()),
            Some(prev) if prev != obj => changes.changed.push(obj.clone()),
            Some(_) => {}
        }
    }
    for (kind, ns, name) in old.keys().filter(|k| !new.contains_key(*k)) {
        changes.removed.push(format!("{kind} {ns}/{name}"));
    }
    changes
}
