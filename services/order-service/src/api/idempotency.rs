//! The `Idempotency-Key` of `POST /orders`: a retry with the same key gets the first
//! answer back instead of a second order (svix's Started/Finished records; zero2prod's
//! idempotency chapter).
//!
//! Unlike a middleware that saves the response after the handler has run, the key
//! record lives in the handler's own transaction, next to the order and its outbox row,
//! and is FINISHED with the answer there too. Key, order and event commit together or not
//! at all: a crash after the commit (crash point A1, docs/en/01-overview.md) leaves a
//! FINISHED record whose replay is the created order, and a rollback leaves no record
//! that could block the retry.
//!
//! Two requests with one key at once: the second **waits** for the first. Its `INSERT ...
//! ON CONFLICT DO NOTHING` blocks on the first transaction's uncommitted row with the same
//! primary key; when that commits, the insert finds the conflict and the second request
//! replays the committed answer (if the first rolls back instead, the insert goes through
//! and the second creates the order). We wait rather than answer `409` at once because
//! the first request is normally a few milliseconds from its commit: waiting gives a
//! double-submit or an impatient retry its answer in one round trip. The wait is bounded
//! by `lock_timeout` ([`IN_FLIGHT_WAIT`]); past it the request gets `409` with
//! `Retry-After: 1`, never a hung connection.

use std::fmt::Write as _;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lifecycle::Shutdown;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

/// The request header a client sets (the IETF draft's name, as Stripe and svix use it).
pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed answer, so a client (and a reader of logs) can tell it apart.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_LEN: usize = 255;

/// How long a request waits for another in-flight request with its key. Keep the two
/// in step: `SET` takes no bind parameters.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
const SET_IN_FLIGHT_WAIT: &str = "SET LOCAL lock_timeout = '5s'";
/// Postgres' SQLSTATE for `lock_timeout` expiring (lock_not_available).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The background purge runs every tenth of the retention, and at least this often.
/// Correctness never depends on it (an expired record is treated as absent anyway); it
/// only keeps the table small.
const MAX_PURGE_INTERVAL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("Idempotency-Key must be {0}")]
    InvalidKey(&'static str),
    #[error("Idempotency-Key {key:?} was first used with a different request")]
    KeyReused { key: String },
    #[error("a request with Idempotency-Key {key:?} is still in flight")]
    InFlight { key: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A well-formed key: 1 to 255 visible ASCII characters (a UUID is a good choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `Ok(None)` when the request has no key: it is then handled as it always was.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, IdempotencyError> {
        let mut values = headers.get_all(&HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(IdempotencyError::InvalidKey("sent once, not repeated"));
        }
        Self::parse(value.as_bytes()).map(Some)
    }

    pub fn parse(raw: &[u8]) -> Result<Self, IdempotencyError> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err(IdempotencyError::InvalidKey("1 to 255 characters long"));
        }
        // Visible ASCII only: no spaces or control characters that get trimmed or
        // mangled on the way, no non-ASCII bytes whose meaning depends on an encoding.
        if !raw.iter().all(u8::is_ascii_graphic) {
            return Err(IdempotencyError::InvalidKey(
                "visible ASCII characters only (no spaces)",
            ));
        }
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The request's fingerprint: SHA-256 (hex) of method, path and the body *bytes*. A
/// retry resends the same bytes; a body that differs in any byte (even only in
/// whitespace) is another request, and gets `422` rather than someone else's answer.
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// An answer as stored with its key: what the client got the first time, and gets again.
#[derive(Debug, Clone)]
pub struct SavedResponse {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: Value,
}

impl SavedResponse {
    /// The first answer. It is built from the same `body` value that was stored, so the
    /// replay cannot drift from it.
    pub fn first(self) -> Response {
        self.into_http(false)
    }

    /// The stored answer again, marked `Idempotent-Replayed: true`.
    pub fn replay(self) -> Response {
        self.into_http(true)
    }

    fn into_http(self, replayed: bool) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if replayed {
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// What `claim` found for the key.
#[derive(Debug)]
pub enum Claim {
    /// The key is ours now (a STARTED record in this transaction): do the work, then
    /// `finish` before committing.
    New,
    /// The key already has an answer for this very request: send it again.
    Replay(SavedResponse),
}

/// Takes `key` for this request inside the caller's transaction `conn`, or finds the
/// answer it already has. Waits (bounded) while another transaction holds the key.
pub async fn claim(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    request_hash: &str,
    retention: Duration,
) -> Result<Claim, IdempotencyError> {
    // Bounds every lock wait of this transaction; the one that can be long is the wait
    // on another request's uncommitted key below.
    sqlx::query(SET_IN_FLIGHT_WAIT).execute(&mut *conn).await?;

    // A record past the retention window counts as absent: remove it here, in this
    // transaction, rather than trust that the purge has run. Two requests racing for an
    // expired key serialize on this row; the loser deletes nothing and replays the winner.
    sqlx::query!(
        "DELETE FROM idempotency_keys
         WHERE key = $1 AND created_at < now() - make_interval(secs => $2)",
        key.as_str(),
        retention.as_secs_f64(),
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| waited_too_long(e, key))?;

    // The unique key is the lock: a concurrent insert of the same key blocks here until
    // the first transaction ends (see the module comment).
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (key, request_hash, state)
         VALUES ($1, $2, 'STARTED')
         ON CONFLICT (key) DO NOTHING",
        key.as_str(),
        request_hash,
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| waited_too_long(e, key))?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }

    // Someone else's record, committed (READ COMMITTED: this statement sees it).
    let Some(record) = sqlx::query!(
        r#"SELECT request_hash, state, response_status, response_body, response_location
           FROM idempotency_keys WHERE key = $1"#,
        key.as_str(),
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        // Purged between our insert and this read: a retry starts afresh.
        return Err(in_flight(key));
    };
    if record.request_hash != request_hash {
        return Err(IdempotencyError::KeyReused {
            key: key.as_str().to_owned(),
        });
    }
    match (
        record.state.as_str(),
        record.response_status,
        record.response_body,
    ) {
        ("FINISHED", Some(status), Some(body)) => Ok(Claim::Replay(SavedResponse {
            status: u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            location: record.response_location,
            body,
        })),
        // A committed STARTED record: not written by this handler, which finishes its
        // record before it commits. Treat it as work in progress.
        _ => Err(in_flight(key)),
    }
}

/// Stores the answer with the key, in the same transaction as the work it answers for.
pub async fn finish(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    response: &SavedResponse,
) -> Result<(), IdempotencyError> {
    sqlx::query!(
        "UPDATE idempotency_keys
         SET state = 'FINISHED', response_status = $2, response_body = $3,
             response_location = $4, finished_at = now()
         WHERE key = $1 AND state = 'STARTED'",
        key.as_str(),
        // A status code has three digits: it fits a smallint.
        response.status.as_u16() as i16,
        response.body,
        response.location,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One purge pass: deletes the records older than `retention`; returns how many.
pub async fn purge_expired_once(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        retention.as_secs_f64(),
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// The background purge: a pass every few minutes until shutdown.
pub async fn purge_expired(pool: PgPool, retention: Duration, shutdown: Shutdown) {
    let interval = lifecycle::purge_interval(retention, MAX_PURGE_INTERVAL);
    lifecycle::every(interval, &shutdown, || async {
        match purge_expired_once(&pool, retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(%error, "idempotency key purge failed"),
        }
    })
    .await;
}

fn in_flight(key: &IdempotencyKey) -> IdempotencyError {
    IdempotencyError::InFlight {
        key: key.as_str().to_owned(),
    }
}

/// `lock_timeout` fired: the other request with this key did not finish in time.
fn waited_too_long(error: sqlx::Error, key: &IdempotencyKey) -> IdempotencyError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
            in_flight(key)
        }
        _ => IdempotencyError::Database(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_from(values: &[&[u8]]) -> Result<Option<IdempotencyKey>, IdempotencyError> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(HEADER, HeaderValue::from_bytes(v).expect("header value"));
        }
        IdempotencyKey::from_headers(&headers)
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert_eq!(key_from(&[]).expect("no key is fine"), None);
        let ok = key_from(&[b"0190f1c2-abc_DEF.~!"]).expect("valid");
        assert_eq!(ok.map(|k| k.0).as_deref(), Some("0190f1c2-abc_DEF.~!"));
        key_from(&[&[b'k'; 255]]).expect("255 is allowed");
        for bad in [&b""[..], &[b'k'; 256], b"a b", b"caf\xc3\xa9", b"tab\there"] {
            assert!(
                matches!(key_from(&[bad]), Err(IdempotencyError::InvalidKey(_))),
                "{bad:?} must be refused"
            );
        }
        assert!(matches!(
            key_from(&[b"one", b"two"]),
            Err(IdempotencyError::InvalidKey(_))
        ));
    }

    #[test]
    fn the_sql_wait_is_the_documented_wait() {
        let seconds = format!("'{}s'", IN_FLIGHT_WAIT.as_secs());
        assert!(
            SET_IN_FLIGHT_WAIT.ends_with(&seconds),
            "{SET_IN_FLIGHT_WAIT}"
        );
    }

    #[test]
    fn the_hash_covers_method_path_and_every_body_byte() {
        let h = |m: &Method, p: &str, b: &[u8]| request_hash(m, p, b);
        let base = h(&Method::POST, "/orders", b"{\"a\":1}");
        assert_eq!(base.len(), 64);
        assert_eq!(base, h(&Method::POST, "/orders", b"{\"a\":1}"));
        assert_ne!(base, h(&Method::POST, "/orders", b"{\"a\": 1}"));
        assert_ne!(base, h(&Method::PUT, "/orders", b"{\"a\":1}"));
        assert_ne!(base, h(&Method::POST, "/other", b"{\"a\":1}"));
    }
}
