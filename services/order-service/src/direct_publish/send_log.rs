//! The append-only send log: one JSON line per step of a send, never rewritten.
//!
//! ```text
//! {"event_id":"…","at":"…","status":"pending","topic":"order-events","key":"…","event_type":"OrderCreated","headers":{…},"payload":{…}}
//! {"event_id":"…","at":"…","status":"acked","partition":3,"offset":17}
//! {"event_id":"…","at":"…","status":"failed","error":"Message timed out"}
//! ```
//!
//! The `pending` line carries the whole event, so the re-push job can send it again
//! from the log alone. An event's state is its **last** line: `acked` means done,
//! anything else means "send it again". Each line is flushed to disk (`fsync`) before the
//! append returns, so a `pending` line that was written survives a crash of the process
//! or of the machine.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
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

/// The send log file, opened for appending. Appends are serialised by a lock, so lines
/// from concurrent requests never interleave.
#[derive(Debug)]
pub struct SendLog {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

impl SendLog {
    /// Opens (creating it and its directory if needed) the log at `path`.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, SendLogError> {
        let path = path.into();
        let error = |source| SendLogError {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(error)?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(error)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
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
        let mut file = self.file.lock().await;
        file.write_all(&bytes).await.map_err(|e| self.error(e))?;
        // Durable before we go on: a `pending` line that is only in the page cache would
        // die with the machine, and with it the only copy of the event's payload.
        file.sync_data().await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Every line, oldest first. A torn last line (a crash in the middle of a write) is
    /// skipped with a warning: its event's earlier lines still tell its state.
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

    fn error(&self, source: std::io::Error) -> SendLogError {
        SendLogError {
            path: self.path.clone(),
            source,
        }
    }
}

/// Reads the log at `path` (an absent file is an empty log).
pub async fn read_lines(path: &Path) -> Result<Vec<SendLogLine>, SendLogError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SendLogError {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(line) => Some(line),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping an unreadable send-log line");
                None
            }
        })
        .collect())
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
