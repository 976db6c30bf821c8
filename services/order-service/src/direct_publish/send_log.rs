//! The append-only send log: one JSON line per step of a send.
//!
//! ```text
//! {"event_id":"…","at":"…","status":"pending","topic":"order-events","key":"…","event_type":"OrderCreated","headers":{…},"payload":{…}}
//! {"event_id":"…","at":"…","status":"acked","partition":3,"offset":17}
//! {"event_id":"…","at":"…","status":"failed","error":"Message timed out"}
//! ```
//!
//! The `pending` line carries the whole event, so the re-push job can send it again
//! from the log alone. An event's state is its **last** line: `acked` means done,
//! anything else means "send it again".
//!
//! Four ways a log like this loses an event without a crash, and what closes each
//! (docs/en/02-produce.md, "The log-based alternative"):
//!
//! - **a hidden write error.** `write_all` then `sync_data` on a `tokio::fs::File`
//!   returns `Ok` after a failed write: the write runs in the background and its error
//!   is parked until the next write. Here the write and the `fsync` are one blocking
//!   call ([`LogFile::append_durably`]), so a full disk reaches the request as an error.
//!   A failed write may leave part of its line behind: the next append starts on a new
//!   line, so the fragment stays one unreadable line instead of eating the next.
//! - **a torn line.** A crash mid-write leaves a tail without `\n`, maybe cut inside a
//!   UTF-8 character. The log is read as bytes and split on `\n`; the torn tail is
//!   dropped, and cut off the file at open, so the next append does not glue onto it.
//! - **an unbounded file.** Settled events are dropped by [`SendLog::compact`] (a new
//!   file holding only the unsettled events, renamed over the old one), and the re-push
//!   job writes no line while its sends keep failing (`repush.rs`).
//! - **a client that hangs up** is closed in the handler (`api/create_order.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("send log {path}: {source}")]
pub struct SendLogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Everything needed to send the event (again): what the `pending` line stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub topic: String,
    /// The Kafka message key (the order id): one key, one partition, in order.
    pub key: String,
    pub event_type: String,
    /// Extra Kafka headers; `event-id` and `event-type` are added on every send.
    pub headers: BTreeMap<String, String>,
    pub payload: Value,
    /// The W3C trace context of the request that accepted the order, so a re-push
    /// (another task, maybe another process) continues that request's trace. Absent
    /// in lines written without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// What one line says about one send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum SendStatus {
    /// About to send; written before the send, with the event.
    Pending(LoggedEvent),
    /// The broker acknowledged (acks=all): the event is in the log of `partition`.
    Acked { partition: i32, offset: i64 },
    /// The send failed (queue full, no ack in time, ...): the re-push job retries it.
    Failed { error: String },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendLogLine {
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub status: SendStatus,
}

/// An event whose last line is not `acked`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsettled {
    pub event_id: Uuid,
    pub event: LoggedEvent,
    /// The last line's status, `pending` or `failed`.
    pub last: &'static str,
    pub last_at: DateTime<Utc>,
}

/// Where the lines go. The real one is the file; a test puts a failing one in its
/// place (a full disk) to see the error reach the request.
pub trait LogFile: Send + 'static {
    /// Writes all of `bytes` at the end and returns once they are on disk: the write
    /// and the `fsync` in one call, so an error of either is this call's error.
    fn append_durably(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

impl LogFile for std::fs::File {
    fn append_durably(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)?;
        // Durable before we go on: a `pending` line that is only in the page cache would
        // die with the machine, and with it the only copy of the event's payload.
        self.sync_data()
    }
}

/// The open file and whether its last append failed half-way.
struct Appender {
    file: Option<Box<dyn LogFile>>,
    /// The last append failed: part of its line may be in the file, without `\n`.
    torn: bool,
}

/// What [`SendLog::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Lines kept: the `pending` line and the last line of each unsettled event.
    pub kept_lines: usize,
    /// Lines dropped: every line of a settled (`acked`) event, and superseded lines.
    pub dropped_lines: usize,
}

/// The send log file, opened for appending. Appends are serialised by a lock, so lines
/// from concurrent requests never interleave.
pub struct SendLog {
    path: PathBuf,
    appender: Mutex<Appender>,
}

impl std::fmt::Debug for SendLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A guard that holds every append of a [`SendLog`] until it is dropped.
pub struct PausedAppends<'a>(#[allow(dead_code)] MutexGuard<'a, Appender>);

impl std::fmt::Debug for PausedAppends<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PausedAppends")
    }
}

impl SendLog {
    /// Opens (creating it and its directory if needed) the log at `path`, cutting off a
    /// torn tail first.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, SendLogError> {
        let path = path.into();
        let file = open_for_append(&path).await?;
        Ok(Self::with_file(path, file))
    }

    /// A log at `path` whose appends go to `file` (tests inject a failing one).
    pub fn with_file(path: impl Into<PathBuf>, file: impl LogFile) -> Self {
        Self {
            path: path.into(),
            appender: Mutex::new(Appender {
                file: Some(Box::new(file)),
                torn: false,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line for `event_id` and waits until it is on disk.
    pub async fn append(&self, event_id: Uuid, status: SendStatus) -> Result<(), SendLogError> {
        let line = SendLogLine {
            event_id,
            at: Utc::now(),
            status,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| self.error(e.into()))?;
        bytes.push(b'\n');
        let mut appender = self.appender.lock().await;
        if appender.torn {
            // After a failed append part of its line may be in the file: start afresh,
            // so the fragment is one unreadable line and this one stays whole.
            bytes.insert(0, b'\n');
        }
        let mut file = appender
            .file
            .take()
            .ok_or_else(|| self.error(std::io::Error::other("the log file was lost")))?;
        // One blocking call for write and fsync: see the module doc ("hidden write error").
        let (file, written) = tokio::task::spawn_blocking(move || {
            let written = file.append_durably(&bytes);
            (file, written)
        })
        .await
        .map_err(|e| self.error(std::io::Error::other(e)))?;
        appender.file = Some(file);
        appender.torn = written.is_err();
        written.map_err(|e| self.error(e))
    }

    /// Holds every append until the guard is dropped. For tests and drills: a request
    /// that waits here is the one a hanging-up client could cancel.
    pub async fn pause_appends(&self) -> PausedAppends<'_> {
        PausedAppends(self.appender.lock().await)
    }

    /// Every line, oldest first. A torn last line (a crash in the middle of a write) is
    /// skipped: its event's earlier lines still tell its state.
    pub async fn read_all(&self) -> Result<Vec<SendLogLine>, SendLogError> {
        read_lines(&self.path).await
    }

    /// The events to send again, in the order they were first logged: every event whose
    /// last line is `failed`, and every one whose last line is a `pending` older than
    /// `in_flight_grace` (younger ones may still be waiting for their ack in a request).
    pub async fn unsettled(
        &self,
        in_flight_grace: Duration,
    ) -> Result<Vec<Unsettled>, SendLogError> {
        Ok(unsettled(
            self.read_all().await?,
            in_flight_grace,
            Utc::now(),
        ))
    }

    /// Rewrites the log with the unsettled events only (each one's `pending` line and its
    /// last line), so it stays as small as what is still to send. The new file is
    /// written and synced beside the old one, then renamed over it: a crash leaves
    /// one or the other, whole. Appends wait meanwhile.
    pub async fn compact(&self) -> Result<Compaction, SendLogError> {
        let mut appender = self.appender.lock().await;
        let lines = self.read_all().await?;
        let (kept, report) = compacted(lines);
        let mut bytes = Vec::new();
        for line in &kept {
            serde_json::to_writer(&mut bytes, line).map_err(|e| self.error(e.into()))?;
            bytes.push(b'\n');
        }
        let path = self.path.clone();
        let replaced = tokio::task::spawn_blocking(move || replace_file(&path, &bytes))
            .await
            .map_err(|e| self.error(std::io::Error::other(e)))?;
        replaced.map_err(|e| self.error(e))?;
        appender.file = Some(Box::new(open_for_append(&self.path).await?));
        appender.torn = false;
        Ok(report)
    }

    fn error(&self, source: std::io::Error) -> SendLogError {
        SendLogError {
            path: self.path.clone(),
            source,
        }
    }
}

/// Opens `path` for appending (creating it and its directory), after cutting off a torn
/// tail: bytes after the last `\n` are a line a crash interrupted, and a new line
/// appended to them would be unreadable too.
async fn open_for_append(path: &Path) -> Result<std::fs::File, SendLogError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        if let Some(dir) = owned.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&owned)?;
        let bytes = std::fs::read(&owned)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            tracing::warn!(path = %owned.display(), torn_bytes = bytes.len() - whole,
                "cutting off a torn last line of the send log");
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|opened| opened)
    .map_err(|source| SendLogError {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `<path>.compact`, syncs it, renames it over `path`, syncs the
/// directory (so the rename itself survives a power cut).
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact");
    let temp = PathBuf::from(name);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the log at `path` (an absent file is an empty log). Bytes, split on `\n`: a
/// line cut inside a UTF-8 character is one unreadable line, not an unreadable log.
pub async fn read_lines(path: &Path) -> Result<Vec<SendLogLine>, SendLogError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SendLogError {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // What follows the last `\n` is a line still being written, or torn by a crash.
    pieces.pop();
    Ok(pieces
        .into_iter()
        .filter(|l| !l.trim_ascii().is_empty())
        .filter_map(|l| match serde_json::from_slice(l) {
            Ok(line) => Some(line),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping an unreadable send-log line");
                None
            }
        })
        .collect())
}

/// The lines a compaction keeps: for each event whose last line is not `acked`, its
/// `pending` line (the event itself) and, when it is another, its last line.
fn compacted(lines: Vec<SendLogLine>) -> (Vec<SendLogLine>, Compaction) {
    let total = lines.len();
    let mut last: HashMap<Uuid, usize> = HashMap::new();
    let mut pending: HashMap<Uuid, usize> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        last.insert(line.event_id, i);
        if matches!(line.status, SendStatus::Pending(_)) {
            pending.entry(line.event_id).or_insert(i);
        }
    }
    let keep: HashSet<usize> = last
        .iter()
        .filter(|(_, i)| !matches!(lines[**i].status, SendStatus::Acked { .. }))
        .flat_map(|(id, i)| [Some(*i), pending.get(id).copied()])
        .flatten()
        .collect();
    let kept: Vec<SendLogLine> = lines
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, line)| line)
        .collect();
    let report = Compaction {
        kept_lines: kept.len(),
        dropped_lines: total - kept.len(),
    };
    (kept, report)
}

/// How many events of `lines` are settled (their last line is `acked`).
pub(super) fn settled_count(lines: &[SendLogLine]) -> usize {
    let mut last: HashMap<Uuid, bool> = HashMap::new();
    for line in lines {
        last.insert(
            line.event_id,
            matches!(line.status, SendStatus::Acked { .. }),
        );
    }
    last.values().filter(|acked| **acked).count()
}

/// [`unsettled`] as of now.
pub(super) fn unsettled_at(lines: Vec<SendLogLine>, in_flight_grace: Duration) -> Vec<Unsettled> {
    unsettled(lines, in_flight_grace, Utc::now())
}

fn unsettled(
    lines: Vec<SendLogLine>,
    in_flight_grace: Duration,
    now: DateTime<Utc>,
) -> Vec<Unsettled> {
    let mut order = Vec::new();
    let mut events: HashMap<Uuid, LoggedEvent> = HashMap::new();
    let mut last: HashMap<Uuid, (&'static str, DateTime<Utc>)> = HashMap::new();
    for line in lines {
        let status = match line.status {
            SendStatus::Pending(event) => {
                if events.insert(line.event_id, event).is_none() {
                    order.push(line.event_id);
                }
                "pending"
            }
            SendStatus::Acked { .. } => "acked",
            SendStatus::Failed { .. } => "failed",
        };
        last.insert(line.event_id, (status, line.at));
    }
    let grace = chrono::Duration::from_std(in_flight_grace).unwrap_or(chrono::Duration::MAX);
    order
        .into_iter()
        .filter_map(|id| {
            let (status, at) = *last.get(&id)?;
            let due = match status {
                "failed" => true,
                "pending" => now - at >= grace,
                _ => false,
            };
            if !due {
                return None;
            }
            Some(Unsettled {
                event_id: id,
                event: events.remove(&id)?,
                last: status,
                last_at: at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str) -> LoggedEvent {
        LoggedEvent {
            topic: "t".into(),
            key: key.into(),
            event_type: "OrderCreated".into(),
            headers: BTreeMap::from([("schema-version".into(), "1".into())]),
            payload: serde_json::json!({"order_id": key}),
            traceparent: None,
            tracestate: None,
        }
    }

    fn line(id: Uuid, seconds_ago: i64, status: SendStatus) -> SendLogLine {
        SendLogLine {
            event_id: id,
            at: Utc::now() - chrono::Duration::seconds(seconds_ago),
            status,
        }
    }

    #[test]
    fn a_line_is_flat_json_with_its_status() {
        let id = Uuid::now_v7();
        let pending = line(id, 0, SendStatus::Pending(event("k")));
        let text = serde_json::to_string(&pending).expect("json");
        assert!(text.contains(r#""status":"pending""#), "{text}");
        assert!(text.contains(r#""key":"k""#), "{text}");
        assert_eq!(
            serde_json::from_str::<SendLogLine>(&text).expect("back"),
            pending
        );
        let acked = line(
            id,
            0,
            SendStatus::Acked {
                partition: 2,
                offset: 41,
            },
        );
        let text = serde_json::to_string(&acked).expect("json");
        assert!(
            text.contains(r#""status":"acked","partition":2,"offset":41"#),
            "{text}"
        );
    }

    #[test]
    fn the_last_line_decides_and_young_pending_sends_are_left_alone() {
        let (acked, failed, stuck, young, failed_then_acked) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let ok = || SendStatus::Acked {
            partition: 0,
            offset: 1,
        };
        let fail = || SendStatus::Failed {
            error: "timed out".into(),
        };
        let lines = vec![
            line(acked, 60, SendStatus::Pending(event("a"))),
            line(failed, 60, SendStatus::Pending(event("f"))),
            line(stuck, 60, SendStatus::Pending(event("s"))),
            line(young, 1, SendStatus::Pending(event("y"))),
            line(failed_then_acked, 60, SendStatus::Pending(event("fa"))),
            line(acked, 59, ok()),
            line(failed, 55, fail()),
            line(failed_then_acked, 55, fail()),
            line(failed_then_acked, 50, ok()),
        ];
        let due = unsettled(lines, Duration::from_secs(30), Utc::now());
        let ids: Vec<(Uuid, &str)> = due.iter().map(|u| (u.event_id, u.last)).collect();
        assert_eq!(ids, [(failed, "failed"), (stuck, "pending")]);
        assert_eq!(due[0].event, event("f"));
    }
}
