//! The facts policies read (`data.fidomesh`), built from the resources and their translation.
//!
//! Everything is keyed so that a rule looks a fact up by key and never scans a collection (see
//! `policies/README.md` for the shape). Time enters only here: `active` and `expiring` are
//! computed for an instant, and [`Snapshot::next_refresh`] says when they must be computed again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use regorus::Value as Rego;
use serde_json::Value;

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
        let active: HashSet<&Fingerprint> = translation.active.iter().collect();
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

    /// `data.fidomesh` for the policies, as the engine holds it. Built on demand rather than
    /// kept: the engine holds its own copy, and a second one would double the memory the facts
    /// take.
    ///
    /// Built directly as regorus values, never through `serde_json`: a JSON tree of these facts
    /// takes several times the memory of the engine's compact objects, and converting one into
    /// the other held both at once. Strings that repeat are shared: a fingerprint, a role key
    /// or a field name is allocated once however often it appears.
    pub fn facts(&self) -> regorus::Value {
        let (resources, settings, mds, at) = (&self.resources, &self.settings, &self.mds, self.at);
        let translation = &self.translation;
        let index = KeyIndex::new(&resources.authenticators, settings);
        let active: HashSet<&Fingerprint> = translation.active.iter().collect();
        let warning = jiff::SignedDuration::try_from(settings.expiry_warning)
            .unwrap_or(jiff::SignedDuration::MAX);
        let keys = index.by_fingerprint.len();
        // Sized for the strings that repeat: per key its fingerprint, name and holder; per
        // binding its role.
        let mut s = Strings::with_capacity(3 * keys + translation.grants.len() + 64);

        let mut authenticators = Entries::with_capacity(keys);
        let mut names = Entries::with_capacity(keys);
        let mut creds = Entries::with_capacity(keys);
        let mut active_map = Entries::with_capacity(active.len());
        let mut expiring = Entries::new();
        let mut service_accounts = Vec::with_capacity(keys);
        // In fingerprint order, so that a name two Authenticators share resolves the same way
        // every time.
        let mut sorted: Vec<_> = index.by_fingerprint.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (fp, k) in sorted {
            let spec = &k.resource.spec;
            let fp_value = s.get(fp.as_str());
            let name = s.get(k.resource.name());
            let holder = s.get(&spec.holder);
            let service_account = object([
                (s.get("namespace"), s.get(&spec.service_account.namespace)),
                (
                    s.get("name"),
                    Rego::from(spec.service_account.name.as_str()),
                ),
            ]);
            let record = object([
                (s.get("name"), name.clone()),
                (s.get("fingerprint"), fp_value.clone()),
                (s.get("aaguid"), s.get(&k.aaguid)),
                (s.get("holder"), holder.clone()),
                (
                    s.get("attestationFormat"),
                    s.get(spec.attestation.format.as_str()),
                ),
                (
                    s.get("backupEligible"),
                    Rego::Bool(spec.attestation.backup_eligible),
                ),
                (s.get("notBefore"), s.get(&k.not_before.to_string())),
                (s.get("notAfter"), s.get(&k.not_after.to_string())),
                (s.get("serviceAccount"), service_account),
            ]);
            authenticators.push((fp_value.clone(), record));
            names.push((name, fp_value.clone()));
            creds.push((Rego::from(k.credential.as_str()), fp_value.clone()));
            let sa_key = format!(
                "{}/{}",
                spec.service_account.namespace, spec.service_account.name
            );
            service_accounts.push((Rego::from(sa_key), fp_value.clone(), holder));
            if active.contains(fp) {
                active_map.push((fp_value.clone(), Rego::Bool(true)));
                let warn_from = k.not_after.checked_sub(warning).unwrap_or(Timestamp::MIN);
                if at >= warn_from {
                    expiring.push((fp_value, Rego::Bool(true)));
                }
            }
        }
        // Each part goes into its compact form as soon as it is complete, so that the
        // intermediate maps of one part never coexist with those of the next.
        drop(index);
        let authenticators = object_of(authenticators);
        let names = object_of(names);
        let creds = object_of(creds);
        let active_map = object_of(active_map);
        let expiring = object_of(expiring);
        let service_accounts = nested_of(service_accounts);

        let mut roles = Entries::with_capacity(resources.roles.len());
        for r in &resources.roles {
            let targets: Vec<Rego> = r
                .spec
                .targets
                .iter()
                .map(|t| {
                    object([
                        (s.get("group"), s.get(t.effective_group())),
                        (s.get("kind"), s.get(t.kind.as_str())),
                        (s.get("name"), Rego::from(t.name.as_str())),
                    ])
                })
                .collect();
            let record = object([
                (s.get("namespace"), s.opt(r.metadata.namespace.as_deref())),
                (s.get("name"), s.opt(r.metadata.name.as_deref())),
                (s.get("targets"), Rego::from(targets)),
            ]);
            roles.push((s.get(&object_key(&r.metadata)), record));
        }
        let roles = object_of(roles);

        let mut bindings = Entries::with_capacity(translation.grants.len());
        let mut held = Vec::new();
        for g in &translation.grants {
            let (namespace, name) = g.binding.split_once('/').unwrap_or(("", &g.binding));
            let role_name = g.role.split_once('/').map_or(g.role.as_str(), |(_, n)| n);
            let fingerprints: Vec<Rego> =
                g.fingerprints.iter().map(|fp| s.get(fp.as_str())).collect();
            let record = object([
                (s.get("namespace"), s.get(namespace)),
                (s.get("name"), Rego::from(name)),
                (s.get("role"), s.get(role_name)),
                (s.get("fingerprints"), Rego::from(fingerprints)),
            ]);
            bindings.push((Rego::from(g.binding.as_str()), record));
            let role = s.get(&g.role);
            for fp in &g.fingerprints {
                held.push((s.get(fp.as_str()), role.clone(), Rego::Bool(true)));
            }
        }
        let bindings = object_of(bindings);
        let held = nested_of(held);

        let mds_facts: Entries = mds
            .models
            .iter()
            .map(|(aaguid, m)| {
                let protection: Vec<Rego> = m.key_protection.iter().map(|p| s.get(p)).collect();
                let record = object([
                    (s.get("description"), s.get(&m.description)),
                    (s.get("status"), s.get(&m.status)),
                    (s.get("revoked"), Rego::Bool(m.revoked)),
                    (
                        s.get("certificationLevel"),
                        s.opt(m.certification_level.as_deref()),
                    ),
                    (s.get("keyProtection"), Rego::from(protection)),
                ]);
                (s.get(aaguid), record)
            })
            .collect();

        object([
            (s.get("authenticators"), authenticators),
            (s.get("authenticatorNames"), names),
            (s.get("credentials"), creds),
            (s.get("roles"), roles),
            (s.get("bindings"), bindings),
            (s.get("active"), active_map),
            (s.get("expiring"), expiring),
            (s.get("heldRoles"), held),
            (s.get("serviceAccounts"), service_accounts),
            (s.get("settings"), settings_facts(settings, &mut s)),
            (s.get("mds"), object_of(mds_facts)),
        ])
    }

    /// [`Snapshot::facts`] as JSON, for tools and tests that work on `serde_json` values.
    pub fn data(&self) -> Value {
        to_json(&self.facts())
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
    to_json(&settings_facts(s, &mut Strings::default()))
}

fn settings_facts(settings: &Settings, s: &mut Strings) -> Rego {
    let mut set = |items: &BTreeSet<String>| -> Rego {
        Rego::from(
            items
                .iter()
                .map(|i| (s.get(i), Rego::Bool(true)))
                .collect::<Fields>(),
        )
    };
    let (admin_groups, protected, allowed) = (
        set(&settings.admin_groups),
        set(&settings.protected_namespaces),
        set(&settings.allowed_aaguids),
    );
    object([
        (s.get("adminGroups"), admin_groups),
        (s.get("protectedNamespaces"), protected),
        (
            s.get("controllerIdentity"),
            s.get(&settings.controller_identity),
        ),
        (
            s.get("maxKeyAgeSeconds"),
            Rego::from(settings.max_key_age.as_secs()),
        ),
        (
            s.get("expiryWarningSeconds"),
            Rego::from(settings.expiry_warning.as_secs()),
        ),
        (
            s.get("freshnessSeconds"),
            Rego::from(settings.freshness.as_secs()),
        ),
        (
            s.get("allowSyncedPasskeys"),
            Rego::Bool(settings.allow_synced_passkeys),
        ),
        (s.get("allowedAaguids"), allowed),
        (s.get("trustDomain"), s.get(&settings.trust_domain)),
    ])
}

// The facts hold only strings, booleans, integers, arrays and string-keyed objects, all of
// which JSON represents; `Null` stands for the impossible failure.
fn to_json(facts: &Rego) -> Value {
    serde_json::to_value(facts).unwrap_or_default()
}

/// The entries of one object, by key; [`Rego::from`] turns them into the engine's compact,
/// read-only object storage.
type Fields = BTreeMap<Rego, Rego>;

/// The entries of an object being built; a key given twice keeps its last value, as inserting
/// would.
type Entries = Vec<(Rego, Rego)>;

fn object<const N: usize>(fields: [(Rego, Rego); N]) -> Rego {
    Rego::from(Fields::from(fields))
}

fn object_of(entries: Entries) -> Rego {
    Rego::from(entries.into_iter().collect::<Fields>())
}

/// `{outer: {inner: value}}` from `(outer, inner, value)` triples, built one inner object at a
/// time (thousands of small maps alive at once would take several times their compact size).
fn nested_of(mut triples: Vec<(Rego, Rego, Rego)>) -> Rego {
    // Stable, so that of two equal inner keys the later still wins.
    triples.sort_by(|a, b| a.0.cmp(&b.0));
    let outer: Entries = triples
        .chunk_by(|a, b| a.0 == b.0)
        .filter_map(|group| {
            let key = group.first()?.0.clone();
            let inner: Fields = group
                .iter()
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect();
            Some((key, Rego::from(inner)))
        })
        .collect();
    drop(triples);
    object_of(outer)
}

/// One shared allocation per distinct string, for the lifetime of one build of the facts. Only
/// strings that repeat go through it; one-off strings (credential IDs, binding keys) are made
/// directly, so the table stays small.
#[derive(Default)]
struct Strings(HashSet<Shared>);

impl Strings {
    fn with_capacity(capacity: usize) -> Self {
        Self(HashSet::with_capacity(capacity))
    }

    /// The string as a value, sharing the allocation of an equal string seen before.
    fn get(&mut self, text: &str) -> Rego {
        if let Some(shared) = self.0.get(text) {
            return shared.0.clone();
        }
        let value = Rego::from(text);
        self.0.insert(Shared(value.clone()));
        value
    }

    /// `null` for `None`, as the JSON of an absent optional field.
    fn opt(&mut self, text: Option<&str>) -> Rego {
        text.map_or(Rego::Null, |t| self.get(t))
    }
}

/// A string value, hashed and compared as its text so that a `&str` finds it.
struct Shared(Rego);

impl Shared {
    fn text(&self) -> &str {
        match &self.0 {
            Rego::String(s) => s,
            _ => "",
        }
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Eq for Shared {}

impl std::hash::Hash for Shared {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text().hash(state);
    }
}

impl std::borrow::Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        self.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Loaded;
    use crate::mds::ModelStatus;
    use crate::model::CredentialId;
    use serde_json::json;

    const AAGUID: &str = "ee882879-721c-4913-9775-3dfcce97072a";
    const ALICE: &str = "AAAAAAAAAAAAAAAAAAAAAA";
    const BOB: &str = "AQEBAQEBAQEBAQEBAQEBAQ";
    const CAROL: &str = "AgICAgICAgICAgICAgICAg";

    fn key(name: &str, credential: &str, extra: &str, sa: &str) -> String {
        format!(
            "apiVersion: fidomesh.io/v1alpha1\nkind: Authenticator\nmetadata: {{name: {name}-key}}\n\
             spec:\n  credentialId: {credential}\n  aaguid: {AAGUID}\n  holder: {name}@example.com\n\
             {extra}  serviceAccount: {{namespace: ops-sessions, name: {sa}}}\n---\n"
        )
    }

    fn snapshot() -> Snapshot {
        let mut text = key(
            "alice",
            ALICE,
            "  attestation: {format: packed}\n  notBefore: \"2026-01-01T00:00:00Z\"\n  notAfter: \"2026-12-20T00:00:00Z\"\n",
            "shared",
        );
        // No notAfter: it defaults to notBefore + maxKeyAge. A synced passkey: never active.
        text += &key(
            "bob",
            BOB,
            "  attestation: {format: none, backupEligible: true}\n  notBefore: \"2026-11-01T00:00:00Z\"\n",
            "bob",
        );
        text += &key(
            "carol",
            CAROL,
            "  attestation: {format: tpm}\n  notBefore: \"2026-01-01T00:00:00Z\"\n  notAfter: \"2026-06-01T00:00:00Z\"\n",
            "shared",
        );
        text += "apiVersion: fidomesh.io/v1alpha1\nkind: MeshRole\n\
                 metadata: {name: reader, namespace: team-a}\nspec:\n  targets:\n\
                 \x20   - {kind: Server, name: api}\n\
                 \x20   - {kind: HTTPRoute, group: gateway.networking.k8s.io, name: route}\n---\n\
                 apiVersion: fidomesh.io/v1alpha1\nkind: MeshRoleBinding\n\
                 metadata: {name: readers, namespace: team-a}\nspec:\n  roleRef: {name: reader}\n\
                 \x20 authenticators:\n    - {name: alice-key}\n    - {name: bob-key}\n\
                 \x20   - {name: carol-key}\n";
        let mut loaded = Loaded::default();
        loaded
            .add_text(std::path::Path::new("facts.yaml"), &text)
            .unwrap();
        let mds = Mds {
            models: BTreeMap::from([(
                AAGUID.to_string(),
                ModelStatus {
                    description: "Security Key".into(),
                    status: "FIDO_CERTIFIED_L1".into(),
                    revoked: false,
                    certification_level: None,
                    key_protection: vec!["hardware".into(), "secure_element".into()],
                },
            )]),
            ..Mds::default()
        };
        Snapshot::build(
            7,
            Arc::new(loaded.resources),
            Arc::new(Settings::default()),
            Arc::new(mds),
            "2026-12-15T00:00:00Z".parse().unwrap(),
        )
    }

    fn fp(credential: &str) -> String {
        CredentialId::parse(credential)
            .unwrap()
            .fingerprint()
            .as_str()
            .to_string()
    }

    // The shape documented in policies/README.md, written out by hand.
    #[test]
    fn facts_have_the_documented_shape() {
        let (a, b, c) = (fp(ALICE), fp(BOB), fp(CAROL));
        let record =
            |name: &str, f: &str, format: &str, synced: bool, from: &str, to: &str, sa: &str| {
                json!({
                    "name": format!("{name}-key"), "fingerprint": f, "aaguid": AAGUID,
                    "holder": format!("{name}@example.com"), "attestationFormat": format,
                    "backupEligible": synced, "notBefore": from, "notAfter": to,
                    "serviceAccount": {"namespace": "ops-sessions", "name": sa},
                })
            };
        let expected = json!({
            "authenticators": {
                &a: record("alice", &a, "packed", false, "2026-01-01T00:00:00Z", "2026-12-20T00:00:00Z", "shared"),
                &b: record("bob", &b, "none", true, "2026-11-01T00:00:00Z", "2027-04-30T00:00:00Z", "bob"),
                &c: record("carol", &c, "tpm", false, "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", "shared"),
            },
            "authenticatorNames": {"alice-key": &a, "bob-key": &b, "carol-key": &c},
            "credentials": {ALICE: &a, BOB: &b, CAROL: &c},
            "roles": {"team-a/reader": {
                "namespace": "team-a", "name": "reader",
                "targets": [
                    {"group": "policy.linkerd.io", "kind": "Server", "name": "api"},
                    {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "route"},
                ],
            }},
            "bindings": {"team-a/readers": {
                "namespace": "team-a", "name": "readers", "role": "reader", "fingerprints": [&a],
            }},
            "active": {&a: true},
            "expiring": {&a: true},
            "heldRoles": {&a: {"team-a/reader": true}},
            "serviceAccounts": {
                "ops-sessions/shared": {&a: "alice@example.com", &c: "carol@example.com"},
                "ops-sessions/bob": {&b: "bob@example.com"},
            },
            "settings": {
                "adminGroups": {"fidomesh:admins": true},
                "protectedNamespaces": {},
                "controllerIdentity": "system:serviceaccount:fidomesh-system:fidomesh",
                "maxKeyAgeSeconds": 15_552_000,
                "expiryWarningSeconds": 1_209_600,
                "freshnessSeconds": 900,
                "allowSyncedPasskeys": false,
                "allowedAaguids": {},
                "trustDomain": "cluster.local",
            },
            "mds": {AAGUID: {
                "description": "Security Key", "status": "FIDO_CERTIFIED_L1", "revoked": false,
                "certificationLevel": null, "keyProtection": ["hardware", "secure_element"],
            }},
        });
        let snapshot = snapshot();
        assert_eq!(snapshot.data(), expected);
        assert!(snapshot.facts() == regorus::Value::from(expected));
    }

    #[test]
    fn settings_json_matches_the_facts() {
        let settings = Settings::default();
        assert_eq!(snapshot().data()["settings"], settings_json(&settings));
    }
}
