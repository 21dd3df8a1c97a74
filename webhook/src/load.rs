//! Reading fidomesh resources from multi-document YAML.
//!
//! Every error names the file and the document's index (0-based) so that a person can find the
//! offending document. Parsing is strict: unknown kinds, unknown or mistyped fields and malformed
//! identifiers are errors, never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{
    API_VERSION, Authenticator, CredentialId, MeshRole, MeshRoleBinding, canonical_aaguid,
};
use crate::translate::{Problem, Resources};

/// Where a document came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// The document's 0-based index in the file.
    pub index: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.index)
    }
}

/// Why resources could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error("{origin}: YAML syntax error: {message}")]
    Syntax {
        /// Where.
        origin: Origin,
        /// The parser's message.
        message: String,
    },
    /// A document is not a fidomesh resource this version reads.
    #[error(
        "{origin}: unknown kind {kind:?} (apiVersion {api_version:?}); expected {API_VERSION} Authenticator, MeshRole or MeshRoleBinding"
    )]
    UnknownKind {
        /// Where.
        origin: Origin,
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// A field is missing, unknown or of the wrong type.
    #[error("{origin}: {kind}: {message}")]
    Shape {
        /// Where.
        origin: Origin,
        /// The document's kind.
        kind: String,
        /// What is wrong, with the field path.
        message: String,
    },
    /// An identifier or reference is invalid.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// A path given is neither a file nor a directory of YAML files.
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
}

/// Resources together with where each came from.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The resources.
    pub resources: Resources,
    /// Origin of each Authenticator by name.
    pub authenticator_origins: BTreeMap<String, Origin>,
    /// Origin of each binding by `namespace/name`.
    pub binding_origins: BTreeMap<String, Origin>,
}

impl Loaded {
    /// Parses every document of one YAML text and adds the resources.
    pub fn add_text(&mut self, file: &Path, text: &str) -> Result<(), LoadError> {
        self.reserve_for(text);
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let origin = Origin {
                file: file.to_path_buf(),
                index,
            };
            let value =
                serde_json::Value::deserialize(document).map_err(|e| LoadError::Syntax {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?;
            // Empty documents (`---` at the end, comments only) carry nothing.
            if value.is_null() {
                continue;
            }
            self.add_value(origin, value)?;
        }
        Ok(())
    }

    // The resources are large (an Authenticator takes about half a kilobyte before its
    // strings) and outlive the load. Grown one push at a time, their vectors would end with up
    // to twice the room they need, after holding the previous, half-size copy as well; so
    // reserve the room up front. The count is a hint only: it reads top-level `kind:` lines of
    // block-style documents, and anything it misses (flow style, JSON) just grows as before.
    fn reserve_for(&mut self, text: &str) {
        let (mut keys, mut roles, mut bindings) = (0, 0, 0);
        for line in text.lines() {
            if let Some(kind) = line.strip_prefix("kind:") {
                match kind.trim().trim_matches(['"', '\'']) {
                    "Authenticator" => keys += 1,
                    "MeshRole" => roles += 1,
                    "MeshRoleBinding" => bindings += 1,
                    _ => {}
                }
            }
        }
        // No real document of these kinds is shorter than this: a text of bare `kind:` lines
        // cannot reserve more than a small multiple of its own size.
        let most = text.len() / 64;
        let resources = &mut self.resources;
        resources.authenticators.reserve_exact(keys.min(most));
        resources.roles.reserve_exact(roles.min(most));
        resources.bindings.reserve_exact(bindings.min(most));
    }

    /// Adds one parsed document.
    pub fn add_value(&mut self, origin: Origin, value: serde_json::Value) -> Result<(), LoadError> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        if api_version != API_VERSION {
            return Err(LoadError::UnknownKind {
                origin,
                api_version,
                kind,
            });
        }
        match kind.as_str() {
            "Authenticator" => {
                let a: Authenticator = parse_shape(&origin, &kind, value)?;
                check_name(&origin, &a.metadata, false)?;
                CredentialId::parse(&a.spec.credential_id).map_err(|e| LoadError::Invalid {
                    origin: origin.clone(),
                    message: format!("Authenticator {}: spec.credentialId: {e}", a.name()),
                })?;
                canonical_aaguid(&a.spec.aaguid).map_err(|e| LoadError::Invalid {
                    origin: origin.clone(),
                    message: format!("Authenticator {}: spec.aaguid: {e}", a.name()),
                })?;
                a.spec
                    .service_account
                    .check()
                    .map_err(|e| LoadError::Invalid {
                        origin: origin.clone(),
                        message: format!("Authenticator {}: spec.{e}", a.name()),
                    })?;
                if a.spec.holder.trim().is_empty() || a.spec.holder.len() > 253 {
                    return Err(LoadError::Invalid {
                        origin,
                        message: format!(
                            "Authenticator {}: spec.holder must have 1..=253 characters",
                            a.name()
                        ),
                    });
                }
                if let Some(not_after) = &a.spec.not_after
                    && not_after.0 <= a.spec.not_before.0
                {
                    return Err(LoadError::Invalid {
                        origin,
                        message: format!(
                            "Authenticator {}: notAfter must be later than notBefore",
                            a.name()
                        ),
                    });
                }
                self.authenticator_origins
                    .insert(a.name().to_string(), origin);
                self.resources.authenticators.push(a);
            }
            "MeshRole" => {
                let r: MeshRole = parse_shape(&origin, &kind, value)?;
                check_name(&origin, &r.metadata, true)?;
                if r.spec.targets.is_empty() {
                    return Err(LoadError::Invalid {
                        origin,
                        message: "MeshRole: spec.targets must not be empty".into(),
                    });
                }
                let namespace = r.metadata.namespace.as_deref().unwrap_or_default();
                for (i, t) in r.spec.targets.iter().enumerate() {
                    t.check(namespace).map_err(|e| LoadError::Invalid {
                        origin: origin.clone(),
                        message: format!("MeshRole: spec.targets[{i}]: {e}"),
                    })?;
                }
                self.resources.roles.push(r);
            }
            "MeshRoleBinding" => {
                let b: MeshRoleBinding = parse_shape(&origin, &kind, value)?;
                check_name(&origin, &b.metadata, true)?;
                for (i, s) in b.spec.authenticators.iter().enumerate() {
                    match (&s.credential_id, &s.name) {
                        (Some(raw), None) => {
                            CredentialId::parse(raw).map_err(|e| LoadError::Invalid {
                                origin: origin.clone(),
                                message: format!(
                                    "MeshRoleBinding: spec.authenticators[{i}].credentialId: {e}"
                                ),
                            })?;
                        }
                        (None, Some(_)) => {}
                        _ => {
                            return Err(LoadError::Invalid {
                                origin,
                                message: format!(
                                    "MeshRoleBinding: spec.authenticators[{i}]: exactly one of credentialId and name"
                                ),
                            });
                        }
                    }
                }
                self.binding_origins
                    .insert(crate::model::object_key(&b.metadata), origin);
                self.resources.bindings.push(b);
            }
            _ => {
                return Err(LoadError::UnknownKind {
                    origin,
                    api_version,
                    kind,
                });
            }
        }
        Ok(())
    }

    /// Reads files and directories (recursively, `*.yaml` / `*.yml`, in sorted order).
    pub fn add_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let io = |error| LoadError::Io {
            path: path.to_path_buf(),
            error,
        };
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            entries.sort();
            for entry in entries {
                let is_yaml = entry
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e == "yaml" || e == "yml");
                // Hidden entries include the kubelet's `..data` and timestamped directories,
                // which would otherwise be read twice through their symlinks.
                let hidden = entry
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if hidden {
                    continue;
                }
                if entry.is_dir() || is_yaml {
                    self.add_path(&entry)?;
                }
            }
            Ok(())
        } else if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            self.add_text(path, &text)
        } else {
            Err(LoadError::Missing(path.to_path_buf()))
        }
    }

    /// Turns cross-object problems (missing roles, shared credentials) into an error that names
    /// where the offending document is.
    pub fn check_consistency(&self, problems: &[Problem]) -> Result<(), LoadError> {
        let Some(problem) = problems.first() else {
            return Ok(());
        };
        let origin = match problem {
            Problem::MissingRole { binding, .. } => self.binding_origins.get(binding),
            Problem::DuplicateCredential { authenticators, .. } => authenticators
                .iter()
                .filter_map(|n| self.authenticator_origins.get(n))
                .max(),
            Problem::MalformedAuthenticator { authenticator, .. } => {
                self.authenticator_origins.get(authenticator)
            }
            Problem::InvalidTarget { .. } => None,
        };
        let origin = origin.cloned().unwrap_or(Origin {
            file: PathBuf::from("<input>"),
            index: 0,
        });
        Err(LoadError::Invalid {
            origin,
            message: problem.to_string(),
        })
    }
}

/// Loads resources from several paths.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for p in paths {
        loaded.add_path(p)?;
    }
    Ok(loaded)
}

fn parse_shape<T: serde::de::DeserializeOwned>(
    origin: &Origin,
    kind: &str,
    value: serde_json::Value,
) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        LoadError::Shape {
            origin: origin.clone(),
            kind: kind.to_string(),
            message: if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            },
        }
    })
}

fn check_name(
    origin: &Origin,
    meta: &kube::core::ObjectMeta,
    namespaced: bool,
) -> Result<(), LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        origin: origin.clone(),
        message,
    };
    let name = meta.name.as_deref().unwrap_or_default();
    if !is_dns1123_subdomain(name) {
        return Err(invalid(format!(
            "metadata.name {name:?} is not a DNS-1123 subdomain"
        )));
    }
    match (&meta.namespace, namespaced) {
        (None, true) => Err(invalid(format!("{name}: metadata.namespace is required"))),
        (Some(ns), true) if !crate::model::is_dns1123_label(ns) => Err(invalid(format!(
            "{name}: metadata.namespace {ns:?} is not a DNS-1123 label"
        ))),
        (Some(ns), false) => Err(invalid(format!(
            "{name}: the resource is cluster-scoped but names namespace {ns:?}"
        ))),
        _ => Ok(()),
    }
}

pub use crate::model::is_dns1123_subdomain;
