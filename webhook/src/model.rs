//! The fidomesh resources (`fidomesh.io/v1alpha1`) and the identifiers they carry.
//!
//! - An **authenticator** is one registered FIDO2 credential ([`Authenticator`]).
//! - Its **authenticator ID** is the canonical credential ID: the WebAuthn credential ID as
//!   unpadded base64url ([`CredentialId`]).
//! - Its **fingerprint** is the first 16 hex characters of SHA-256 over the decoded credential ID
//!   ([`Fingerprint`]): what goes into names, labels, logs and reports. The full credential ID never
//!   appears in a log line.
//! - A **role** ([`MeshRole`]) lists Linkerd targets in its namespace; a **binding**
//!   ([`MeshRoleBinding`]) grants a role to authenticators.

use std::fmt;

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The API group of the fidomesh resources.
pub const GROUP: &str = "fidomesh.io";
/// The API version of the fidomesh resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the fidomesh resources.
pub const API_VERSION: &str = "fidomesh.io/v1alpha1";

/// Smallest decoded credential ID WebAuthn allows.
pub const CREDENTIAL_ID_MIN_BYTES: usize = 16;
/// Largest decoded credential ID WebAuthn allows.
pub const CREDENTIAL_ID_MAX_BYTES: usize = 1023;

/// One registered FIDO2 credential.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fidomesh.io",
    version = "v1alpha1",
    kind = "Authenticator",
    plural = "authenticators",
    shortname = "fidokey",
    printcolumn = r#"{"name":"Holder","type":"string","jsonPath":".spec.holder"}"#,
    printcolumn = r#"{"name":"AAGUID","type":"string","jsonPath":".spec.aaguid"}"#,
    printcolumn = r#"{"name":"Not After","type":"date","jsonPath":".spec.notAfter"}"#
)]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.notAfter) || timestamp(self.notAfter) > timestamp(self.notBefore)"
).message("notAfter must be later than notBefore"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticatorSpec {
    /// WebAuthn credential ID, base64url without padding (16..1023 bytes decoded).
    #[schemars(length(min = 22, max = 1364), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub credential_id: String,
    /// Authenticator model (AAGUID), a lowercase UUID.
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub aaguid: String,
    /// The username Kubernetes sees for the holder.
    #[schemars(length(min = 1, max = 253))]
    pub holder: String,
    /// What registration proved.
    pub attestation: Attestation,
    /// Start of validity.
    pub not_before: Time,
    /// Rotation deadline; defaulted from `maxKeyAge` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// The mesh identity the holder's sessions run as.
    pub service_account: ServiceAccountRef,
}

/// What registration of the credential proved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attestation {
    /// WebAuthn attestation statement format.
    pub format: AttestationFormat,
    /// True for a synced passkey, not bound to one device.
    #[serde(default)]
    pub backup_eligible: bool,
}

/// WebAuthn attestation statement formats.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AttestationFormat {
    /// `packed`
    #[serde(rename = "packed")]
    Packed,
    /// `tpm`
    #[serde(rename = "tpm")]
    Tpm,
    /// `android-key`
    #[serde(rename = "android-key")]
    AndroidKey,
    /// `apple`
    #[serde(rename = "apple")]
    Apple,
    /// `fido-u2f`
    #[serde(rename = "fido-u2f")]
    FidoU2f,
    /// `none`: nothing about the device was proved.
    #[serde(rename = "none")]
    None,
}

impl AttestationFormat {
    /// The format's name as WebAuthn spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Packed => "packed",
            Self::Tpm => "tpm",
            Self::AndroidKey => "android-key",
            Self::Apple => "apple",
            Self::FidoU2f => "fido-u2f",
            Self::None => "none",
        }
    }
}

/// A ServiceAccount, by namespace and name.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountRef {
    /// Namespace of the ServiceAccount.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What may be reached, inside the role's own namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fidomesh.io",
    version = "v1alpha1",
    kind = "MeshRole",
    plural = "meshroles",
    namespaced
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshRoleSpec {
    /// Each target becomes one AuthorizationPolicy `targetRef`.
    #[schemars(length(min = 1))]
    pub targets: Vec<RoleTarget>,
}

/// One Linkerd target of a role.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[x_kube(validation = kube::core::Rule::new(
    "self.kind != 'Namespace' || !has(self.group) || self.group == ''"
).message("a Namespace target has the core group"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.kind != 'Server' || !has(self.group) || self.group == 'policy.linkerd.io'"
).message("a Server target has group policy.linkerd.io"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.kind != 'HTTPRoute' || !has(self.group) || self.group == 'policy.linkerd.io' || self.group == 'gateway.networking.k8s.io'"
).message("an HTTPRoute target has group policy.linkerd.io or gateway.networking.k8s.io"))]
#[x_kube(validation = kube::core::Rule::new(
    "self.kind != 'GRPCRoute' || !has(self.group) || self.group == 'gateway.networking.k8s.io'"
).message("a GRPCRoute target has group gateway.networking.k8s.io"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleTarget {
    /// API group; defaulted from the kind when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the target.
    pub kind: TargetKind,
    /// Name of the target, in the role's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The kinds of Linkerd targets a role may name.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum TargetKind {
    /// A Linkerd `Server`.
    Server,
    /// An `HTTPRoute` (policy.linkerd.io or gateway.networking.k8s.io).
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    /// A Gateway API `GRPCRoute`.
    #[serde(rename = "GRPCRoute")]
    GrpcRoute,
    /// The whole namespace.
    Namespace,
}

impl TargetKind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "Server",
            Self::HttpRoute => "HTTPRoute",
            Self::GrpcRoute => "GRPCRoute",
            Self::Namespace => "Namespace",
        }
    }
}

impl RoleTarget {
    /// The target's API group, defaulted from the kind.
    pub fn effective_group(&self) -> &str {
        match (&self.group, self.kind) {
            (Some(g), _) if !g.is_empty() => g,
            (_, TargetKind::Namespace) => "",
            (_, TargetKind::GrpcRoute) => "gateway.networking.k8s.io",
            (_, TargetKind::Server | TargetKind::HttpRoute) => "policy.linkerd.io",
        }
    }
}

/// A role keyed to authenticator IDs, like an RBAC RoleBinding.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fidomesh.io",
    version = "v1alpha1",
    kind = "MeshRoleBinding",
    plural = "meshrolebindings",
    namespaced
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshRoleBindingSpec {
    /// The MeshRole, in the binding's namespace.
    pub role_ref: RoleRef,
    /// The authenticators granted the role.
    pub authenticators: Vec<AuthenticatorSubject>,
}

/// A reference to a MeshRole in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRef {
    /// Name of the MeshRole.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// An authenticator named by credential ID or by Authenticator name.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[x_kube(validation = kube::core::Rule::new("has(self.credentialId) != has(self.name)")
    .message("exactly one of credentialId and name"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticatorSubject {
    /// A credential ID (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+={0,2}$"))]
    pub credential_id: Option<String>,
    /// An Authenticator's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why an identifier is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The credential ID is not base64url (or base64).
    #[error("credential ID is not base64url")]
    NotBase64,
    /// The decoded credential ID is shorter or longer than WebAuthn allows.
    #[error("credential ID decodes to {0} bytes; 16..=1023 are allowed")]
    CredentialLength(usize),
    /// The AAGUID is not a UUID.
    #[error("AAGUID {0:?} is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    Aaguid(String),
}

/// A canonical credential ID: unpadded base64url of 16..=1023 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialId {
    canonical: String,
    fingerprint: Fingerprint,
}

impl CredentialId {
    /// Parses a credential ID given as base64url or base64, padded or not.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let trimmed = raw.trim().trim_end_matches('=');
        // Accept the standard alphabet too: people paste IDs from tools that print it.
        let normalized: String = trimmed
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(normalized.as_bytes())
            .map_err(|_| IdError::NotBase64)?;
        if !(CREDENTIAL_ID_MIN_BYTES..=CREDENTIAL_ID_MAX_BYTES).contains(&bytes.len()) {
            return Err(IdError::CredentialLength(bytes.len()));
        }
        Ok(Self {
            canonical: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            fingerprint: Fingerprint::of(&bytes),
        })
    }

    /// The canonical text: unpadded base64url.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The short fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }
}

// Debug shows the fingerprint only, so that a stray `{:?}` never logs a credential ID.
impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({})", self.fingerprint)
    }
}

/// First 16 hex characters of SHA-256 over the decoded credential ID.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of decoded credential ID bytes.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut hex = hex::encode(digest);
        hex.truncate(16);
        Self(hex)
    }

    /// The 16 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Canonicalizes an AAGUID to a lowercase hyphenated UUID.
pub fn canonical_aaguid(raw: &str) -> Result<String, IdError> {
    let parsed = uuid::Uuid::try_parse(raw.trim()).map_err(|_| IdError::Aaguid(raw.to_string()))?;
    Ok(parsed.hyphenated().to_string())
}

impl Authenticator {
    /// The authenticator's canonical credential ID.
    pub fn credential_id(&self) -> Result<CredentialId, IdError> {
        CredentialId::parse(&self.spec.credential_id)
    }

    /// The object's name (empty when the object has none).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

/// True for a DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, alphanumeric at both
/// ends, at most 253 characters.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
}

/// True for a DNS-1123 label (namespace names): like a subdomain without `.`, at most 63.
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns1123_subdomain(name)
}

impl RoleTarget {
    /// Checks the target as Linkerd will: a known group for the kind, a valid name, and a
    /// Namespace target naming the role's own namespace.
    pub fn check(&self, role_namespace: &str) -> Result<(), String> {
        let group = self.effective_group();
        let kind = self.kind.as_str();
        let group_ok = match self.kind {
            TargetKind::Server => group == "policy.linkerd.io",
            TargetKind::HttpRoute => {
                group == "policy.linkerd.io" || group == "gateway.networking.k8s.io"
            }
            TargetKind::GrpcRoute => group == "gateway.networking.k8s.io",
            TargetKind::Namespace => group.is_empty(),
        };
        if !group_ok {
            return Err(format!(
                "target {kind} {:?} has unsupported group {group:?}",
                self.name
            ));
        }
        if !is_dns1123_subdomain(&self.name) {
            return Err(format!(
                "target {kind} name {:?} is not a DNS-1123 subdomain",
                self.name
            ));
        }
        if self.kind == TargetKind::Namespace && self.name != role_namespace {
            return Err(format!(
                "target Namespace {:?} is not the role's own namespace {role_namespace:?}",
                self.name
            ));
        }
        Ok(())
    }
}

impl ServiceAccountRef {
    /// Checks the reference: a namespace label and a subdomain name.
    pub fn check(&self) -> Result<(), String> {
        if !is_dns1123_label(&self.namespace) {
            return Err(format!(
                "serviceAccount.namespace {:?} is not a DNS-1123 label",
                self.namespace
            ));
        }
        if !is_dns1123_subdomain(&self.name) {
            return Err(format!(
                "serviceAccount.name {:?} is not a DNS-1123 subdomain",
                self.name
            ));
        }
        Ok(())
    }
}

/// `namespace/name` of a namespaced object.
pub fn object_key(meta: &kube::core::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_padded_and_standard_alphabet_credential_ids() {
        let canonical = CredentialId::parse("q2v4-_q2v4-_q2v4-_q2v4w").unwrap();
        let padded = CredentialId::parse("q2v4+/q2v4+/q2v4+/q2v4w==").unwrap();
        assert_eq!(canonical, padded);
        assert_eq!(padded.as_str(), "q2v4-_q2v4-_q2v4-_q2v4w");
        assert_eq!(canonical.fingerprint().as_str().len(), 16);
    }

    #[test]
    fn rejects_credential_ids_of_wrong_length_or_alphabet() {
        assert_eq!(
            CredentialId::parse("AAAA").unwrap_err(),
            IdError::CredentialLength(3)
        );
        assert_eq!(
            CredentialId::parse("not base64!!").unwrap_err(),
            IdError::NotBase64
        );
        let long = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 1024]);
        assert_eq!(
            CredentialId::parse(&long).unwrap_err(),
            IdError::CredentialLength(1024)
        );
    }

    #[test]
    fn fingerprint_is_sha256_prefix_of_decoded_bytes() {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0u8; 16]);
        let fp = CredentialId::parse(&id).unwrap();
        // sha256 of 16 zero bytes
        assert_eq!(fp.fingerprint().as_str(), "374708fff7719dd5");
    }

    #[test]
    fn debug_of_credential_id_never_shows_the_id() {
        let raw = "q2v4-_q2v4-_q2v4-_q2v4w";
        let id = CredentialId::parse(raw).unwrap();
        assert!(!format!("{id:?}").contains(raw));
    }

    #[test]
    fn canonicalizes_aaguids_to_lowercase() {
        assert_eq!(
            canonical_aaguid("EE882879-721C-4913-9775-3DFCCE97072A").unwrap(),
            "ee882879-721c-4913-9775-3dfcce97072a"
        );
        assert!(canonical_aaguid("not-a-uuid").is_err());
    }
}
