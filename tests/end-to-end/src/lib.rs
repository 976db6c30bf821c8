//! What the end-to-end tests share: both services built in this process, each on a
//! database of its own, on topics and consumer groups of their own on the real 3-node
//! cluster. The tests themselves are in `tests/`.

use std::collections::HashMap;
use std::time::Duration;

use kafka_config::Record;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use test_support::{StopHandle, TestDatabase, ensure_stack, service_env, unique_name};

/// Both services, running.
#[derive(Debug)]
pub struct Running {
    pub orders_url: String,
    pub payments_url: String,
    pub order_events_topic: String,
    pub payment_events_topic: String,
    pub payment_group: String,
    pub orders_db: PgPool,
    pub payments_db: PgPool,
    stops: Vec<StopHandle>,
    _dbs: (TestDatabase, TestDatabase),
}

impl Running {
    /// Stops both services gracefully (each finishes its work in hand).
    pub async fn stop(self) {
        for stop in self.stops {
            stop.stop().await;
        }
    }
}

/// Builds and starts order-service and payment-service (`App::build`, as `main` does),
/// with `extra` added to both environments.
pub async fn start_both(extra: &[(&str, &str)]) -> Running {
    let orders_db = TestDatabase::create().await;
    let payments_db = TestDatabase::create().await;
    let order_events_topic = unique_name("order-events");
    let payment_events_topic = unique_name("payment-events");
    let payment_group = unique_name("payment-service");
    let mut shared: HashMap<String, String> = [
        ("ORDER_EVENTS_TOPIC", order_events_topic.clone()),
        ("PAYMENT_EVENTS_TOPIC", payment_events_topic.clone()),
        ("RELAY_POLL_MS", "200".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    shared.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );

    let mut env = service_env(&orders_db);
    env.extend(shared.clone());
    env.insert("CONSUMER_GROUP".into(), unique_name("order-service"));
    let config =
        order_service::Config::from_lookup(&|k: &str| env.get(k).cloned()).expect("order config");
    let orders = order_service::App::build(config)
        .await
        .expect("order-service builds");
    let orders_url = format!("http://{}", orders.local_addr());
    let order_stop = orders.shutdown_handle();
    let order_task = tokio::spawn(orders.run_until_stopped());

    let mut env = service_env(&payments_db);
    env.extend(shared);
    env.insert("CONSUMER_GROUP".into(), payment_group.clone());
    let config = payment_service::Config::from_lookup(&|k: &str| env.get(k).cloned())
        .expect("payment config");
    let payments = payment_service::App::build(config)
        .await
        .expect("payment-service builds");
    let payments_url = format!("http://{}", payments.local_addr());
    let payment_stop = payments.shutdown_handle();
    let payment_task = tokio::spawn(payments.run_until_stopped());

    Running {
        orders_url,
        payments_url,
        order_events_topic,
        payment_events_topic,
        payment_group,
        orders_db: orders_db.pool().await,
        payments_db: payments_db.pool().await,
        stops: vec![
            StopHandle::new(order_stop, order_task),
            StopHandle::new(payment_stop, payment_task),
        ],
        _dbs: (orders_db, payments_db),
    }
}

/// Places an order (`POST /orders`, with `headers` added) and returns its id.
pub async fn place_order(
    http: &reqwest::Client,
    running: &Running,
    amount_minor: i64,
    headers: &[(&str, &str)],
) -> String {
    let mut request =
        http.post(format!("{}/orders", running.orders_url))
            .json(&serde_json::json!({
                "customer_id": "c-1", "amount_minor": amount_minor, "currency": "EUR"
            }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST /orders");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    body["id"].as_str().expect("id").to_owned()
}

/// Waits (bounded) until the order has left `PENDING_PAYMENT`; returns its status.
pub async fn settled_status(http: &reqwest::Client, running: &Running, order_id: &str) -> String {
    test_support::eventually(&format!("order {order_id} settles"), || async {
        let order: serde_json::Value = http
            .get(format!("{}/orders/{order_id}", running.orders_url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match order["status"].as_str() {
            Some("PENDING_PAYMENT") | None => Err(order.to_string()),
            Some(status) => Ok(status.to_owned()),
        }
    })
    .await
}

/// The first record on `topic` whose key is `key` (both events of an order are keyed
/// by its id).
pub async fn first_record(topic: &str, key: &str) -> Record {
    test_support::read_topic(topic)
        .await
        .into_iter()
        .find(|r| r.key_str() == Some(key))
        .unwrap_or_else(|| panic!("no record with key {key} on {topic}"))
}

/// Publishes `record` again to its topic with its key, payload and headers, as a relay
/// re-send after crash point R2 would; with `new_event_id`, under another `event-id`
/// (the same business fact arriving as a "new" event). Waits for the ack.
pub async fn republish(record: &Record, new_event_id: Option<&str>) {
    let mut headers = OwnedHeaders::new();
    for (key, value) in &record.headers {
        let value = match new_event_id {
            Some(id) if key == kafka_config::headers::EVENT_ID => Some(id.as_bytes()),
            _ => value.as_deref(),
        };
        headers = headers.insert(Header { key, value });
    }
    publish(
        &record.topic,
        record.key.as_deref(),
        record.payload.as_deref(),
        headers,
    )
    .await;
}

/// Publishes one record to `topic` and waits for the ack.
pub async fn publish(
    topic: &str,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: OwnedHeaders,
) {
    let producer: FutureProducer =
        kafka_config::ProducerSettings::reliable(&ensure_stack().kafka_bootstrap_servers)
            .client_config()
            .create()
            .expect("producer");
    let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = key {
        out = out.key(key);
    }
    if let Some(payload) = payload {
        out = out.payload(payload);
    }
    producer
        .send(out, Duration::from_secs(10))
        .await
        .expect("the broker acknowledges");
}
