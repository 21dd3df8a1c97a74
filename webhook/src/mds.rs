//! FIDO Metadata Service (MDS3) facts about authenticator models, by AAGUID.
//!
//! This module reads a decoded MDS3 payload tolerantly: unknown fields and unknown statuses are
//! kept, not fatal. Verifying the signed BLOB is the identity layer's job; here the payload is
//! already trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Statuses that make a model untrustworthy (the FIDO MDS3 "compromised" family and REVOKED).
pub const REVOKING_STATUSES: &[&str] = &[
    "REVOKED",
    "USER_VERIFICATION_BYPASS",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
];

/// What the metadata says about one authenticator model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// Human-readable model name.
    pub description: String,
    /// The latest status report's status (by effective date).
    pub status: String,
    /// True when any status report revokes or declares the model compromised.
    pub revoked: bool,
    /// Highest FIDO certification level reached (`L1`, `L2`, `L3plus`…), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification_level: Option<String>,
    /// Key protection the model declares (`hardware`, `secure_element`…).
    #[serde(default)]
    pub key_protection: Vec<String>,
}

/// Model facts by lowercase AAGUID, plus the payload's serial number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mds {
    /// The payload's serial number (`no`).
    pub serial: u64,
    /// The payload's `nextUpdate` date.
    pub next_update: Option<String>,
    /// Facts by lowercase AAGUID.
    pub models: BTreeMap<String, ModelStatus>,
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MdsError {
    /// Not JSON, or not the MDS3 payload shape.
    #[error("FIDO metadata payload: {0}")]
    Parse(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    no: u64,
    #[serde(default)]
    next_update: Option<String>,
    #[serde(default)]
    entries: Vec<serde_json::Value>,
}

impl Mds {
    /// An empty catalog: no model is known, so no model is revoked.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads a decoded MDS3 payload (the JSON inside the signed BLOB).
    pub fn from_payload_json(text: &str) -> Result<Self, MdsError> {
        let payload: Payload =
            serde_json::from_str(text).map_err(|e| MdsError::Parse(e.to_string()))?;
        let models = payload
            .entries
            .iter()
            .filter_map(entry_status)
            .collect::<BTreeMap<_, _>>();
        Ok(Self {
            serial: payload.no,
            next_update: payload.next_update,
            models,
        })
    }

    /// Facts about a model, by AAGUID (any case).
    pub fn model(&self, aaguid: &str) -> Option<&ModelStatus> {
        self.models.get(&aaguid.to_ascii_lowercase())
    }

    /// True when the metadata revokes the model.
    pub fn is_revoked(&self, aaguid: &str) -> bool {
        self.model(aaguid).is_some_and(|m| m.revoked)
    }
}

// Entries without an AAGUID (U2F and UAF authenticators) have no bearing on FIDO2 keys.
fn entry_status(entry: &serde_json::Value) -> Option<(String, ModelStatus)> {
    let aaguid = entry.get("aaguid")?.as_str()?.to_ascii_lowercase();
    let statement = entry.get("metadataStatement");
    let description = statement
        .and_then(|s| s.get("description"))
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .to_string();
    let key_protection = statement
        .and_then(|s| s.get("keyProtection"))
        .and_then(|k| k.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let reports: Vec<(&str, &str)> = entry
        .get("statusReports")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let status = r.get("status")?.as_str()?;
                    let date = r
                        .get("effectiveDate")
                        .and_then(|d| d.as_str())
                        .unwrap_or("");
                    Some((status, date))
                })
                .collect()
        })
        .unwrap_or_default();
    let revoked = reports.iter().any(|(s, _)| REVOKING_STATUSES.contains(s));
    // The latest report by effective date; on a tie, the first listed (MDS lists newest first).
    let status = reports
        .iter()
        .enumerate()
        .max_by(|(ia, (_, da)), (ib, (_, db))| da.cmp(db).then(ib.cmp(ia)))
        .map(|(_, (s, _))| s.to_string())
        .unwrap_or_else(|| "UNKNOWN".to_string());
    let certification_level = reports
        .iter()
        .filter_map(|(s, _)| s.strip_prefix("FIDO_CERTIFIED_"))
        .max_by_key(|level| level_rank(level))
        .map(str::to_string);
    Some((
        aaguid,
        ModelStatus {
            description,
            status,
            revoked,
            certification_level,
            key_protection,
        },
    ))
}

fn level_rank(level: &str) -> u8 {
    match level {
        "L1" => 1,
        "L1plus" => 2,
        "L2" => 3,
        "L2plus" => 4,
        "L3" => 5,
        "L3plus" => 6,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Mds {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fido/mds3-sample.json"
        ))
        .unwrap();
        Mds::from_payload_json(&text).unwrap()
    }

    #[test]
    fn reads_the_real_sample_tolerantly() {
        let mds = sample();
        assert_eq!(mds.serial, 291);
        // 29 entries, three of which (U2F/UAF) carry no AAGUID.
        assert_eq!(mds.models.len(), 26);
        let yubikey = mds.model("EE882879-721C-4913-9775-3DFCCE97072A").unwrap();
        assert_eq!(yubikey.description, "YubiKey 5 Series");
        assert!(!yubikey.revoked);
        assert_eq!(yubikey.certification_level.as_deref(), Some("L1"));
    }

    #[test]
    fn marks_revoked_models() {
        let mds = sample();
        assert!(mds.is_revoked("ba86dc56-635f-4141-aef6-00227b1b9af6"));
        assert!(!mds.is_revoked("42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3"));
        assert!(!mds.is_revoked("00000000-0000-0000-0000-000000000000"));
    }

    #[test]
    fn rejects_payloads_that_are_not_json() {
        assert!(Mds::from_payload_json("{not json").is_err());
    }
}
