//! The requester from `userInfo.extra` (DESIGN section 4): every malformed or missing fact means
//! "not proven", with a reason, never a crash and never a silent pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, HashMap};

use fidomesh::data::KeyRecord;
use fidomesh::model::{AttestationFormat, CredentialId, Fingerprint};
use fidomesh::requester::{Claims, ExtraKeys, Requester, Source, resolve};
use fidomesh::settings::Settings;
use jiff::Timestamp;

const ALICE_CRED: &str = "pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8";
const BOB_CRED: &str = "IuhtE9i70zWsJZDL4kBK9Q";
const NOW: i64 = 1_796_000_000;

fn fp(cred: &str) -> Fingerprint {
    CredentialId::parse(cred).unwrap().fingerprint().clone()
}

fn mk_keys() -> HashMap<Fingerprint, KeyRecord> {
    let rec = |name: &str, holder: &str, active: bool| KeyRecord {
        name: name.into(),
        holder: holder.into(),
        aaguid: "ee882879-721c-4913-9775-3dfcce97072a".into(),
        format: AttestationFormat::Packed,
        backup_eligible: false,
        active,
    };
    HashMap::from([
        (
            fp(ALICE_CRED),
            rec("alice-yubikey", "alice@example.com", true),
        ),
        (fp(BOB_CRED), rec("bob-titan", "bob@example.com", false)),
    ])
}

fn mk_extra(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    entries
        .iter()
        .map(|(k, v)| {
            (
                format!("fidomesh.io/{k}"),
                v.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

fn requester(user: &str, extra: &BTreeMap<String, Vec<String>>) -> Requester {
    requester_with(user, extra, &mk_keys(), &Settings::default())
}

fn requester_with(
    user: &str,
    extra: &BTreeMap<String, Vec<String>>,
    keys: &HashMap<Fingerprint, KeyRecord>,
    settings: &Settings,
) -> Requester {
    let claims = Claims::from_user_info(Some(user), None, Some(extra), &ExtraKeys::default());
    resolve(
        claims,
        Source::Userinfo,
        keys,
        settings,
        Timestamp::from_second(NOW).unwrap(),
    )
}

fn good_extra() -> BTreeMap<String, Vec<String>> {
    let t = NOW.to_string();
    mk_extra(&[
        ("credential-id", &[ALICE_CRED]),
        ("amr", &["hwk", "user"]),
        ("auth-time", &[&t]),
        ("aaguid", &["EE882879-721C-4913-9775-3DFCCE97072A"]),
    ])
}

#[test]
fn accepts_a_registered_active_fresh_hardware_key_of_the_holder() {
    let r = requester("alice@example.com", &good_extra());
    let a = r.authenticator.expect("authenticator");
    assert!(a.hardware_backed && a.registered && a.active && a.fresh && a.holder_matches);
    assert_eq!(a.fingerprint, fp(ALICE_CRED));
    assert_eq!(
        a.aaguid.as_deref(),
        Some("ee882879-721c-4913-9775-3dfcce97072a")
    );
    assert!(r.not_proven.is_empty(), "{:?}", r.not_proven);
}

#[test]
fn rejects_absent_extra_as_not_proven() {
    let r = requester("alice@example.com", &BTreeMap::new());
    assert!(r.authenticator.is_none());
    assert!(r.not_proven.iter().any(|n| n.contains("no credential ID")));
}

#[test]
fn rejects_an_empty_credential_list_as_not_proven() {
    let mut extra = good_extra();
    extra.insert("fidomesh.io/credential-id".into(), vec![]);
    let r = requester("alice@example.com", &extra);
    assert!(r.authenticator.is_none());
}

#[test]
fn rejects_two_credential_ids() {
    let mut extra = good_extra();
    extra.insert(
        "fidomesh.io/credential-id".into(),
        vec![ALICE_CRED.into(), BOB_CRED.into()],
    );
    let r = requester("alice@example.com", &extra);
    assert!(r.authenticator.is_none());
    assert!(r.not_proven.iter().any(|n| n.contains("several values")));
}

#[test]
fn rejects_a_credential_id_of_another_holder() {
    let r = requester("mallory@example.com", &good_extra());
    let a = r.authenticator.unwrap();
    assert!(!a.hardware_backed);
    assert!(a.registered && !a.holder_matches);
    assert!(r.not_proven.iter().any(|n| n.contains("another holder")));
}

#[test]
fn rejects_an_unregistered_credential() {
    let mut extra = good_extra();
    extra.insert(
        "fidomesh.io/credential-id".into(),
        vec!["yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc".into()],
    );
    let a = requester("alice@example.com", &extra)
        .authenticator
        .unwrap();
    assert!(!a.registered && !a.hardware_backed);
}

#[test]
fn rejects_an_expired_key() {
    let t = NOW.to_string();
    let extra = mk_extra(&[
        ("credential-id", &[BOB_CRED]),
        ("amr", &["hwk"]),
        ("auth-time", &[&t]),
    ]);
    let a = requester("bob@example.com", &extra).authenticator.unwrap();
    assert!(a.registered && !a.active && !a.hardware_backed);
}

#[test]
fn rejects_amr_without_hwk() {
    let mut extra = good_extra();
    extra.insert("fidomesh.io/amr".into(), vec!["pwd".into(), "otp".into()]);
    let r = requester("alice@example.com", &extra);
    assert!(!r.authenticator.unwrap().hardware_backed);
    assert!(r.not_proven.iter().any(|n| n.contains("hwk")));
}

#[test]
fn rejects_a_stale_auth_time() {
    let mut extra = good_extra();
    extra.insert(
        "fidomesh.io/auth-time".into(),
        vec![(NOW - 16 * 60).to_string()],
    );
    let a = requester("alice@example.com", &extra)
        .authenticator
        .unwrap();
    assert!(!a.fresh);
    // Staleness is its own fact: the key itself is still hardware-backed.
    assert!(a.hardware_backed);
}

#[test]
fn rejects_malformed_values_without_crashing() {
    for (key, value) in [
        ("auth-time", "yesterday"),
        ("credential-id", "!!!"),
        ("aaguid", "not-a-uuid"),
        ("credential-id", "   "),
    ] {
        let mut extra = good_extra();
        extra.insert(format!("fidomesh.io/{key}"), vec![value.into()]);
        let r = requester("alice@example.com", &extra);
        assert!(
            r.authenticator
                .as_ref()
                .is_none_or(|a| !a.hardware_backed || !a.fresh)
                || !r.not_proven.is_empty(),
            "{key}={value}: {r:?}"
        );
        assert!(!r.not_proven.is_empty(), "{key}={value}");
    }
}

#[test]
fn rejects_synced_passkeys_unless_allowed() {
    let mut keys = mk_keys();
    if let Some(k) = keys.get_mut(&fp(ALICE_CRED)) {
        k.backup_eligible = true;
    }
    let strict = requester_with(
        "alice@example.com",
        &good_extra(),
        &keys,
        &Settings::default(),
    );
    assert!(!strict.authenticator.unwrap().hardware_backed);
    let lenient = Settings {
        allow_synced_passkeys: true,
        ..Settings::default()
    };
    let ok = requester_with("alice@example.com", &good_extra(), &keys, &lenient);
    assert!(ok.authenticator.unwrap().hardware_backed);
}

#[test]
fn rejects_attestation_none_as_hardware_backed() {
    let mut keys = mk_keys();
    if let Some(k) = keys.get_mut(&fp(ALICE_CRED)) {
        k.format = AttestationFormat::None;
    }
    let r = requester_with(
        "alice@example.com",
        &good_extra(),
        &keys,
        &Settings::default(),
    );
    assert!(!r.authenticator.unwrap().hardware_backed);
}

#[test]
fn reads_configurable_extra_keys() {
    let keys = ExtraKeys::with_prefix("idp.example.com/");
    let extra: BTreeMap<String, Vec<String>> = [
        (
            "idp.example.com/credential-id",
            vec![ALICE_CRED.to_string()],
        ),
        ("idp.example.com/amr", vec!["hwk user".to_string()]),
        ("idp.example.com/auth-time", vec![NOW.to_string()]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let claims = Claims::from_user_info(Some("alice@example.com"), None, Some(&extra), &keys);
    let r = resolve(
        claims,
        Source::Userinfo,
        &mk_keys(),
        &Settings::default(),
        Timestamp::from_second(NOW).unwrap(),
    );
    assert!(r.authenticator.unwrap().hardware_backed);
}

#[test]
fn never_serializes_more_than_the_policy_needs() {
    let r = requester("alice@example.com", &good_extra());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["source"], "userinfo");
    assert_eq!(
        json["authenticator"]["fingerprint"],
        fp(ALICE_CRED).as_str()
    );
}
