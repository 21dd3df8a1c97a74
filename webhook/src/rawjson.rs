//! JSON objects kept as the text that was sent, with their top-level members located.
//!
//! The admission hot path reads a few members of a large document (an AdmissionReview's
//! `request`: uid, kind, userInfo …) and hashes all of it for the decision cache. Parsing the
//! whole document into a `serde_json::Value` copies every string and builds a map per nested
//! object, only for most of it to be thrown away when the decision is a cache hit. A
//! [`RawObject`] keeps the text and where each top-level member's value sits in it: a member is
//! parsed when it is read, the cache key hashes the exact bytes, and the policy engine parses the
//! text directly when it has to evaluate.
//!
//! Members are located by serde_json's own parser (`RawValue`), so the split is exactly the one
//! a full parse would make; a member name that appears twice is refused, so there is never a
//! question of which copy counts.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// Why text is not a readable JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Syntax(String),
    /// The text is JSON but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// A member name appears more than once.
    #[error("member {0:?} appears more than once")]
    Duplicate(String),
}

/// A JSON object as text, with the span of every top-level member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    /// The text the members sit in: the object itself, or a document that holds it.
    source: Box<str>,
    members: Vec<(Box<str>, Range<usize>)>,
    /// Whether `source` is exactly the object (else its text is rebuilt from the members).
    whole: bool,
}

impl RawObject {
    /// Reads `text`, which must be one JSON object with distinct member names.
    pub fn parse(text: &str) -> Result<Self, RawError> {
        let trimmed = text.trim_start();
        if !trimmed.starts_with('{') {
            // Refuse before parsing: a scalar or array would otherwise be a confusing error.
            return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Err(RawError::NotObject),
                Err(e) => Err(RawError::Syntax(e.to_string())),
            };
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let found = de
            .deserialize_map(MembersVisitor)
            .and_then(|m| de.end().map(|()| m))
            .map_err(|e| RawError::Syntax(e.to_string()))?;
        Self::locate(text, found, true)
    }

    /// The object whose members [`MembersSeed`] found in `source` (one pass over a document
    /// that holds the object, such as an AdmissionReview holding its request).
    pub(crate) fn from_members(source: &str, found: Members<'_>) -> Result<Self, RawError> {
        Self::locate(source, found, false)
    }

    fn locate(text: &str, found: Members<'_>, whole: bool) -> Result<Self, RawError> {
        let base = text.as_ptr() as usize;
        let mut members: Vec<(Box<str>, Range<usize>)> = Vec::with_capacity(found.len());
        // A (randomly keyed) set, not a scan of the members so far: an object with many members
        // must not cost their square.
        let mut seen = std::collections::HashSet::with_capacity(found.len());
        if let Some((name, _)) = found.iter().find(|(n, _)| !seen.insert(n.as_str())) {
            return Err(RawError::Duplicate(name.clone()));
        }
        for (name, value) in found {
            // The value borrows from `text`; its offset is where it sits in the text.
            let start = (value.get().as_ptr() as usize)
                .checked_sub(base)
                .ok_or(RawError::NotObject)?;
            let span = start..start + value.get().len();
            if text.get(span.clone()).is_none() {
                return Err(RawError::NotObject);
            }
            members.push((name.into_boxed_str(), span));
        }
        Ok(Self {
            source: text.into(),
            members,
            whole,
        })
    }

    /// The object of a parsed value (serialized, then located like sent text).
    pub fn from_value(value: &Value) -> Result<Self, RawError> {
        let text = serde_json::to_string(value).map_err(|e| RawError::Syntax(e.to_string()))?;
        Self::parse(&text)
    }

    /// The object's JSON text: as sent when it was read whole, else rebuilt from its members
    /// (the same JSON: names re-escaped, values byte for byte).
    pub fn text(&self) -> Cow<'_, str> {
        if self.whole {
            return Cow::Borrowed(&self.source);
        }
        let mut out = String::with_capacity(self.source.len());
        out.push('{');
        for (i, (name, value)) in self.members().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Serializing a string cannot fail.
            out.push_str(&serde_json::to_string(name).unwrap_or_default());
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        Cow::Owned(out)
    }

    /// The members in document order: name and the value's JSON text.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .filter_map(|(name, span)| Some((&**name, self.source.get(span.clone())?)))
    }

    /// The JSON text of member `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(n, _)| **n == *name)
            .and_then(|(_, span)| self.source.get(span.clone()))
    }

    /// Member `name` read as `T`; `Ok(None)` when absent.
    pub fn member<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, serde_json::Error> {
        self.get(name).map(serde_json::from_str).transpose()
    }

    /// The object as a `serde_json::Value` (a full parse; for the paths that edit it).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.text())
    }
}

/// Member names and raw values, in document order, borrowed from the text being read.
pub(crate) type Members<'de> = Vec<(String, &'de RawValue)>;

/// Reads an object's members as raw values (no value is parsed beyond finding its end); `None`
/// for `null`. Any other JSON type is an error.
pub(crate) struct MembersSeed;

impl<'de> serde::de::DeserializeSeed<'de> for MembersSeed {
    type Value = Option<Members<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed {
    type Value = Option<Members<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        MembersVisitor.visit_map(map).map(Some)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(name) = map.next_key::<String>()? {
            let value: &'de RawValue = map.next_value()?;
            out.push((name, value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_members_as_sent() {
        let text = r#" { "uid" : "a\"b", "n": 1, "o": {"x": [1, {"y": "}"}]}, "e": "\u0041" } "#;
        let o = RawObject::parse(text).unwrap();
        let members: Vec<_> = o.members().collect();
        assert_eq!(
            members,
            vec![
                ("uid", r#""a\"b""#),
                ("n", "1"),
                ("o", r#"{"x": [1, {"y": "}"}]}"#),
                ("e", r#""\u0041""#),
            ]
        );
        assert_eq!(o.member::<String>("uid").unwrap().as_deref(), Some("a\"b"));
        assert_eq!(o.member::<String>("e").unwrap().as_deref(), Some("A"));
        assert_eq!(o.member::<String>("missing").unwrap(), None);
        assert_eq!(
            o.to_value().unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn escaped_member_names_are_decoded() {
        let o = RawObject::parse(r#"{"u\u0069d": "x"}"#).unwrap();
        assert_eq!(o.get("uid"), Some(r#""x""#));
    }

    #[test]
    fn rejects_duplicates_even_when_spelled_differently() {
        assert_eq!(
            RawObject::parse(r#"{"uid": "a", "u\u0069d": "b"}"#),
            Err(RawError::Duplicate("uid".into()))
        );
    }

    #[test]
    fn rejects_what_is_not_one_object() {
        assert_eq!(RawObject::parse("[1]"), Err(RawError::NotObject));
        assert_eq!(RawObject::parse("null"), Err(RawError::NotObject));
        assert!(matches!(RawObject::parse("{"), Err(RawError::Syntax(_))));
        assert!(matches!(
            RawObject::parse("{} {}"),
            Err(RawError::Syntax(_))
        ));
        assert!(matches!(
            RawObject::parse(r#"{"a": tru}"#),
            Err(RawError::Syntax(_))
        ));
        assert!(matches!(RawObject::parse(""), Err(RawError::Syntax(_))));
    }

    #[test]
    fn an_object_located_inside_a_document_rebuilds_the_same_json() {
        use serde::de::DeserializeSeed as _;
        let doc = r#"{"outer": 1, "inner": {"a\"b": [1, {"c": "\u00e9"}], "n": null}, "z": 2}"#;
        let mut de = serde_json::Deserializer::from_str(doc);
        let members = de
            .deserialize_map(InnerOnly)
            .unwrap()
            .expect("inner is an object");
        let inner = RawObject::from_members(doc, members).unwrap();
        assert_eq!(inner.get("n"), Some("null"));
        let expected = &serde_json::from_str::<Value>(doc).unwrap()["inner"];
        assert_eq!(
            &serde_json::from_str::<Value>(&inner.text()).unwrap(),
            expected
        );
        assert_eq!(&inner.to_value().unwrap(), expected);

        // Finds the member "inner" of a document with MembersSeed, skipping the others.
        struct InnerOnly;
        impl<'de> Visitor<'de> for InnerOnly {
            type Value = Option<Members<'de>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k == "inner" {
                        found = map.next_value_seed(MembersSeed)?;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
        }
        let _ = MembersSeed.deserialize(&mut serde_json::Deserializer::from_str("null"));
    }

    #[test]
    fn from_value_round_trips() {
        let v = serde_json::json!({"b": [1, 2], "a": {"c": null}});
        let o = RawObject::from_value(&v).unwrap();
        assert_eq!(o.to_value().unwrap(), v);
        assert_eq!(o.get("b"), Some("[1,2]"));
    }
}
