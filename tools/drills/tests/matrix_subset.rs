//! A representative subset of the failure matrix, with assertions: the safe
//! configuration loses nothing and applies nothing twice; each unsafe toggle shows its
//! hazard where the drill makes it deterministic (the crash hits the first order).
//!
//! The drills start `order-service` and `payment-service` from `target/debug/`:
//! `make test` (`cargo test --workspace`) builds them first. Alone, run
//! `cargo build -p order-service -p payment-service` before this test.

use drills::matrix::catalogue;
use drills::{DrillError, Row};

async fn run(name_prefix: &str, configuration_prefix: &str) -> Row {
    let entry = catalogue::all()
        .into_iter()
        .find(|e| {
            e.name.starts_with(name_prefix) && e.configuration.starts_with(configuration_prefix)
        })
        .unwrap_or_else(|| panic!("no drill {name_prefix} / {configuration_prefix}"));
    let row: Result<Row, DrillError> = (entry.run)().await;
    let row = row.unwrap_or_else(|e| panic!("{entry:?}: {e}"));
    eprintln!(
        "{}",
        drills::matrix::table::plain(std::slice::from_ref(&row))
    );
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_loses_nothing_when_the_offset_follows_the_effect_and_loses_the_order_when_it_precedes_it()
 {
    let safe = run("C1", "safe").await;
    assert_eq!((safe.lost(), safe.double_applied()), (0, 0), "{safe:?}");
    assert_eq!(safe.report.applied, safe.report.accepted);

    let committed_first = run("C1", "unsafe").await;
    assert!(
        committed_first.lost() >= 1,
        "the message in hand at the crash was already committed: {committed_first:?}"
    );
    assert_eq!(committed_first.double_applied(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_publishes_duplicates_that_the_inbox_suppresses() {
    let row = run("R2", "safe").await;
    assert_eq!((row.lost(), row.double_applied()), (0, 0), "{row:?}");
    assert!(
        row.report.published_duplicate_copies >= 1,
        "the crash between send and mark-sent re-sends: {row:?}"
    );
    // Every copy that reached payment-service was caught by a layer.
    assert!(
        row.report.duplicates_suppressed_by_inbox + row.payment_stats.suppressed_redis
            >= row.report.published_duplicate_copies,
        "{row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_retried_with_its_key_is_one_order_and_without_it_two() {
    let safe = run("A1", "safe").await;
    assert_eq!((safe.lost(), safe.double_applied()), (0, 0), "{safe:?}");

    let without_key = run("A1", "unsafe").await;
    assert_eq!(
        without_key.orders_doubled_by_retries, 1,
        "the order whose answer was lost is placed again: {without_key:?}"
    );
    assert_eq!(without_key.lost(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_lost_ack_duplicates_without_idempotence_and_not_with_it() {
    // Both runs use the drill's own cluster (followers frozen so an ack is lost and the
    // batch is sent again): the shared cluster is never touched.
    let unsafe_row = run("producer retry after a lost ack", "unsafe").await;
    let safe = run("producer retry after a lost ack", "safe").await;
    assert_eq!(unsafe_row.lost(), 0, "{unsafe_row:?}");
    assert!(
        unsafe_row.report.published_duplicate_copies >= 1,
        "without idempotence the retried batch is appended again: {unsafe_row:?}"
    );
    assert_eq!(safe.lost(), 0, "{safe:?}");
    assert_eq!(
        safe.report.published_duplicate_copies, 0,
        "the idempotent producer's sequence numbers turn the retry into no copy: {safe:?}"
    );
}

/// Poison shapes, the database-refused ones included ("EURO" against `char(3)`, a NUL
/// in a decline reason): each is dead-lettered with its reason, and every real order
/// behind them is paid. Before the decode checks and the SQLSTATE classes, "EURO" was
/// retried for ever and the orders behind it stayed unpaid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_nothing_stalls() {
    let row = run("poison", "safe").await;
    assert_eq!((row.lost(), row.double_applied()), (0, 0), "{row:?}");
    assert_eq!(row.report.settled, row.report.accepted, "{row:?}");
    assert_eq!(row.dead_lettered, 5, "{row:?}");
    assert!(row.note.contains("5 with a dlq-reason header"), "{row:?}");
    assert!(row.note.contains("\"EURO\""), "{row:?}");
}

/// One dedup layer off is absorbed by the others (the "no dedup (inbox and Redis off)"
/// rows stay at 0: the provider key and `UNIQUE(order_id)` still stand). With every
/// layer off, the copy redelivered after a crash at C2 is paid and charged again, and the
/// reconciliation counts it, at the provider too: it would exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_dedup_layer_off_a_redelivered_copy_is_paid_and_charged_twice() {
    let row = run("C2", "unsafe: every dedup layer off").await;
    assert!(row.double_applied() >= 1, "{row:?}");
    assert!(row.double_charged() >= 1, "{row:?}");
    assert!(!row.report.is_clean(), "{row:?}");
    assert_eq!(row.lost(), 0, "{row:?}");
}
