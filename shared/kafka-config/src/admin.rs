//! Admin operations: create a topic with the replication the note asks for, and read
//! back what the cluster says about it.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResource, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaAdminError;

/// Creates `topic` with `partitions` partitions and `replication_factor` replicas,
/// requiring `min.insync.replicas=2` when replicated: an `acks=all` write is refused
/// (never acknowledged on one copy) while fewer than two replicas are in sync. A topic
/// that exists already is checked, not trusted: a topic someone created with one replica,
/// or with min ISR 1, would silently undo the store stage's defence, so it is an error
/// naming what differs.
pub async fn create_topic(
    bootstrap_servers: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> Result<(), KafkaAdminError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .create()?;
    let min_isr = if replication_factor >= 3 { "2" } else { "1" };
    let new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    )
    .set("min.insync.replicas", min_isr);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new_topic], &options).await?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                let found = topic_durability(bootstrap_servers, topic).await?;
                let wanted = (replication_factor, min_isr.to_owned());
                if (found.replication_factor, found.min_insync_replicas.clone()) != wanted {
                    return Err(KafkaAdminError::CreateTopic {
                        topic: topic.to_owned(),
                        reason: format!(
                            "it exists with replication factor {} and min.insync.replicas {}, \
                             not {} and {}: recreate it or change TOPIC_REPLICATION_FACTOR",
                            found.replication_factor, found.min_insync_replicas, wanted.0, wanted.1
                        ),
                    });
                }
            }
            Err((name, code)) => {
                return Err(KafkaAdminError::CreateTopic {
                    topic: name,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// What decides whether an acknowledged write to a topic can be lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDurability {
    /// The fewest replicas any partition has.
    pub replication_factor: i32,
    /// `min.insync.replicas` as the broker applies it to this topic.
    pub min_insync_replicas: String,
    /// `unclean.leader.election.enable` as the broker applies it to this topic.
    pub unclean_leader_election: String,
    /// Where that value comes from: a topic override, the broker's own configuration
    /// file (`infra/native/kafka.sh` writes it), or Kafka's built-in default.
    pub unclean_leader_election_source: String,
}

/// Reads a topic's replication factor (metadata) and its effective durability settings
/// (`DescribeConfigs`, with the source of each value).
pub async fn topic_durability(
    bootstrap_servers: &str,
    topic: &str,
) -> Result<TopicDurability, KafkaAdminError> {
    let view = describe_topic(bootstrap_servers, topic, Duration::from_secs(10)).await?;
    let replication_factor = view
        .partitions
        .iter()
        .map(|p| i32::try_from(p.replicas.len()).unwrap_or(i32::MAX))
        .min()
        .unwrap_or(0);
    let resource = topic_configs(bootstrap_servers, topic).await?;
    let entries = resource.entry_map();
    let value = |name: &str| {
        entries
            .get(name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    let source = match entries
        .get("unclean.leader.election.enable")
        .map(|e| &e.source)
    {
        Some(ConfigSource::DynamicTopic) => "topic override",
        Some(ConfigSource::StaticBroker) => "broker configuration file",
        Some(ConfigSource::DynamicBroker | ConfigSource::DynamicDefaultBroker) => {
            "dynamic broker configuration"
        }
        Some(ConfigSource::Default) => "Kafka's built-in default",
        _ => "unknown",
    };
    Ok(TopicDurability {
        replication_factor,
        min_insync_replicas: value("min.insync.replicas"),
        unclean_leader_election: value("unclean.leader.election.enable"),
        unclean_leader_election_source: source.to_owned(),
    })
}

/// The topic's `retention.ms` as the cluster applies it: `Ok(None)` for `-1` (kept for
/// ever). The inbox compares its own retention with it (`inbox::keep_within_retention`).
pub async fn topic_retention(
    bootstrap_servers: &str,
    topic: &str,
) -> Result<Option<Duration>, KafkaAdminError> {
    let resource = topic_configs(bootstrap_servers, topic).await?;
    let raw = resource
        .get("retention.ms")
        .and_then(|entry| entry.value.clone())
        .ok_or_else(|| KafkaAdminError::DescribeConfigs {
            topic: topic.to_owned(),
            reason: "no retention.ms".to_owned(),
        })?;
    let ms: i64 = raw.parse().map_err(|e| KafkaAdminError::DescribeConfigs {
        topic: topic.to_owned(),
        reason: format!("retention.ms {raw:?}: {e}"),
    })?;
    Ok(u64::try_from(ms).ok().map(Duration::from_millis))
}

/// The topic's configuration as the brokers apply it (`DescribeConfigs`), each value
/// with its source.
async fn topic_configs(
    bootstrap_servers: &str,
    topic: &str,
) -> Result<ConfigResource, KafkaAdminError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .create()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let resources = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await?;
    resources
        .into_iter()
        .next()
        .ok_or_else(|| KafkaAdminError::UnknownTopic(topic.to_owned()))?
        .map_err(|code| KafkaAdminError::DescribeConfigs {
            topic: topic.to_owned(),
            reason: code.to_string(),
        })
}

/// What the metadata says about one topic.
#[derive(Debug, Clone)]
pub struct TopicView {
    pub name: String,
    /// Per partition: (partition id, leader, replicas, in-sync replicas).
    pub partitions: Vec<PartitionView>,
}

#[derive(Debug, Clone)]
pub struct PartitionView {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl TopicView {
    /// True when every partition has all its replicas in sync.
    pub fn fully_in_sync(&self) -> bool {
        self.partitions.iter().all(|p| {
            let mut r = p.replicas.clone();
            let mut i = p.isr.clone();
            r.sort_unstable();
            i.sort_unstable();
            r == i
        })
    }
}

/// The brokers the cluster metadata lists.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub broker_ids: Vec<i32>,
}

fn metadata_client(bootstrap_servers: &str) -> Result<BaseConsumer, KafkaAdminError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        // A probe must not hang on a dead cluster: give up on a broker quickly.
        .set("socket.connection.setup.timeout.ms", "2000")
        .create()?)
}

/// Reads topic metadata (blocking librdkafka call, run off the async threads).
pub async fn describe_topic(
    bootstrap_servers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<TopicView, KafkaAdminError> {
    let client = metadata_client(bootstrap_servers)?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let md = client.fetch_metadata(Some(&topic), timeout)?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| KafkaAdminError::UnknownTopic(topic.clone()))?;
        Ok(TopicView {
            name: topic.clone(),
            partitions: t
                .partitions()
                .iter()
                .map(|p| PartitionView {
                    id: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect(),
        })
    })
    .await
    .map_err(|e| KafkaAdminError::Join(e.to_string()))?
}

/// Asks the cluster which brokers it has; an error means no broker answered in time.
pub async fn describe_cluster(
    bootstrap_servers: &str,
    timeout: Duration,
) -> Result<ClusterView, KafkaAdminError> {
    let client = metadata_client(bootstrap_servers)?;
    tokio::task::spawn_blocking(move || {
        let md = client.fetch_metadata(None, timeout)?;
        Ok(ClusterView {
            broker_ids: md.brokers().iter().map(|b| b.id()).collect(),
        })
    })
    .await
    .map_err(|e| KafkaAdminError::Join(e.to_string()))?
}
