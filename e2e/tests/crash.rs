//! Decision log durability: a decision is never answered before its record is durable, and a
//! crash (SIGKILL) leaves a log that a restarted server appends to cleanly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Load, Opts, Server, read_log, review, uid, with_uid};

/// Validate (allowed and denied) and mutate, in turn; every one of them writes a record.
fn recorded_mix() -> common::MakeBody {
    let allowed = review("allowed-binding");
    let denied = review("denied-binding");
    let mutated = review("mutated-authenticator");
    Arc::new(move |n, id| match n % 3 {
        0 => ("validate", with_uid(allowed.clone(), id)),
        1 => ("validate", with_uid(denied.clone(), id)),
        _ => ("mutate", with_uid(mutated.clone(), id)),
    })
}

/// A server logging to `log`, and two clients sending it the recorded mix without pause (until
/// stopped, 100,000 requests or `deadline`).
async fn mk_loaded_server(log: &Path, deadline: Duration) -> (Server, Load) {
    let server = Server::start(Opts {
        decision_log: Some(log.to_path_buf()),
        ..Opts::default()
    })
    .await;
    let load = Load::spawn(
        &server.url(""),
        vec![server.client(), server.client()],
        recorded_mix(),
        100_000,
        deadline,
    );
    (server, load)
}

async fn send_recorded(server: &Server, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uid(prefix);
        let body = with_uid(review(["allowed-binding", "denied-binding"][i % 2]), &id);
        let r = server.validate(&body).await;
        assert_eq!(r["uid"], id.as_str());
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn accepts_sigkill_with_every_answered_decision_durable() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("decisions.log");
    // The server is killed after ~1 s (or 1500 answers) while requests are in flight.
    let (mut server, load) = mk_loaded_server(&log, Duration::from_secs(30)).await;
    let answered = load.answered.clone();
    load.wait_answered(1, "the first answer").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) && load.answered_count() < 1500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let stats = load.finish().await;
    let answered: Vec<String> = answered.lock().unwrap().clone();
    assert!(!answered.is_empty());

    let read = read_log(&log);
    assert!(
        read.torn.len() <= 1,
        "more than one unreadable line: {:?}",
        read.torn
    );
    if let Some((index, _)) = read.torn.first() {
        assert_eq!(*index, read.lines - 1, "a torn line that is not the last");
    }
    let logged: HashSet<&str> = read
        .records
        .iter()
        .filter_map(|r| r["uid"].as_str())
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|u| !logged.contains(u.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered decisions have no record after SIGKILL: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(10)]
    );
    for id in &answered {
        assert_eq!(read.by_uid(id).len(), 1, "records of {id}");
    }
    eprintln!(
        "SIGKILL: {} answered, {} records, {} torn, {} requests failed at the kill",
        answered.len(),
        read.records.len(),
        read.torn.len(),
        stats.failures.len()
    );

    // A new server on the same log appends cleanly.
    let server = Server::start(Opts {
        decision_log: Some(log.clone()),
        ..Opts::default()
    })
    .await;
    let new_ids = send_recorded(&server, 20, "after-restart").await;
    let after = read_log(&log);
    assert_eq!(after.records.len(), read.records.len() + 20);
    assert_eq!(
        after.torn.iter().map(|(_, t)| t).collect::<Vec<_>>(),
        read.torn.iter().map(|(_, t)| t).collect::<Vec<_>>(),
        "the torn fragment, if any, stays skipped and nothing else is torn"
    );
    assert_eq!(&after.records[..read.records.len()], &read.records[..]);
    for id in &new_ids {
        assert_eq!(after.by_uid(id).len(), 1, "records of {id}");
    }
    assert!(after.ends_with_newline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_sigterm_under_load_logging_every_answer_and_exiting_cleanly() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("decisions.log");
    let (mut server, load) = mk_loaded_server(&log, Duration::from_secs(60)).await;
    let answered = load.answered.clone();
    load.wait_answered(300, "300 answers").await;
    let stopping = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(40)));
    let took = stopping.elapsed();
    let stats = load.finish().await;
    let status = status.expect("the server did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let answered: Vec<String> = answered.lock().unwrap().clone();
    let read = read_log(&log);
    // A stop is not a crash: nothing is torn, and every answer has its one record.
    assert!(read.torn.is_empty(), "torn lines: {:?}", read.torn);
    assert!(read.ends_with_newline);
    for id in &answered {
        assert_eq!(read.by_uid(id).len(), 1, "records of {id}");
    }
    eprintln!(
        "SIGTERM: exited in {took:?}; {} answered, {} records, {} requests refused while stopping",
        answered.len(),
        read.records.len(),
        stats.failures.len()
    );
}

#[tokio::test]
async fn accepts_restart_after_a_torn_last_line_and_appends_cleanly() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("decisions.log");
    let mut server = Server::start(Opts {
        decision_log: Some(log.clone()),
        ..Opts::default()
    })
    .await;
    let first = send_recorded(&server, 3, "before-crash").await;
    server.kill();

    // The write of a fourth record stopped half-way: no newline at the end.
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap().to_string();
    let fragment = &last[..last.len() / 2];
    std::fs::write(&log, format!("{text}{fragment}")).unwrap();
    let before = read_log(&log);
    assert_eq!(before.records.len(), 3);
    assert_eq!(before.torn.len(), 1);
    assert!(!before.ends_with_newline);

    let server = Server::start(Opts {
        decision_log: Some(log.clone()),
        ..Opts::default()
    })
    .await;
    let second = send_recorded(&server, 3, "after-crash").await;
    let after = read_log(&log);
    assert_eq!(after.records.len(), 6, "torn: {:?}", after.torn);
    assert_eq!(after.torn.len(), 1);
    // The fragment stays a line of its own; the next record is not glued to it.
    assert_eq!(after.torn[0], (3, fragment.to_string()));
    assert!(after.ends_with_newline);
    for id in first.iter().chain(&second) {
        assert_eq!(after.by_uid(id).len(), 1, "records of {id}");
    }
}

#[tokio::test]
async fn accepts_log_rotation_by_size_without_losing_records() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("decisions.log");
    let max = 4096u64;
    let server = Server::start(Opts {
        decision_log: Some(log.clone()),
        extra: vec![
            "--decision-log-max-bytes".into(),
            max.to_string(),
            "--decision-log-keep".into(),
            "3".into(),
        ],
        ..Opts::default()
    })
    .await;
    let rotated = |n: usize| {
        let mut p = log.clone().into_os_string();
        p.push(format!(".{n}"));
        std::path::PathBuf::from(p)
    };
    let all_records = || {
        let mut files = vec![log.clone()];
        files.extend((1..=3).map(rotated).filter(|p| p.exists()));
        let mut records = Vec::new();
        for f in &files {
            let read = read_log(f);
            assert!(read.torn.is_empty(), "{}: {:?}", f.display(), read.torn);
            assert!(read.ends_with_newline, "{}", f.display());
            records.extend(read.records);
        }
        records
    };

    // About 8 records a file: 20 fit in the current file and 3 rotated ones.
    let ids = send_recorded(&server, 20, "rotation").await;
    assert!(rotated(1).exists(), "no rotation at {max} bytes");
    let records = all_records();
    for id in &ids {
        let n = records.iter().filter(|r| r["uid"] == id.as_str()).count();
        assert_eq!(n, 1, "records of {id} across the rotated files");
    }
    for n in 1..=3 {
        if let Ok(meta) = std::fs::metadata(rotated(n)) {
            assert!(meta.len() >= max, "{} rotated early", rotated(n).display());
            assert!(
                meta.len() < 2 * max,
                "{} rotated late",
                rotated(n).display()
            );
        }
    }

    // Many more: at most `keep` rotated files, and the newest records are all kept.
    let ids = send_recorded(&server, 60, "rotation-more").await;
    assert!(
        !rotated(4).exists(),
        "more rotated files than --decision-log-keep"
    );
    let records = all_records();
    for id in &ids[ids.len() - 20..] {
        let n = records.iter().filter(|r| r["uid"] == id.as_str()).count();
        assert_eq!(n, 1, "records of {id} across the rotated files");
    }
}
