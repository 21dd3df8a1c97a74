//! Translation: fidomesh resources into Linkerd objects (DESIGN section 3).
//!
//! [`translate`] is pure and deterministic: no clock, no I/O, and the same input gives
//! byte-identical output whatever the order of the input. Every caller (admission data, the
//! reconciler, `render`, dry-run, audit) uses this one function.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use kube::core::ObjectMeta;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::linkerd::{
    AuthorizationPolicy, AuthorizationPolicySpec, LinkerdObject, LocalTargetRef,
    MeshTLSAuthentication, MeshTLSAuthenticationSpec, NamespacedTargetRef, POLICY_GROUP,
};
use crate::mds::Mds;
use crate::model::{
    Authenticator, AuthenticatorSubject, CredentialId, Fingerprint, MeshRole, MeshRoleBinding,
    RoleTarget, ServiceAccountRef, TargetKind, object_key,
};
use crate::settings::Settings;

/// Label every generated object carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "fidomesh";
/// Label naming the binding an object came from.
pub const BINDING_LABEL: &str = "fidomesh.io/binding";
/// Label naming the role an object came from.
pub const ROLE_LABEL: &str = "fidomesh.io/role";
/// Annotation listing the fingerprints granted.
pub const AUTHENTICATORS_ANNOTATION: &str = "fidomesh.io/authenticators";

/// Longest Kubernetes object name (DNS-1123 subdomain).
pub const MAX_NAME: usize = 253;
/// Longest label value.
pub const MAX_LABEL_VALUE: usize = 63;

/// The fidomesh resources one translation reads.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// Registered credentials.
    pub authenticators: Vec<Authenticator>,
    /// Roles.
    pub roles: Vec<MeshRole>,
    /// Bindings.
    pub bindings: Vec<MeshRoleBinding>,
}

/// Why a named authenticator is not granted by a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// No Authenticator has that name or credential ID.
    Unknown,
    /// The Authenticator's credential ID or AAGUID is malformed.
    Malformed,
    /// Two Authenticators share the credential ID, so neither is trusted.
    DuplicateCredential,
    /// The FIDO metadata revokes the authenticator's model.
    RevokedModel,
    /// The settings' AAGUID allow list does not include the model.
    AaguidNotAllowed,
    /// A synced passkey where the settings require device-bound keys.
    SyncedPasskeyNotAllowed,
    /// `now < notBefore`.
    NotYetValid,
    /// `now >= notAfter`.
    Expired,
}

impl DropReason {
    /// A stable, kebab-case identifier.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Malformed => "malformed",
            Self::DuplicateCredential => "duplicate-credential",
            Self::RevokedModel => "revoked-model",
            Self::AaguidNotAllowed => "aaguid-not-allowed",
            Self::SyncedPasskeyNotAllowed => "synced-passkey-not-allowed",
            Self::NotYetValid => "not-yet-valid",
            Self::Expired => "expired",
        }
    }
}

/// An authenticator a binding names but does not grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropped {
    /// `namespace/name` of the binding.
    pub binding: String,
    /// How the binding named it: `name:<n>` or `fingerprint:<fp>` (never a full credential ID).
    pub subject: String,
    /// Its fingerprint, when the credential ID is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// An inconsistency in the resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Problem {
    /// A binding refers to a MeshRole that does not exist.
    MissingRole {
        /// `namespace/name` of the binding.
        binding: String,
        /// The role's name.
        role: String,
    },
    /// Several Authenticators share one credential ID.
    DuplicateCredential {
        /// The shared credential's fingerprint.
        fingerprint: Fingerprint,
        /// The Authenticators' names, sorted.
        authenticators: Vec<String>,
    },
    /// A role target Linkerd would refuse (wrong group, bad name, another namespace).
    InvalidTarget {
        /// `namespace/name` of the role.
        role: String,
        /// What is wrong.
        error: String,
    },
    /// An Authenticator's credential ID, AAGUID or ServiceAccount is malformed.
    MalformedAuthenticator {
        /// The Authenticator's name.
        authenticator: String,
        /// What is wrong.
        error: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingRole { binding, role } => {
                write!(
                    f,
                    "MeshRoleBinding {binding} refers to missing MeshRole {role:?}"
                )
            }
            Self::DuplicateCredential {
                fingerprint,
                authenticators,
            } => write!(
                f,
                "Authenticators {} share one credential ID (fingerprint {fingerprint})",
                authenticators.join(", ")
            ),
            Self::InvalidTarget { role, error } => write!(f, "MeshRole {role}: {error}"),
            Self::MalformedAuthenticator {
                authenticator,
                error,
            } => write!(f, "Authenticator {authenticator}: {error}"),
        }
    }
}

/// What one binding grants right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// `namespace/name` of the binding.
    pub binding: String,
    /// `namespace/name` of the role.
    pub role: String,
    /// Active fingerprints granted, sorted.
    pub fingerprints: Vec<Fingerprint>,
    /// The role's targets.
    pub targets: Vec<RoleTarget>,
}

/// The result of one translation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Translation {
    /// Generated Linkerd objects, sorted by kind, namespace, name (empty from [`plan`]).
    pub objects: Vec<LinkerdObject>,
    /// Authenticators named by bindings but not granted, sorted.
    pub dropped: Vec<Dropped>,
    /// Inconsistencies found in the resources, sorted.
    pub problems: Vec<Problem>,
    /// Grants per binding (bindings with no active key included, with no fingerprints).
    pub grants: Vec<Grant>,
    /// Fingerprints of every Authenticator active at the instant (bound or not), sorted.
    pub active: Vec<Fingerprint>,
    /// The earliest instant after `at` when an active key expires or a pending key becomes valid.
    pub next_change: Option<Timestamp>,
}

/// An Authenticator after its identifiers were checked.
#[derive(Debug, Clone)]
pub struct KeyFacts<'a> {
    /// The resource.
    pub resource: &'a Authenticator,
    /// Canonical credential ID.
    pub credential: CredentialId,
    /// Lowercase AAGUID.
    pub aaguid: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity (defaulted from `maxKeyAge`).
    pub not_after: Timestamp,
}

/// Effective `notAfter`: the given one or `notBefore + maxKeyAge`.
pub fn effective_not_after(a: &Authenticator, settings: &Settings) -> Timestamp {
    let not_before = a.spec.not_before.0;
    match &a.spec.not_after {
        Some(t) => t.0,
        None => not_before
            .checked_add(settings.max_key_age_signed())
            .unwrap_or(Timestamp::MAX),
    }
}

/// The authenticators indexed by name and credential ID, with per-key verdicts.
#[derive(Debug, Clone)]
pub struct KeyIndex<'a> {
    /// Well-formed, unique keys by fingerprint.
    pub by_fingerprint: HashMap<Fingerprint, KeyFacts<'a>>,
    /// Authenticator name to fingerprint (only for well-formed, unique keys).
    pub by_name: HashMap<&'a str, Fingerprint>,
    /// Names of Authenticators that are malformed or share a credential.
    pub rejected_names: HashMap<&'a str, DropReason>,
    /// Fingerprints shared by several Authenticators.
    pub duplicated: BTreeSet<Fingerprint>,
    /// Problems found while indexing.
    pub problems: Vec<Problem>,
}

impl<'a> KeyIndex<'a> {
    /// Checks and indexes the authenticators.
    pub fn new(authenticators: &'a [Authenticator], settings: &Settings) -> Self {
        let mut groups: HashMap<Fingerprint, Vec<KeyFacts<'a>>> =
            HashMap::with_capacity(authenticators.len());
        let mut rejected_names = HashMap::new();
        let mut problems = Vec::new();
        for a in authenticators {
            let checked = a
                .credential_id()
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    crate::model::canonical_aaguid(&a.spec.aaguid)
                        .map(|g| (c, g))
                        .map_err(|e| e.to_string())
                })
                .and_then(|ok| a.spec.service_account.check().map(|()| ok));
            match checked {
                Ok((credential, aaguid)) => {
                    let facts = KeyFacts {
                        resource: a,
                        not_before: a.spec.not_before.0,
                        not_after: effective_not_after(a, settings),
                        credential,
                        aaguid,
                    };
                    groups
                        .entry(facts.credential.fingerprint().clone())
                        .or_default()
                        .push(facts);
                }
                Err(error) => {
                    rejected_names.insert(a.name(), DropReason::Malformed);
                    problems.push(Problem::MalformedAuthenticator {
                        authenticator: a.name().to_string(),
                        error,
                    });
                }
            }
        }
        let mut by_fingerprint = HashMap::with_capacity(groups.len());
        let mut by_name = HashMap::with_capacity(groups.len());
        let mut duplicated = BTreeSet::new();
        for (fp, mut keys) in groups {
            if keys.len() == 1 {
                if let Some(k) = keys.pop() {
                    by_name.insert(k.resource.name(), fp.clone());
                    by_fingerprint.insert(fp, k);
                }
            } else {
                let mut names: Vec<String> =
                    keys.iter().map(|k| k.resource.name().to_string()).collect();
                names.sort();
                for k in &keys {
                    rejected_names.insert(k.resource.name(), DropReason::DuplicateCredential);
                }
                problems.push(Problem::DuplicateCredential {
                    fingerprint: fp.clone(),
                    authenticators: names,
                });
                duplicated.insert(fp);
            }
        }
        Self {
            by_fingerprint,
            by_name,
            rejected_names,
            duplicated,
            problems,
        }
    }

    /// Why a key is not active at `at`, or `None` when it is.
    pub fn verdict(
        &self,
        key: &KeyFacts<'_>,
        settings: &Settings,
        mds: &Mds,
        at: Timestamp,
    ) -> Option<DropReason> {
        if mds.is_revoked(&key.aaguid) {
            Some(DropReason::RevokedModel)
        } else if !settings.allowed_aaguids.is_empty()
            && !settings.allowed_aaguids.contains(&key.aaguid)
        {
            Some(DropReason::AaguidNotAllowed)
        } else if key.resource.spec.attestation.backup_eligible && !settings.allow_synced_passkeys {
            Some(DropReason::SyncedPasskeyNotAllowed)
        } else if at < key.not_before {
            Some(DropReason::NotYetValid)
        } else if at >= key.not_after {
            Some(DropReason::Expired)
        } else {
            None
        }
    }

    /// Resolves a binding subject to a fingerprint, or the reason it cannot be.
    fn resolve(&self, subject: &AuthenticatorSubject) -> (String, Result<Fingerprint, DropReason>) {
        if let Some(raw) = &subject.credential_id {
            return match CredentialId::parse(raw) {
                Ok(c) => {
                    let fp = c.fingerprint().clone();
                    let label = format!("fingerprint:{fp}");
                    if self.duplicated.contains(&fp) {
                        (label, Err(DropReason::DuplicateCredential))
                    } else if self.by_fingerprint.contains_key(&fp) {
                        (label, Ok(fp))
                    } else {
                        (label, Err(DropReason::Unknown))
                    }
                }
                Err(_) => (
                    "credential:malformed".to_string(),
                    Err(DropReason::Malformed),
                ),
            };
        }
        let name = subject.name.as_deref().unwrap_or_default();
        let label = format!("name:{name}");
        match self.by_name.get(name) {
            Some(fp) => (label, Ok(fp.clone())),
            None => match self.rejected_names.get(name) {
                Some(reason) => (label, Err(*reason)),
                None => (label, Err(DropReason::Unknown)),
            },
        }
    }
}

/// Translates the resources at instant `at`. Pure and deterministic.
pub fn translate(res: &Resources, settings: &Settings, mds: &Mds, at: Timestamp) -> Translation {
    translate_inner(res, settings, mds, at, true)
}

/// The same translation without building the Linkerd objects: grants, drops, problems, active keys
/// and the next change. What admission needs, at a fraction of the memory.
pub fn plan(res: &Resources, settings: &Settings, mds: &Mds, at: Timestamp) -> Translation {
    translate_inner(res, settings, mds, at, false)
}

fn translate_inner(
    res: &Resources,
    settings: &Settings,
    mds: &Mds,
    at: Timestamp,
    with_objects: bool,
) -> Translation {
    let index = KeyIndex::new(&res.authenticators, settings);
    let mut problems = index.problems.clone();

    let verdicts: HashMap<&Fingerprint, Option<DropReason>> = index
        .by_fingerprint
        .iter()
        .map(|(fp, k)| (fp, index.verdict(k, settings, mds, at)))
        .collect();
    let mut active: Vec<Fingerprint> = verdicts
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(fp, _)| (*fp).clone())
        .collect();
    active.sort();
    let next_change = index
        .by_fingerprint
        .iter()
        .filter(|(fp, _)| {
            // Time-independent drops never change with the clock.
            matches!(
                verdicts.get(fp).copied().flatten(),
                None | Some(DropReason::NotYetValid | DropReason::Expired)
            )
        })
        .flat_map(|(_, k)| [k.not_before, k.not_after])
        .filter(|t| *t > at)
        .min();

    let roles: HashMap<(&str, &str), &MeshRole> = res
        .roles
        .iter()
        .map(|r| (namespace_name(&r.metadata), r))
        .collect();

    let mut bindings: Vec<&MeshRoleBinding> = res.bindings.iter().collect();
    bindings.sort_by(|a, b| namespace_name(&a.metadata).cmp(&namespace_name(&b.metadata)));

    let mut objects = Vec::new();
    let mut dropped = Vec::new();
    let mut grants = Vec::new();
    for binding in bindings {
        let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
        let binding_name = binding.metadata.name.as_deref().unwrap_or_default();
        let binding_key = object_key(&binding.metadata);
        let role_key = format!("{namespace}/{}", binding.spec.role_ref.name);
        let Some(role) = roles.get(&(namespace, binding.spec.role_ref.name.as_str())) else {
            problems.push(Problem::MissingRole {
                binding: binding_key,
                role: binding.spec.role_ref.name.clone(),
            });
            continue;
        };

        let mut granted: BTreeSet<Fingerprint> = BTreeSet::new();
        let mut binding_drops: BTreeSet<Dropped> = BTreeSet::new();
        for subject in &binding.spec.authenticators {
            let (label, resolved) = index.resolve(subject);
            let outcome = resolved.map_err(|r| (None, r)).and_then(|fp| {
                match verdicts.get(&fp).copied().flatten() {
                    None => Ok(fp),
                    Some(reason) => Err((Some(fp), reason)),
                }
            });
            match outcome {
                Ok(fp) => {
                    granted.insert(fp);
                }
                Err((fingerprint, reason)) => {
                    binding_drops.insert(Dropped {
                        binding: binding_key.clone(),
                        subject: label,
                        fingerprint,
                        reason,
                    });
                }
            }
        }
        // A key named twice (by name and by credential ID) is reported once.
        let mut seen = BTreeSet::new();
        for d in binding_drops {
            let identity = d
                .fingerprint
                .as_ref()
                .map_or_else(|| d.subject.clone(), |f| f.as_str().to_string());
            if seen.insert(identity) {
                dropped.push(d);
            }
        }

        let mut targets: Vec<RoleTarget> = Vec::with_capacity(role.spec.targets.len());
        for t in &role.spec.targets {
            match t.check(namespace) {
                Ok(()) => targets.push(t.clone()),
                Err(error) => problems.push(Problem::InvalidTarget {
                    role: role_key.clone(),
                    error,
                }),
            }
        }
        targets.sort_by_key(target_sort_key);
        targets.dedup_by(|a, b| target_sort_key(a) == target_sort_key(b));
        grants.push(Grant {
            binding: binding_key.clone(),
            role: role_key.clone(),
            fingerprints: granted.iter().cloned().collect(),
            targets: targets.clone(),
        });
        if granted.is_empty() || !with_objects {
            // No active key: no objects, and Linkerd denies by default.
            continue;
        }

        let service_accounts: BTreeSet<&ServiceAccountRef> = granted
            .iter()
            .filter_map(|fp| index.by_fingerprint.get(fp))
            .map(|k| &k.resource.spec.service_account)
            .collect();
        let annotation = granted
            .iter()
            .map(Fingerprint::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let role_name = role.metadata.name.as_deref().unwrap_or_default();
        let meta = |name: String| ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                (BINDING_LABEL.to_string(), label_value(binding_name)),
                (ROLE_LABEL.to_string(), label_value(role_name)),
            ])),
            annotations: Some(BTreeMap::from([(
                AUTHENTICATORS_ANNOTATION.to_string(),
                annotation.clone(),
            )])),
            ..ObjectMeta::default()
        };

        let authn_name = object_name(&["fidomesh", binding_name]);
        objects.push(LinkerdObject::MeshTLSAuthentication(
            MeshTLSAuthentication {
                metadata: meta(authn_name.clone()),
                spec: MeshTLSAuthenticationSpec {
                    identities: None,
                    identity_refs: Some(
                        service_accounts
                            .into_iter()
                            .map(|sa| NamespacedTargetRef {
                                group: None,
                                kind: "ServiceAccount".to_string(),
                                name: sa.name.clone(),
                                namespace: Some(sa.namespace.clone()),
                            })
                            .collect(),
                    ),
                },
            },
        ));
        for target in &targets {
            let group = target.effective_group();
            // The parts may contain `-` themselves, so the readable name alone could collide
            // (binding `a` + target `b-c` vs binding `a-b` + target `c`); a digest of the
            // unambiguous tuple keeps names distinct.
            let tuple_digest = Sha256::digest(
                [binding_name, group, target.kind.as_str(), &target.name]
                    .join("\0")
                    .as_bytes(),
            );
            let tag = hex::encode(tuple_digest.get(..5).unwrap_or_default());
            let name = object_name(&[
                "fidomesh",
                binding_name,
                target_slug(target.kind, group),
                &target.name,
                &tag,
            ]);
            objects.push(LinkerdObject::AuthorizationPolicy(AuthorizationPolicy {
                metadata: meta(name),
                spec: AuthorizationPolicySpec {
                    target_ref: LocalTargetRef {
                        group: (!group.is_empty()).then(|| group.to_string()),
                        kind: target.kind.as_str().to_string(),
                        name: target.name.clone(),
                    },
                    required_authentication_refs: vec![NamespacedTargetRef {
                        group: Some(POLICY_GROUP.to_string()),
                        kind: "MeshTLSAuthentication".to_string(),
                        name: authn_name.clone(),
                        namespace: None,
                    }],
                },
            }));
        }
    }

    objects.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    dropped.sort();
    problems.sort();
    problems.dedup();
    Translation {
        objects,
        dropped,
        problems,
        grants,
        active,
        next_change,
    }
}

fn namespace_name(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn target_sort_key(t: &RoleTarget) -> (String, TargetKind, String) {
    (t.effective_group().to_string(), t.kind, t.name.clone())
}

// Distinct per (kind, group) so that an HTTPRoute of each group never collide.
fn target_slug(kind: TargetKind, group: &str) -> &'static str {
    match (kind, group) {
        (TargetKind::Server, _) => "server",
        (TargetKind::HttpRoute, "gateway.networking.k8s.io") => "gwhttproute",
        (TargetKind::HttpRoute, _) => "httproute",
        (TargetKind::GrpcRoute, _) => "grpcroute",
        (TargetKind::Namespace, _) => "namespace",
    }
}

/// A DNS-1123 subdomain from parts joined by `-`, at most 253 characters. A longer name is cut
/// and ends in a hash of the whole, so cut names stay distinct.
pub fn object_name(parts: &[&str]) -> String {
    let joined = sanitize(&parts.join("-"));
    shorten(&joined, MAX_NAME)
}

/// A label value (at most 63 characters, alphanumeric at both ends).
pub fn label_value(raw: &str) -> String {
    shorten(&sanitize(raw), MAX_LABEL_VALUE)
}

fn sanitize(raw: &str) -> String {
    let lowered: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    lowered.trim_matches(|c| c == '-' || c == '.').to_string()
}

fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let suffix = digest.get(..16).unwrap_or(&digest);
    let keep = max.saturating_sub(suffix.len() + 1);
    // `sanitize` leaves ASCII only, so any byte index is a char boundary.
    let head = name.get(..keep).unwrap_or(name);
    let head = head.trim_end_matches(['-', '.']);
    format!("{head}-{suffix}")
}
