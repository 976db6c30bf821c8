//! The store stage's settings as the cluster applies them to the topics the services
//! create: three replicas, min ISR 2, no unclean election — the last one from the
//! brokers' own configuration (`infra/native/kafka.sh` writes
//! `unclean.leader.election.enable=false`), since the services set no topic override.
//! And a topic that already exists with weaker settings is refused, not adopted.

use kafka_config::{create_topic, topic_durability};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use test_support::{create_unique_topic, ensure_stack, unique_name};

#[tokio::test]
async fn a_topic_created_like_the_services_do_refuses_an_unclean_leader_by_the_brokers_setting() {
    let bootstrap = ensure_stack().kafka_bootstrap_servers.clone();
    // What `Infrastructure::ensure_topics` does with the services' defaults
    // (TOPIC_REPLICATION_FACTOR=3).
    let topic = create_unique_topic("durability", 3, 3).await;
    let d = topic_durability(&bootstrap, &topic)
        .await
        .expect("describe the topic");
    assert_eq!(d.replication_factor, 3, "{d:?}");
    assert_eq!(d.min_insync_replicas, "2", "{d:?}");
    assert_eq!(d.unclean_leader_election, "false", "{d:?}");
    // Kafka's built-in default is false as well: only the source shows that the
    // project's broker setting is the one in force (delete it from kafka.sh and this
    // turns red).
    assert_eq!(
        d.unclean_leader_election_source, "broker configuration file",
        "{d:?}"
    );
}

#[tokio::test]
async fn an_existing_topic_with_one_replica_is_refused_not_adopted() {
    let bootstrap = ensure_stack().kafka_bootstrap_servers.clone();
    let topic = unique_name("weak-topic");
    // Someone created it by hand: one replica, the broker's default min ISR.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    for r in admin
        .create_topics(
            [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create the weak topic")
    {
        r.expect("created");
    }

    let err = create_topic(&bootstrap, &topic, 1, 3)
        .await
        .expect_err("a topic with one replica must not be accepted as a replicated one");
    let message = err.to_string();
    assert!(
        message.contains("replication factor 1") && message.contains("not 3 and 2"),
        "{message}"
    );
    // A topic that exists as asked for is accepted: the services restart every day.
    let good = create_unique_topic("durable-topic", 1, 3).await;
    create_topic(&bootstrap, &good, 1, 3)
        .await
        .expect("an existing topic with the settings asked for");
}
