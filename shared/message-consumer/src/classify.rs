//! Which database errors are worth a retry: the SQLSTATE says it.
//!
//! A handler's database error falls in one of three kinds (`HandleError`):
//! - **the database is unreachable**: SQLSTATE class `08` (connection exception),
//!   `57P01`–`57P03` (the server shutting down or starting), class `53` (out of
//!   resources), a pool timeout, an I/O or TLS error. Retried for as long as it takes,
//!   never counted toward the retry cap: a database cut is waited out;
//! - **the data is refused**: class `22` (data exception: a value too long for its
//!   column, `22001`; a `\u0000` in text, `22P05`; a number out of range) and class `23`
//!   (integrity constraint: a check, a foreign key, a NOT NULL). The same message will
//!   be refused the same way on every try: permanent, dead-lettered at once with the
//!   SQLSTATE and the server's message;
//! - anything else (a deadlock `40P01`, a serialization failure `40001`, an unexpected
//!   error): transient, retried up to the cap.
//!
//! Before this, every database error was transient. One `OrderCreated` with
//! `currency: "EURO"` (too long for `char(3)`) was retried every 30 s forever, and the
//! orders behind it stayed unpaid.

use crate::HandleError;

/// Classifies a database error of the handler; `context` names the database.
pub fn database_error(context: &str, error: &sqlx::Error) -> HandleError {
    let message = format!("{context}: {error}");
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("{message} (SQLSTATE {code})");
            match code.get(..2).unwrap_or_default() {
                "22" | "23" => HandleError::Permanent(message),
                "08" | "53" => HandleError::Unavailable(message),
                "57" if code.starts_with("57P") => HandleError::Unavailable(message),
                _ => HandleError::Transient(message),
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => HandleError::Unavailable(message),
        _ => HandleError::Transient(message),
    }
}
