//! A representative subset of the store-stage drills, with assertions, in `make test`:
//! one cluster of its own (3 brokers + a dedicated controller, exporters on), one
//! Prometheus with the project's alert rules, and the drills whose outcome is
//! deterministic — the safe configuration loses nothing acknowledged, the unsafe one
//! loses what the drill says it will. `make drills-replication` runs them all, bigger.
//!
//! `DRILLS=failover,min-isr,rf,unclean,outbox` picks drills, as for
//! `make drills-replication` (default: all). Drill 4 alone, ten times in a row:
//! `for i in $(seq 10); do DRILLS=unclean cargo test -p drills --test store_drills || break; done`.

use std::process::Command;

use drills::cluster::{DrillCluster, free_port_base};
use drills::store::outbox_relay::{Fault, relay_through};
use drills::store::prometheus::DrillPrometheus;
use drills::store::replication::{AlertCheck, Outcome, leader_failover, too_few_in_sync_replicas};
use drills::store::replication_factor::{LeaderLoss, replication_factor};
use drills::store::unclean_election::unclean_election;
use kafka_config::Acks;
use test_support::repo_root;

const COUNT: usize = 100;

/// Whether `DRILLS` (a comma-separated list, default: all) names `drill`.
fn wants(drill: &str) -> bool {
    std::env::var("DRILLS").map_or(true, |list| list.split(',').any(|d| d.trim() == drill))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_stage_drills_lose_nothing_acknowledged_in_the_safe_configuration() {
    // Another checkout may be running the same test on this machine: take free ports.
    let base =
        free_port_base(&[9500, 10500, 11500, 12500]).expect("free ports for the drill cluster");
    let cluster = DrillCluster::start(&format!("test-{base}"), base).expect("drill cluster");
    let mut rows: Vec<Outcome> = Vec::new();

    let prometheus = DrillPrometheus::start(&cluster, base + 290).expect("drill Prometheus");

    if wants("failover") {
        // Drill 1: acks=1 loses what only the dead leader had; acks=all acknowledged nothing
        // it could lose.
        // acks=0: "stored" as soon as the record is on the socket, so it loses the same.
        let none = leader_failover(&cluster, Acks::None, COUNT)
            .await
            .expect("failover acks=0");
        assert_eq!(none.acknowledged, COUNT, "{none:?}");
        assert_eq!(none.lost_acknowledged, COUNT, "{none:?}");
        rows.push(none);
        let leader_only = leader_failover(&cluster, Acks::Leader, COUNT)
            .await
            .expect("failover acks=1");
        let all = leader_failover(&cluster, Acks::All, COUNT)
            .await
            .expect("failover acks=all");
        assert_eq!(leader_only.acknowledged, COUNT, "{leader_only:?}");
        assert_eq!(leader_only.lost_acknowledged, COUNT, "{leader_only:?}");
        assert_eq!(all.lost_acknowledged, 0, "{all:?}");
        rows.extend([leader_only, all]);
    }

    if wants("min-isr") {
        // Drill 2: min ISR 2 with two brokers stopped: acks=all refused with
        // NOT_ENOUGH_REPLICAS, acks=1 "stored" on one copy; the alert rules fire.
        let check = AlertCheck {
            prometheus: &prometheus,
            wait_for_slow_alerts: false,
        };
        let min_isr = too_few_in_sync_replicas(&cluster, COUNT, Some(check))
            .await
            .expect("min ISR drill");
        let (one, all) = (&min_isr[0], &min_isr[1]);
        assert_eq!(one.acknowledged, COUNT, "{one:?}");
        assert_eq!(all.acknowledged, 0, "{all:?}");
        assert_eq!(all.lost_acknowledged, 0, "{all:?}");
        assert!(
            all.note.contains("Not enough in-sync replicas"),
            "acks=all must be refused with NOT_ENOUGH_REPLICAS: {all:?}"
        );
        assert!(
            all.note.contains("KafkaUnderMinIsrPartitions firing"),
            "{all:?}"
        );
        assert!(
            all.note.contains("KafkaUnderReplicatedPartitions"),
            "{all:?}"
        );
        rows.extend(min_isr);
    }

    if wants("rf") {
        // Drill 3: the leader's machine replaced with a blank disk. RF 1 loses every
        // acknowledged record; RF 3 copies the partition back from the new leader.
        let rf1 = replication_factor(&cluster, 1, LeaderLoss::KilledWithItsDisk, COUNT)
            .await
            .expect("RF 1 drill");
        let rf3 = replication_factor(&cluster, 3, LeaderLoss::KilledWithItsDisk, COUNT)
            .await
            .expect("RF 3 drill");
        assert_eq!(rf1.lost_acknowledged, COUNT, "{rf1:?}");
        assert_eq!(rf3.lost_acknowledged, 0, "{rf3:?}");
        assert!(rf3.acknowledged > COUNT, "RF 3 stays available: {rf3:?}");
        rows.extend([rf1, rf3]);
    }

    if wants("unclean") {
        // Drill 4: unclean election enabled makes the out-of-sync replica leader and the
        // acknowledged records vanish; disabled, the partition waits and keeps them.
        let unclean = unclean_election(&cluster, true, COUNT)
            .await
            .expect("unclean enabled");
        let clean = unclean_election(&cluster, false, COUNT)
            .await
            .expect("unclean disabled");
        assert_eq!(unclean.acknowledged, COUNT, "{unclean:?}");
        assert_eq!(unclean.lost_acknowledged, COUNT, "{unclean:?}");
        assert_eq!(clean.acknowledged, COUNT, "{clean:?}");
        assert_eq!(clean.lost_acknowledged, 0, "{clean:?}");
        rows.extend([unclean, clean]);
    }

    if wants("outbox") {
        // Drill 6: the outbox relay through the min-ISR fault: every order published, once.
        let postgres = &test_support::ensure_stack().postgres_server;
        let relay = relay_through(&cluster, postgres, Fault::TwoBrokersStopped, COUNT)
            .await
            .expect("outbox relay drill");
        assert_eq!(relay.attempted, 2 * COUNT, "{relay:?}");
        assert_eq!(relay.acknowledged, 2 * COUNT, "every row SENT: {relay:?}");
        assert_eq!(relay.read_back, 2 * COUNT, "{relay:?}");
        assert_eq!(relay.lost_acknowledged, 0, "{relay:?}");
        assert_eq!(relay.duplicates, 0, "{relay:?}");
        rows.push(relay);
    }

    // The broker metric names the rules and dashboards rely on are really exported (at
    // the end: some meters, such as the produce errors by code, exist only once used,
    // so only after the whole set of drills).
    if std::env::var_os("DRILLS").is_none() {
        let urls: Vec<String> = cluster
            .metrics_targets()
            .iter()
            .map(|t| format!("http://{t}/metrics"))
            .collect();
        let scrape = Command::new("python3")
            .arg(repo_root().join("scripts/monitoring_check.py"))
            .args(["scrape", "kafka"])
            .args(&urls)
            .status()
            .expect("running scripts/monitoring_check.py");
        assert!(
            scrape.success(),
            "a [kafka] name of infra/prometheus/exported-metrics.txt is not exported by {urls:?}"
        );
    }

    let mut table = String::from(Outcome::markdown_header());
    for r in &rows {
        table.push('\n');
        table.push_str(&r.markdown_row());
    }
    eprintln!("\n{table}\n");
}
