//! payment-service starts on its own database, answers health and readiness, and
//! refuses bad configuration with one clear line.

mod common;

use common::TestApp;

#[tokio::test]
async fn starts_migrates_and_is_ready() {
    let app = TestApp::spawn(&[]).await;
    // TOPIC_REPLICATION_FACTOR is not set: the topics below get the default.
    assert!(!app.env.contains_key("TOPIC_REPLICATION_FACTOR"));
    let (bootstrap, topic) = (
        app.env["KAFKA_BOOTSTRAP_SERVERS"].clone(),
        app.payment_topic.clone(),
    );
    let addr = app.addr;
    test_support::assert_live_and_ready(addr).await;
    // The service ran its own migrations into its own database.
    let tables = test_support::table_names(&app.pool).await;
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
    app.stop().await;
}

#[test]
fn an_unknown_crash_point_fails_fast_with_one_line() {
    test_support::assert_unknown_crash_point_fails_fast(
        env!("CARGO_BIN_EXE_payment-service"),
        "payment-service",
    );
}

#[test]
fn a_bad_database_url_fails_fast_with_one_line() {
    test_support::assert_bad_database_url_fails_fast(
        env!("CARGO_BIN_EXE_payment-service"),
        "payment-service",
    );
}
