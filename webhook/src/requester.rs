//! Who is asking (DESIGN section 4): the **requester** of a decision, in one shape whatever the
//! source.
//!
//! In admission, the facts come from `request.userInfo.extra`, which the API server fills from the
//! identity provider's token (structured authentication, `claimMappings.extra`). Values arrive as
//! lists of strings; a missing, empty, malformed or multi-valued entry where one value is expected
//! means "not proven" (with the reason recorded), never an error.

use std::collections::BTreeMap;
use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::data::KeyRecord;
use crate::model::{AttestationFormat, CredentialId, Fingerprint, canonical_aaguid};
use crate::settings::Settings;

/// The `userInfo.extra` keys fidomesh reads (lowercase, domain-prefixed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtraKeys {
    /// The WebAuthn credential ID used to sign in.
    pub credential_id: String,
    /// The authenticator model.
    pub aaguid: String,
    /// Authentication methods (RFC 8176); `hwk` means a hardware key was proved.
    pub amr: String,
    /// When the user authenticated (Unix seconds).
    pub auth_time: String,
    /// The attestation format seen at sign-in.
    pub att_fmt: String,
    /// Whether the credential is a synced passkey.
    pub backup_eligible: String,
}

impl Default for ExtraKeys {
    fn default() -> Self {
        Self::with_prefix("fidomesh.io/")
    }
}

impl ExtraKeys {
    /// The keys under a prefix such as `fidomesh.io/`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            credential_id: format!("{prefix}credential-id"),
            aaguid: format!("{prefix}aaguid"),
            amr: format!("{prefix}amr"),
            auth_time: format!("{prefix}auth-time"),
            att_fmt: format!("{prefix}att-fmt"),
            backup_eligible: format!("{prefix}backup-eligible"),
        }
    }
}

/// Where the requester's facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `request.userInfo` of an AdmissionReview.
    Userinfo,
    /// A verified bearer token.
    Token,
    /// Given on the command line (offline dry-run).
    Cli,
}

/// The requester's authenticator, as proven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorFacts {
    /// Canonical credential ID (for the policies' bootstrap check; never logged).
    pub credential_id: String,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// Lowercase AAGUID, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aaguid: Option<String>,
    /// Authentication methods.
    pub amr: Vec<String>,
    /// Unix seconds of authentication, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// `amr` has `hwk` and the key is registered, active, the requester's own, attested and
    /// device-bound (unless synced passkeys are allowed).
    pub hardware_backed: bool,
    /// A registered Authenticator has this credential ID.
    pub registered: bool,
    /// That Authenticator is active now.
    pub active: bool,
    /// `authTime` is within the freshness window.
    pub fresh: bool,
    /// The Authenticator's holder is the requester.
    pub holder_matches: bool,
}

/// Who asked, and how they authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// The username.
    pub username: String,
    /// The groups.
    pub groups: Vec<String>,
    /// The authenticator, when a credential ID was presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<AuthenticatorFacts>,
    /// Where the facts came from.
    pub source: Source,
    /// Why facts are missing (for messages and the decision log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_proven: Vec<String>,
}

/// Raw claims about a requester, from userInfo or a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The username.
    pub username: String,
    /// The groups.
    pub groups: Vec<String>,
    /// The credential ID claim.
    pub credential_id: Option<String>,
    /// The AAGUID claim.
    pub aaguid: Option<String>,
    /// The amr claim.
    pub amr: Vec<String>,
    /// The auth_time claim.
    pub auth_time: Option<i64>,
    /// Why a claim could not be read.
    pub not_proven: Vec<String>,
}

impl Claims {
    /// Reads the claims from `userInfo` (username, groups, extra).
    pub fn from_user_info(
        username: Option<&str>,
        groups: Option<&[String]>,
        extra: Option<&BTreeMap<String, Vec<String>>>,
        keys: &ExtraKeys,
    ) -> Self {
        let mut not_proven = Vec::new();
        let empty = BTreeMap::new();
        let extra = extra.unwrap_or(&empty);
        let mut single = |key: &str, what: &str| -> Option<String> {
            match extra.get(key).map(Vec::as_slice) {
                None | Some([]) => None,
                Some([one]) if !one.trim().is_empty() => Some(one.trim().to_string()),
                Some([_]) => {
                    not_proven.push(format!("{what} is empty"));
                    None
                }
                Some(_) => {
                    not_proven.push(format!("{what} has several values"));
                    None
                }
            }
        };
        let credential_id = single(&keys.credential_id, "credential ID");
        let aaguid = single(&keys.aaguid, "AAGUID");
        let auth_time_raw = single(&keys.auth_time, "auth time");
        let auth_time = match auth_time_raw {
            Some(t) => match t.parse::<i64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    not_proven.push("auth time is not a number of seconds".to_string());
                    None
                }
            },
            None => None,
        };
        let amr = extra
            .get(&keys.amr)
            .map(|v| {
                // Some providers flatten the list into one space- or comma-separated string.
                v.iter()
                    .flat_map(|s| s.split([' ', ',']))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            username: username.unwrap_or_default().to_string(),
            groups: groups.map(<[String]>::to_vec).unwrap_or_default(),
            credential_id,
            aaguid,
            amr,
            auth_time,
            not_proven,
        }
    }
}

/// The requester of an admission request: its `userInfo` (the `extra` keys under `extra_keys`),
/// joined with the registered keys.
pub fn of_user_info(
    user_info: &k8s_openapi::api::authentication::v1::UserInfo,
    extra_keys: &ExtraKeys,
    keys: &HashMap<Fingerprint, KeyRecord>,
    settings: &Settings,
    now: Timestamp,
) -> Requester {
    let claims = Claims::from_user_info(
        user_info.username.as_deref(),
        user_info.groups.as_deref(),
        user_info.extra.as_ref(),
        extra_keys,
    );
    resolve(claims, Source::Userinfo, keys, settings, now)
}

/// Joins claims with the registered authenticators into a requester.
pub fn resolve(
    claims: Claims,
    source: Source,
    keys: &HashMap<Fingerprint, KeyRecord>,
    settings: &Settings,
    now: Timestamp,
) -> Requester {
    let mut not_proven = claims.not_proven;
    let authenticator = match claims.credential_id.as_deref().map(CredentialId::parse) {
        None => {
            not_proven.push("no credential ID presented".to_string());
            None
        }
        Some(Err(e)) => {
            not_proven.push(format!("presented credential ID is malformed: {e}"));
            None
        }
        Some(Ok(credential)) => {
            let fingerprint = credential.fingerprint().clone();
            let record = keys.get(&fingerprint);
            let aaguid = claims
                .aaguid
                .as_deref()
                .and_then(|a| match canonical_aaguid(a) {
                    Ok(a) => Some(a),
                    Err(_) => {
                        not_proven.push("presented AAGUID is malformed".to_string());
                        None
                    }
                });
            let hwk = claims.amr.iter().any(|m| m == "hwk");
            let registered = record.is_some();
            let active = record.is_some_and(|r| r.active);
            let holder_matches = record.is_some_and(|r| r.holder == claims.username);
            let attested = record.is_some_and(|r| r.format != AttestationFormat::None);
            let device_ok =
                record.is_some_and(|r| !r.backup_eligible || settings.allow_synced_passkeys);
            let model_matches = match (record, &aaguid) {
                (Some(r), Some(a)) => &r.aaguid == a,
                _ => true,
            };
            let freshness = i64::try_from(settings.freshness.as_secs()).unwrap_or(i64::MAX);
            let fresh = claims.auth_time.is_some_and(|t| {
                let age = now.as_second().saturating_sub(t);
                // A little skew into the future is tolerated; far future is not fresh.
                (-60..=freshness).contains(&age)
            });
            if !hwk {
                not_proven.push("amr does not include hwk".to_string());
            }
            if !registered {
                not_proven.push("credential is not registered".to_string());
            } else if !active {
                not_proven.push("authenticator is not active".to_string());
            }
            if registered && !holder_matches {
                not_proven.push("authenticator belongs to another holder".to_string());
            }
            if !model_matches {
                not_proven.push("AAGUID differs from the registered model".to_string());
            }
            if claims.auth_time.is_none() {
                not_proven.push("no auth time".to_string());
            } else if !fresh {
                not_proven.push("authentication is not fresh".to_string());
            }
            Some(AuthenticatorFacts {
                credential_id: credential.as_str().to_string(),
                fingerprint,
                aaguid,
                amr: claims.amr,
                auth_time: claims.auth_time,
                hardware_backed: hwk
                    && registered
                    && active
                    && holder_matches
                    && attested
                    && device_ok
                    && model_matches,
                registered,
                active,
                fresh,
                holder_matches,
            })
        }
    };
    Requester {
        username: claims.username,
        groups: claims.groups,
        authenticator,
        source,
        not_proven,
    }
}
