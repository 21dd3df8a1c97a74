//! The decision log: group commit, torn lines, rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write as _;
use std::sync::Arc;

use fidomesh::server::decision_log::{DecisionLog, Record, Rotation, read_log};
use fidomesh::server::metrics::Metrics;

fn mk_record(uid: &str) -> Record {
    Record {
        decision_id: format!("d-{uid}"),
        time: "2026-12-15T00:00:00Z".into(),
        endpoint: "validate".into(),
        uid: uid.into(),
        operation: "CREATE".into(),
        resource: "fidomesh.io/v1alpha1/meshrolebindings".into(),
        namespace: Some("payments".into()),
        name: "payments-oncall".into(),
        username: "alice@example.com".into(),
        authenticator: Some("7eac3791daff73f9".into()),
        hardware_backed: true,
        allowed: true,
        deny: vec![],
        warn: vec![],
        cache_hit: false,
        bundle: "sha256:00".into(),
        generation: 1,
        dry_run: false,
        latency_us: 10,
        patch_ops: None,
    }
}

fn big_rotation() -> Rotation {
    Rotation {
        max_bytes: 1 << 30,
        keep: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_concurrent_appends_and_reads_every_one_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let metrics = Arc::new(Metrics::new());
    let log = DecisionLog::open(&path, big_rotation(), metrics.clone()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                log.append(&mk_record(&format!("{t}-{i}"))).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (records, torn) = read_log(&path).unwrap();
    assert_eq!(torn, 0);
    assert_eq!(records.len(), 400);
    // Group commit: fewer syncs than records.
    let text = metrics.encode();
    let syncs: u64 = text
        .lines()
        .find(|l| l.starts_with("fidomesh_decision_log_fsync_duration_seconds_count"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..400).contains(&syncs),
        "group commit never grouped: {syncs} syncs"
    );
}

#[tokio::test]
async fn skips_a_torn_last_line_and_appends_cleanly_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    {
        let log = DecisionLog::open(&path, big_rotation(), Arc::new(Metrics::new())).unwrap();
        log.append(&mk_record("before")).await.unwrap();
    }
    // A crash in the middle of a write.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"decisionId":"d-torn","time":"2026-12-"#)
        .unwrap();
    drop(f);
    let (records, torn) = read_log(&path).unwrap();
    assert_eq!((records.len(), torn), (1, 1));

    let log = DecisionLog::open(&path, big_rotation(), Arc::new(Metrics::new())).unwrap();
    log.append(&mk_record("after")).await.unwrap();
    let (records, torn) = read_log(&path).unwrap();
    assert_eq!(torn, 1);
    let uids: Vec<_> = records.iter().map(|r| r.uid.as_str()).collect();
    assert_eq!(uids, vec!["before", "after"]);
}

#[tokio::test]
async fn rotates_by_size_and_keeps_the_configured_number_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let log = DecisionLog::open(
        &path,
        Rotation {
            max_bytes: 2_000,
            keep: 2,
        },
        Arc::new(Metrics::new()),
    )
    .unwrap();
    for i in 0..40 {
        log.append(&mk_record(&i.to_string())).await.unwrap();
    }
    let rotated_1 = dir.path().join("decisions.log.1");
    let rotated_2 = dir.path().join("decisions.log.2");
    assert!(rotated_1.exists() && rotated_2.exists());
    assert!(!dir.path().join("decisions.log.3").exists());
    for p in [&path, &rotated_1, &rotated_2] {
        let (_, torn) = read_log(p).unwrap();
        assert_eq!(torn, 0, "{}", p.display());
    }
    let (last, _) = read_log(&path).unwrap();
    let (older, _) = read_log(&rotated_1).unwrap();
    assert!(
        last.iter()
            .all(|r| r.uid.parse::<u32>().unwrap()
                > older.last().unwrap().uid.parse::<u32>().unwrap())
    );
}

#[test]
fn never_writes_a_full_credential_id() {
    let line = serde_json::to_string(&mk_record("x")).unwrap();
    for field in ["credentialId", "token"] {
        assert!(!line.contains(field), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_every_append_when_the_device_is_full_and_counts_them() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let metrics = Arc::new(Metrics::new());
    let log = DecisionLog::open(
        std::path::Path::new("/dev/full"),
        big_rotation(),
        metrics.clone(),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..25 {
                errors.push(log.append(&mk_record(&format!("{t}-{i}"))).await);
            }
            errors
        }));
    }
    let mut failed = 0;
    for t in tasks {
        for outcome in t.await.unwrap() {
            let e = outcome.expect_err("a write to a full device must fail");
            assert!(e.contains("/dev/full"), "{e}");
            failed += 1;
        }
    }
    assert_eq!(failed, 100);
    let errors: u64 = metrics
        .encode()
        .lines()
        .find(|l| l.starts_with("fidomesh_decision_log_errors_total"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(errors, 100);
}
