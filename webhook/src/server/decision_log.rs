//! The decision log: one JSON line per decision, durable before the decision is answered.
//!
//! Writers hand their line to one writer thread and wait; the thread takes every line waiting,
//! writes them, calls `fdatasync` once for the whole group, then answers every writer (group
//! commit: under load one sync serves many decisions). A write or sync failure answers every
//! writer of the group with the error, and the request fails closed. The file rotates by size.
//!
//! A crash can leave a torn last line. On open, a file that does not end in a newline gets one,
//! so the torn fragment stays a line of its own, which [`read_log`] skips and counts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;

/// One decision, as logged. Never holds a token or a full credential ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Handle to the decision log writer.
#[derive(Clone)]
pub struct DecisionLog {
    tx: mpsc::Sender<(Vec<u8>, Reply)>,
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

impl DecisionLog {
    /// Opens (creating) the log and starts its writer thread.
    pub fn open(path: &Path, rotation: Rotation, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let (tx, rx) = mpsc::channel::<(Vec<u8>, Reply)>();
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer(owned, file, rx, rotation, metrics))?;
        Ok(Self {
            tx,
            path: path.to_path_buf(),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record and waits until it is durable.
    pub async fn append(&self, record: &Record) -> Result<(), String> {
        let mut line = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send((line, reply))
            .map_err(|_| "decision log writer stopped".to_string())?;
        wait.await
            .map_err(|_| "decision log writer stopped".to_string())?
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

fn writer(
    path: PathBuf,
    mut file: File,
    rx: mpsc::Receiver<(Vec<u8>, Reply)>,
    rotation: Rotation,
    metrics: Arc<Metrics>,
) {
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut group: Vec<(Vec<u8>, Reply)> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        // Everything already waiting joins this group (bounded, so latency stays bounded).
        while group.len() < 4096 {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut buf = Vec::with_capacity(group.iter().map(|(l, _)| l.len()).sum());
        for (line, _) in &group {
            buf.extend_from_slice(line);
        }
        let started = Instant::now();
        let result = file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("decision log {}: {e}", path.display()));
        metrics
            .log_fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            size += buf.len() as u64;
        } else {
            metrics.log_errors.inc_by(group.len() as u64);
        }
        // Rotate before answering, so that a writer that got its answer sees a settled file set.
        if size >= rotation.max_bytes {
            match rotate(&path, rotation.keep).and_then(|()| open_append(&path)) {
                Ok(f) => {
                    file = f;
                    size = 0;
                }
                Err(e) => tracing::error!(error = %e, "decision log rotation failed"),
            }
        }
        for (_, reply) in group.drain(..) {
            let _ = reply.send(result.clone());
        }
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
