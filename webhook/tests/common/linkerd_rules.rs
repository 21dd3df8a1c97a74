//! Linkerd's own admission rules for `AuthorizationPolicy` and `MeshTLSAuthentication`, ported to
//! test code from Linkerd's policy controller (repository `linkerd/linkerd2`, Apache-2.0).
//!
//! The Linkerd validating webhook (`linkerd-policy-validator`) runs, for each request:
//!
//! 1. `policy-controller/src/admission.rs`: `Admission::admit` picks the spec type by group and kind
//!    (`is_kind`, case-insensitive), `admit_spec` deserializes `.spec` with serde (`parse_spec`) and
//!    then calls `Validate::validate`:
//!    - `impl Validate<AuthorizationPolicySpec> for Admission`: a Namespace target must name the
//!      policy's own namespace; at most one MeshTLSAuthentication, at most one ServiceAccount, not a
//!      MeshTLSAuthentication and a ServiceAccount together, at most one NetworkAuthentication, no
//!      other authentication kinds; then `index::authorization_policy::validate(spec)`.
//!    - `impl Validate<MeshTLSAuthenticationSpec> for Admission`: every `identities` entry passes
//!      `validation::validate_identity`; every `identityRefs` entry passes `validate_identity_ref`
//!      (ServiceAccount, or a Namespace without `namespace`).
//! 2. `policy-controller/k8s/index/src/inbound/authorization_policy.rs`: `validate` ->
//!    `Spec::try_from` -> `target` (Server, Namespace, HTTPRoute of `policy.linkerd.io` or
//!    `gateway.networking.k8s.io`, GRPCRoute of `gateway.networking.k8s.io`) and
//!    `authentication_ref` (MeshTLSAuthentication, NetworkAuthentication, ServiceAccount).
//! 3. `policy-controller/src/validation.rs`: `validate_identity` / `validate_path` (SPIFFE IDs or
//!    DNS-like names with an optional leading `*` label; `DNS_LIKE_IDENTITY_REGEX`).
//! 4. Kind matching: `policy-controller/k8s/api/src/policy.rs` `targets_kind` (an absent or empty
//!    group means `core`; group and kind compare case-insensitively) and
//!    `policy-controller/k8s/api/src/policy/target_ref.rs` `canonical_kind`.
//! 5. Spec shapes: `policy-controller/k8s/api/src/policy/{authorization_policy.rs,
//!    meshtls_authentication.rs, target_ref.rs}` (`LocalTargetRef`, `NamespacedTargetRef`: `name`
//!    is a required `String`, unknown fields are ignored).
//!
//! Not part of the webhook, but ported too because Linkerd would accept such an object and then
//! ignore it: `policy-controller/k8s/index/src/inbound/meshtls_authentication.rs`
//! `Spec::try_from_resource` ("No identities configured", unsupported identity ref kinds).
//! The `identities`/`identityRefs` exclusivity is the CRD's `oneOf`
//! (`charts/linkerd-crds/templates/policy/meshtls-authentication.yaml`), which the kube-apiserver
//! enforces; it is checked here as well so the rules stand on their own.
//!
//! Ported from the newest revision of `admission.rs` in the reference index (the one whose
//! `Admission` holds no client and which imports `linkerd_policy_controller_k8s_api::gateway`).
//! Older revisions (e.g. commits 2340757d, 002015e3) instead called a `validate_policy_target`
//! that accepted only the `policy.linkerd.io` HTTPRoute, so those Linkerd releases reject an
//! AuthorizationPolicy targeting a `gateway.networking.k8s.io` HTTPRoute ("invalid targetRef
//! kind: HTTPRoute.gateway.networking.k8s.io"). See [`LEGACY_TARGET_KINDS`].

use serde::Deserialize;
use serde_json::Value;

/// A `(group, kind)` as `kube::Resource` reports it; `""` is the core group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupKind {
    pub group: &'static str,
    pub kind: &'static str,
}

pub const POLICY: &str = "policy.linkerd.io";
pub const GATEWAY: &str = "gateway.networking.k8s.io";

pub const SERVER: GroupKind = GroupKind {
    group: POLICY,
    kind: "Server",
};
pub const POLICY_HTTP_ROUTE: GroupKind = GroupKind {
    group: POLICY,
    kind: "HTTPRoute",
};
pub const GATEWAY_HTTP_ROUTE: GroupKind = GroupKind {
    group: GATEWAY,
    kind: "HTTPRoute",
};
pub const GATEWAY_GRPC_ROUTE: GroupKind = GroupKind {
    group: GATEWAY,
    kind: "GRPCRoute",
};
pub const NAMESPACE: GroupKind = GroupKind {
    group: "",
    kind: "Namespace",
};
pub const SERVICE_ACCOUNT: GroupKind = GroupKind {
    group: "",
    kind: "ServiceAccount",
};
pub const AUTHORIZATION_POLICY: GroupKind = GroupKind {
    group: POLICY,
    kind: "AuthorizationPolicy",
};
pub const MESH_TLS_AUTHENTICATION: GroupKind = GroupKind {
    group: POLICY,
    kind: "MeshTLSAuthentication",
};
pub const NETWORK_AUTHENTICATION: GroupKind = GroupKind {
    group: POLICY,
    kind: "NetworkAuthentication",
};

/// The AuthorizationPolicy targets the current index accepts
/// (`inbound/authorization_policy.rs` `target`).
pub const TARGET_KINDS: [GroupKind; 5] = [
    SERVER,
    NAMESPACE,
    POLICY_HTTP_ROUTE,
    GATEWAY_HTTP_ROUTE,
    GATEWAY_GRPC_ROUTE,
];

/// The targets older `admission.rs` revisions accepted (`validate_policy_target`): no Gateway API
/// HTTPRoute. Kept for reference only; the rules below follow the current revision.
pub const LEGACY_TARGET_KINDS: [GroupKind; 4] =
    [SERVER, POLICY_HTTP_ROUTE, GATEWAY_GRPC_ROUTE, NAMESPACE];

// ---------------------------------------------------------------------------------------------
// Spec shapes (policy-controller/k8s/api/src/policy/*.rs). Upstream derives plain
// `serde::Deserialize` without `deny_unknown_fields`, so unknown fields are ignored, and `name`
// is a required `String` in both target ref types.

/// `target_ref.rs` `LocalTargetRef`.
#[derive(Debug, Clone, Deserialize)]
pub struct LocalTargetRef {
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
}

/// `target_ref.rs` `NamespacedTargetRef`.
#[derive(Debug, Clone, Deserialize)]
pub struct NamespacedTargetRef {
    pub group: Option<String>,
    pub kind: String,
    // Required (the parse fails without it), but no rule here reads it.
    #[allow(dead_code)]
    pub name: String,
    pub namespace: Option<String>,
}

/// `authorization_policy.rs` `AuthorizationPolicySpec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    pub target_ref: LocalTargetRef,
    pub required_authentication_refs: Vec<NamespacedTargetRef>,
}

/// `meshtls_authentication.rs` `MeshTLSAuthenticationSpec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTLSAuthenticationSpec {
    pub identities: Option<Vec<String>>,
    pub identity_refs: Option<Vec<NamespacedTargetRef>>,
}

/// `policy.rs` `targets_kind`: an absent or empty group is `core`; case-insensitive.
pub fn targets_kind(group: Option<&str>, kind: &str, t: GroupKind) -> bool {
    let t_group = if t.group.is_empty() { "core" } else { t.group };
    group
        .filter(|s| !s.is_empty())
        .unwrap_or("core")
        .eq_ignore_ascii_case(t_group)
        && kind.eq_ignore_ascii_case(t.kind)
}

/// `target_ref.rs` `canonical_kind`.
pub fn canonical_kind(group: Option<&str>, kind: &str) -> String {
    match group {
        Some(group) => format!("{kind}.{group}"),
        None => kind.to_string(),
    }
}

impl LocalTargetRef {
    fn targets_kind(&self, t: GroupKind) -> bool {
        targets_kind(self.group.as_deref(), &self.kind, t)
    }
    fn canonical_kind(&self) -> String {
        canonical_kind(self.group.as_deref(), &self.kind)
    }
}

impl NamespacedTargetRef {
    fn targets_kind(&self, t: GroupKind) -> bool {
        targets_kind(self.group.as_deref(), &self.kind, t)
    }
    fn canonical_kind(&self) -> String {
        canonical_kind(self.group.as_deref(), &self.kind)
    }
}

// ---------------------------------------------------------------------------------------------
// admission.rs

/// `admission.rs` `Admission::admit` + `admit_spec` + `parse_spec`, for the two kinds fidomesh
/// writes. `object` is the whole object as the apiserver sends it. `Err` is Linkerd's denial.
pub fn admit(object: &Value) -> Result<(), String> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    // `is_kind`: group and kind compared case-insensitively.
    let is_kind =
        |t: GroupKind| group.eq_ignore_ascii_case(t.group) && kind.eq_ignore_ascii_case(t.kind);
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `parse_spec`: "admission request missing 'spec'", then serde.
    let spec = object
        .get("spec")
        .cloned()
        .ok_or_else(|| "admission request missing 'spec'".to_string())?;
    if is_kind(AUTHORIZATION_POLICY) {
        let spec: AuthorizationPolicySpec =
            serde_json::from_value(spec).map_err(|e| format!("failed to parse spec: {e}"))?;
        validate_authorization_policy(ns, spec)
    } else if is_kind(MESH_TLS_AUTHENTICATION) {
        let spec: MeshTLSAuthenticationSpec =
            serde_json::from_value(spec).map_err(|e| format!("failed to parse spec: {e}"))?;
        validate_mesh_tls_authentication(&spec)
    } else {
        Err(format!("unsupported resource type: {group}.{kind}"))
    }
}

/// `admission.rs` `impl Validate<AuthorizationPolicySpec> for Admission` `validate`.
pub fn validate_authorization_policy(
    ns: &str,
    spec: AuthorizationPolicySpec,
) -> Result<(), String> {
    if spec.target_ref.targets_kind(NAMESPACE) && spec.target_ref.name != ns {
        return Err(format!(
            "cannot target another namespace: {}",
            spec.target_ref.name
        ));
    }

    let refs = &spec.required_authentication_refs;
    let count = |t: GroupKind| refs.iter().filter(|a| a.targets_kind(t)).count();

    let mtls_authns_count = count(MESH_TLS_AUTHENTICATION);
    if mtls_authns_count > 1 {
        return Err("only a single MeshTLSAuthentication may be set".into());
    }

    let sa_authns_count = count(SERVICE_ACCOUNT);
    if sa_authns_count > 1 {
        return Err("only a single ServiceAccount may be set".into());
    }

    if mtls_authns_count + sa_authns_count > 1 {
        return Err("a MeshTLSAuthentication and ServiceAccount may not be set together".into());
    }

    let net_authns_count = count(NETWORK_AUTHENTICATION);
    if net_authns_count > 1 {
        return Err("only a single NetworkAuthentication may be set".into());
    }

    if mtls_authns_count + sa_authns_count + net_authns_count < refs.len() {
        let kinds = refs
            .iter()
            .filter(|a| {
                !a.targets_kind(MESH_TLS_AUTHENTICATION)
                    && !a.targets_kind(NETWORK_AUTHENTICATION)
                    && !a.targets_kind(SERVICE_ACCOUNT)
            })
            .map(NamespacedTargetRef::canonical_kind)
            .collect::<Vec<_>>();
        return Err(format!(
            "unsupported authentication kind(s): {}",
            kinds.join(", ")
        ));
    }

    // "Confirm that the index will be able to read this spec."
    index_validate_authorization_policy(spec)
}

/// `admission.rs` `validate_identity_ref`.
pub fn validate_identity_ref(id: &NamespacedTargetRef) -> Result<(), String> {
    if id.targets_kind(SERVICE_ACCOUNT) {
        return Ok(());
    }
    if id.targets_kind(NAMESPACE) {
        if id.namespace.is_some() {
            return Err(
                "Namespace identity_ref is cluster-scoped and cannot have a namespace".into(),
            );
        }
        return Ok(());
    }
    Err(format!(
        "invalid identity target kind: {}",
        id.canonical_kind()
    ))
}

/// `admission.rs` `impl Validate<MeshTLSAuthenticationSpec> for Admission` `validate`, preceded by
/// the CRD `oneOf` and followed by the index's `Spec::try_from_resource` checks (see module doc).
pub fn validate_mesh_tls_authentication(spec: &MeshTLSAuthenticationSpec) -> Result<(), String> {
    // CRD `oneOf: [required: [identities], required: [identityRefs]]`.
    match (&spec.identities, &spec.identity_refs) {
        (Some(_), Some(_)) => return Err("identities and identityRefs are both set".into()),
        (None, None) => return Err("neither identities nor identityRefs is set".into()),
        _ => {}
    }

    for id in spec.identities.iter().flatten() {
        if let Err(err) = validate_identity(id) {
            return Err(format!("id {id} is invalid: {err}"));
        }
    }
    for id in spec.identity_refs.iter().flatten() {
        validate_identity_ref(id)?;
    }

    // index/src/inbound/meshtls_authentication.rs `Spec::try_from_resource`.
    let matches = spec.identities.iter().flatten().count()
        + spec
            .identity_refs
            .iter()
            .flatten()
            .map(|t| {
                if t.targets_kind(SERVICE_ACCOUNT) || t.targets_kind(NAMESPACE) {
                    Ok(())
                } else {
                    Err(format!("unsupported target type: {:?}", t.canonical_kind()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?
            .len();
    if matches == 0 {
        return Err("No identities configured".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// index/src/inbound/authorization_policy.rs

/// `inbound/authorization_policy.rs` `validate` (`Spec::try_from`, `target`,
/// `authentication_ref`).
pub fn index_validate_authorization_policy(ap: AuthorizationPolicySpec) -> Result<(), String> {
    let t = &ap.target_ref;
    let target_ok = t.targets_kind(SERVER)
        || t.targets_kind(NAMESPACE)
        || t.targets_kind(POLICY_HTTP_ROUTE)
        || t.targets_kind(GATEWAY_HTTP_ROUTE)
        || t.targets_kind(GATEWAY_GRPC_ROUTE);
    if !target_ok {
        return Err(format!(
            "unsupported authorization target type: {}",
            t.canonical_kind()
        ));
    }
    for a in &ap.required_authentication_refs {
        if !(a.targets_kind(MESH_TLS_AUTHENTICATION)
            || a.targets_kind(NETWORK_AUTHENTICATION)
            || a.targets_kind(SERVICE_ACCOUNT))
        {
            return Err(format!(
                "unsupported authentication target: {}",
                a.canonical_kind()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// validation.rs

const SCHEME_PREFIX: &str = "spiffe://";
const VALID_TRUST_DOMAIN_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789-._";
const VALID_PATH_SEGMENT_CHARS: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";

/// `validation.rs` `validate_identity`: a SPIFFE ID, or a DNS-like name matching
/// `DNS_LIKE_IDENTITY_REGEX` = `^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`.
pub fn validate_identity(id: &str) -> Result<(), &'static str> {
    if let Some(rest) = id.strip_prefix(SCHEME_PREFIX) {
        let i = rest.find('/').unwrap_or(rest.len());
        if i == 0 {
            return Err("SPIFFE trust domain is missing");
        }
        let (td, path) = rest.split_at(i);
        if td.chars().any(|c| !VALID_TRUST_DOMAIN_CHARS.contains(c)) {
            return Err(
                "SPIFFE trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores",
            );
        }
        if !path.is_empty() {
            validate_path(path)?;
        }
        Ok(())
    } else if dns_like_identity(id) {
        Ok(())
    } else {
        Err("identity must be a valid SPIFFE id or a DNS SAN")
    }
}

/// `validation.rs` `validate_path`.
fn validate_path(path: &str) -> Result<(), &'static str> {
    let mut segment_start = 0;
    for (idx, c) in path.char_indices() {
        if c == '/' {
            match &path[segment_start..idx] {
                "/" => return Err("SPIFFE path cannot contain empty segments"),
                "/." | "/.." => return Err("SPIFFE path cannot contain dot segments"),
                _ => {}
            }
            segment_start = idx;
            continue;
        }
        if !VALID_PATH_SEGMENT_CHARS.contains(c) {
            return Err(
                "SPIFFE path segment characters are limited to letters, numbers, dots, dashes, and underscores",
            );
        }
    }
    match &path[segment_start..] {
        "/" => Err("SPIFFE path cannot have a trailing slash"),
        "/." | "/.." => Err("SPIFFE path cannot contain dot segments"),
        _ => Ok(()),
    }
}

/// `DNS_LIKE_IDENTITY_REGEX`, without a regex engine: dot-separated labels, each
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, except that the first may be exactly `*`.
fn dns_like_identity(id: &str) -> bool {
    let label = |l: &str| {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        !l.is_empty()
            && l.starts_with(ok)
            && l.ends_with(ok)
            && l.chars().all(|c| ok(c) || c == '-')
    };
    let mut labels = id.split('.');
    let first_ok = labels
        .next()
        .is_some_and(|first| first == "*" || label(first));
    first_ok && labels.all(label)
}
