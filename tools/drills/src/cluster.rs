//! A Kafka cluster of the drill's own, driven through `infra/native/kafka.sh`, so that
//! killing and freezing nodes never touches the cluster the tests and the demo use.

use std::path::PathBuf;
use std::process::Command;

/// An isolated 3-node cluster (`KAFKA_CLUSTER=<name>`, its own ports and state).
#[derive(Debug)]
pub struct DrillCluster {
    name: String,
    port_base: u16,
    script: PathBuf,
}

impl DrillCluster {
    /// Starts a fresh cluster (wiping any earlier state of that name).
    pub fn start(name: &str, port_base: u16) -> Result<Self, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/native/kafka.sh");
        let cluster = Self {
            name: name.to_owned(),
            port_base,
            script,
        };
        cluster.run(&["wipe"])?;
        cluster.run(&["start"])?;
        Ok(cluster)
    }

    pub fn bootstrap_servers(&self) -> String {
        (0..3)
            .map(|i| format!("127.0.0.1:{}", self.port_base + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `kafka.sh <command> [node]` for this cluster.
    pub fn run(&self, args: &[&str]) -> Result<(), String> {
        let status = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("KAFKA_CLUSTER", &self.name)
            .env("KAFKA_PORT_BASE", self.port_base.to_string())
            .status()
            .map_err(|e| format!("running kafka.sh {args:?}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kafka.sh {args:?} failed: {status}"))
        }
    }

    /// `kafka.sh <verb>-node <id>` (kill, freeze, thaw, start, stop).
    pub fn node(&self, verb: &str, id: i32) -> Result<(), String> {
        self.run(&[&format!("{verb}-node"), &id.to_string()])
    }
}

impl Drop for DrillCluster {
    fn drop(&mut self) {
        // Thaw first: a frozen JVM ignores SIGTERM until it is resumed.
        for id in 1..=3 {
            let _ = self.node("thaw", id);
        }
        let _ = self.run(&["wipe"]);
    }
}
