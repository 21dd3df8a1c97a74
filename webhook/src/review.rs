//! AdmissionReview v1: reading the envelope, building the policy input, mutating, answering.
//!
//! - A body that is not JSON or not an `admission.k8s.io/v1` `AdmissionReview` with a `request`
//!   is a [`ReviewError`] (the edge answers HTTP 400).
//! - A review whose request or object cannot be read is [`Parsed::Unreadable`] (the edge answers
//!   an `invalid` AdmissionResponse that still echoes the uid when there is one).

use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::{AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind, GroupVersionResource, ObjectMeta};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::{CredentialId, GROUP, canonical_aaguid};
use crate::policy::Verdict;
use crate::rawjson::{RawError, RawObject};
use crate::requester::Requester;
use crate::settings::Settings;

/// The only AdmissionReview version served.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// Provenance annotation: who applied the object.
pub const APPLIED_BY: &str = "fidomesh.io/applied-by";
/// Provenance annotation: the fingerprint of the key used.
pub const AUTHENTICATOR: &str = "fidomesh.io/authenticator";
/// Provenance annotation: whether the change was hardware-backed.
pub const HARDWARE_BACKED: &str = "fidomesh.io/hardware-backed";
/// Provenance annotation: the decision that admitted it.
pub const DECISION_ID: &str = "fidomesh.io/decision-id";

/// Why a body is not an AdmissionReview at all.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an `admission.k8s.io/v1` AdmissionReview with a request.
    #[error("body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotReview(String),
}

/// The typed fields of an AdmissionRequest that fidomesh reads. The objects stay in
/// [`Review::raw`] as sent: typing them would copy every field of every object on the hot path,
/// so they are checked in place instead (see [`parse`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestHead {
    /// The request uid, echoed in the response.
    pub uid: String,
    /// Kind of the object.
    pub kind: GroupVersionKind,
    /// Resource of the object.
    pub resource: GroupVersionResource,
    /// Subresource, if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// Name of the object (may be empty on CREATE with generateName).
    #[serde(default)]
    pub name: String,
    /// Namespace of the object.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// Who asked.
    pub user_info: UserInfo,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: bool,
}

impl RequestHead {
    // Member by member, from the located request: the objects are never walked here.
    fn read(raw: &RawObject) -> Result<Self, String> {
        Ok(Self {
            uid: required(raw, "uid")?,
            kind: required(raw, "kind")?,
            resource: required(raw, "resource")?,
            sub_resource: optional::<Option<String>>(raw, "subResource")?.flatten(),
            name: optional(raw, "name")?.unwrap_or_default(),
            namespace: optional::<Option<String>>(raw, "namespace")?.flatten(),
            operation: required(raw, "operation")?,
            user_info: required(raw, "userInfo")?,
            dry_run: optional(raw, "dryRun")?.unwrap_or_default(),
        })
    }
}

fn optional<T: serde::de::DeserializeOwned>(
    raw: &RawObject,
    name: &str,
) -> Result<Option<T>, String> {
    raw.member(name).map_err(|e| format!("{name}: {e}"))
}

fn required<T: serde::de::DeserializeOwned>(raw: &RawObject, name: &str) -> Result<T, String> {
    optional(raw, name)?.ok_or_else(|| format!("missing field `{name}`"))
}

/// A readable review.
#[derive(Debug, Clone)]
pub struct Review {
    /// The request exactly as sent (the policy input's `request`), members located.
    pub raw: RawObject,
    /// Its typed head.
    pub request: RequestHead,
}

/// The outcome of reading a body.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// A readable review.
    Review(Box<Review>),
    /// An AdmissionReview whose request cannot be read.
    Unreadable {
        /// The request uid, when it could be read.
        uid: String,
        /// What is wrong.
        reason: String,
    },
}

/// The envelope: `apiVersion`, `kind`, and the request's members located, in one pass.
struct Envelope<'de> {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<crate::rawjson::Members<'de>>,
}

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut out = Envelope {
            api_version: None,
            kind: None,
            request: None,
        };
        let (mut api_version, mut kind, mut request) = (false, false, false);
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let seen = match &*name {
                "apiVersion" => &mut api_version,
                "kind" => &mut kind,
                "request" => &mut request,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            if std::mem::replace(seen, true) {
                return Err(A::Error::custom(format_args!("duplicate field `{name}`")));
            }
            match &*name {
                "apiVersion" => out.api_version = map.next_value()?,
                "kind" => out.kind = map.next_value()?,
                _ => out.request = map.next_value_seed(crate::rawjson::MembersSeed)?,
            }
        }
        Ok(out)
    }
}

struct EnvelopeVisitor;

/// Reads an AdmissionReview body: the envelope and the request's head. The objects are checked
/// by [`Review::check_objects`] before anything but a cache lookup reads them.
pub fn parse(body: &[u8]) -> Result<Parsed, ReviewError> {
    // Valid JSON is valid UTF-8 throughout; the members' spans are offsets into this text.
    let text = std::str::from_utf8(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let envelope = serde::Deserializer::deserialize_map(&mut de, EnvelopeVisitor)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ReviewError::NotReview(e.to_string()),
            _ => ReviewError::NotJson(e.to_string()),
        })?;
    let kind = envelope.kind.unwrap_or_default();
    let api_version = envelope.api_version.unwrap_or_default();
    if kind != "AdmissionReview" || api_version != REVIEW_API_VERSION {
        return Err(ReviewError::NotReview(format!(
            "apiVersion {api_version:?}, kind {kind:?}"
        )));
    }
    let Some(members) = envelope.request else {
        return Err(ReviewError::NotReview("no request".into()));
    };
    // A uid sent exactly once is echoed even when another member is duplicated: the API server
    // matches the answer by uid, and an `invalid` answer it can match is clearer than a mismatch.
    let sole_uid = {
        let mut uids = members.iter().filter(|(n, _)| n == "uid").map(|(_, v)| *v);
        match (uids.next(), uids.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    };
    let raw = match RawObject::from_members(text, members) {
        Ok(raw) => raw,
        Err(RawError::Duplicate(name)) => {
            return Ok(Parsed::Unreadable {
                uid: sole_uid
                    .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
                    .unwrap_or_default(),
                reason: format!("request cannot be read: member {name:?} appears twice"),
            });
        }
        Err(_) => return Err(ReviewError::NotReview("no request".into())),
    };
    let uid = raw
        .member::<Value>("uid")
        .ok()
        .flatten()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if uid.is_empty() {
        return Ok(Parsed::Unreadable {
            uid,
            reason: "request.uid is missing".into(),
        });
    }
    let request = match RequestHead::read(&raw) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Parsed::Unreadable {
                uid,
                reason: format!("request cannot be read: {e}"),
            });
        }
    };
    Ok(Parsed::Review(Box::new(Review { raw, request })))
}

impl Review {
    /// Whether the objects can be read (see [`check_object`]); `Err` is the reason for an
    /// `invalid` answer.
    ///
    /// Not part of [`parse`]: checking walks every object, and a cached decision does not need
    /// it. The cache key covers every byte of the request but the uid, and decisions are cached
    /// only for checked requests, so a hit is for objects already found readable.
    pub fn check_objects(&self) -> Result<(), String> {
        for field in ["object", "oldObject"] {
            check_object(self.raw.get(field))
                .map_err(|reason| format!("request.{field} cannot be read: {reason}"))?;
        }
        Ok(())
    }
}

/// Reads an AdmissionReview already parsed as JSON, objects checked.
pub fn parse_value(value: Value) -> Result<Parsed, ReviewError> {
    let body = serde_json::to_vec(&value).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    Ok(match parse(&body)? {
        Parsed::Review(r) => match r.check_objects() {
            Ok(()) => Parsed::Review(r),
            Err(reason) => Parsed::Unreadable {
                uid: r.request.uid,
                reason,
            },
        },
        unreadable => unreadable,
    })
}

// What a Kubernetes object must be for fidomesh to read it: absent/null, or a JSON object whose
// apiVersion and kind are strings and whose metadata is ObjectMeta.
fn check_object(object: Option<&str>) -> Result<(), String> {
    let Some(text) = object.filter(|t| *t != "null") else {
        return Ok(());
    };
    let object = RawObject::parse(text).map_err(|e| match e {
        RawError::NotObject => "not a JSON object".to_string(),
        other => other.to_string(),
    })?;
    for key in ["apiVersion", "kind"] {
        if object.get(key).is_some_and(|v| !v.starts_with('"')) {
            return Err(format!("{key} is not a string"));
        }
    }
    match object.get("metadata") {
        None => Ok(()),
        Some(m) => serde_json::from_str::<ObjectMeta>(m)
            .map(|_| ())
            .map_err(|e| format!("metadata: {e}")),
    }
}

/// An allowing response for `uid`.
fn response_for(uid: &str) -> AdmissionResponse {
    // kube builds responses from a typed request; this one carries only the uid it needs.
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_string();
    response.allowed = true;
    response.result = Default::default();
    response
}

/// An `invalid` response that still echoes the uid.
pub fn invalid(uid: &str, reason: &str) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::invalid(reason);
    response.uid = uid.to_string();
    response.result.code = 400;
    response.into_review()
}

/// Builds the `/validate` answer for a verdict.
pub fn validate_response(
    review: &Review,
    verdict: &Verdict,
    annotations: BTreeMap<String, String>,
) -> AdmissionReview<DynamicObject> {
    let mut response = response_for(&review.request.uid);
    if !verdict.allowed() {
        // The code in brackets first, so that kubectl users see which rule denied.
        let message = verdict
            .deny
            .iter()
            .map(|v| format!("[{}] {}", v.code, v.msg))
            .collect::<Vec<_>>()
            .join("; ");
        response = response.deny(message);
        response.result.code = 403;
        response.result.reason = "Forbidden".to_string();
    }
    if !verdict.warn.is_empty() {
        response.warnings = Some(
            verdict
                .warn
                .iter()
                .map(|v| format!("[{}] {}", v.code, v.msg))
                .collect(),
        );
    }
    response.audit_annotations = annotations.into_iter().collect();
    response.into_review()
}

/// True for the fidomesh resources (group `fidomesh.io`).
pub fn is_fidomesh(request: &RequestHead) -> bool {
    request.kind.group == GROUP
}

/// A response denying `review` with a message (for failures after the decision).
pub fn deny_response(
    review: &Review,
    code: u16,
    message: String,
) -> AdmissionReview<DynamicObject> {
    let mut response = response_for(&review.request.uid).deny(message);
    response.result.code = code;
    response.into_review()
}

/// The object as the mutating webhook wants it, or `None` when nothing should change.
///
/// - Authenticator: canonical credential ID (unpadded base64url), lowercase AAGUID, `notAfter`
///   defaulted to `notBefore + maxKeyAge`.
/// - MeshRoleBinding: canonical credential IDs of its subjects.
/// - Every fidomesh resource: the provenance annotations.
pub fn mutate(
    raw_request: &Value,
    requester: &Requester,
    settings: &Settings,
    decision_id: &str,
) -> Option<Value> {
    let group = raw_request.pointer("/kind/group").and_then(Value::as_str);
    let kind = raw_request.pointer("/kind/kind").and_then(Value::as_str);
    let operation = raw_request.get("operation").and_then(Value::as_str);
    if group != Some(GROUP) || !matches!(operation, Some("CREATE" | "UPDATE")) {
        return None;
    }
    let mut object = raw_request.get("object")?.clone();
    if !object.is_object() {
        return None;
    }
    match kind {
        Some("Authenticator") => canonicalize_authenticator(&mut object, settings),
        Some("MeshRoleBinding") => canonicalize_binding(&mut object),
        _ => {}
    }
    let fingerprint = requester
        .authenticator
        .as_ref()
        .map(|a| a.fingerprint.as_str().to_string())
        .unwrap_or_default();
    let hardware = requester
        .authenticator
        .as_ref()
        .is_some_and(|a| a.hardware_backed);
    let meta = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let annotations = meta
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    let annotations = annotations.as_object_mut()?;
    annotations.insert(APPLIED_BY.into(), Value::String(requester.username.clone()));
    if fingerprint.is_empty() {
        annotations.remove(AUTHENTICATOR);
    } else {
        annotations.insert(AUTHENTICATOR.into(), Value::String(fingerprint));
    }
    annotations.insert(HARDWARE_BACKED.into(), Value::String(hardware.to_string()));
    annotations.insert(DECISION_ID.into(), Value::String(decision_id.to_string()));
    Some(object)
}

/// The RFC 6902 patch from the object sent to the mutated one; `None` when empty.
pub fn patch_for(raw_request: &Value, mutated: &Value) -> Option<json_patch::Patch> {
    let original = raw_request.get("object")?;
    let patch = json_patch::diff(original, mutated);
    (!patch.0.is_empty()).then_some(patch)
}

fn canonicalize_authenticator(object: &mut Value, settings: &Settings) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::String(raw)) = spec.get_mut("credentialId")
        && let Ok(id) = CredentialId::parse(raw)
        && id.as_str() != raw
    {
        *raw = id.as_str().to_string();
    }
    if let Some(Value::String(raw)) = spec.get_mut("aaguid")
        && let Ok(a) = canonical_aaguid(raw)
        && &a != raw
    {
        *raw = a;
    }
    let has_not_after = spec.get("notAfter").is_some_and(|v| !v.is_null());
    if !has_not_after
        && let Some(nb) = spec
            .get("notBefore")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        && let Some(na) = nb.checked_add(settings.max_key_age_signed()).ok()
    {
        spec.insert("notAfter".into(), Value::String(na.to_string()));
    }
}

fn canonicalize_binding(object: &mut Value) {
    let Some(subjects) = object
        .pointer_mut("/spec/authenticators")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for s in subjects {
        if let Some(Value::String(raw)) = s.get_mut("credentialId")
            && let Ok(id) = CredentialId::parse(raw)
            && id.as_str() != raw
        {
            *raw = id.as_str().to_string();
        }
    }
}

/// Builds the `/mutate` answer.
pub fn mutate_response(
    review: &Review,
    patch: Option<json_patch::Patch>,
) -> Result<AdmissionReview<DynamicObject>, serde_json::Error> {
    let response = response_for(&review.request.uid);
    let response = match patch {
        Some(p) => response
            .with_patch(p)
            .map_err(|e| serde_json::Error::io(std::io::Error::other(e.to_string())))?,
        None => response,
    };
    Ok(response.into_review())
}

/// The review as JSON for the API server. kube serializes the patch as a JSON array of bytes;
/// the API documents (and every other webhook sends) a base64 string, so it is re-encoded here.
pub fn to_wire(review: &AdmissionReview<DynamicObject>) -> Result<Vec<u8>, serde_json::Error> {
    use base64::Engine as _;
    let has_patch = review.response.as_ref().is_some_and(|r| r.patch.is_some());
    if !has_patch {
        return serde_json::to_vec(review);
    }
    let mut value = serde_json::to_value(review)?;
    if let Some(patch) = value.pointer_mut("/response/patch")
        && let Some(bytes) = patch.as_array().map(|a| {
            a.iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Vec<u8>>()
        })
    {
        *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    serde_json::to_vec(&value)
}

/// The operation as the API server spells it.
pub fn operation_str(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}
