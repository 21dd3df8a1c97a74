//! The decision log: one JSON line per decision, durable before the decision is answered.
//!
//! Writers add their line to a shared buffer and wait; one writer thread takes every line waiting,
//! writes them, calls `fdatasync` once for the whole group, then tells every writer of the group
//! at once (group commit: under load one sync serves many decisions). A write or sync failure
//! answers every writer of the group with the error, and the request fails closed. The file
//! rotates by size.
//!
//! A crash can leave a torn last line. On open, a file that does not end in a newline gets one,
//! so the torn fragment stays a line of its own, which [`read_log`] skips and counts.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;

/// One decision, as logged. Never holds a token or a full credential ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Decision ID (UUID v7).
    pub decision_id: String,
    /// RFC 3339 time of the decision.
    pub time: String,
    /// `validate`, `mutate` or `dry-run`.
    pub endpoint: String,
    /// The request uid.
    pub uid: String,
    /// CREATE, UPDATE, DELETE, CONNECT.
    pub operation: String,
    /// `group/version/resource`.
    pub resource: String,
    /// The object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The requester.
    pub username: String,
    /// The requester's authenticator fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<String>,
    /// Whether the requester was hardware-backed.
    pub hardware_backed: bool,
    /// The answer.
    pub allowed: bool,
    /// Deny codes.
    pub deny: Vec<String>,
    /// Warn codes.
    pub warn: Vec<String>,
    /// Whether the verdict came from the cache.
    pub cache_hit: bool,
    /// Policy bundle digest.
    pub bundle: String,
    /// Data generation.
    pub generation: u64,
    /// Whether the request was a dry run.
    pub dry_run: bool,
    /// Microseconds from receipt to decision (before the log write).
    pub latency_us: u64,
    /// Number of patch operations (mutate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_ops: Option<usize>,
}

/// Handle to the decision log writer. Clones share one writer; it stops when the last clone is
/// dropped, after making every line it was given durable.
#[derive(Clone)]
pub struct DecisionLog {
    handle: Arc<Handle>,
    path: PathBuf,
}

/// Rotation policy.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// Rotate when the file reaches this many bytes.
    pub max_bytes: u64,
    /// Keep this many rotated files (`FILE.1` … `FILE.N`).
    pub keep: usize,
}

// Lines wait in one shared buffer, numbered in order; the writer swaps the buffer out, writes and
// syncs it, and publishes "durable up to N". A writer of line n waits until N >= n. Compared with
// a channel of lines and a reply per line, nothing is allocated or freed per decision, and one
// publication wakes every waiter of a group.
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: tokio::sync::watch::Sender<Progress>,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// Number of the last line appended (lines are numbered from 1).
    last: u64,
    /// The writer is waiting for lines.
    idle: bool,
    /// No more lines will come: drain and stop.
    closed: bool,
    /// The writer has stopped: refuse new lines.
    stopped: bool,
}

/// What the writer has made durable, and which lines failed.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every line up to this number has been written and synced, or has failed.
    done: u64,
    /// Lines that failed, as inclusive ranges with the error (recent ones; adjacent ranges merge).
    failed: Arc<VecDeque<(u64, u64, String)>>,
    /// Lines up to this number may have failed and been forgotten (only after many failures).
    forgotten: u64,
    /// The writer has stopped: lines after `done` will never be written.
    stopped: bool,
}

/// Failed ranges remembered for late waiters.
const FAILURES_KEPT: usize = 256;

impl Progress {
    fn outcome(&self, line: u64) -> Result<(), String> {
        if line > self.done {
            return Err("decision log writer stopped".into());
        }
        if let Some((_, _, e)) = self
            .failed
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&line))
        {
            return Err(e.clone());
        }
        if line <= self.forgotten {
            // Its outcome is no longer known: fail closed.
            return Err(
                "decision log: outcome of the write unknown after repeated failures".into(),
            );
        }
        Ok(())
    }
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.closed = true;
        }
        self.shared.wake.notify_one();
    }
}

thread_local! {
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl DecisionLog {
    /// Opens (creating) the log and starts its writer thread.
    pub fn open(path: &Path, rotation: Rotation, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            durable: tokio::sync::watch::Sender::new(Progress::default()),
        });
        let owned = path.to_path_buf();
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer(owned, file, &for_writer, rotation, &metrics))?;
        Ok(Self {
            handle: Arc::new(Handle { shared }),
            path: path.to_path_buf(),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record and waits until it is durable.
    pub async fn append(&self, record: &Record) -> Result<(), String> {
        let shared = &self.handle.shared;
        let line = LINE.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            serde_json::to_writer(&mut *buf, record).map_err(|e| e.to_string())?;
            buf.push(b'\n');
            let mut p = shared
                .pending
                .lock()
                .map_err(|_| "decision log writer failed".to_string())?;
            if p.stopped {
                return Err("decision log writer stopped".to_string());
            }
            p.lines.extend_from_slice(&buf);
            p.last += 1;
            if p.idle {
                shared.wake.notify_one();
            }
            let line = p.last;
            drop(p);
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
            Ok::<u64, String>(line)
        })?;
        let mut durable = shared.durable.subscribe();
        let progress = durable
            .wait_for(|p| p.done >= line || p.stopped)
            .await
            .map_err(|_| "decision log writer stopped".to_string())?;
        progress.outcome(line)
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    if !existed {
        sync_dir(path)?;
    }
    let len = file.metadata()?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last != *b"\n" {
            // A torn line from a crash: end it so the next record starts clean.
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
    }
    Ok(file)
}

// Publishes the writer's end however it ends (drained, a poisoned lock, a panic): waiters fail
// closed with "writer stopped" instead of waiting for ever, and no new line is accepted.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.0.pending.lock() {
            p.stopped = true;
            p.lines = Vec::new();
        }
        self.0.durable.send_modify(|p| p.stopped = true);
    }
}

fn writer(path: PathBuf, file: File, shared: &Shared, rotation: Rotation, metrics: &Metrics) {
    let _stopped = Stopped(shared);
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    // `None` after a rotation whose reopen failed: never write on through the renamed file.
    let mut file = Some(file);
    let mut group: Vec<u8> = Vec::new();
    let mut done = 0u64;
    // A failed write may have left part of a line that could not be cut off: end it first.
    let mut torn = false;
    loop {
        let last = {
            let Ok(mut p) = shared.pending.lock() else {
                return;
            };
            while p.lines.is_empty() && !p.closed {
                p.idle = true;
                p = match shared.wake.wait(p) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
            p.idle = false;
            if p.lines.is_empty() {
                return; // closed and drained
            }
            // Everything waiting joins this group: under load one sync serves many decisions.
            std::mem::swap(&mut p.lines, &mut group);
            p.last
        };
        let started = Instant::now();
        if file.is_none() {
            file = open_append(&path).ok();
        }
        let result = match file.as_mut() {
            None => Err(std::io::Error::other("cannot reopen after rotation")),
            Some(f) => {
                let prefix: &[u8] = if torn { b"\n" } else { b"" };
                f.write_all(prefix)
                    .and_then(|()| f.write_all(&group))
                    .and_then(|()| f.sync_data())
                    .map(|()| prefix.len())
            }
        };
        metrics
            .log_fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        let lines = last - done;
        let result = match result {
            Ok(prefix) => {
                size += (prefix + group.len()) as u64;
                torn = false;
                Ok(())
            }
            Err(e) => {
                metrics.log_errors.inc_by(lines);
                // Cut off whatever part of the group reached the file: a line answered as
                // denied must not read back as a decision, and the next group must not be glued
                // to a fragment. If even that fails, the next group starts on a new line.
                if let Some(f) = file.as_mut() {
                    torn = f.set_len(size).and_then(|()| f.sync_data()).is_err();
                }
                Err(format!("decision log {}: {e}", path.display()))
            }
        };
        group.clear();
        if group.capacity() > 4 << 20 {
            // Do not keep a burst's buffer for ever.
            group = Vec::new();
        }
        // Rotate before answering, so that a writer that got its answer sees a settled file set.
        if size >= rotation.max_bytes && file.is_some() {
            match rotate(&path, rotation.keep) {
                Ok(()) => {
                    size = 0;
                    torn = false;
                    file = open_append(&path)
                        .map_err(|e| tracing::error!(error = %e, "decision log reopen failed"))
                        .ok();
                }
                Err(e) => tracing::error!(error = %e, "decision log rotation failed"),
            }
        }
        let first = done + 1;
        done = last;
        shared.durable.send_modify(|p| {
            p.done = last;
            if let Err(e) = result {
                let failed = Arc::make_mut(&mut p.failed);
                match failed.back_mut() {
                    Some((_, end, err)) if *end + 1 == first && *err == e => *end = last,
                    _ => failed.push_back((first, last, e)),
                }
                while failed.len() > FAILURES_KEPT {
                    if let Some((_, end, _)) = failed.pop_front() {
                        p.forgotten = end;
                    }
                }
            }
        });
    }
}

// A new or renamed file is durable only once its directory entry is.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

fn rotate(path: &Path, keep: usize) -> std::io::Result<()> {
    let numbered = |n: usize| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    if keep > 0 {
        std::fs::rename(path, numbered(1))?;
    } else {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// Reads a decision log: the records, and the number of lines skipped as unreadable (a torn
/// line left by a crash).
pub fn read_log(path: &Path) -> std::io::Result<(Vec<Record>, usize)> {
    let text = std::fs::read(path)?;
    let mut records = Vec::new();
    let mut skipped = 0;
    for line in text.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_record() -> Record {
        Record {
            uid: "u".into(),
            ..Record::default()
        }
    }

    fn mk_shared() -> Arc<Shared> {
        Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            durable: tokio::sync::watch::Sender::new(Progress::default()),
        })
    }

    #[test]
    fn answers_each_line_by_the_range_it_fell_in() {
        let mut failed = VecDeque::new();
        failed.push_back((3, 5, "disk full".to_string()));
        let p = Progress {
            done: 8,
            failed: Arc::new(failed),
            forgotten: 0,
            stopped: false,
        };
        assert_eq!(p.outcome(2), Ok(()));
        assert_eq!(p.outcome(3), Err("disk full".into()));
        assert_eq!(p.outcome(5), Err("disk full".into()));
        assert_eq!(p.outcome(6), Ok(()));
        // Not yet written, or never to be: never an "ok".
        assert!(p.outcome(9).is_err());
        // Forgotten ranges fail closed.
        let forgotten = Progress { forgotten: 7, ..p };
        assert!(forgotten.outcome(6).is_err());
        assert_eq!(forgotten.outcome(8), Ok(()));
    }

    #[tokio::test]
    async fn rejects_waiters_and_new_lines_once_the_writer_has_stopped() {
        // No writer thread: the line can only be answered by the writer's end.
        let shared = mk_shared();
        let log = DecisionLog {
            handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
            path: PathBuf::from("unused"),
        };
        let waiting = {
            let log = log.clone();
            tokio::spawn(async move { log.append(&mk_record()).await })
        };
        // Let the append add its line and start waiting.
        while shared.pending.lock().unwrap().last == 0 {
            tokio::task::yield_now().await;
        }
        drop(Stopped(&shared));
        let answer = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a waiter must not wait for a stopped writer")
            .unwrap();
        assert_eq!(answer, Err("decision log writer stopped".to_string()));
        assert_eq!(
            log.append(&mk_record()).await,
            Err("decision log writer stopped".to_string())
        );
    }
}
