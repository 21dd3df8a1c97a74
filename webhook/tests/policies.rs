//! The policy cases of `policies/tests/`, through the production loader and decision pipeline:
//! once without the cache, once through it (twice, so the second pass is all hits), all equal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::time::Duration;

use fidomesh::decide::DecisionCache;
use fidomesh::policy::Bundle;
use fidomesh::policytest::Suite;

fn policies() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"))
}

#[test]
fn every_policy_case_passes_with_and_without_the_cache() {
    let bundle = Bundle::load_dir(&policies(), Duration::from_secs(5)).unwrap();
    let suite = Suite::load(&policies()).unwrap();
    assert!(suite.cases.len() >= 100, "only {} cases", suite.cases.len());

    let uncached = suite.run(&bundle, None);
    let failures: Vec<_> = uncached.iter().filter(|r| !r.passed()).collect();
    assert!(failures.is_empty(), "{failures:#?}");

    let cache = DecisionCache::new(10_000, Duration::from_secs(600)).unwrap();
    let filling = suite.run(&bundle, Some(&cache));
    assert!(!cache.is_empty());
    let hits = suite.run(&bundle, Some(&cache));
    assert_eq!(uncached, filling);
    assert_eq!(uncached, hits);
}

#[test]
fn every_rule_has_an_accepting_and_a_rejecting_case() {
    let suite = Suite::load(&policies()).unwrap();
    for code in [
        "hardware-key-required",
        "self-registration-only",
        "no-escalation",
        "authenticator-hygiene",
        "managed-objects",
        "no-wildcard-identities",
        "session-identity-guard",
    ] {
        assert!(
            suite.cases.iter().any(|c| c.deny.iter().any(|d| d == code)),
            "no case denies with {code}"
        );
    }
    assert!(
        suite
            .cases
            .iter()
            .any(|c| c.name.starts_with("accepts_") && c.deny.is_empty())
    );
}

#[test]
fn rejects_a_directory_without_cases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    let err = Suite::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no policy test cases"), "{err}");
}

#[test]
fn rejects_a_bundle_that_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.rego"),
        "package fidomesh.admission\nimport rego.v1\ndeny contains x if {\n",
    )
    .unwrap();
    let err = Bundle::load_dir(dir.path(), Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("bad.rego"), "{err}");
}

#[test]
fn rejects_a_bundle_calling_an_unknown_builtin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("unknown.rego"),
        "package fidomesh.admission\nimport rego.v1\ndeny contains {\"code\": \"x\", \"msg\": m} if {\n  m := no.such_builtin(input.request)\n}\n",
    )
    .unwrap();
    assert!(Bundle::load_dir(dir.path(), Duration::from_secs(1)).is_err());
}
