//! The harness itself, over real connections: a per-test database that is really
//! created and really dropped, and a Redis round trip.

use std::time::Duration;

use sqlx::Row;
use test_support::{TestDatabase, ensure_stack, eventually_with, unique_name};

#[tokio::test]
async fn each_test_gets_a_database_of_its_own_that_is_dropped_afterwards() {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    sqlx::query("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
        .execute(&pool)
        .await
        .expect("create table");
    sqlx::query("INSERT INTO notes VALUES (1, 'written to a real Postgres')")
        .execute(&pool)
        .await
        .expect("insert");
    let body: String = sqlx::query("SELECT body FROM notes WHERE id = 1")
        .fetch_one(&pool)
        .await
        .expect("select")
        .get("body");
    assert_eq!(body, "written to a real Postgres");
    pool.close().await;

    let name = db.name.clone();
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", ensure_stack().postgres_server))
        .await
        .expect("admin connection");
    let count = |admin: sqlx::PgPool, name: String| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&admin)
            .await
            .expect("count databases")
    };
    assert_eq!(
        count(admin.clone(), name.clone()).await,
        1,
        "database exists during the test"
    );
    drop(db);
    assert_eq!(
        count(admin, name).await,
        0,
        "database dropped with the TestDatabase"
    );
}

#[tokio::test]
async fn redis_round_trips_a_value_with_a_ttl() {
    let client = redis::Client::open(ensure_stack().redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let key = unique_name("test-key");
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg("v1")
        .arg("NX")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .expect("SET NX");
    assert_eq!(set.as_deref(), Some("OK"), "first SET NX wins");
    let again: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg("v2")
        .arg("NX")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .expect("second SET NX");
    assert_eq!(again, None, "second SET NX on the same key is refused");
    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, "v1");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("TTL");
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn eventually_gives_up_after_its_bound() {
    let outcome = tokio::spawn(eventually_with(
        "a condition that never holds",
        Duration::from_millis(300),
        Duration::from_millis(50),
        || async { Err::<(), _>("nope") },
    ))
    .await;
    let panic = outcome.expect_err("eventually must panic after the bound");
    assert!(panic.is_panic());
}
