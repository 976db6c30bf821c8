//! The store stage's baseline on the real 3-node cluster: a topic with three replicas,
//! all in sync, written with `acks=all` + idempotence and read back.

use std::time::Duration;

use kafka_config::{ProducerSettings, at_least_once_consumer, describe_topic};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use test_support::{create_unique_topic, ensure_stack, eventually, unique_name};

#[tokio::test]
async fn a_topic_with_three_in_sync_replicas_round_trips_acks_all_messages() {
    let bootstrap = ensure_stack().kafka_bootstrap_servers.clone();
    let topic = create_unique_topic("replicated", 3, 3).await;

    // The admin view: 3 partitions, each with 3 replicas, all of them in the ISR.
    let view = eventually("all replicas in sync", || async {
        let view = describe_topic(&bootstrap, &topic, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        if view.partitions.len() == 3 && view.fully_in_sync() {
            Ok(view)
        } else {
            Err(format!("{view:?}"))
        }
    })
    .await;
    for p in &view.partitions {
        assert_eq!(
            p.replicas.len(),
            3,
            "partition {} replicas {:?}",
            p.id,
            p.replicas
        );
        assert_eq!(p.isr.len(), 3, "partition {} isr {:?}", p.id, p.isr);
    }

    // Produce with the project's reliable settings and wait for each broker ack.
    let settings = ProducerSettings::reliable(&bootstrap);
    let config = settings.client_config();
    assert_eq!(config.get("acks"), Some("all"));
    assert_eq!(config.get("enable.idempotence"), Some("true"));
    let producer: FutureProducer = config.create().expect("producer");
    let mut sent = Vec::new();
    for i in 0..30 {
        let id = format!("msg-{i}");
        let key = format!("key-{}", i % 5);
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&id),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("send {id}: {e}"));
        assert!(delivery.offset >= 0);
        sent.push(id);
    }

    // Read everything back with a fresh group.
    let consumer: StreamConsumer = at_least_once_consumer(&bootstrap, &unique_name("group"))
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a message within 30s")
            .expect("consume");
        let payload = std::str::from_utf8(msg.payload().expect("payload")).expect("utf8");
        received.push(payload.to_owned());
        consumer
            .store_offset_from_message(&msg)
            .expect("store offset");
    }
    received.sort();
    sent.sort();
    assert_eq!(
        received, sent,
        "every acknowledged message read back exactly once"
    );
}
