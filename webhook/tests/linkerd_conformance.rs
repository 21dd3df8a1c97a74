//! Every Linkerd object fidomesh generates passes what a real cluster enforces (DESIGN section 3):
//!
//! 1. Linkerd's published CRD schemas (`../shared/crds/linkerd/`), the version the object's
//!    `apiVersion` names, compiled with `jsonschema`. The apiserver's pruning of unknown fields is
//!    made an error (`additionalProperties: false` on every declared object, as kubectl's default
//!    `--validate=strict` does), and a schema keyword the validator could not enforce fails the
//!    test instead of being ignored.
//! 2. Linkerd's own admission rules, ported from Linkerd's policy controller in
//!    `common/linkerd_rules.rs` (see its module documentation for the upstream files).
//! 3. The apiserver's object metadata rules (name, namespace, labels, annotations) and uniqueness
//!    of `(kind, namespace, name)` within one translation.
//!
//! Inputs: the examples under `manifests/examples` at several instants, settings and FIDO metadata,
//! and a generated larger input (long names, every target kind and group, duplicated subjects).
//! Negative tests show that the schema validator and the ported rules reject what Linkerd rejects.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "common/linkerd_rules.rs"]
mod linkerd_rules;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine as _;
use fidomesh::linkerd::LinkerdObject;
use fidomesh::load::load_paths;
use fidomesh::mds::Mds;
use fidomesh::model::{
    Attestation, AttestationFormat, Authenticator, AuthenticatorSpec, AuthenticatorSubject,
    MeshRole, MeshRoleBinding, MeshRoleBindingSpec, MeshRoleSpec, RoleRef, RoleTarget,
    ServiceAccountRef, TargetKind,
};
use fidomesh::settings::Settings;
use fidomesh::translate::{Resources, Translation, translate};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use linkerd_rules::GroupKind;
use serde_json::{Value, json};

const CRD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/crds/linkerd/");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");

const INSTANTS: [&str; 4] = [
    "2026-12-01T00:00:00Z",
    "2026-12-15T00:00:00Z",
    "2027-01-15T00:00:00Z",
    "2027-04-01T00:00:00Z",
];

const YUBIKEY: &str = "ee882879-721c-4913-9775-3dfcce97072a";
// TruU Windows Authenticator: REVOKED in the example FIDO metadata payload.
const REVOKED_TRUU: &str = "ba86dc56-635f-4141-aef6-00227b1b9af6";

// =============================================================================================
// Linkerd CRD schemas

/// Compiled `openAPIV3Schema`s by `(group, version, kind)`.
struct Schemas {
    by_gvk: BTreeMap<(String, String, String), jsonschema::Validator>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut by_gvk = BTreeMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(CRD_DIR)
            .expect("Linkerd CRD directory")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let crd: Value =
                serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            assert_eq!(
                crd["kind"],
                "CustomResourceDefinition",
                "{}",
                file.display()
            );
            let group = crd["spec"]["group"].as_str().unwrap().to_string();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                if version["served"] != json!(true) {
                    continue;
                }
                let name = version["name"].as_str().unwrap().to_string();
                let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
                    continue;
                };
                // Only the CRDs fidomesh writes must convert cleanly; the others may use keywords
                // this converter refuses (CEL rules, int-or-string), and are skipped.
                match compile_structural_schema(schema) {
                    Ok(v) => {
                        by_gvk.insert((group.clone(), name, kind.clone()), v);
                    }
                    Err(e) => assert!(
                        group != linkerd_rules::POLICY
                            || !["AuthorizationPolicy", "MeshTLSAuthentication"]
                                .contains(&kind.as_str()),
                        "{kind}.{group}/{name}: {e}"
                    ),
                }
            }
        }
        Schemas { by_gvk }
    })
}

/// Turns a Kubernetes structural schema (OpenAPI v3 subset) into a JSON Schema that enforces
/// what the apiserver enforces, or refuses it when it holds something the validator would not
/// enforce (so nothing is silently ignored).
fn compile_structural_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    let mut converted = structural_to_json_schema(schema, "")?;
    // The apiserver validates apiVersion, kind and metadata itself; declare them so that the
    // root may be closed like every other object.
    let props = converted
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .ok_or("root schema has no properties")?;
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&converted)
        .map_err(|e| format!("schema does not compile: {e}"))
}

/// Keywords copied as they are: JSON Schema draft 4 enforces them as the apiserver does.
const ENFORCED_KEYWORDS: &[&str] = &[
    "type",
    "required",
    "enum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
    "maxProperties",
    "minProperties",
];
/// Keywords that validate nothing.
const ANNOTATION_KEYWORDS: &[&str] = &["description", "title", "example", "default"];

fn structural_to_json_schema(node: &Value, path: &str) -> Result<Value, String> {
    let obj = node
        .as_object()
        .ok_or_else(|| format!("{path}: a schema must be an object"))?;
    let mut out = serde_json::Map::new();
    let mut preserve_unknown = false;
    for (k, v) in obj {
        let at = format!("{path}/{k}");
        match k.as_str() {
            "properties" => {
                let mut props = serde_json::Map::new();
                for (name, sub) in v.as_object().ok_or(format!("{at}: not a map"))? {
                    props.insert(
                        name.clone(),
                        structural_to_json_schema(sub, &format!("{at}/{name}"))?,
                    );
                }
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "not" => {
                out.insert(k.clone(), structural_to_json_schema(v, &at)?);
            }
            "additionalProperties" => {
                let sub = match v {
                    Value::Bool(_) => v.clone(),
                    _ => structural_to_json_schema(v, &at)?,
                };
                out.insert(k.clone(), sub);
            }
            "oneOf" | "anyOf" | "allOf" => {
                let subs = v
                    .as_array()
                    .ok_or(format!("{at}: not a list"))?
                    .iter()
                    .enumerate()
                    .map(|(i, s)| structural_to_json_schema(s, &format!("{at}/{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert(k.clone(), Value::Array(subs));
            }
            "x-kubernetes-preserve-unknown-fields" => preserve_unknown = v == &json!(true),
            // Merge strategy hints: they change how apply merges, not what is valid.
            "x-kubernetes-map-type" => {}
            "x-kubernetes-list-type" if v == "atomic" => {}
            "x-kubernetes-list-type" if v == "set" => {
                out.insert("uniqueItems".into(), json!(true));
            }
            // Every other x-kubernetes-* keyword validates something (CEL rules, list-map keys,
            // int-or-string, embedded resources) that this converter cannot express.
            other if other.starts_with("x-kubernetes-") => {
                return Err(format!(
                    "{at}: {other} is enforced by the apiserver but not checked here"
                ));
            }
            other if ENFORCED_KEYWORDS.contains(&other) => {
                out.insert(k.clone(), v.clone());
            }
            other if ANNOTATION_KEYWORDS.contains(&other) => {}
            // `format`, `nullable` and anything unknown: jsonschema would not enforce them the way
            // the apiserver does (or at all), so refuse rather than pass silently.
            other => return Err(format!("{at}: keyword {other:?} would not be enforced")),
        }
    }
    if out.contains_key("properties")
        && !preserve_unknown
        && !out.contains_key("additionalProperties")
    {
        out.insert("additionalProperties".into(), json!(false));
    }
    Ok(Value::Object(out))
}

/// Schema violations of an object, against the CRD version its apiVersion names.
fn schema_errors(object: &Value) -> Vec<String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let Some((group, version)) = api_version.split_once('/') else {
        return vec![format!("apiVersion {api_version:?} has no group")];
    };
    let key = (group.to_string(), version.to_string(), kind.to_string());
    let Some(validator) = schemas().by_gvk.get(&key) else {
        return vec![format!("no served CRD version for {kind} {api_version}")];
    };
    validator
        .iter_errors(object)
        .map(|e| format!("schema {}: {e}", e.instance_path()))
        .collect()
}

// =============================================================================================
// Object metadata, as the apiserver validates it
// (k8s.io/apimachinery/pkg/util/validation/validation.go: IsDNS1123Subdomain, IsDNS1123Label,
// IsQualifiedName, IsValidLabelValue; k8s.io/apimachinery/pkg/api/validation/objectmeta.go:
// ValidateAnnotations, TotalAnnotationSizeLimitB = 256 KiB).

fn is_dns1123_label(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(ok)
        && s.ends_with(ok)
        && s.chars().all(|c| ok(c) || c == '-')
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 characters
/// (no per-label limit, unlike DNS).
fn is_dns1123_subdomain(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label = |l: &str| {
        !l.is_empty()
            && l.starts_with(ok)
            && l.ends_with(ok)
            && l.chars().all(|c| ok(c) || c == '-')
    };
    s.len() <= 253 && s.split('.').all(label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_qualified_name_part(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(ok)
        && s.ends_with(ok)
        && s.chars().all(|c| ok(c) || matches!(c, '-' | '_' | '.'))
}

fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

fn is_valid_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

fn metadata_errors(object: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    if !is_dns1123_subdomain(name) {
        errors.push(format!(
            "metadata.name {name:?} is not a DNS-1123 subdomain"
        ));
    }
    let ns = meta["namespace"].as_str().unwrap_or_default();
    if !is_dns1123_label(ns) {
        errors.push(format!("metadata.namespace {ns:?} is not a DNS-1123 label"));
    }
    for (k, v) in meta["labels"].as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or("<not a string>");
        if !is_qualified_name(k) {
            errors.push(format!("label key {k:?} is not a qualified name"));
        }
        if !is_valid_label_value(v) {
            errors.push(format!("label {k}: value {v:?} is not a valid label value"));
        }
    }
    let mut annotation_bytes = 0;
    for (k, v) in meta["annotations"].as_object().into_iter().flatten() {
        if !is_qualified_name(&k.to_ascii_lowercase()) {
            errors.push(format!("annotation key {k:?} is not a qualified name"));
        }
        annotation_bytes += k.len() + v.as_str().map_or(0, str::len);
    }
    if annotation_bytes > 256 * 1024 {
        errors.push(format!(
            "annotations take {annotation_bytes} bytes, more than 256 KiB"
        ));
    }
    errors
}

// =============================================================================================
// The whole check

/// Everything a cluster with Linkerd would refuse about one object.
fn conformance_errors(object: &Value) -> Vec<String> {
    let mut errors = schema_errors(object);
    if let Err(e) = linkerd_rules::admit(object) {
        errors.push(format!("linkerd admission: {e}"));
    }
    errors.extend(metadata_errors(object));
    errors
}

/// What the generated objects covered.
#[derive(Default)]
struct Coverage {
    validated: usize,
    distinct: BTreeSet<String>,
    target_kinds: BTreeSet<(String, String)>,
    by_kind: BTreeMap<String, usize>,
    cut_names: usize,
}

impl Coverage {
    /// Validates every object of a translation and returns every failure.
    fn failures(&mut self, t: &Translation) -> Vec<String> {
        let mut failures = Vec::new();
        let mut seen = BTreeSet::new();
        for o in &t.objects {
            let value = serde_json::to_value(o).unwrap();
            let id = format!(
                "{} {}/{}",
                o.kind(),
                o.metadata().namespace.as_deref().unwrap_or_default(),
                o.metadata().name.as_deref().unwrap_or_default()
            );
            for e in conformance_errors(&value) {
                failures.push(format!("{id}: {e}"));
            }
            if !seen.insert(id.clone()) {
                failures.push(format!(
                    "{id}: generated twice in one translation (name clash)"
                ));
            }
            if let LinkerdObject::AuthorizationPolicy(ap) = o {
                let t = &ap.spec.target_ref;
                self.target_kinds
                    .insert((t.group.clone().unwrap_or_default(), t.kind.clone()));
            }
            if o.metadata().name.as_deref().is_some_and(|n| n.len() == 253) {
                self.cut_names += 1;
            }
            *self.by_kind.entry(o.kind().to_string()).or_default() += 1;
            self.distinct.insert(value.to_string());
            self.validated += 1;
        }
        failures
    }

    /// Validates every object of a translation; panics with the failures.
    fn check(&mut self, t: &Translation, context: &str) {
        let failures = self.failures(t);
        let shown: Vec<&str> = failures.iter().take(20).map(String::as_str).collect();
        assert!(
            failures.is_empty(),
            "{context}: {} problem(s), the first {}:\n{}",
            failures.len(),
            shown.len(),
            shown.join("\n")
        );
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn settings_variants() -> Vec<(&'static str, Settings)> {
    let synced = Settings {
        allow_synced_passkeys: true,
        ..Settings::default()
    };
    vec![
        ("default settings", Settings::default()),
        ("allowSyncedPasskeys", synced),
    ]
}

fn mds_variants() -> Vec<(&'static str, Mds)> {
    let payload = std::fs::read_to_string(format!("{EXAMPLES}/fido-mds-payload.json")).unwrap();
    vec![
        ("example MDS", Mds::from_payload_json(&payload).unwrap()),
        ("empty MDS", Mds::empty()),
    ]
}

/// Translates at the fixed instants and at every instant the translation says it changes, for
/// every settings and metadata variant, and checks every object.
fn check_all_variants(res: &Resources, coverage: &mut Coverage) {
    for (settings_name, settings) in settings_variants() {
        for (mds_name, mds) in mds_variants() {
            let mut instants: BTreeSet<Timestamp> = INSTANTS.iter().map(|s| ts(s)).collect();
            // Walk the next_change chain: every distinct state of the input.
            let mut at = Some(ts("2026-01-01T00:00:00Z"));
            for _ in 0..200 {
                let Some(now) = at else { break };
                instants.insert(now);
                at = translate(res, &settings, &mds, now).next_change;
            }
            for now in instants {
                let t = translate(res, &settings, &mds, now);
                coverage.check(&t, &format!("{settings_name}, {mds_name}, at {now}"));
            }
        }
    }
}

// =============================================================================================
// Generated objects

#[test]
fn accepts_every_object_translated_from_the_examples() {
    let loaded = load_paths(&[PathBuf::from(EXAMPLES)]).unwrap();
    let mut coverage = Coverage::default();
    check_all_variants(&loaded.resources, &mut coverage);

    let n = coverage.validated;
    println!("validated {n} generated objects against Linkerd schemas and admission rules");
    println!(
        "  ({} distinct; by kind {:?}; target kinds {:?})",
        coverage.distinct.len(),
        coverage.by_kind,
        coverage.target_kinds
    );
    assert!(n > 0);
    // Measured: 16 objects at the reference instant; 692 (43 distinct: 208 MeshTLSAuthentication,
    // 484 AuthorizationPolicy) over every instant, settings and metadata variant.
    assert!(n >= 600, "only {n} objects validated");
    assert!(
        coverage.distinct.len() >= 40,
        "only {} distinct objects",
        coverage.distinct.len()
    );
    assert!(coverage.by_kind["MeshTLSAuthentication"] >= 150);
    assert!(coverage.by_kind["AuthorizationPolicy"] >= 400);
    // The examples use the Server, both HTTPRoute groups and the Namespace target.
    for (group, kind) in [
        ("policy.linkerd.io", "Server"),
        ("policy.linkerd.io", "HTTPRoute"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("", "Namespace"),
    ] {
        assert!(
            coverage
                .target_kinds
                .contains(&(group.to_string(), kind.to_string())),
            "examples never target {kind}.{group}"
        );
    }
}

#[test]
fn accepts_every_object_translated_from_a_generated_large_input() {
    let res = generated_input();
    let mut coverage = Coverage::default();
    check_all_variants(&res, &mut coverage);

    let n = coverage.validated;
    println!("validated {n} generated objects against Linkerd schemas and admission rules");
    println!(
        "  ({} distinct; by kind {:?}; {} names cut to 253 characters; target kinds {:?})",
        coverage.distinct.len(),
        coverage.by_kind,
        coverage.cut_names,
        coverage.target_kinds
    );
    assert!(n > 0);
    // Measured: 235350 objects (16512 distinct), 179833 of them with names cut to 253.
    assert!(n >= 200_000, "only {n} objects validated");
    assert!(
        coverage.distinct.len() >= 15_000,
        "only {} distinct",
        coverage.distinct.len()
    );
    assert!(
        coverage.cut_names >= 100_000,
        "too few names were cut: {}",
        coverage.cut_names
    );
    // Every target Linkerd supports was generated, and only those.
    let supported: BTreeSet<(String, String)> = linkerd_rules::TARGET_KINDS
        .iter()
        .map(|gk| (gk.group.to_string(), gk.kind.to_string()))
        .collect();
    assert_eq!(coverage.target_kinds, supported);
}

// --- builders -------------------------------------------------------------------------------

/// A DNS-1123 subdomain of exactly `len` characters starting with `prefix`, with a dot now and
/// then.
fn long_name(prefix: &str, len: usize) -> String {
    let mut s = prefix.to_string();
    let mut i = 0usize;
    while s.len() < len {
        let c = if i % 50 == 49 && s.len() + 1 < len {
            '.'
        } else {
            char::from(b'a' + u8::try_from(i % 26).unwrap())
        };
        s.push(c);
        i += 1;
    }
    assert!(fidomesh::load::is_dns1123_subdomain(&s), "{s}");
    s
}

/// A DNS-1123 label of exactly `len` characters (at most 63) starting with `prefix`.
fn long_label(prefix: &str, len: usize) -> String {
    let mut s = prefix.to_string();
    while s.len() < len {
        s.push('x');
    }
    s.truncate(len);
    s
}

fn credential_bytes(i: usize) -> Vec<u8> {
    let len = 16 + (i * 13) % 100;
    (0..len)
        .map(|j| u8::try_from((i * 31 + j * 7 + (i >> 8)) % 256).unwrap())
        .chain([
            u8::try_from(i % 256).unwrap(),
            u8::try_from(i / 256).unwrap(),
        ])
        .collect()
}

fn mk_authenticator(
    name: &str,
    credential: &[u8],
    aaguid: &str,
    backup_eligible: bool,
    not_before: Timestamp,
    not_after: Option<Timestamp>,
    service_account: (&str, &str),
) -> Authenticator {
    Authenticator::new(
        name,
        AuthenticatorSpec {
            credential_id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential),
            aaguid: aaguid.into(),
            holder: format!("{}@example.com", &name[..name.len().min(40)]),
            attestation: Attestation {
                format: if backup_eligible {
                    AttestationFormat::None
                } else {
                    AttestationFormat::Packed
                },
                backup_eligible,
            },
            not_before: Time(not_before),
            not_after: not_after.map(Time),
            service_account: ServiceAccountRef {
                namespace: service_account.0.into(),
                name: service_account.1.into(),
            },
        },
    )
}

fn mk_target(kind: TargetKind, group: Option<&str>, name: &str) -> RoleTarget {
    RoleTarget {
        group: group.map(str::to_string),
        kind,
        name: name.into(),
    }
}

fn mk_role(ns: &str, name: &str, targets: Vec<RoleTarget>) -> MeshRole {
    let mut r = MeshRole::new(name, MeshRoleSpec { targets });
    r.metadata.namespace = Some(ns.into());
    r
}

fn mk_binding(
    ns: &str,
    name: &str,
    role: &str,
    subjects: Vec<AuthenticatorSubject>,
) -> MeshRoleBinding {
    let mut b = MeshRoleBinding::new(
        name,
        MeshRoleBindingSpec {
            role_ref: RoleRef { name: role.into() },
            authenticators: subjects,
        },
    );
    b.metadata.namespace = Some(ns.into());
    b
}

fn mk_by_name(name: &str) -> AuthenticatorSubject {
    AuthenticatorSubject {
        credential_id: None,
        name: Some(name.into()),
    }
}

fn mk_by_credential(raw: String) -> AuthenticatorSubject {
    AuthenticatorSubject {
        credential_id: Some(raw),
        name: None,
    }
}

/// Every target kind with every group spelling fidomesh accepts for it (absent, explicit).
fn mk_all_kind_targets(ns: &str, name: &str) -> Vec<RoleTarget> {
    use linkerd_rules::{GATEWAY, POLICY};
    // Another valid name of at most 253 characters.
    let other = if name.len() <= 251 {
        format!("{name}-2")
    } else {
        format!("{}-2", name[..name.len() - 2].trim_end_matches(['.', '-']))
    };
    let other = other.as_str();
    vec![
        mk_target(TargetKind::Server, None, name),
        mk_target(TargetKind::Server, Some(POLICY), other),
        mk_target(TargetKind::HttpRoute, None, name),
        mk_target(TargetKind::HttpRoute, Some(POLICY), other),
        mk_target(TargetKind::HttpRoute, Some(GATEWAY), name),
        mk_target(TargetKind::GrpcRoute, None, name),
        mk_target(TargetKind::GrpcRoute, Some(GATEWAY), other),
        mk_target(TargetKind::Namespace, None, ns),
        mk_target(TargetKind::Namespace, Some(""), ns),
    ]
}

/// Many namespaces, long names (so that names are cut), every target kind and group, targets
/// and subjects listed several times, keys valid at different times, synced and revoked keys.
fn generated_input() -> Resources {
    let base = ts("2026-11-01T00:00:00Z");
    let day = SignedDuration::from_hours(24);

    let mut namespaces: Vec<String> = (0..14).map(|i| format!("team-{i:02}")).collect();
    namespaces.push(long_label("ns-max-", 63));
    namespaces.push(long_label("ns-", 62));

    let sa_namespaces = ["ops-sessions", &long_label("sessions-", 63), "ci-agents"];
    let mut authenticators = Vec::new();
    let mut credentials = Vec::new();
    for i in 0..64 {
        let name = match i % 8 {
            0 => long_name(&format!("key-{i:03}-"), 253),
            1 => long_name(&format!("key-{i:03}-"), 200),
            _ => format!("key-{i:03}"),
        };
        // Keys i and i+1 share a ServiceAccount when i is a multiple of 5: identityRefs de-duplicate.
        let sa_index = if i % 5 == 1 { i - 1 } else { i };
        let sa_name = match sa_index % 6 {
            0 => long_name(&format!("sa-{sa_index:03}-"), 253),
            _ => format!("sa-{sa_index:03}-debug"),
        };
        let sa_ns = sa_namespaces[sa_index % sa_namespaces.len()];
        let not_before = base + day * i32::try_from((i % 5) * 30).unwrap();
        let not_after = (i % 7 != 0).then(|| not_before + day * i32::try_from(45 + i * 3).unwrap());
        let aaguid = if i % 11 == 0 { REVOKED_TRUU } else { YUBIKEY };
        let cred = credential_bytes(i);
        authenticators.push(mk_authenticator(
            &name,
            &cred,
            aaguid,
            i % 6 == 3,
            not_before,
            not_after,
            (sa_ns, &sa_name),
        ));
        credentials.push((name, cred));
    }

    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    for (n, ns) in namespaces.iter().enumerate() {
        // Role with every kind and group, some listed twice.
        let mut all = mk_all_kind_targets(ns, "api");
        all.extend(mk_all_kind_targets(ns, "api"));
        all.extend(mk_all_kind_targets(ns, &long_name("web-", 253)));
        roles.push(mk_role(ns, "all-kinds", all));
        // Role with long names: role name, target names.
        let long_role = long_name(&format!("role-{n}-"), 253);
        let long_targets = [253, 252, 200, 64]
            .iter()
            .flat_map(|len| mk_all_kind_targets(ns, &long_name(&format!("t{len}-"), *len)))
            .collect();
        roles.push(mk_role(ns, &long_role, long_targets));

        let pick = |k: usize| &credentials[(n * 7 + k * 3) % credentials.len()];
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let b64_std = &base64::engine::general_purpose::STANDARD;
        let mut subjects = Vec::new();
        for k in 0..8 {
            let (name, cred) = pick(k);
            subjects.push(mk_by_name(name));
            // The same key again: by name, by credential ID, padded standard alphabet.
            match k % 3 {
                0 => subjects.push(mk_by_name(name)),
                1 => subjects.push(mk_by_credential(b64.encode(cred))),
                _ => subjects.push(mk_by_credential(b64_std.encode(cred))),
            }
        }
        subjects.push(mk_by_name("no-such-key"));
        bindings.push(mk_binding(ns, "oncall", "all-kinds", subjects.clone()));
        bindings.push(mk_binding(
            ns,
            &long_name(&format!("b253-{n}-"), 253),
            &long_role,
            subjects.clone(),
        ));
        bindings.push(mk_binding(
            ns,
            &long_name(&format!("b240-{n}-"), 240),
            "all-kinds",
            subjects[4..].to_vec(),
        ));
        bindings.push(mk_binding(
            ns,
            "single",
            &long_role,
            vec![mk_by_name(&pick(9).0)],
        ));
    }

    Resources {
        authenticators,
        roles,
        bindings,
    }
}

// =============================================================================================
// The schema validator is strict

fn authorization_policy(ns: &str, target: Value, refs: Value) -> Value {
    json!({
        "apiVersion": "policy.linkerd.io/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "p", "namespace": ns},
        "spec": {"targetRef": target, "requiredAuthenticationRefs": refs},
    })
}

fn mesh_tls_authentication(spec: Value) -> Value {
    json!({
        "apiVersion": "policy.linkerd.io/v1alpha1",
        "kind": "MeshTLSAuthentication",
        "metadata": {"name": "a", "namespace": "payments"},
        "spec": spec,
    })
}

fn mtls_ref(name: &str) -> Value {
    json!({"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": name})
}

fn server_target() -> Value {
    json!({"group": "policy.linkerd.io", "kind": "Server", "name": "payments-api"})
}

fn valid_policy() -> Value {
    authorization_policy(
        "payments",
        server_target(),
        json!([mtls_ref("fidomesh-oncall")]),
    )
}

fn valid_authentication() -> Value {
    mesh_tls_authentication(json!({"identityRefs": [
        {"kind": "ServiceAccount", "name": "alice-debug", "namespace": "ops-sessions"}
    ]}))
}

fn assert_schema_rejects(object: &Value, why: &str) {
    let errors = schema_errors(object);
    assert!(
        !errors.is_empty(),
        "the schema accepted an object with {why}: {object}"
    );
}

fn assert_linkerd_rejects(object: &Value, expected: &str) {
    assert!(
        schema_errors(object).is_empty(),
        "{:?}",
        schema_errors(object)
    );
    let err = linkerd_rules::admit(object).expect_err(&format!("Linkerd admits {object}"));
    assert!(
        err.contains(expected),
        "denied for {err:?}, expected {expected:?}"
    );
}

#[test]
fn accepts_hand_made_objects_that_linkerd_accepts() {
    // Positive controls: the validator does not reject everything.
    for o in [
        valid_policy(),
        valid_authentication(),
        // From Linkerd's documentation (reference/authorization-policy).
        mesh_tls_authentication(json!({"identities": [
            "foo.default.serviceaccount.identity.linkerd.cluster.local"
        ]})),
        mesh_tls_authentication(json!({"identities": ["*"]})),
        mesh_tls_authentication(
            json!({"identityRefs": [{"kind": "Namespace", "name": "payments"}]}),
        ),
        authorization_policy(
            "payments",
            json!({"kind": "Namespace", "name": "payments"}),
            json!([mtls_ref("a"), {"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": "n"}]),
        ),
        authorization_policy(
            "payments",
            server_target(),
            json!([{"kind": "ServiceAccount", "name": "sa"}]),
        ),
        authorization_policy("payments", server_target(), json!([])),
    ] {
        assert_eq!(conformance_errors(&o), Vec::<String>::new(), "{o}");
    }
}

#[test]
fn rejects_authorization_policy_without_target_ref() {
    let mut o = valid_policy();
    o["spec"].as_object_mut().unwrap().remove("targetRef");
    assert_schema_rejects(&o, "no targetRef");
    // Linkerd's serde parse fails too.
    assert!(linkerd_rules::admit(&o).is_err());
}

#[test]
fn rejects_authorization_policy_without_required_authentication_refs() {
    let mut o = valid_policy();
    o["spec"]
        .as_object_mut()
        .unwrap()
        .remove("requiredAuthenticationRefs");
    assert_schema_rejects(&o, "no requiredAuthenticationRefs");
}

#[test]
fn rejects_kinds_longer_than_63_characters_and_malformed_kinds_and_groups() {
    let long_kind = "S".repeat(64);
    assert_schema_rejects(
        &authorization_policy(
            "payments",
            json!({"kind": long_kind, "name": "x"}),
            json!([]),
        ),
        "a 64-character targetRef kind",
    );
    assert_schema_rejects(
        &authorization_policy(
            "payments",
            server_target(),
            json!([{"kind": "Mesh TLS", "name": "x"}]),
        ),
        "a kind with a space",
    );
    assert_schema_rejects(
        &authorization_policy(
            "payments",
            json!({"group": "Policy.Linkerd.IO", "kind": "Server", "name": "x"}),
            json!([]),
        ),
        "an uppercase group",
    );
    assert_schema_rejects(
        &authorization_policy(
            "payments",
            json!({"kind": "Server", "name": "x".repeat(254)}),
            json!([]),
        ),
        "a 254-character targetRef name",
    );
    assert_schema_rejects(
        &authorization_policy("payments", json!({"kind": "Server", "name": ""}), json!([])),
        "an empty targetRef name",
    );
}

#[test]
fn rejects_wrongly_typed_fields() {
    assert_schema_rejects(
        &authorization_policy("payments", server_target(), mtls_ref("a")),
        "requiredAuthenticationRefs as an object",
    );
    assert_schema_rejects(
        &authorization_policy("payments", json!("Server/payments-api"), json!([])),
        "targetRef as a string",
    );
    assert_schema_rejects(
        &authorization_policy("payments", json!({"kind": "Server", "name": 7}), json!([])),
        "a numeric name",
    );
    assert_schema_rejects(
        &mesh_tls_authentication(json!({"identities": "*"})),
        "identities as a string",
    );
    let mut o = valid_policy();
    o["spec"] = json!([]);
    assert_schema_rejects(&o, "spec as a list");
}

#[test]
fn rejects_unknown_fields_that_the_apiserver_would_drop() {
    let mut o = valid_policy();
    o["spec"]["targetRef"]["namespace"] = json!("checkout");
    assert_schema_rejects(&o, "a targetRef namespace (LocalTargetRef has none)");
    let mut o = valid_authentication();
    o["spec"]["identityRef"] = json!([]);
    assert_schema_rejects(&o, "a misspelled identityRefs");
    let mut o = valid_policy();
    o["status"] = json!({});
    assert_schema_rejects(&o, "an undeclared status");
}

#[test]
fn rejects_mesh_tls_authentication_with_both_identities_and_identity_refs() {
    let o = mesh_tls_authentication(json!({
        "identities": ["*"],
        "identityRefs": [{"kind": "ServiceAccount", "name": "sa"}],
    }));
    assert_schema_rejects(&o, "both identities and identityRefs (the CRD oneOf)");
    assert!(linkerd_rules::admit(&o).unwrap_err().contains("both set"));
}

#[test]
fn rejects_mesh_tls_authentication_with_no_identities() {
    assert_schema_rejects(
        &mesh_tls_authentication(json!({})),
        "neither identities nor identityRefs",
    );
    assert_schema_rejects(
        &mesh_tls_authentication(json!({"identityRefs": []})),
        "empty identityRefs (minItems 1)",
    );
    assert_schema_rejects(
        &mesh_tls_authentication(json!({"identities": []})),
        "empty identities (minItems 1)",
    );
    assert_eq!(
        linkerd_rules::admit(&mesh_tls_authentication(json!({"identityRefs": []}))).unwrap_err(),
        "No identities configured"
    );
}

#[test]
fn rejects_crd_schemas_with_keywords_the_validator_would_not_enforce() {
    let with = |extra: Value| {
        let mut s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "name": {"type": "string"}}}}});
        s["properties"]["spec"]["properties"]["name"]
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        compile_structural_schema(&s)
    };
    assert!(with(json!({})).is_ok());
    assert!(with(json!({"description": "d", "maxLength": 3})).is_ok());
    for keyword in [
        json!({"x-kubernetes-validations": [{"rule": "self.size() < 3"}]}),
        json!({"x-kubernetes-int-or-string": true}),
        json!({"maxlength": 3}),
        json!({"format": "date-time"}),
        json!({"nullable": true}),
    ] {
        assert!(with(keyword.clone()).is_err(), "{keyword} was accepted");
    }
    // The Linkerd CRDs fidomesh writes have a served schema for the version it writes.
    for kind in ["AuthorizationPolicy", "MeshTLSAuthentication"] {
        let key = (
            "policy.linkerd.io".into(),
            "v1alpha1".into(),
            kind.to_string(),
        );
        assert!(schemas().by_gvk.contains_key(&key), "{kind}");
    }
}

#[test]
fn rejects_objects_whose_api_version_has_no_served_crd_version() {
    let mut o = valid_policy();
    o["apiVersion"] = json!("policy.linkerd.io/v1beta9");
    assert_schema_rejects(&o, "an apiVersion no CRD serves");
}

// =============================================================================================
// The ported admission rules reject what Linkerd rejects

#[test]
fn rejects_two_mesh_tls_authentications() {
    assert_linkerd_rejects(
        &authorization_policy(
            "payments",
            server_target(),
            json!([mtls_ref("a"), mtls_ref("b")]),
        ),
        "only a single MeshTLSAuthentication may be set",
    );
}

#[test]
fn rejects_service_account_beside_a_mesh_tls_authentication() {
    assert_linkerd_rejects(
        &authorization_policy(
            "payments",
            server_target(),
            json!([mtls_ref("a"), {"kind": "ServiceAccount", "name": "sa"}]),
        ),
        "a MeshTLSAuthentication and ServiceAccount may not be set together",
    );
}

#[test]
fn rejects_two_service_accounts_and_two_network_authentications() {
    assert_linkerd_rejects(
        &authorization_policy(
            "payments",
            server_target(),
            json!([{"kind": "ServiceAccount", "name": "a"}, {"group": "core", "kind": "serviceaccount", "name": "b"}]),
        ),
        "only a single ServiceAccount may be set",
    );
    let net =
        |n: &str| json!({"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": n});
    assert_linkerd_rejects(
        &authorization_policy("payments", server_target(), json!([net("a"), net("b")])),
        "only a single NetworkAuthentication may be set",
    );
}

#[test]
fn rejects_unsupported_authentication_kinds() {
    for bad in [
        json!({"kind": "MeshTLSAuthentication", "name": "a"}), // core group: not Linkerd's
        json!({"group": "gateway.networking.k8s.io", "kind": "MeshTLSAuthentication", "name": "a"}),
        json!({"group": "policy.linkerd.io", "kind": "Server", "name": "a"}),
        json!({"kind": "Pod", "name": "a"}),
    ] {
        assert_linkerd_rejects(
            &authorization_policy("payments", server_target(), json!([bad])),
            "unsupported authentication kind(s)",
        );
    }
}

#[test]
fn rejects_namespace_target_in_another_namespace() {
    assert_linkerd_rejects(
        &authorization_policy(
            "payments",
            json!({"kind": "Namespace", "name": "checkout"}),
            json!([mtls_ref("a")]),
        ),
        "cannot target another namespace: checkout",
    );
    // `core` is the core group too.
    assert_linkerd_rejects(
        &authorization_policy(
            "payments",
            json!({"group": "core", "kind": "Namespace", "name": "checkout"}),
            json!([mtls_ref("a")]),
        ),
        "cannot target another namespace",
    );
}

#[test]
fn accepts_every_supported_target_kind_and_group() {
    for gk in linkerd_rules::TARGET_KINDS {
        let mut target = json!({"kind": gk.kind, "name": "payments"});
        if !gk.group.is_empty() {
            target["group"] = json!(gk.group);
        }
        let o = authorization_policy("payments", target, json!([mtls_ref("a")]));
        assert_eq!(conformance_errors(&o), Vec::<String>::new(), "{gk:?}");
    }
    // Linkerd compares group and kind case-insensitively and reads "" and "core" as the core group.
    for target in [
        json!({"group": "", "kind": "Namespace", "name": "payments"}),
        json!({"group": "core", "kind": "namespace", "name": "payments"}),
        json!({"group": "policy.linkerd.io", "kind": "server", "name": "x"}),
    ] {
        let o = authorization_policy("payments", target.clone(), json!([mtls_ref("a")]));
        assert_eq!(linkerd_rules::admit(&o), Ok(()), "{target}");
    }
}

#[test]
fn rejects_unsupported_target_kinds_and_groups() {
    for (group, kind) in [
        ("gateway.networking.k8s.io", "Server"),
        ("policy.linkerd.io", "GRPCRoute"),
        ("example.com", "HTTPRoute"),
        ("", "HTTPRoute"),
        ("policy.linkerd.io", "Namespace"),
        ("", "Pod"),
        ("", "Service"),
        ("gateway.networking.k8s.io", "TCPRoute"),
    ] {
        let mut target = json!({"kind": kind, "name": "payments"});
        if !group.is_empty() {
            target["group"] = json!(group);
        }
        assert_linkerd_rejects(
            &authorization_policy("payments", target, json!([mtls_ref("a")])),
            "unsupported authorization target type",
        );
    }
}

#[test]
fn rejects_gateway_http_route_targets_in_older_linkerd_revisions() {
    // Documents the difference between the ported (current) rules and the older
    // `validate_policy_target`: an older Linkerd denies a Gateway API HTTPRoute target, which
    // fidomesh generates for `{kind: HTTPRoute, group: gateway.networking.k8s.io}` role targets.
    let is_legacy_target = |gk: GroupKind| linkerd_rules::LEGACY_TARGET_KINDS.contains(&gk);
    assert!(!is_legacy_target(linkerd_rules::GATEWAY_HTTP_ROUTE));
    assert!(linkerd_rules::TARGET_KINDS.contains(&linkerd_rules::GATEWAY_HTTP_ROUTE));
    assert!(
        linkerd_rules::TARGET_KINDS
            .iter()
            .all(|gk| *gk == linkerd_rules::GATEWAY_HTTP_ROUTE || is_legacy_target(*gk))
    );
}

#[test]
fn rejects_identity_refs_of_kinds_other_than_service_account_or_namespace() {
    for bad in [
        json!({"kind": "Pod", "name": "p"}),
        json!({"group": "apps", "kind": "Deployment", "name": "d"}),
        json!({"group": "policy.linkerd.io", "kind": "ServiceAccount", "name": "sa"}),
    ] {
        assert_linkerd_rejects(
            &mesh_tls_authentication(json!({"identityRefs": [bad]})),
            "invalid identity target kind",
        );
    }
    assert_linkerd_rejects(
        &mesh_tls_authentication(json!({"identityRefs": [
            {"kind": "Namespace", "name": "payments", "namespace": "payments"}
        ]})),
        "Namespace identity_ref is cluster-scoped and cannot have a namespace",
    );
}

#[test]
fn rejects_identity_refs_without_a_name() {
    // The CRD allows it ("all resources of the kind"), but Linkerd's NamespacedTargetRef has a
    // required `name`, so the webhook's serde parse denies it.
    assert_linkerd_rejects(
        &mesh_tls_authentication(json!({"identityRefs": [{"kind": "ServiceAccount"}]})),
        "missing field `name`",
    );
}

#[test]
fn accepts_wildcard_dns_like_and_spiffe_identity_strings() {
    for id in [
        "*",
        "*.payments.serviceaccount.identity.linkerd.cluster.local",
        "alice-debug.ops-sessions.serviceaccount.identity.linkerd.cluster.local",
        "system.local",
        "spiffe://trustdomain",
        "spiffe://trust.domain/path/Element_1",
    ] {
        assert_eq!(linkerd_rules::validate_identity(id), Ok(()), "{id}");
        let o = mesh_tls_authentication(json!({"identities": [id]}));
        assert_eq!(conformance_errors(&o), Vec::<String>::new(), "{id}");
    }
}

#[test]
fn rejects_malformed_identity_strings() {
    for id in [
        "**",
        "system.local.*",
        "a.*.local",
        "*system.local",
        "system.local.",
        ".system.local",
        "system..local",
        "System.Local",
        "",
        "http://domain.test/path",
        "spiffe:path/element",
        "spiffe:///path/element",
        "spiffe://domain.test:8080/path",
        "spiffe://user@domain.test/path",
        "spiffe://test.org/",
        "spiffe://test.org//x",
        "spiffe://test.org/./other",
        "spiffe://test.org/../other",
        "spiffe://test.org/path?query=",
    ] {
        assert!(
            linkerd_rules::validate_identity(id).is_err(),
            "{id:?} accepted"
        );
        let o = mesh_tls_authentication(json!({"identities": [id]}));
        assert!(
            linkerd_rules::admit(&o)
                .unwrap_err()
                .starts_with(&format!("id {id} is invalid")),
            "{id:?}"
        );
    }
}

#[test]
fn rejects_objects_with_invalid_metadata() {
    let with_meta = |f: &dyn Fn(&mut Value)| {
        let mut o = valid_policy();
        f(&mut o["metadata"]);
        metadata_errors(&o)
    };
    assert!(with_meta(&|_| {}).is_empty());
    assert!(!with_meta(&|m| m["name"] = json!("a".repeat(254))).is_empty());
    assert!(!with_meta(&|m| m["name"] = json!("Upper")).is_empty());
    assert!(!with_meta(&|m| m["name"] = json!("ends-with-dash-")).is_empty());
    assert!(!with_meta(&|m| m["namespace"] = json!("n".repeat(64))).is_empty());
    assert!(
        !with_meta(&|m| m["labels"] = json!({"fidomesh.io/binding": "v".repeat(64)})).is_empty()
    );
    assert!(!with_meta(&|m| m["labels"] = json!({"fidomesh.io/binding": "-v"})).is_empty());
    assert!(!with_meta(&|m| m["labels"] = json!({"Bad Key": "v"})).is_empty());
    assert!(!with_meta(&|m| m["annotations"] = json!({"k": "v".repeat(300 * 1024)})).is_empty());
    assert!(
        with_meta(&|m| m["labels"] = json!({"fidomesh.io/binding": "v".repeat(63)})).is_empty()
    );
}

#[test]
fn rejects_two_objects_of_one_kind_with_one_name_in_one_translation() {
    // The name-clash check itself works: duplicating an object is caught.
    let loaded = load_paths(&[PathBuf::from(EXAMPLES)]).unwrap();
    let mut t = translate(
        &loaded.resources,
        &Settings::default(),
        &Mds::empty(),
        ts(INSTANTS[1]),
    );
    assert!(Coverage::default().failures(&t).is_empty());
    let first = t.objects[0].clone();
    t.objects.push(first);
    let failures = Coverage::default().failures(&t);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].ends_with("generated twice in one translation (name clash)"));
}

// =============================================================================================
// Discrepancies once found in the translation, kept as regression tests: name clashes between
// bindings whose names prefix each other, Namespace targets in another namespace, and inputs that
// only the CRD (not `load`) used to refuse.

fn one_key_resources(roles: Vec<MeshRole>, bindings: Vec<MeshRoleBinding>) -> Resources {
    Resources {
        authenticators: vec![mk_authenticator(
            "key",
            &credential_bytes(1),
            YUBIKEY,
            false,
            ts("2026-12-01T00:00:00Z"),
            None,
            ("ops-sessions", "key-debug"),
        )],
        roles,
        bindings,
    }
}

#[test]
fn accepts_bindings_whose_names_prefix_each_other_without_name_clashes() {
    let res = one_key_resources(
        vec![
            mk_role(
                "payments",
                "r1",
                vec![mk_target(TargetKind::Server, None, "server-api")],
            ),
            mk_role(
                "payments",
                "r2",
                vec![mk_target(TargetKind::Server, None, "api")],
            ),
        ],
        vec![
            mk_binding("payments", "team", "r1", vec![mk_by_name("key")]),
            mk_binding("payments", "team-server", "r2", vec![mk_by_name("key")]),
        ],
    );
    let t = translate(&res, &Settings::default(), &Mds::empty(), ts(INSTANTS[1]));
    assert_eq!(Coverage::default().failures(&t), Vec::<String>::new());
}

#[test]
fn rejects_namespace_targets_outside_the_roles_namespace() {
    let res = one_key_resources(
        vec![mk_role(
            "payments",
            "reader",
            vec![
                mk_target(TargetKind::Server, None, "payments-api"),
                mk_target(TargetKind::Namespace, None, "checkout"),
            ],
        )],
        vec![mk_binding(
            "payments",
            "oncall",
            "reader",
            vec![mk_by_name("key")],
        )],
    );
    let t = translate(&res, &Settings::default(), &Mds::empty(), ts(INSTANTS[1]));
    // Whatever fidomesh does instead (drop the target, report a problem), it must not emit an
    // object Linkerd refuses.
    assert_eq!(Coverage::default().failures(&t), Vec::<String>::new());
}

#[test]
fn rejects_loading_resources_whose_translation_linkerd_would_refuse() {
    let role = |target: &str| {
        format!(
            "apiVersion: fidomesh.io/v1alpha1\nkind: MeshRole\nmetadata: {{name: r, namespace: payments}}\n\
             spec:\n  targets:\n    - {target}\n"
        )
    };
    let key = |sa_ns: &str, sa_name: &str| {
        format!(
            "apiVersion: fidomesh.io/v1alpha1\nkind: Authenticator\nmetadata: {{name: k}}\nspec:\n\
             \x20 credentialId: IuhtE9i70zWsJZDL4kBK9Q\n\
             \x20 aaguid: 42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3\n\
             \x20 holder: bob@example.com\n\
             \x20 attestation: {{format: packed}}\n\
             \x20 notBefore: \"2026-12-01T00:00:00Z\"\n\
             \x20 serviceAccount: {{namespace: {sa_ns}, name: {sa_name}}}\n"
        )
    };
    let long = "x".repeat(254);
    let cases = [
        (
            "Server in the Gateway API group",
            role("{kind: Server, group: gateway.networking.k8s.io, name: a}"),
        ),
        (
            "GRPCRoute in the Linkerd group",
            role("{kind: GRPCRoute, group: policy.linkerd.io, name: a}"),
        ),
        (
            "HTTPRoute in a foreign group",
            role("{kind: HTTPRoute, group: example.com, name: a}"),
        ),
        ("an empty target name", role("{kind: Server, name: \"\"}")),
        (
            "a 254-character target name",
            role(&format!("{{kind: Server, name: {long}}}")),
        ),
        (
            "a 254-character ServiceAccount name",
            key("ops-sessions", &long),
        ),
        (
            "a 64-character ServiceAccount namespace",
            key(&"n".repeat(64), "sa"),
        ),
    ];
    let mut accepted = Vec::new();
    for (what, text) in cases {
        let mut loaded = fidomesh::load::Loaded::default();
        if loaded
            .add_text(std::path::Path::new("case.yaml"), &text)
            .is_ok()
        {
            accepted.push(what);
        }
    }
    assert!(accepted.is_empty(), "load accepted: {accepted:?}");
}
