//! `fidomesh dry-run`: the same decision and translation offline, nothing persisted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fidomesh");
const ALICE_CRED: &str = "pn9DoaQG_yBVC_gfNtQyprIqKwZpJfZMORtc_ra9lh8";
const AT: &str = "2026-12-15T00:00:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dry_run(input: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.yaml");
    std::fs::write(&file, input).unwrap();
    let out = Command::new(BIN)
        .arg("dry-run")
        .arg("-f")
        .arg(&file)
        .arg("--data-dir")
        .arg(repo().join("manifests/examples"))
        .arg("--policies")
        .arg(repo().join("policies"))
        .args(["--at", AT])
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        v,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const BINDING: &str = "apiVersion: fidomesh.io/v1alpha1
kind: MeshRoleBinding
metadata: {name: payments-weekend, namespace: payments}
spec:
  roleRef: {name: payments-reader}
  authenticators: [{name: carol-nitrokey}]
";

#[test]
fn accepts_a_binding_by_a_holder_of_the_role_and_shows_the_linkerd_objects_it_adds() {
    let (code, v, err) = dry_run(
        BINDING,
        &["--as", "alice@example.com", "--credential-id", ALICE_CRED],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["decision"]["allowed"], true, "{v:#}");
    assert_eq!(v["dryRun"], true);
    let added = v["linkerd"]["added"].as_array().unwrap();
    // payments-reader has three targets: one MeshTLSAuthentication and three policies.
    assert_eq!(added.len(), 4);
    assert!(v["linkerd"]["removed"].as_array().unwrap().is_empty());
    assert_eq!(
        v["patchedObject"]["metadata"]["annotations"]["fidomesh.io/hardware-backed"],
        "true"
    );
}

#[test]
fn rejects_the_same_binding_without_a_hardware_key_and_names_the_rules() {
    let (code, v, _) = dry_run(BINDING, &["--as", "alice@example.com"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["decision"]["allowed"], false);
    let fired: Vec<&str> = v["decision"]["rulesFired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(fired.contains(&"hardware-key-required"), "{fired:?}");
}

#[test]
fn shows_what_a_delete_removes() {
    let existing = "apiVersion: fidomesh.io/v1alpha1
kind: MeshRoleBinding
metadata: {name: payments-oncall, namespace: payments}
spec:
  roleRef: {name: payments-reader}
  authenticators: []
";
    let (code, v, err) = dry_run(
        existing,
        &[
            "--as",
            "alice@example.com",
            "--credential-id",
            ALICE_CRED,
            "--operation",
            "DELETE",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let removed = v["linkerd"]["removed"].as_array().unwrap();
    assert!(
        removed
            .iter()
            .any(|r| r == "MeshTLSAuthentication payments/fidomesh-payments-oncall"),
        "{removed:?}"
    );
}

#[test]
fn accepts_an_admission_review() {
    let text =
        std::fs::read_to_string(repo().join("manifests/examples/reviews/denied-binding.json"))
            .unwrap()
            .replace("__AUTH_TIME__", "1796000000");
    let (code, v, err) = dry_run(&text, &["--as", "mallory@example.com"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["decision"]["allowed"], false);
}

#[test]
fn accepts_a_set_of_resources_and_answers_the_translation_only() {
    let set = format!(
        "{BINDING}---\napiVersion: fidomesh.io/v1alpha1\nkind: MeshRole\nmetadata: {{name: payments-reader, namespace: payments}}\nspec:\n  targets: [{{kind: Server, name: payments-api}}]\n"
    );
    let (code, v, err) = dry_run(&set, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(v.get("decision").is_none());
    // The role loses two targets: their policies in existing bindings are removed.
    assert!(!v["linkerd"]["removed"].as_array().unwrap().is_empty());
    assert!(!v["linkerd"]["added"].as_array().unwrap().is_empty());
}

#[test]
fn rejects_input_that_is_not_an_object_with_exit_code_2() {
    for bad in ["just a string\n", "a: [1, 2\n", "[1, 2]\n"] {
        let (code, _, err) = dry_run(bad, &[]);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
}
