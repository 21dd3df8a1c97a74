//! The facts policies read (`data.fidomesh`), built from the resources and their translation.
//!
//! Everything is keyed so that a rule looks a fact up by key and never scans a collection (see
//! `policies/README.md` for the shape). Time enters only here: `active` and `expiring` are
//! computed for an instant, and [`Snapshot::next_refresh`] says when they must be computed again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::mds::Mds;
use crate::model::{AttestationFormat, Fingerprint, object_key};
use crate::settings::Settings;
use crate::translate::{KeyIndex, Resources, Translation, plan};

/// What the webhook knows about one registered authenticator, for building requesters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The Authenticator's name.
    pub name: String,
    /// The holder's username.
    pub holder: String,
    /// Lowercase AAGUID.
    pub aaguid: String,
    /// Attestation format.
    pub format: AttestationFormat,
    /// Synced passkey.
    pub backup_eligible: bool,
    /// Active at the snapshot's instant.
    pub active: bool,
}

/// One generation of the facts: the resources, their translation and the policy data.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases with every change of resources, settings, metadata or instant-dependent facts.
    pub generation: u64,
    /// The instant the facts hold for.
    pub at: Timestamp,
    /// The resources.
    pub resources: Arc<Resources>,
    /// Their translation at `at`, without the Linkerd objects ([`crate::translate::plan`]).
    pub translation: Arc<Translation>,
    /// Registered keys by fingerprint.
    pub keys: Arc<HashMap<Fingerprint, KeyRecord>>,
    /// When the instant-dependent facts change next (a key expires or becomes valid, or enters
    /// the expiry-warning window).
    pub next_refresh: Option<Timestamp>,
    /// The settings the facts were built with.
    pub settings: Arc<Settings>,
    /// The FIDO metadata the facts were built with.
    pub mds: Arc<Mds>,
}

impl Snapshot {
    /// Builds the facts for `at`. Pure.
    pub fn build(
        generation: u64,
        resources: Arc<Resources>,
        settings: Arc<Settings>,
        mds: Arc<Mds>,
        at: Timestamp,
    ) -> Self {
        let translation = plan(&resources, &settings, &mds, at);
        let index = KeyIndex::new(&resources.authenticators, &settings);
        let active: std::collections::HashSet<&Fingerprint> = translation.active.iter().collect();
        let warning = jiff::SignedDuration::try_from(settings.expiry_warning)
            .unwrap_or(jiff::SignedDuration::MAX);
        let mut keys = HashMap::with_capacity(index.by_fingerprint.len());
        let mut next_warning: Option<Timestamp> = None;
        for (fp, k) in &index.by_fingerprint {
            let spec = &k.resource.spec;
            let is_active = active.contains(fp);
            keys.insert(
                fp.clone(),
                KeyRecord {
                    name: k.resource.name().to_string(),
                    holder: spec.holder.clone(),
                    aaguid: k.aaguid.clone(),
                    format: spec.attestation.format,
                    backup_eligible: spec.attestation.backup_eligible,
                    active: is_active,
                },
            );
            if is_active {
                let warn_from = k.not_after.checked_sub(warning).unwrap_or(Timestamp::MIN);
                if at < warn_from && next_warning.is_none_or(|t| warn_from < t) {
                    next_warning = Some(warn_from);
                }
            }
        }
        let next_refresh = match (translation.next_change, next_warning) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            generation,
            at,
            resources,
            translation: Arc::new(translation),
            keys: Arc::new(keys),
            next_refresh,
            settings,
            mds,
        }
    }

    /// `data.fidomesh` for the policies. Built on demand rather than kept: the engine holds its
    /// own copy, and a second one would double the memory the facts take.
    pub fn data(&self) -> Value {
        let (resources, settings, mds, at) = (&self.resources, &self.settings, &self.mds, self.at);
        let translation = &self.translation;
        let index = KeyIndex::new(&resources.authenticators, settings);
        let active: std::collections::HashSet<&Fingerprint> = translation.active.iter().collect();
        let warning = jiff::SignedDuration::try_from(settings.expiry_warning)
            .unwrap_or(jiff::SignedDuration::MAX);

        let mut authenticators = Map::new();
        let mut names = Map::new();
        let mut creds = Map::new();
        let mut active_map = Map::new();
        let mut expiring = Map::new();
        let mut service_accounts: BTreeMap<String, Map<String, Value>> = BTreeMap::new();

        let mut sorted: Vec<_> = index.by_fingerprint.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (fp, k) in sorted {
            let spec = &k.resource.spec;
            let is_active = active.contains(fp);
            authenticators.insert(
                fp.as_str().to_string(),
                json!({
                    "name": k.resource.name(),
                    "fingerprint": fp.as_str(),
                    "aaguid": k.aaguid,
                    "holder": spec.holder,
                    "attestationFormat": spec.attestation.format.as_str(),
                    "backupEligible": spec.attestation.backup_eligible,
                    "notBefore": k.not_before.to_string(),
                    "notAfter": k.not_after.to_string(),
                    "serviceAccount": {
                        "namespace": spec.service_account.namespace,
                        "name": spec.service_account.name,
                    },
                }),
            );
            names.insert(k.resource.name().to_string(), json!(fp.as_str()));
            creds.insert(k.credential.as_str().to_string(), json!(fp.as_str()));
            let sa_key = format!(
                "{}/{}",
                spec.service_account.namespace, spec.service_account.name
            );
            service_accounts
                .entry(sa_key)
                .or_default()
                .insert(fp.as_str().to_string(), json!(spec.holder));
            if is_active {
                active_map.insert(fp.as_str().to_string(), Value::Bool(true));
                let warn_from = k.not_after.checked_sub(warning).unwrap_or(Timestamp::MIN);
                if at >= warn_from {
                    expiring.insert(fp.as_str().to_string(), Value::Bool(true));
                }
            }
        }

        let mut roles = Map::new();
        for r in &resources.roles {
            let targets: Vec<Value> = r
                .spec
                .targets
                .iter()
                .map(|t| json!({"group": t.effective_group(), "kind": t.kind.as_str(), "name": t.name}))
                .collect();
            roles.insert(
                object_key(&r.metadata),
                json!({
                    "namespace": r.metadata.namespace,
                    "name": r.metadata.name,
                    "targets": targets,
                }),
            );
        }
        let mut bindings = Map::new();
        let mut held: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for g in &translation.grants {
            let (namespace, name) = g.binding.split_once('/').unwrap_or(("", &g.binding));
            let role_name = g.role.split_once('/').map_or(g.role.as_str(), |(_, n)| n);
            bindings.insert(
                g.binding.clone(),
                json!({
                    "namespace": namespace,
                    "name": name,
                    "role": role_name,
                    "fingerprints": g.fingerprints.iter().map(Fingerprint::as_str).collect::<Vec<_>>(),
                }),
            );
            for fp in &g.fingerprints {
                held.entry(fp.as_str().to_string())
                    .or_default()
                    .insert(g.role.clone(), Value::Bool(true));
            }
        }

        let mds_json: Map<String, Value> = mds
            .models
            .iter()
            .map(|(aaguid, m)| {
                (
                    aaguid.clone(),
                    json!({
                        "description": m.description,
                        "status": m.status,
                        "revoked": m.revoked,
                        "certificationLevel": m.certification_level,
                        "keyProtection": m.key_protection,
                    }),
                )
            })
            .collect();

        json!({
            "authenticators": authenticators,
            "authenticatorNames": names,
            "credentials": creds,
            "roles": roles,
            "bindings": bindings,
            "active": active_map,
            "expiring": expiring,
            "heldRoles": held,
            "serviceAccounts": service_accounts,
            "settings": settings_json(settings),
            "mds": mds_json,
        })
    }

    /// The same facts at a later instant, as the next generation.
    pub fn at(&self, generation: u64, at: Timestamp) -> Self {
        Self::build(
            generation,
            self.resources.clone(),
            self.settings.clone(),
            self.mds.clone(),
            at,
        )
    }
}

/// The settings as `data.fidomesh.settings` (sets become `{key: true}` maps, durations seconds).
pub fn settings_json(s: &Settings) -> Value {
    let set = |items: &std::collections::BTreeSet<String>| -> Value {
        Value::Object(
            items
                .iter()
                .map(|i| (i.clone(), Value::Bool(true)))
                .collect(),
        )
    };
    json!({
        "adminGroups": set(&s.admin_groups),
        "protectedNamespaces": set(&s.protected_namespaces),
        "controllerIdentity": s.controller_identity,
        "maxKeyAgeSeconds": s.max_key_age.as_secs(),
        "expiryWarningSeconds": s.expiry_warning.as_secs(),
        "freshnessSeconds": s.freshness.as_secs(),
        "allowSyncedPasskeys": s.allow_synced_passkeys,
        "allowedAaguids": set(&s.allowed_aaguids),
        "trustDomain": s.trust_domain,
    })
}
