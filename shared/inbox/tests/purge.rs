//! Dedup retention: the purge forgets a group's ids older than the retention, and only
//! those.

use std::time::Duration;

use inbox::{Delivery, Origin, purge_older_than, record_delivery};
use sqlx::PgPool;
use test_support::{TestDatabase, unique_name};
use uuid::Uuid;

async fn record(pool: &PgPool, group: &str, id: Uuid, age_hours: i32) {
    let mut conn = pool.acquire().await.expect("connection");
    let origin = Origin {
        topic: "t",
        partition: 0,
        offset: 0,
    };
    let delivery = record_delivery(&mut conn, group, id, origin)
        .await
        .expect("record");
    assert_eq!(delivery, Delivery::First);
    sqlx::query(
        "UPDATE inbox SET received_at = now() - make_interval(hours => $3)
         WHERE consumer_group = $1 AND message_id = $2",
    )
    .bind(group)
    .bind(id)
    .bind(age_hours)
    .execute(pool)
    .await
    .expect("age the row");
}

async fn remembered(pool: &PgPool, group: &str) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT message_id FROM inbox WHERE consumer_group = $1 ORDER BY message_id")
        .bind(group)
        .fetch_all(pool)
        .await
        .expect("read inbox")
}

#[tokio::test]
async fn purge_deletes_the_groups_aged_rows_and_keeps_the_rest() {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    inbox::MIGRATOR.run(&pool).await.expect("migrate");
    let (group, other_group) = (unique_name("group"), unique_name("group"));

    let (old_1, old_2, young, edge) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    record(&pool, &group, old_1, 200).await;
    record(&pool, &group, old_2, 170).await;
    record(&pool, &group, young, 1).await;
    record(&pool, &group, edge, 167).await;
    // Another group's old row: not this purge's business.
    let other_old = Uuid::new_v4();
    record(&pool, &other_group, other_old, 500).await;

    let retention = Duration::from_secs(168 * 3600);
    let deleted = purge_older_than(&pool, &group, retention)
        .await
        .expect("purge");

    let mut kept = vec![young, edge];
    kept.sort_unstable();
    assert_eq!(
        (deleted, remembered(&pool, &group).await),
        (2, kept),
        "deleted the rows older than 168 h (200 h, 170 h), kept 1 h and 167 h"
    );
    assert_eq!(
        remembered(&pool, &other_group).await,
        [other_old],
        "another group's rows stay"
    );
    assert_eq!(
        purge_older_than(&pool, &group, retention)
            .await
            .expect("purge again"),
        0,
        "a second purge finds nothing more"
    );
    // A purged id is a stranger again: the purge really forgot it.
    let mut conn = pool.acquire().await.expect("connection");
    let again = record_delivery(
        &mut conn,
        &group,
        old_1,
        Origin {
            topic: "t",
            partition: 0,
            offset: 0,
        },
    )
    .await
    .expect("record again");
    assert_eq!(again, Delivery::First);
}
