//! `fidomesh render` and `fidomesh crds`, through the real binary.
//!
//! Set `FIDOMESH_BLESS=1` to regenerate the golden files after an intended change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fidomesh");
const AT: &str = "2026-12-15T00:00:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> PathBuf {
    repo().join("manifests/examples")
}

fn fidomesh(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FIDOMESH_SETTINGS")
        .env_remove("FIDOMESH_MDS_PAYLOAD")
        .output()
        .unwrap()
}

fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("FIDOMESH_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with FIDOMESH_BLESS=1)", path.display()));
    assert!(
        expected == actual,
        "{} differs from the output; rerun with FIDOMESH_BLESS=1 if the change is intended",
        path.display()
    );
}

fn render_examples(extra: &[&str]) -> Output {
    let ex = examples();
    let mds = ex.join("fido-mds-payload.json");
    let mut args = vec![
        "render",
        "-f",
        ex.to_str().unwrap(),
        "--at",
        AT,
        "--mds-payload",
        mds.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fidomesh(&args)
}

#[test]
fn renders_the_examples_exactly_as_the_golden_file() {
    let out = render_examples(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.matches("kind: AuthorizationPolicy").count() > 5);
    check_golden(&examples().join("render.golden"), &stdout);
    // Dropped keys are warnings on stderr, never a failure.
    let stderr = String::from_utf8(out.stderr).unwrap();
    for reason in [
        "expired",
        "not-yet-valid",
        "revoked-model",
        "synced-passkey-not-allowed",
    ] {
        assert!(stderr.contains(reason), "missing {reason} in {stderr}");
    }
}

#[test]
fn renders_json_with_the_same_objects_as_yaml() {
    let json = render_examples(&["-o", "json"]);
    assert!(json.status.success());
    let from_json: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    let yaml = render_examples(&[]);
    let text = String::from_utf8(yaml.stdout).unwrap();
    let from_yaml: Vec<serde_json::Value> = text
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    assert_eq!(from_json, from_yaml);
    // Sorted by kind, namespace, name.
    let keys: Vec<(String, String, String)> = from_json
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().into(),
                o["metadata"]["namespace"].as_str().unwrap().into(),
                o["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn render_is_stable_across_runs() {
    let a = render_examples(&[]);
    let b = render_examples(&[]);
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn crds_match_the_committed_manifests() {
    let out = fidomesh(&["crds"]);
    assert!(out.status.success());
    check_golden(
        &repo().join("manifests/crds/fidomesh.io.yaml"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}

const KEY: &str = r#"apiVersion: fidomesh.io/v1alpha1
kind: Authenticator
metadata: {name: alice-yubikey}
spec:
  credentialId: q2v4-_q2v4-_q2v4-_q2v4w
  aaguid: ee882879-721c-4913-9775-3dfcce97072a
  holder: alice@example.com
  attestation: {format: packed}
  notBefore: "2026-12-01T00:00:00Z"
  serviceAccount: {namespace: ops-sessions, name: alice-debug}
"#;

const ROLE: &str = r#"apiVersion: fidomesh.io/v1alpha1
kind: MeshRole
metadata: {name: reader, namespace: payments}
spec:
  targets: [{kind: Server, name: api}]
"#;

/// Writes `docs` as one file (documents joined by `---`) and renders it.
fn render_docs(docs: &[&str]) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.yaml");
    std::fs::write(&file, docs.join("---\n")).unwrap();
    let out = fidomesh(&["render", "-f", file.to_str().unwrap(), "--at", AT]);
    (out, file, dir)
}

fn assert_bad_input(docs: &[&str], index: usize, needle: &str) {
    let (out, file, _dir) = render_docs(docs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout must be empty on error");
    let location = format!("{} (document {index})", file.display());
    assert!(stderr.contains(&location), "{stderr:?} lacks {location:?}");
    assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
}

#[test]
fn accepts_a_minimal_valid_set() {
    let binding = r#"apiVersion: fidomesh.io/v1alpha1
kind: MeshRoleBinding
metadata: {name: oncall, namespace: payments}
spec:
  roleRef: {name: reader}
  authenticators: [{name: alice-yubikey}]
"#;
    let (out, _, _dir) = render_docs(&[KEY, ROLE, binding]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("\nkind: AuthorizationPolicy").count(), 1);
    assert_eq!(text.matches("\nkind: MeshTLSAuthentication").count(), 1);
}

#[test]
fn rejects_yaml_syntax_errors() {
    assert_bad_input(&[KEY, "kind: [unclosed\n"], 1, "YAML syntax error");
}

#[test]
fn rejects_unknown_kinds() {
    assert_bad_input(
        &[
            ROLE,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        ],
        1,
        "unknown kind \"ConfigMap\"",
    );
}

#[test]
fn rejects_missing_fields() {
    let missing = KEY.replace("  holder: alice@example.com\n", "");
    assert_bad_input(&[ROLE, &missing], 1, "missing field `holder`");
}

#[test]
fn rejects_mistyped_fields() {
    let mistyped = ROLE.replace("targets: [{kind: Server, name: api}]", "targets: 7");
    assert_bad_input(&[&mistyped], 0, "spec.targets");
    let bad_enum = ROLE.replace("kind: Server", "kind: Pod");
    assert_bad_input(&[&bad_enum], 0, "unknown variant `Pod`");
}

#[test]
fn rejects_unknown_fields() {
    let extra = KEY.replace("  holder:", "  holdr: x\n  holder:");
    assert_bad_input(&[&extra], 0, "unknown field `holdr`");
}

#[test]
fn rejects_invalid_credential_ids() {
    let bad = KEY.replace("q2v4-_q2v4-_q2v4-_q2v4w", "short");
    assert_bad_input(&[ROLE, &bad], 1, "spec.credentialId");
    let bad = KEY.replace("q2v4-_q2v4-_q2v4-_q2v4w", "not*base64*at*all*not*base64");
    assert_bad_input(&[&bad], 0, "credential ID is not base64url");
}

#[test]
fn rejects_invalid_aaguids() {
    let bad = KEY.replace("ee882879-721c-4913-9775-3dfcce97072a", "yubikey-5");
    assert_bad_input(&[&bad], 0, "spec.aaguid");
}

#[test]
fn rejects_two_authenticators_sharing_a_credential_id() {
    let twin = KEY.replace("name: alice-yubikey", "name: alice-twin");
    assert_bad_input(&[KEY, ROLE, &twin], 2, "share one credential ID");
}

#[test]
fn rejects_a_binding_to_a_missing_role() {
    let binding = r#"apiVersion: fidomesh.io/v1alpha1
kind: MeshRoleBinding
metadata: {name: oncall, namespace: payments}
spec:
  roleRef: {name: writer}
  authenticators: [{name: alice-yubikey}]
"#;
    assert_bad_input(&[KEY, ROLE, binding], 2, "missing MeshRole \"writer\"");
}

#[test]
fn rejects_a_missing_path() {
    let out = fidomesh(&["render", "-f", "/nonexistent/fidomesh", "--at", AT]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or directory"));
}

#[test]
fn rejects_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.yaml");
    std::fs::write(&settings, "maxKeyAge: 180d\nsurprise: true\n").unwrap();
    let ex = examples();
    let out = fidomesh(&[
        "render",
        "-f",
        ex.to_str().unwrap(),
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `surprise`"));
}

#[test]
fn rejects_targets_linkerd_would_refuse() {
    let other_ns = ROLE.replace(
        "targets: [{kind: Server, name: api}]",
        "targets: [{kind: Namespace, name: checkout}]",
    );
    assert_bad_input(&[&other_ns], 0, "not the role's own namespace");
    let wrong_group = ROLE.replace(
        "{kind: Server, name: api}",
        "{kind: Server, group: example.com, name: api}",
    );
    assert_bad_input(&[&wrong_group], 0, "unsupported group");
}
