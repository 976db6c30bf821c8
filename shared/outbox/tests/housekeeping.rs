//! Housekeeping: `SENT` rows older than the retention are deleted; recent `SENT` rows
//! and every unsent row (`PENDING`, `SENDING`, `FAILED`) stay.

mod common;

use std::time::Duration;

use serde_json::json;

const WEEK: Duration = Duration::from_secs(168 * 3600);

#[tokio::test]
async fn purge_deletes_only_sent_rows_past_the_retention() {
    let (_db, pool) = common::migrated_db().await;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(
            common::enqueue(&pool, "some-topic", &format!("key-{n}"), json!({ "n": n }))
                .await
                .id,
        );
    }
    let set = |sql: &'static str, rows: &[uuid::Uuid]| {
        let pool = pool.clone();
        let rows = rows.to_vec();
        async move {
            sqlx::query(sql).bind(rows).execute(&pool).await.expect(sql);
        }
    };
    // 0-2: sent eight days ago (past a week); 3: sent six days ago; 4: sent now;
    // 5: pending but written eight days ago; 6: SENDING; 7: FAILED, also old.
    set(
        "UPDATE outbox SET state = 'SENT', sent_at = now() - interval '8 days' WHERE id = ANY($1)",
        &ids[0..3],
    )
    .await;
    set(
        "UPDATE outbox SET state = 'SENT', sent_at = now() - interval '6 days' WHERE id = ANY($1)",
        &ids[3..4],
    )
    .await;
    set(
        "UPDATE outbox SET state = 'SENT', sent_at = now() WHERE id = ANY($1)",
        &ids[4..5],
    )
    .await;
    set(
        "UPDATE outbox SET created_at = now() - interval '8 days' WHERE id = ANY($1)",
        &ids[5..6],
    )
    .await;
    set(
        "UPDATE outbox SET state = 'SENDING' WHERE id = ANY($1)",
        &ids[6..7],
    )
    .await;
    set(
        "UPDATE outbox SET state = 'FAILED', created_at = now() - interval '8 days' WHERE id = ANY($1)",
        &ids[7..8],
    )
    .await;

    let deleted = outbox::purge_sent_once(&pool, WEEK).await.expect("purge");
    assert_eq!(deleted, 3, "the three SENT rows past a week");
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM outbox ORDER BY seq")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(
        left,
        ids[3..].to_vec(),
        "recent SENT and every unsent row kept"
    );
    assert_eq!(
        outbox::purge_sent_once(&pool, WEEK).await.expect("purge"),
        0,
        "nothing left to purge"
    );
    // The relay's default retention is the documented week.
    let config = outbox::RelayConfig::from_lookup("r", &|_: &str| None).expect("config");
    assert_eq!(config.retention, WEEK);
    assert_eq!(config.max_attempts, 20);
}

#[tokio::test]
async fn the_running_relay_purges_on_its_own() {
    let (_db, pool) = common::migrated_db().await;
    let old = common::enqueue(&pool, "some-topic", "k", json!({})).await;
    sqlx::query(
        "UPDATE outbox SET state = 'SENT', sent_at = now() - interval '8 days' WHERE id = $1",
    )
    .bind(old.id)
    .execute(&pool)
    .await
    .expect("age the row");
    let relay = common::relay(
        &pool,
        "housekeeper",
        outbox::ClaimStrategy::SkipLocked,
        10,
        Duration::from_secs(30),
    );
    let stop = lifecycle::Shutdown::default();
    let task = tokio::spawn(relay.run(stop.clone()));
    test_support::eventually(
        "the relay's housekeeping step deletes the aged row",
        || async {
            let rows = common::count(&pool, "SELECT count(*) FROM outbox").await;
            if rows == 0 { Ok(()) } else { Err(rows) }
        },
    )
    .await;
    stop.trigger();
    task.await.expect("relay task");
}
