//! Rego policy bundles and their evaluation (regorus, Rego v1).
//!
//! A **bundle** is every `*.rego` file and `data.json` of one directory (not recursive: the
//! `tests/` folder beside them holds cases, not policy). It is parsed once, checked by evaluating
//! every rule, identified by a **digest** (SHA-256 over file names and contents), and reused: each
//! decision evaluates on a clone of a prepared engine (a clone is cheap; building an engine is not).
//!
//! A decision reads `data.fidomesh.admission.deny` and `.warn`, sets of `{"code", "msg"}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The rule a request is denied by.
pub const DENY_RULE: &str = "data.fidomesh.admission.deny";
/// The rule a request is warned by.
pub const WARN_RULE: &str = "data.fidomesh.admission.warn";
/// The deny code for an evaluation error or timeout.
pub const POLICY_ERROR: &str = "policy-error";

/// Why a bundle could not be loaded or a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file of the bundle could not be read.
    #[error("policy bundle {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The directory holds no `.rego` file.
    #[error("policy bundle {0}: no .rego files")]
    Empty(PathBuf),
    /// A policy does not parse or compile.
    #[error("policy bundle: {0}")]
    Compile(String),
    /// `data.json` is not valid JSON or not an object.
    #[error("policy bundle data: {0}")]
    Data(String),
    /// Evaluation failed (a builtin error, a type error, the deadline).
    #[error("policy evaluation: {0}")]
    Eval(String),
    /// The input is not JSON the engine can read (text that passed a lenient scan: a lone
    /// surrogate escape, nesting too deep, a number out of range).
    #[error("the input cannot be read: {0}")]
    Input(String),
    /// A rule returned something other than a set of `{code, msg}` objects.
    #[error("policy output: {0}")]
    Output(String),
}

/// One deny or warn entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// Stable identifier of the rule.
    pub code: String,
    /// For people.
    pub msg: String,
}

/// The outcome of evaluating the policies for one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Denials, sorted; the request is allowed iff this is empty.
    pub deny: Vec<Violation>,
    /// Warnings, sorted.
    pub warn: Vec<Violation>,
}

impl Verdict {
    /// True when nothing denies.
    pub fn allowed(&self) -> bool {
        self.deny.is_empty()
    }

    /// The verdict for an evaluation that failed: fail closed.
    pub fn policy_error(error: &PolicyError) -> Self {
        Self {
            deny: vec![Violation {
                code: POLICY_ERROR.to_string(),
                msg: format!("the policy could not be evaluated ({error}); denied to fail closed"),
            }],
            warn: Vec::new(),
        }
    }

    /// Deny codes, sorted and de-duplicated.
    pub fn deny_codes(&self) -> Vec<&str> {
        codes(&self.deny)
    }

    /// Warn codes, sorted and de-duplicated.
    pub fn warn_codes(&self) -> Vec<&str> {
        codes(&self.warn)
    }
}

fn codes(v: &[Violation]) -> Vec<&str> {
    let mut c: Vec<&str> = v.iter().map(|v| v.code.as_str()).collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// The source files of a bundle, read from disk (or given in memory).
#[derive(Debug, Clone)]
pub struct BundleSource {
    /// `(file name, Rego text)`, sorted by name.
    pub policies: Vec<(String, String)>,
    /// The bundle's `data.json`, if any.
    pub data: Option<String>,
}

impl BundleSource {
    /// Reads `*.rego` and `data.json` from a directory (not recursive).
    pub fn read_dir(dir: &Path) -> Result<Self, PolicyError> {
        let io = |path: &Path, error| PolicyError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut policies = Vec::new();
        let mut data = None;
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            if name.ends_with(".rego") {
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                policies.push((name, text));
            } else if name == "data.json" {
                data = Some(std::fs::read_to_string(&path).map_err(|e| io(&path, e))?);
            }
        }
        if policies.is_empty() {
            return Err(PolicyError::Empty(dir.to_path_buf()));
        }
        policies.sort();
        Ok(Self { policies, data })
    }

    /// SHA-256 over names and contents, as `sha256:<hex>`.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (name, text) in &self.policies {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        if let Some(d) = &self.data {
            h.update(b"data.json");
            h.update(d.as_bytes());
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// A compiled, checked policy bundle with its default data; shared by every evaluation.
#[derive(Clone)]
pub struct Bundle {
    engine: regorus::Engine,
    // `data.json`, converted once: every data generation is merged over it.
    defaults: regorus::Value,
    digest: String,
    deadline: Duration,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("digest", &self.digest)
            .finish()
    }
}

impl Bundle {
    /// Compiles a bundle and checks it by evaluating every rule once.
    pub fn compile(source: &BundleSource, deadline: Duration) -> Result<Self, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        for (name, text) in &source.policies {
            engine
                .add_policy(name.clone(), text.clone())
                .map_err(|e| PolicyError::Compile(format!("{name}: {e}")))?;
        }
        let defaults = match &source.data {
            Some(data) => serde_json::from_str::<serde_json::Value>(data)
                .map_err(|e| PolicyError::Data(format!("data.json: {e}")))?,
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        if !defaults.is_object() {
            return Err(PolicyError::Data("data.json must hold an object".into()));
        }
        let defaults = regorus::Value::from(defaults);
        if let Ok(n) = std::num::NonZeroU32::try_from(64) {
            engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: deadline,
                check_interval: n,
            });
        }
        let bundle = Self {
            engine,
            defaults,
            digest: source.digest(),
            deadline,
        };
        bundle.check()?;
        Ok(bundle)
    }

    /// Reads and compiles a bundle directory.
    pub fn load_dir(dir: &Path, deadline: Duration) -> Result<Self, PolicyError> {
        Self::compile(&BundleSource::read_dir(dir)?, deadline)
    }

    // regorus reports an unknown builtin only when its rule runs: evaluate every rule of every
    // module once (with the default data and an empty input) so that such a bundle is refused at
    // load rather than failing requests.
    fn check(&self) -> Result<(), PolicyError> {
        let mut engine = self.engine.clone();
        engine
            .add_data(self.defaults.clone())
            .map_err(|e| PolicyError::Data(e.to_string()))?;
        engine.set_input(regorus::Value::new_object());
        let mut all = engine.clone();
        all.eval_modules(false)
            .map_err(|e| PolicyError::Compile(format!("checking rules: {e}")))?;
        for rule in [DENY_RULE, WARN_RULE] {
            let v = engine
                .eval_rule(rule.to_string())
                .map_err(|e| PolicyError::Compile(format!("{rule}: {e}")))?;
            violations(rule, &v)?;
        }
        Ok(())
    }

    /// The bundle's digest (`sha256:<hex>`).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The evaluation deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A prepared engine: this bundle, its default data, and the given `data.fidomesh` facts
    /// over the defaults (see [`Bundle::with_facts`]).
    pub fn with_data(&self, fidomesh: serde_json::Value) -> Result<Prepared, PolicyError> {
        self.with_facts(policy_value(fidomesh)?)
    }

    /// [`Bundle::with_data`] for facts already built as regorus values
    /// ([`crate::data::Snapshot::facts`]): the engine takes them as they are, without a copy.
    ///
    /// Each member of the facts replaces the bundle's default of the same name under
    /// `data.fidomesh` whole: the facts are complete (the settings carry every key, configured or
    /// defaulted). A deep merge would union the set-valued settings (`adminGroups` and the like
    /// are `{name: true}` maps), so that a default admin group could never be removed.
    pub fn with_facts(&self, fidomesh: regorus::Value) -> Result<Prepared, PolicyError> {
        let mut data = self.defaults.clone();
        place_facts(&mut data, fidomesh);
        self.prepare(data)
    }

    /// For hand-written, partial facts (the policy test cases): deep-merged over the bundle's
    /// defaults, objects key by key, so that a case states only what it is about.
    pub fn with_partial_data(&self, fidomesh: serde_json::Value) -> Result<Prepared, PolicyError> {
        let facts = policy_value(fidomesh)?;
        let mut data = self.defaults.clone();
        let overlay = std::collections::BTreeMap::from([(regorus::Value::from("fidomesh"), facts)]);
        merge_values(&mut data, regorus::Value::from(overlay));
        self.prepare(data)
    }

    fn prepare(&self, data: regorus::Value) -> Result<Prepared, PolicyError> {
        let mut engine = self.engine.clone();
        engine
            .add_data(data)
            .map_err(|e| PolicyError::Data(e.to_string()))?;
        // One evaluation prepares the engine, so that clones start warm.
        engine.set_input(regorus::Value::new_object());
        engine
            .eval_rule(DENY_RULE.to_string())
            .map_err(|e| PolicyError::Eval(e.to_string()))?;
        Ok(Prepared {
            engine,
            digest: self.digest.clone(),
        })
    }
}

/// Merges `overlay` into `base`: objects key by key, anything else replaces.
pub fn deep_merge(base: &mut serde_json::Value, overlay: serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// [`deep_merge`] for regorus values: objects key by key, anything else replaces. Only the
/// objects on the path to a change are copied (shallowly); everything else stays shared.
fn merge_values(base: &mut regorus::Value, overlay: regorus::Value) {
    match (base, overlay) {
        (regorus::Value::Object(b), regorus::Value::Object(o)) => {
            let b = regorus::Rc::make_mut(b);
            for (k, v) in o.iter() {
                match b.get_mut(k) {
                    Some(existing) => merge_values(existing, v.clone()),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// `data.fidomesh` facts given as JSON, as engine values.
fn policy_value(fidomesh: serde_json::Value) -> Result<regorus::Value, PolicyError> {
    match regorus::Value::from(fidomesh) {
        regorus::Value::Undefined => Err(PolicyError::Data(
            "data.fidomesh is not representable as policy data".into(),
        )),
        facts => Ok(facts),
    }
}

/// Puts the facts under `data.fidomesh`, each member replacing the default of its name. Only the
/// objects on the path are copied (shallowly); everything else stays shared.
fn place_facts(data: &mut regorus::Value, facts: regorus::Value) {
    let key = regorus::Value::from("fidomesh");
    let regorus::Value::Object(root) = data else {
        *data = regorus::Value::from(std::collections::BTreeMap::from([(key, facts)]));
        return;
    };
    let root = regorus::Rc::make_mut(root);
    match (root.get_mut(&key), facts) {
        (Some(regorus::Value::Object(defaults)), regorus::Value::Object(facts)) => {
            let defaults = regorus::Rc::make_mut(defaults);
            for (k, v) in facts.iter() {
                defaults.insert(k.clone(), v.clone());
            }
        }
        (_, facts) => {
            root.insert(key, facts);
        }
    }
}

/// An engine holding a bundle and one data generation, ready to evaluate.
#[derive(Clone)]
pub struct Prepared {
    engine: regorus::Engine,
    digest: String,
}

impl Prepared {
    /// The bundle digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Evaluates the policies for one input (`{"request", "requester"}`).
    pub fn evaluate(&self, input: regorus::Value) -> Result<Verdict, PolicyError> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        verdict_of(&mut engine)
    }

    /// Evaluates with coverage gathering on; returns the verdict and the engine for its report.
    pub fn evaluate_with_coverage(
        &self,
        input: regorus::Value,
        engine: &mut Option<regorus::Engine>,
    ) -> Result<Verdict, PolicyError> {
        let e = engine.get_or_insert_with(|| {
            let mut e = self.engine.clone();
            e.set_enable_coverage(true);
            e
        });
        e.set_input(input);
        verdict_of(e)
    }
}

// Both rules of one evaluation, on an engine whose input is set.
fn verdict_of(engine: &mut regorus::Engine) -> Result<Verdict, PolicyError> {
    let deny = engine
        .eval_rule(DENY_RULE.to_string())
        .map_err(|e| PolicyError::Eval(e.to_string()))?;
    let warn = engine
        .eval_rule(WARN_RULE.to_string())
        .map_err(|e| PolicyError::Eval(e.to_string()))?;
    Ok(Verdict {
        deny: violations(DENY_RULE, &deny)?,
        warn: violations(WARN_RULE, &warn)?,
    })
}

fn violations(rule: &str, v: &regorus::Value) -> Result<Vec<Violation>, PolicyError> {
    if *v == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json = serde_json::to_value(v).map_err(|e| PolicyError::Output(e.to_string()))?;
    let mut out: Vec<Violation> = serde_json::from_value(json).map_err(|e| {
        PolicyError::Output(format!(
            "{rule} must be a set of {{\"code\": string, \"msg\": string}}: {e}"
        ))
    })?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Converts JSON into a regorus value.
pub fn to_rego(value: &serde_json::Value) -> regorus::Value {
    regorus::Value::from(value.clone())
}
