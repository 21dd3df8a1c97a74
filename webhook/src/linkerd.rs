//! The Linkerd policy objects fidomesh writes and reads (`policy.linkerd.io/v1alpha1`).
//!
//! Only the fields fidomesh writes or inspects are typed; the published CRD schemas are the
//! reference and the tests validate every generated object against them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Linkerd policy API group.
pub const POLICY_GROUP: &str = "policy.linkerd.io";

/// Authorizes clients that satisfy all required authentications to reach a target.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "AuthorizationPolicy",
    plural = "authorizationpolicies",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// The resource the policy applies to.
    pub target_ref: LocalTargetRef,
    /// All of these authentications must be satisfied.
    pub required_authentication_refs: Vec<NamespacedTargetRef>,
}

/// A meshed-TLS identity requirement.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "policy.linkerd.io",
    version = "v1alpha1",
    kind = "MeshTLSAuthentication",
    plural = "meshtlsauthentications",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct MeshTLSAuthenticationSpec {
    /// Identity strings (`*`, or DNS-like names); fidomesh never writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<String>>,
    /// ServiceAccounts or Namespaces whose identities are authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_refs: Option<Vec<NamespacedTargetRef>>,
}

/// A reference to a resource in the policy's own namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct LocalTargetRef {
    /// API group; empty or absent means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
}

/// A reference to a resource, possibly in another namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedTargetRef {
    /// API group; empty or absent means the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the referent.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent; absent means the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One generated Linkerd object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum LinkerdObject {
    /// An AuthorizationPolicy.
    AuthorizationPolicy(AuthorizationPolicy),
    /// A MeshTLSAuthentication.
    MeshTLSAuthentication(MeshTLSAuthentication),
}

impl LinkerdObject {
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AuthorizationPolicy(_) => "AuthorizationPolicy",
            Self::MeshTLSAuthentication(_) => "MeshTLSAuthentication",
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &kube::core::ObjectMeta {
        match self {
            Self::AuthorizationPolicy(o) => &o.metadata,
            Self::MeshTLSAuthentication(o) => &o.metadata,
        }
    }

    /// `(kind, namespace, name)`: the order objects are printed in.
    pub fn sort_key(&self) -> (&'static str, &str, &str) {
        let meta = self.metadata();
        (
            self.kind(),
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }
}
