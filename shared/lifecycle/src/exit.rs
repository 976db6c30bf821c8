//! One clear line on a start-up failure.

use std::fmt::Display;
use std::process::ExitCode;

/// Prints `<service>: error: <message>` to stderr and returns a failing exit code.
/// Used by `main` so that a bad variable or a missing database ends the process with
/// one readable line, never a panic backtrace.
pub fn exit_on_error<E: Display>(service: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{service}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
