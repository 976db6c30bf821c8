//! Twenty copies of one `OrderCreated` handled at the same moment (as twenty consumers
//! that each believe they own it would): one payment, one outcome event. The inbox's
//! primary key decides: the first insert wins, the others wait on its row lock until
//! it commits, then see the conflict and count themselves as duplicates.

use std::sync::Arc;
use std::time::Duration;

use message_consumer::{DedupLayer, HandleError, Handled, Handler};
use payment_service::Payments;
use payment_service::provider::{PaymentProvider, ProviderSettings};
use uuid::Uuid;

use crate::common::{Counts, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_deliveries_of_one_event_apply_one_payment() {
    // The fast path off: every copy goes to the database, where the race is decided.
    let svc = TestApp::spawn(&[("DEDUP_FAST_PATH", "false")]).await;
    let (order_id, event_id) = (Uuid::now_v7(), Uuid::now_v7());
    let message = Arc::new(svc.order_created_message(event_id, order_id));
    let copies = 20;
    // A connection for every copy and one more: the winner calls the provider on a
    // second connection while the others hold theirs, waiting on its inbox row. With
    // fewer, the winner could wait for a connection held by a copy that waits for it.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(copies + 2)
        .connect_with((*svc.pool.connect_options()).clone())
        .await
        .expect("a pool for the copies");
    let handler = Arc::new(Payments {
        pool: pool.clone(),
        provider: PaymentProvider::new(
            pool.clone(),
            ProviderSettings {
                // The winner holds its transaction open a while: the others pile up
                // on its inbox row.
                latency: Duration::from_millis(200),
                failure_rate: 0.0,
                without_idempotency_key: false,
            },
        ),
        consumer_group: svc.group.clone(),
        payment_events_topic: svc.payment_topic.clone(),
        fast_path: None,
        dedup_ttl: Duration::from_secs(60),
        inbox_off: false,
        business_key_off: false,
        metrics: Default::default(),
    });

    let copies = copies as usize;
    let barrier = Arc::new(tokio::sync::Barrier::new(copies));
    let tasks: Vec<_> = (0..copies)
        .map(|_| {
            let (handler, message, barrier) = (
                Arc::clone(&handler),
                Arc::clone(&message),
                Arc::clone(&barrier),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                // As the loop would: a transient error is retried on the same message.
                let mut transient = 0;
                loop {
                    match handler.handle(&message).await {
                        Ok(handled) => return (handled, transient),
                        Err(HandleError::Transient(_) | HandleError::Unavailable(_))
                            if transient < 10 =>
                        {
                            transient += 1;
                        }
                        Err(e) => panic!("handling a copy: {e}"),
                    }
                }
            })
        })
        .collect();
    let (mut retries, mut applied, mut duplicates_inbox) = (0, 0, 0);
    for task in tasks {
        let (handled, transient) = task.await.expect("handler task");
        retries += transient;
        match handled {
            Handled::Applied => applied += 1,
            Handled::Duplicate(DedupLayer::Inbox) => duplicates_inbox += 1,
            other => panic!("only the inbox can see these copies: {other:?}"),
        }
    }

    let counts = svc.counts(order_id, &[event_id]).await;
    assert_eq!(
        (counts, applied, duplicates_inbox),
        (
            Counts {
                payments: 1,
                outcome_events: 1,
                inbox_rows: 1,
                inbox_duplicates: copies as i64 - 1,
                provider_charges: 1,
                provider_calls: 1,
            },
            1,
            copies - 1,
        ),
        "delivered {copies} copies at once (transient retries {retries}) vs applied {} payment(s), \
         {} outcome event(s); inbox duplicates {}, provider calls {}",
        counts.payments,
        counts.outcome_events,
        counts.inbox_duplicates,
        counts.provider_calls,
    );
    pool.close().await;
    svc.stop().await;
}
