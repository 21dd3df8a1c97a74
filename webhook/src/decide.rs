//! One decision pipeline for every caller (admission, dry-run, `fidomesh test`): build the input,
//! look the decision up in the cache, or evaluate the policies and remember the answer.
//!
//! The **decision cache** key covers everything a policy reads: the bundle digest, the data
//! generation, and a digest of every byte of the input but `request.uid`. The digest is BLAKE3
//! keyed with a random per-process key, so a collision with a cached "allowed" cannot be crafted.
//! Errors and timeouts are never cached.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::policy::{PolicyError, Prepared, Verdict};
use crate::rawjson::RawObject;

/// A cache key: 32 bytes of keyed BLAKE3.
pub type CacheKey = [u8; 32];

/// The decision cache (moka), with a keyed hasher.
#[derive(Clone)]
pub struct DecisionCache {
    cache: moka::sync::Cache<CacheKey, Arc<Verdict>>,
    key: [u8; 32],
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

/// Why the process could not make a cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The operating system gave no randomness for the hash key.
    #[error("no randomness for the decision cache key: {0}")]
    Random(String),
}

impl DecisionCache {
    /// A cache of at most `capacity` decisions, each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Result<Self, CacheError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| CacheError::Random(e.to_string()))?;
        Ok(Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            key,
        })
    }

    /// The number of cached decisions (approximate).
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cached verdict.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Verdict>> {
        self.cache.get(key)
    }

    /// Remembers a verdict (never an error: callers cache successful evaluations only).
    pub fn insert(&self, key: CacheKey, verdict: Arc<Verdict>) {
        self.cache.insert(key, verdict);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// The key of a decision: the bundle digest, the data generation, and every byte of the input
    /// except `request.uid`.
    pub fn key_for(
        &self,
        digest: &str,
        generation: u64,
        request: Part<'_>,
        requester: Part<'_>,
    ) -> CacheKey {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        // One buffer and one update: BLAKE3 is fast on large updates and slow on many tiny ones.
        KEY_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            frame(&mut buf, digest.as_bytes());
            buf.extend_from_slice(&generation.to_le_bytes());
            request.frame_into(&mut buf, Some("uid"));
            requester.frame_into(&mut buf, None);
            h.update(&buf);
            if buf.capacity() > 1 << 20 {
                // Do not keep a huge buffer alive after one huge request.
                *buf = Vec::new();
            }
        });
        *h.finalize().as_bytes()
    }
}

thread_local! {
    static KEY_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One part of the policy input (`input.request` or `input.requester`), in the form the caller
/// holds it.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Parsed JSON (dry runs of plain objects, policy test cases).
    Value(&'a Value),
    /// The text as sent, members located (admission's request).
    Raw(&'a RawObject),
    /// JSON text (admission's requester, serialized once for the key and, on a miss, the input).
    Text(&'a str),
}

impl Part<'_> {
    /// Appends the part to a cache-key buffer: a tag, then every member (but `skip`) as a
    /// length-prefixed name and a length-prefixed JSON value, then an end mark. Length prefixes
    /// make the framing unambiguous, so equal buffers mean equal members, byte for byte. The two
    /// forms never share entries (a value is re-serialized, raw text is as sent); each is
    /// deterministic, which is all a cache key needs.
    fn frame_into(&self, buf: &mut Vec<u8>, skip: Option<&str>) {
        match self {
            Part::Raw(raw) => {
                buf.push(b'R');
                for (name, value) in raw.members() {
                    if Some(name) != skip {
                        frame(buf, name.as_bytes());
                        frame(buf, value.as_bytes());
                    }
                }
            }
            Part::Value(Value::Object(map)) => {
                buf.push(b'O');
                let mut scratch = Vec::new();
                for (name, value) in map {
                    if Some(name.as_str()) != skip {
                        frame(buf, name.as_bytes());
                        scratch.clear();
                        let _ = serde_json::to_writer(&mut scratch, value);
                        frame(buf, &scratch);
                    }
                }
            }
            Part::Text(text) => {
                buf.push(b'T');
                frame(buf, text.as_bytes());
            }
            Part::Value(other) => {
                buf.push(b'V');
                let mut scratch = Vec::new();
                let _ = serde_json::to_writer(&mut scratch, other);
                frame(buf, &scratch);
            }
        }
        buf.extend_from_slice(&u64::MAX.to_le_bytes());
    }

    /// The part as a policy engine value.
    fn to_rego(self) -> Result<regorus::Value, PolicyError> {
        match self {
            Part::Value(v) => Ok(regorus::Value::from(v.clone())),
            Part::Raw(raw) => regorus::Value::from_json_str(&raw.text())
                .map_err(|e| PolicyError::Input(e.to_string())),
            Part::Text(text) => {
                regorus::Value::from_json_str(text).map_err(|e| PolicyError::Input(e.to_string()))
            }
        }
    }
}

fn frame(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// The requester as policy input (`input.requester`).
pub fn requester_value(requester: &crate::requester::Requester) -> Value {
    serde_json::to_value(requester).unwrap_or(Value::Null)
}

/// The engine and facts of one moment: what every decision reads.
#[derive(Clone)]
pub struct Decider {
    /// The bundle with the data merged in.
    pub prepared: Arc<Prepared>,
    /// The data generation of the facts.
    pub generation: u64,
}

/// One decision.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The verdict.
    pub verdict: Arc<Verdict>,
    /// Whether it came from the cache.
    pub cache_hit: bool,
    /// Bundle digest.
    pub digest: String,
    /// Data generation.
    pub generation: u64,
    /// The evaluation error, when the verdict is the fail-closed `policy-error`.
    pub error: Option<String>,
}

impl Decider {
    /// Builds the policy input `{request, requester}`.
    pub fn input(request: Part<'_>, requester: Part<'_>) -> Result<regorus::Value, PolicyError> {
        let mut input = regorus::Value::new_object();
        let map = input
            .as_object_mut()
            .map_err(|e| PolicyError::Eval(e.to_string()))?;
        map.insert(regorus::Value::from("request"), request.to_rego()?);
        map.insert(regorus::Value::from("requester"), requester.to_rego()?);
        Ok(input)
    }

    /// Decides one request; consults and fills `cache` when one is given.
    pub fn decide(
        &self,
        request: Part<'_>,
        requester: Part<'_>,
        cache: Option<&DecisionCache>,
    ) -> Decision {
        let digest = self.prepared.digest().to_string();
        let key = cache.map(|c| (c, c.key_for(&digest, self.generation, request, requester)));
        if let Some((c, k)) = &key
            && let Some(v) = c.cache.get(k)
        {
            return Decision {
                verdict: v,
                cache_hit: true,
                digest,
                generation: self.generation,
                error: None,
            };
        }
        match Self::input(request, requester).and_then(|input| self.prepared.evaluate(input)) {
            Ok(verdict) => {
                let verdict = Arc::new(verdict);
                if let Some((c, k)) = key {
                    c.cache.insert(k, verdict.clone());
                }
                Decision {
                    verdict,
                    cache_hit: false,
                    digest,
                    generation: self.generation,
                    error: None,
                }
            }
            Err(e) => Decision {
                verdict: Arc::new(Verdict::policy_error(&e)),
                cache_hit: false,
                digest,
                generation: self.generation,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Evaluates without a cache and returns the error rather than a fail-closed verdict.
pub fn evaluate_uncached(
    prepared: &Prepared,
    request: Part<'_>,
    requester: Part<'_>,
) -> Result<Verdict, PolicyError> {
    prepared.evaluate(Decider::input(request, requester)?)
}
