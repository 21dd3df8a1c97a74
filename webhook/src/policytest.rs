//! Data-driven policy cases (`policies/tests/*.yaml`), run through the production loader and the
//! production decision pipeline.
//!
//! A case file holds `cases: [{name, input: {request, requester}, data?, deny: [codes],
//! warn: [codes]}]`. The data of a case is the bundle's `data.json`, deep-merged with
//! `tests/data.yaml`, deep-merged with the case's `data`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::decide::{Decider, DecisionCache, Part};
use crate::policy::{Bundle, PolicyError, deep_merge};

/// Why cases could not be run.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A case file does not have the case shape.
    #[error("{path}: {message}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The bundle did not load.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// No case was found: a harness that runs nothing must not pass.
    #[error("no policy test cases found under {0}")]
    NoCases(PathBuf),
}

/// Per policy file: the lines the cases cover, and the lines they do not.
pub type Coverage = BTreeMap<String, (BTreeSet<u32>, BTreeSet<u32>)>;

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `accepts_*`, `rejects_*` or `warns_*`.
    pub name: String,
    /// `{request, requester}`.
    pub input: CaseInput,
    /// Data overrides (rooted at `fidomesh:`).
    #[serde(default)]
    pub data: Option<Value>,
    /// Expected deny codes.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Expected warn codes.
    #[serde(default)]
    pub warn: Vec<String>,
    /// The file the case came from (filled by the loader).
    #[serde(skip)]
    pub file: PathBuf,
}

/// A case's input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    /// The AdmissionRequest.
    #[serde(default)]
    pub request: Value,
    /// The requester (any JSON: cases may send malformed requesters on purpose).
    #[serde(default)]
    pub requester: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Expected deny codes, sorted.
    pub expected_deny: Vec<String>,
    /// Expected warn codes, sorted.
    pub expected_warn: Vec<String>,
    /// Actual deny codes, sorted.
    pub deny: Vec<String>,
    /// Actual warn codes, sorted.
    pub warn: Vec<String>,
    /// An evaluation error, if any.
    pub error: Option<String>,
}

impl CaseResult {
    /// True when the actual codes are the expected ones.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.deny == self.expected_deny && self.warn == self.expected_warn
    }
}

/// The cases of a policy directory and their shared base data.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The cases, in file then document order.
    pub cases: Vec<Case>,
    /// `tests/data.yaml` (rooted at `fidomesh:`), or an empty object.
    pub base: Value,
}

impl Suite {
    /// Reads `DIR/tests/*.yaml` (except `data.yaml`) and `DIR/tests/data.yaml`.
    pub fn load(policy_dir: &Path) -> Result<Self, CaseError> {
        let dir = policy_dir.join("tests");
        let io = |path: &Path, error| CaseError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        let mut base = Value::Object(serde_json::Map::new());
        let mut cases = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let shape = |message: String| CaseError::Shape {
                path: path.clone(),
                message,
            };
            if path.file_stem().is_some_and(|s| s == "data") {
                base = serde_yaml::from_str(&text).map_err(|e| shape(e.to_string()))?;
                continue;
            }
            let file: CaseFile = serde_yaml::from_str(&text).map_err(|e| shape(e.to_string()))?;
            for mut c in file.cases {
                c.file = path.clone();
                c.deny.sort();
                c.deny.dedup();
                c.warn.sort();
                c.warn.dedup();
                cases.push(c);
            }
        }
        if cases.is_empty() {
            return Err(CaseError::NoCases(dir));
        }
        Ok(Self { cases, base })
    }

    /// The `data.fidomesh` of one case (without the bundle defaults, which the bundle adds).
    pub fn case_data(&self, case: &Case) -> Value {
        let mut data = self.base.clone();
        if let Some(d) = &case.data {
            deep_merge(&mut data, d.clone());
        }
        data.get("fidomesh")
            .cloned()
            .unwrap_or(Value::Object(serde_json::Map::new()))
    }

    /// Runs every case; with a cache, every decision goes through it.
    pub fn run(&self, bundle: &Bundle, cache: Option<&DecisionCache>) -> Vec<CaseResult> {
        self.cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let mut result = CaseResult {
                    name: case.name.clone(),
                    file: case.file.clone(),
                    expected_deny: case.deny.clone(),
                    expected_warn: case.warn.clone(),
                    deny: Vec::new(),
                    warn: Vec::new(),
                    error: None,
                };
                match bundle.with_partial_data(self.case_data(case)) {
                    Ok(prepared) => {
                        let decider = Decider {
                            prepared: std::sync::Arc::new(prepared),
                            generation: i as u64,
                        };
                        let d = decider.decide(
                            Part::Value(&case.input.request),
                            Part::Value(&case.input.requester),
                            cache,
                        );
                        result.error = d.error;
                        result.deny = d
                            .verdict
                            .deny_codes()
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                        result.warn = d
                            .verdict
                            .warn_codes()
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                    }
                    Err(e) => result.error = Some(e.to_string()),
                }
                result
            })
            .collect()
    }

    /// Runs every case with coverage on; returns per-file `(covered, not covered)` line sets.
    pub fn coverage(&self, bundle: &Bundle) -> Result<Coverage, CaseError> {
        let mut covered: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        let mut seen: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for case in &self.cases {
            let prepared = bundle.with_partial_data(self.case_data(case))?;
            let mut engine = None;
            let input = Decider::input(
                Part::Value(&case.input.request),
                Part::Value(&case.input.requester),
            )?;
            prepared.evaluate_with_coverage(input, &mut engine)?;
            if let Some(e) = engine {
                let report = e
                    .get_coverage_report()
                    .map_err(|e| PolicyError::Eval(e.to_string()))?;
                for f in report.files {
                    covered
                        .entry(f.path.clone())
                        .or_default()
                        .extend(f.covered.iter().copied());
                    let all = seen.entry(f.path).or_default();
                    all.extend(f.covered.iter().copied());
                    all.extend(f.not_covered.iter().copied());
                }
            }
        }
        Ok(seen
            .into_iter()
            .map(|(path, all)| {
                let c = covered.remove(&path).unwrap_or_default();
                let not: BTreeSet<u32> = all.difference(&c).copied().collect();
                (path, (c, not))
            })
            .collect())
    }
}
