//! What the payment-service test files share: the app they start ([`TestApp::spawn`], on a
//! topic of its own), and `OrderCreated` events published the way order-service's relay
//! does (same headers, same payload).

// Each test binary uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use inbox::FastPath;
use kafka_config::headers;
use message_consumer::ReceivedMessage;
use payment_service::{App, Config, StatsSnapshot};

use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use test_support::{
    StopHandle, TestDatabase, create_unique_topic, ensure_stack, eventually, service_env,
    unique_name,
};
use uuid::Uuid;

/// What a test needs to feed payment-service and inspect its effects: its database, a
/// one-partition `OrderCreated` topic, a producer, and the environment to start the
/// service with (in-process with [`Service::start`], or as a process).
pub struct Fixture {
    pub pool: PgPool,
    /// `ORDER_EVENTS_TOPIC`: one partition, so the events are handled in the order
    /// they were published and a last "sentinel" event marks the end of the run.
    pub order_topic: String,
    pub payment_topic: String,
    pub group: String,
    /// The service's variables: the test stack's settings and the names above.
    pub env: HashMap<String, String>,
    producer: FutureProducer,
    _db: TestDatabase,
}

impl Fixture {
    /// A database, topics and group of the test's own, overridden by `vars`.
    pub async fn create(vars: &[(&str, &str)]) -> Self {
        let db = TestDatabase::create().await;
        let bootstrap = ensure_stack().kafka_bootstrap_servers.clone();
        // Created here with one partition; `ensure_topics` accepts it as it is and adds
        // `<topic>.dlq`.
        let order_topic = create_unique_topic("order-events", 1, 3).await;
        let payment_topic = unique_name("payment-events");
        let group = unique_name("payment-service");
        let mut env: HashMap<String, String> = service_env(&db);
        env.insert("ORDER_EVENTS_TOPIC".into(), order_topic.clone());
        env.insert("PAYMENT_EVENTS_TOPIC".into(), payment_topic.clone());
        env.insert("CONSUMER_GROUP".into(), group.clone());
        env.insert("RELAY_POLL_MS".into(), "200".into());
        for (name, value) in vars {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        let producer = kafka_config::ProducerSettings::reliable(&bootstrap)
            .client_config()
            .create()
            .expect("producer");
        Self {
            pool: db.pool().await,
            order_topic,
            payment_topic,
            group,
            env,
            producer,
            _db: db,
        }
    }
}

/// One order, applied once: whatever copies were delivered, one payment, one outcome
/// event, one inbox row, one charge.
pub const APPLIED_ONCE: Counts = Counts {
    payments: 1,
    outcome_events: 1,
    inbox_rows: 1,
    inbox_duplicates: 0,
    provider_charges: 1,
    provider_calls: 1,
};

/// A payment-service running in-process on a [`Fixture`] of its own.
pub struct TestApp {
    pub fast_path: Option<FastPath>,
    /// The app's HTTP address (`GET /stats`).
    pub addr: std::net::SocketAddr,
    stop: StopHandle,
    // Last: dropped after the app has stopped, it drops the database.
    fixture: Fixture,
}

impl std::ops::Deref for TestApp {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        &self.fixture
    }
}

impl TestApp {
    /// Starts the app with the test stack's settings, overridden by `vars`.
    pub async fn spawn(vars: &[(&str, &str)]) -> Self {
        Self::spawn_on(Fixture::create(vars).await).await
    }

    /// Starts the app on `fixture`: its database, topics and consumer group.
    pub async fn spawn_on(fixture: Fixture) -> Self {
        let config = Config::from_lookup(&|k: &str| fixture.env.get(k).cloned()).expect("config");
        let app = App::build(config).await.expect("payment-service builds");
        let fast_path = app.fast_path();
        let addr = app.local_addr();
        let stop = StopHandle::new(app.shutdown_handle(), tokio::spawn(app.run_until_stopped()));
        Self {
            fast_path,
            addr,
            stop,
            fixture,
        }
    }

    /// `GET /stats`: the service's counters per defence layer.
    /// The sentinel (`Fixture::publish_sentinel_and_wait`), then every message received
    /// finished: the sentinel's payment alone does not prove that the earlier keys are
    /// done (a copy waiting out a silent Redis can finish after it), so the loop's
    /// counters must also show nothing in hand.
    pub async fn publish_sentinel_and_wait(&self) {
        self.fixture.publish_sentinel_and_wait().await;
        eventually("every message received is finished", || async {
            let s = self.stats().await;
            let finished = s.applied
                + s.duplicates_redis
                + s.duplicates_inbox
                + s.duplicates_business_key
                + s.dead_lettered;
            if finished == s.consumed {
                Ok(())
            } else {
                Err(s)
            }
        })
        .await;
    }

    pub async fn stats(&self) -> StatsSnapshot {
        let url = format!("http://{}/stats", self.addr);
        // Every field must be there: a missing one fails the deserialisation.
        reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .expect("stats JSON with every counter")
    }

    /// Stops the app; the fixture (database, topics, group) is left for another start.
    pub async fn stop(self) -> Fixture {
        self.stop.stop().await;
        self.fixture
    }
}

impl Fixture {
    /// Publishes an `OrderCreated` as order-service's relay would; returns its offset.
    pub async fn publish_order_created(
        &self,
        event_id: Uuid,
        order_id: Uuid,
        schema_version: u32,
    ) -> i64 {
        let (event_headers, payload) = order_created(event_id, order_id, schema_version);
        let hs = headers::from_pairs(event_headers.iter().map(|(k, v)| (*k, Some(v.as_str()))));
        let order_key = order_id.to_string();
        let record = FutureRecord::to(&self.order_topic)
            .key(&order_key)
            .payload(&payload)
            .headers(hs);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("publish OrderCreated")
            .offset
    }

    /// The same event as a message in hand, for driving a handler directly (not via
    /// Kafka: the running app never sees it).
    pub fn order_created_message(&self, event_id: Uuid, order_id: Uuid) -> ReceivedMessage {
        let (event_headers, payload) = order_created(event_id, order_id, 1);
        ReceivedMessage {
            topic: self.order_topic.clone(),
            partition: 0,
            offset: 1_000_000,
            key: Some(order_id.to_string().into_bytes()),
            payload: Some(payload.into_bytes()),
            headers: event_headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Some(v.into_bytes())))
                .collect(),
        }
    }

    /// Publishes one more order and waits for its payment. On the single partition
    /// everything published before it was received before it; the consumer handles
    /// different keys in parallel, though, so with the app in this process use
    /// `Service::publish_sentinel_and_wait`, which also waits for nothing in hand.
    pub async fn publish_sentinel_and_wait(&self) {
        let order_id = Uuid::now_v7();
        self.publish_order_created(Uuid::now_v7(), order_id, 1)
            .await;
        eventually("the sentinel order is paid", || async {
            let n = self.payments_for(order_id).await;
            if n == 1 { Ok(()) } else { Err(n) }
        })
        .await;
    }

    pub async fn payments_for(&self, order_id: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&self.pool)
            .await
            .expect("count payments")
    }

    /// What the database says happened to one order and its event ids.
    pub async fn counts(&self, order_id: Uuid, event_ids: &[Uuid]) -> Counts {
        let by_order = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(order_id)
                .fetch_one(&self.pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        let by_event_ids = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(event_ids)
                .fetch_one(&self.pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        };
        Counts {
            payments: by_order("SELECT count(*) FROM payments WHERE order_id = $1").await,
            outcome_events: by_order("SELECT count(*) FROM outbox WHERE aggregate_id = $1::text")
                .await,
            inbox_rows: by_event_ids("SELECT count(*) FROM inbox WHERE message_id = ANY($1)").await,
            inbox_duplicates: by_event_ids(
                "SELECT coalesce(sum(duplicate_deliveries), 0)::bigint
                 FROM inbox WHERE message_id = ANY($1)",
            )
            .await,
            provider_charges: by_order(
                "SELECT count(*) FROM provider_charges WHERE idempotency_key = $1::text",
            )
            .await,
            provider_calls: by_order(
                "SELECT coalesce(sum(calls), 0)::bigint
                 FROM provider_charges WHERE idempotency_key = $1::text",
            )
            .await,
        }
    }

    /// `<order topic>.dlq`, read to its end: exactly `count` messages.
    pub async fn read_dead_letters(&self, count: usize) -> Vec<ReceivedMessage> {
        let topic = kafka_config::dead_letter_topic(&self.order_topic);
        let letters = test_support::read_topic(&topic).await;
        assert_eq!(letters.len(), count, "messages on {topic}");
        letters
    }
}

/// The headers and payload of an `OrderCreated`, as order-service's relay writes them.
fn order_created(
    event_id: Uuid,
    order_id: Uuid,
    schema_version: u32,
) -> ([(&'static str, String); 3], String) {
    let payload = serde_json::json!({
        "schema_version": schema_version,
        "event_id": event_id,
        "order_id": order_id,
        "customer_id": "c-1",
        "amount_minor": 1999,
        "currency": "EUR",
    })
    .to_string();
    let event_headers = [
        (headers::EVENT_ID, event_id.to_string()),
        (headers::EVENT_TYPE, "OrderCreated".to_owned()),
        ("schema-version", schema_version.to_string()),
    ];
    (event_headers, payload)
}

/// Rows in payment-service's database about one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Payments applied (`payments` rows).
    pub payments: i64,
    /// Outcome events written to the outbox.
    pub outcome_events: i64,
    /// Distinct event ids recorded by the inbox.
    pub inbox_rows: i64,
    /// Deliveries the inbox recognised and skipped.
    pub inbox_duplicates: i64,
    /// Charges the provider holds (one per idempotency key).
    pub provider_charges: i64,
    /// Calls the provider received for them.
    pub provider_calls: i64,
}
