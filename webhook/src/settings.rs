//! Settings: one YAML file, every key optional, unknown keys an error. Validated once at load.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a settings document was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The YAML does not parse or does not match the settings shape (unknown keys included).
    #[error("settings: {0}")]
    Parse(String),
    /// A value parses but makes no sense.
    #[error("settings: {0}")]
    Invalid(String),
}

/// The policy settings of DESIGN section 5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// Groups that may create roles and bind any role, still only with a hardware key.
    pub admin_groups: BTreeSet<String>,
    /// Namespaces whose Linkerd policy objects fidomesh guards.
    pub protected_namespaces: BTreeSet<String>,
    /// The only user that may change fidomesh-managed Linkerd objects.
    pub controller_identity: String,
    /// Longest `notAfter - notBefore`; also the default for a missing `notAfter`.
    #[serde(with = "human_duration")]
    pub max_key_age: Duration,
    /// Warn when a key expires sooner than this.
    #[serde(with = "human_duration")]
    pub expiry_warning: Duration,
    /// How old `authTime` may be for a policy-changing request.
    #[serde(with = "human_duration")]
    pub freshness: Duration,
    /// Whether backup-eligible (synced) credentials count as hardware-backed.
    pub allow_synced_passkeys: bool,
    /// Authenticator models allowed; empty means any model the metadata does not revoke.
    pub allowed_aaguids: BTreeSet<String>,
    /// Trust domain for identity strings.
    pub trust_domain: String,
    /// Bearer-token issuers for the HTTP API (dry-run, audit); empty means no bearer token is
    /// accepted. See [`crate::token`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<crate::token::IssuerConfig>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admin_groups: BTreeSet::from(["fidomesh:admins".to_string()]),
            protected_namespaces: BTreeSet::new(),
            controller_identity: "system:serviceaccount:fidomesh-system:fidomesh".to_string(),
            max_key_age: Duration::from_secs(180 * 86_400),
            expiry_warning: Duration::from_secs(14 * 86_400),
            freshness: Duration::from_secs(15 * 60),
            allow_synced_passkeys: false,
            allowed_aaguids: BTreeSet::new(),
            trust_domain: "cluster.local".to_string(),
            issuers: Vec::new(),
        }
    }
}

impl Settings {
    /// Parses and validates a settings document. AAGUIDs are canonicalized to lowercase.
    pub fn from_yaml(text: &str) -> Result<Self, SettingsError> {
        // An empty file means "all defaults".
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut settings: Settings =
            serde_yaml::from_str(text).map_err(|e| SettingsError::Parse(e.to_string()))?;
        settings.allowed_aaguids = settings
            .allowed_aaguids
            .iter()
            .map(|a| crate::model::canonical_aaguid(a))
            .collect::<Result<_, _>>()
            .map_err(|e| SettingsError::Invalid(format!("allowedAaguids: {e}")))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.max_key_age.is_zero() {
            return Err(SettingsError::Invalid("maxKeyAge must be positive".into()));
        }
        if self.freshness.is_zero() {
            return Err(SettingsError::Invalid("freshness must be positive".into()));
        }
        if self.controller_identity.trim().is_empty() {
            return Err(SettingsError::Invalid(
                "controllerIdentity must not be empty".into(),
            ));
        }
        if self.trust_domain.trim().is_empty() {
            return Err(SettingsError::Invalid(
                "trustDomain must not be empty".into(),
            ));
        }
        crate::token::validate_issuers(&self.issuers).map_err(SettingsError::Invalid)?;
        Ok(())
    }

    /// The maximum key age as a signed duration for timestamp arithmetic.
    pub fn max_key_age_signed(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(self.max_key_age).unwrap_or(jiff::SignedDuration::MAX)
    }
}

/// Durations written as `180d`, `15m`, `1h 30m` (humantime syntax), for serde `with`.
pub(crate) mod human_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("duration {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_empty_settings_as_defaults() {
        assert_eq!(Settings::from_yaml("").unwrap(), Settings::default());
        assert_eq!(Settings::from_yaml("{}").unwrap(), Settings::default());
    }

    #[test]
    fn accepts_human_durations() {
        let s = Settings::from_yaml("maxKeyAge: 90d\nfreshness: 5m\nexpiryWarning: 1w\n").unwrap();
        assert_eq!(s.max_key_age, Duration::from_secs(90 * 86_400));
        assert_eq!(s.freshness, Duration::from_secs(300));
        assert_eq!(s.expiry_warning, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn rejects_unknown_keys() {
        let err = Settings::from_yaml("adminGroup: [x]\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `adminGroup`"),
            "{err}"
        );
    }

    #[test]
    fn rejects_bad_durations_and_aaguids() {
        assert!(Settings::from_yaml("maxKeyAge: soon\n").is_err());
        assert!(Settings::from_yaml("maxKeyAge: 0s\n").is_err());
        assert!(Settings::from_yaml("allowedAaguids: [nope]\n").is_err());
    }

    #[test]
    fn canonicalizes_allowed_aaguids() {
        let s = Settings::from_yaml("allowedAaguids: [EE882879-721C-4913-9775-3DFCCE97072A]\n")
            .unwrap();
        assert!(
            s.allowed_aaguids
                .contains("ee882879-721c-4913-9775-3dfcce97072a")
        );
    }
}
