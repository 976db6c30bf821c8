//! A fresh world for one drill: its own order and payment databases, its own topics and
//! consumer groups on the cluster, so no drill sees another's messages and the
//! reconciliation counts exactly this drill's orders.

use std::collections::HashMap;

use reconcile::{Report, Sources};
use test_support::{TestDatabase, ensure_stack, unique_name};

use crate::DrillError;

#[derive(Debug)]
pub struct DrillEnv {
    pub kafka_bootstrap_servers: String,
    pub redis_url: String,
    pub order_topic: String,
    pub payment_topic: String,
    pub order_group: String,
    pub payment_group: String,
    /// Variables for both services on top of the ones above (the drill's toggles).
    pub order_vars: HashMap<String, String>,
    pub payment_vars: HashMap<String, String>,
    orders_db: TestDatabase,
    payments_db: TestDatabase,
}

impl DrillEnv {
    /// Databases and topics of the drill's own on the running stack; `kafka` overrides
    /// the cluster (drills that stop brokers run on a cluster of their own).
    pub async fn create(kafka: Option<&str>) -> Result<Self, DrillError> {
        let stack = ensure_stack();
        let kafka = kafka.unwrap_or(&stack.kafka_bootstrap_servers);
        Self::create_on(kafka, &stack.postgres_server, &stack.redis_url).await
    }

    /// The same on servers of the caller's choosing (`postgres_server` without a
    /// database name): the soak runs on a Postgres, a Redis and a cluster of its own, so
    /// that restarting them never touches the stack the tests share.
    pub async fn create_on(
        kafka: &str,
        postgres_server: &str,
        redis_url: &str,
    ) -> Result<Self, DrillError> {
        let kafka_bootstrap_servers = kafka.to_owned();
        let order_topic = unique_name("drill-order-events");
        let payment_topic = unique_name("drill-payment-events");
        for topic in [&order_topic, &payment_topic] {
            // 3 partitions, 3 replicas: like production, small enough to settle fast.
            kafka_config::create_topic(&kafka_bootstrap_servers, topic, 3, 3)
                .await
                .map_err(|e| DrillError::Setup(format!("create {topic}: {e}")))?;
        }
        Ok(Self {
            kafka_bootstrap_servers,
            redis_url: redis_url.to_owned(),
            order_topic,
            payment_topic,
            order_group: unique_name("drill-order-service"),
            payment_group: unique_name("drill-payment-service"),
            order_vars: HashMap::new(),
            payment_vars: HashMap::new(),
            orders_db: TestDatabase::create_on(postgres_server).await,
            payments_db: TestDatabase::create_on(postgres_server).await,
        })
    }

    fn common(&self, database_url: &str, group: &str) -> HashMap<String, String> {
        [
            ("DATABASE_URL", database_url),
            ("REDIS_URL", self.redis_url.as_str()),
            (
                "KAFKA_BOOTSTRAP_SERVERS",
                self.kafka_bootstrap_servers.as_str(),
            ),
            ("ORDER_EVENTS_TOPIC", self.order_topic.as_str()),
            ("PAYMENT_EVENTS_TOPIC", self.payment_topic.as_str()),
            ("CONSUMER_GROUP", group),
            // Short lease and poll: a crashed relay's rows come back within seconds.
            // The delivery timeout is half the lease (the relay refuses less): a send
            // slowed by a loaded machine fails back before its claim can be taken.
            ("RELAY_LEASE_MS", "8000"),
            ("RELAY_DELIVERY_TIMEOUT_MS", "4000"),
            ("RELAY_POLL_MS", "200"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub fn order_service_env(&self) -> HashMap<String, String> {
        let mut env = self.common(&self.orders_db.url, &self.order_group);
        // Direct mode's send log, of this drill only (a restarted process re-reads it).
        let send_log = std::env::temp_dir().join(format!("{}.send.log", self.order_group));
        env.insert("SEND_LOG_PATH".into(), send_log.display().to_string());
        env.extend(self.order_vars.clone());
        env
    }

    pub fn payment_service_env(&self) -> HashMap<String, String> {
        let mut env = self.common(&self.payments_db.url, &self.payment_group);
        env.extend(self.payment_vars.clone());
        env
    }

    /// The payments database's URL with its `host:port` replaced, to reach it through a
    /// proxy the drill can cut.
    pub fn payments_database_url_via(&self, host_port: &str) -> String {
        let url = &self.payments_db.url;
        let (scheme_auth, rest) = url.rsplit_once('@').unwrap_or(("postgres://", url));
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{scheme_auth}@{host_port}{path}")
    }

    /// `host:port` of Postgres and Redis, the targets of a cutting proxy.
    pub fn postgres_address(&self) -> String {
        let rest = self.payments_db.url.rsplit_once('@').map_or("", |(_, r)| r);
        rest.split('/').next().unwrap_or_default().to_owned()
    }

    pub fn redis_address(&self) -> String {
        let rest = self.redis_url.split_once("://").map_or("", |(_, r)| r);
        rest.split('/').next().unwrap_or_default().to_owned()
    }

    pub async fn orders_pool(&self) -> sqlx::PgPool {
        self.orders_db.pool().await
    }

    pub async fn payments_pool(&self) -> sqlx::PgPool {
        self.payments_db.pool().await
    }

    /// The reconciliation checker over this drill's databases and topic.
    pub async fn reconcile(&self) -> Result<Report, DrillError> {
        let sources = Sources {
            orders_db: self.orders_pool().await,
            payments_db: self.payments_pool().await,
            kafka_bootstrap_servers: self.kafka_bootstrap_servers.clone(),
            order_events_topic: self.order_topic.clone(),
            payment_consumer_group: self.payment_group.clone(),
        };
        reconcile::reconcile(&sources)
            .await
            .map_err(|e| DrillError::Unexpected(format!("reconcile: {e}")))
    }
}
