//! payment-service starts on its own database, answers health and readiness, and
//! refuses bad configuration with one clear line.

use payment_service::{App, Config};
use test_support::{StopHandle, TestDatabase, service_env, unique_name};

#[tokio::test]
async fn starts_migrates_and_is_ready() {
    let db = TestDatabase::create().await;
    let mut env = service_env(&db);
    env.insert("ORDER_EVENTS_TOPIC".into(), unique_name("order-events"));
    env.insert("PAYMENT_EVENTS_TOPIC".into(), unique_name("payment-events"));
    env.insert("CONSUMER_GROUP".into(), unique_name("group"));
    let config = Config::from_lookup(&|k: &str| env.get(k).cloned()).expect("config");
    // TOPIC_REPLICATION_FACTOR is not set: the topics below get the default.
    assert!(!env.contains_key("TOPIC_REPLICATION_FACTOR"));
    let (bootstrap, topic) = (
        config.infra.kafka_bootstrap_servers.clone(),
        config.payment_events_topic.clone(),
    );
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let stop = StopHandle::new(app.shutdown_handle(), tokio::spawn(app.run_until_stopped()));

    test_support::assert_live_and_ready(addr).await;
    // The service ran its own migrations into its own database.
    let tables = test_support::table_names(&db.pool().await).await;
    assert!(tables.contains(&"payments".to_owned()), "{tables:?}");
    // The topic the service created for its outcomes, with the defaults as deployed:
    // three replicas, min ISR 2, no unclean leader (the store stage's defence).
    let d = kafka_config::topic_durability(&bootstrap, &topic)
        .await
        .expect("describe the service's topic");
    assert_eq!(
        (
            d.replication_factor,
            d.min_insync_replicas.as_str(),
            d.unclean_leader_election.as_str()
        ),
        (3, "2", "false"),
        "{d:?}"
    );
    stop.stop().await;
}

#[test]
fn a_bad_database_url_fails_fast_with_one_line() {
    test_support::assert_bad_database_url_fails_fast(
        env!("CARGO_BIN_EXE_payment-service"),
        "payment-service",
    );
}
