//! A Kafka cluster of the drill's own, driven through `infra/native/kafka.sh`, so that
//! killing and freezing nodes never touches the cluster the tests and the demo use.
//!
//! The drill cluster uses the **split** topology: three broker-only nodes (1-3) and one
//! controller-only node (4). Stopping two brokers then leaves the controller quorum
//! intact, so the in-sync set really shrinks and leaders really move — in the combined
//! topology of the demo cluster, two stopped nodes would also take two of the three
//! controller votes with them, and nothing could change at all.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::DrillError;
use crate::native_script;

/// The node numbers of the brokers; node 4 is the controller.
pub const BROKERS: [i32; 3] = [1, 2, 3];
pub const CONTROLLER: i32 = 4;

/// An isolated cluster (`KAFKA_CLUSTER=<name>`, its own ports and state).
#[derive(Debug)]
pub struct DrillCluster {
    name: String,
    port_base: u16,
}

impl DrillCluster {
    /// Starts a fresh split-topology cluster (wiping any earlier state of that name).
    /// Brokers on `port_base`..+2, controller on +100, exporters on +200..+203.
    pub fn start(name: &str, port_base: u16) -> Result<Self, DrillError> {
        let cluster = Self {
            name: name.to_owned(),
            port_base,
        };
        cluster.run(&["wipe"])?;
        cluster.run(&["start"])?;
        Ok(cluster)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bootstrap_servers(&self) -> String {
        (0..3)
            .map(|i| format!("127.0.0.1:{}", self.port_base + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The JMX exporters of the four nodes (`host:port`), what Prometheus scrapes.
    pub fn metrics_targets(&self) -> Vec<String> {
        (0..4)
            .map(|i| format!("127.0.0.1:{}", self.port_base + 200 + i))
            .collect()
    }

    /// Where node `id` keeps its partitions (`.state/kafka-<name>/node-<id>/data`).
    pub fn data_dir(&self, id: i32) -> PathBuf {
        state_dir()
            .join(format!("kafka-{}", self.name))
            .join(format!("node-{id}/data"))
    }

    /// `kafka.sh <command> [node]` for this cluster.
    pub fn run(&self, args: &[&str]) -> Result<(), DrillError> {
        let mut kafka_sh = native_script::command("kafka.sh", args);
        kafka_sh
            .env("KAFKA_CLUSTER", &self.name)
            .env("KAFKA_PORT_BASE", self.port_base.to_string())
            .env("KAFKA_TOPOLOGY", "split")
            // The exporters' ports follow the base (the default), whatever the caller's
            // environment says.
            .env_remove("KAFKA_METRICS_PORT_BASE");
        native_script::run(kafka_sh, &format!("kafka.sh {args:?}"))
    }

    /// `kafka.sh <verb>-node <id>` (kill, freeze, thaw, start, stop).
    pub fn node(&self, verb: &str, id: i32) -> Result<(), DrillError> {
        self.run(&[&format!("{verb}-node"), &id.to_string()])
    }
}

impl Drop for DrillCluster {
    fn drop(&mut self) {
        // Thaw first: a frozen JVM ignores SIGTERM until it is resumed.
        for id in BROKERS {
            let _ = self.node("thaw", id);
        }
        let _ = self.run(&["wipe"]);
    }
}

/// `$STATE_DIR`, by default the repository's `.state`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("STATE_DIR")
        .map_or_else(|| test_support::repo_root().join(".state"), PathBuf::from)
}

/// The first base in `candidates` whose ports (brokers, controller, exporters, the
/// drill's Prometheus on +290) nobody listens on, so that two checkouts running the
/// drills on one machine do not collide.
pub fn free_port_base(candidates: &[u16]) -> Result<u16, DrillError> {
    let taken = |port: u16| {
        TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_ok()
    };
    candidates
        .iter()
        .copied()
        .find(|base| {
            let ports = [0, 1, 2, 100, 200, 201, 202, 203, 290];
            !ports.iter().any(|off| taken(base + off))
        })
        .ok_or_else(|| DrillError::Setup(format!("no free port base among {candidates:?}")))
}
