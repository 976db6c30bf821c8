//! What every integration test needs: the running stack, a database of its own, unique
//! Kafka topics and consumer groups, and a bounded `eventually` instead of sleeps.
//!
//! Tests share one Postgres, one Redis and one 3-node Kafka cluster per test run (started
//! with `infra/native/stack.sh` if nothing answers), and isolate themselves by name: each
//! test gets a fresh database and fresh topic/group names, so tests run in parallel.

mod database;
mod eventually;
mod service_checks;
mod stack;
mod stop;

pub use database::TestDatabase;
pub use eventually::{eventually, eventually_with};
pub use service_checks::{
    assert_bad_database_url_fails_fast, assert_live_and_ready,
    assert_unknown_crash_point_fails_fast, table_names, unused_port,
};
pub use stack::{StackUrls, ensure_stack, repo_root};
pub use stop::StopHandle;

/// A name nobody else uses: `<prefix>-<random>`. Use it for topics, groups and keys.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The environment a service under test gets: the shared stack, its own database,
/// port 0 on loopback. Tests add their own topic and group names, then build the
/// service's `Config::from_lookup` from it.
pub fn service_env(db: &TestDatabase) -> std::collections::HashMap<String, String> {
    let urls = ensure_stack();
    [
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", urls.redis_url.as_str()),
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            urls.kafka_bootstrap_servers.as_str(),
        ),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Creates a topic with a unique name on the shared cluster and returns the name.
pub async fn create_unique_topic(prefix: &str, partitions: i32, replication_factor: i32) -> String {
    let urls = ensure_stack();
    let topic = unique_name(prefix);
    kafka_config::create_topic(
        &urls.kafka_bootstrap_servers,
        &topic,
        partitions,
        replication_factor,
    )
    .await
    .unwrap_or_else(|e| panic!("creating test topic {topic}: {e}"));
    topic
}

/// Everything `topic` on the shared cluster holds now, copies included, read to its end.
pub async fn read_topic(topic: &str) -> Vec<kafka_config::Record> {
    let bootstrap = &ensure_stack().kafka_bootstrap_servers;
    kafka_config::read_topic_to_end(bootstrap, topic, std::time::Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("reading {topic}: {e}"))
}
