//! The fault buttons. Each calls the code path the drills use — `ServiceProcess::kill9`,
//! the cuttable proxies, `publish_copies_to`, `publish_poison_to` of
//! `tools/drills` (matrix/), and `infra/native/kafka.sh`/`redis.sh`/`services.sh` — never
//! a second copy. Every press leaves a mark on the timeline, failed ones with the reason.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::stack::{Control, NativeStack, OwnStack, Targets, pid_alive};

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Kill9 { service: String },
    Start { service: String },
    StopBroker { node: i32 },
    StartBroker { node: i32 },
    FreezeLeader,
    StopRedis,
    StartRedis,
    CutPaymentDb,
    RestorePaymentDb,
    Redeliver { n: usize },
    Poison,
    Toggle { name: String, on: bool },
    HealAll,
}

impl Action {
    pub fn label(&self) -> String {
        match self {
            Self::Kill9 { service } => format!("kill -9 {service}"),
            Self::Start { service } => format!("start {service}"),
            Self::StopBroker { node } => format!("stop broker {node}"),
            Self::StartBroker { node } => format!("start broker {node}"),
            Self::FreezeLeader => "freeze the leader".into(),
            Self::StopRedis => "stop Redis".into(),
            Self::StartRedis => "start Redis".into(),
            Self::CutPaymentDb => "cut the payment database".into(),
            Self::RestorePaymentDb => "restore the payment database".into(),
            Self::Redeliver { n } => format!("re-deliver {n}"),
            Self::Poison => "send a poison message".into(),
            Self::Toggle { name, on } => format!("{name} {}", if *on { "on" } else { "off" }),
            Self::HealAll => "heal all".into(),
        }
    }
}

/// The unsafe teaching toggles of payment-service (README, "The settings the course
/// pages switch"): the page restarts the service with them, and a red banner stays up
/// while any is on.
pub const TOGGLES: &[(&str, &[(&str, &str)])] = &[
    (
        "offset-before-effect",
        &[("CONSUMER_OFFSET_COMMIT", "before-effect")],
    ),
    // The inbox off alone still leaves Redis in front of it; off together, only the
    // business key (UNIQUE(order_id)) stands between a copy and a second payment.
    (
        "inbox-off",
        &[("DEDUP_INBOX", "false"), ("DEDUP_FAST_PATH", "false")],
    ),
];

#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub at_ms: i64,
    pub label: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Marks(Mutex<Vec<Mark>>);

impl Marks {
    pub fn push(&self, label: String, result: &Result<String, String>) {
        if let Ok(mut marks) = self.0.lock() {
            marks.push(Mark {
                at_ms: chrono::Utc::now().timestamp_millis(),
                label,
                ok: result.is_ok(),
                detail: match result {
                    Ok(d) | Err(d) => d.clone(),
                },
            });
        }
    }

    pub fn recent(&self, n: usize) -> Vec<Mark> {
        self.0
            .lock()
            .map(|m| m[m.len().saturating_sub(n)..].to_vec())
            .unwrap_or_default()
    }

    /// When the last action that succeeded happened: the settle time counts from it.
    pub fn last_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let marks = self.0.lock().ok()?;
        let last = marks.iter().rev().find(|m| m.ok)?;
        chrono::DateTime::from_timestamp_millis(last.at_ms)
    }
}

/// Runs `action`; the error says why, for the page.
pub async fn perform(
    targets: &Targets,
    control: &mut Control,
    leader_of_0: Option<i32>,
    action: &Action,
) -> Result<String, String> {
    if let Some(why) = control.refused() {
        return Err(why.to_owned());
    }
    let result = match (control, action) {
        (_, Action::Redeliver { n }) => redeliver(targets, *n).await,
        (_, Action::Poison) => drills::matrix::poison::publish_poison_to(
            &targets.kafka,
            &targets.order_topic,
            &targets.payment_topic,
        )
        .await
        .map(|()| {
            format!(
                "{} poison messages published (order and payment topics): each goes to <topic>.dlq",
                drills::matrix::poison::POISON_COUNT
            )
        })
        .map_err(|e| anyhow::anyhow!("{e}")),
        (c, Action::HealAll) => heal_all(targets, c).await,
        (Control::Own(own), action) => own_action(own, leader_of_0, action).await,
        (Control::Native(native), action) => native_action(native, leader_of_0, action).await,
        (Control::Refused(why), _) => Err(anyhow::anyhow!("{why}")),
    };
    result.map_err(|e| format!("{e:#}"))
}

async fn redeliver(targets: &Targets, n: usize) -> anyhow::Result<String> {
    if n == 0 || n > 1000 {
        bail!("re-deliver 1..=1000 messages");
    }
    let sent = drills::matrix::poison::publish_copies_to(&targets.kafka, &targets.order_topic, n)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if sent < n {
        bail!("only {sent} events on the topic yet: re-delivered {sent}, not {n}");
    }
    Ok(format!(
        "{sent} OrderCreated events published again as they were (same key, payload, event id)"
    ))
}

fn toggle_vars(name: &str) -> anyhow::Result<&'static [(&'static str, &'static str)]> {
    TOGGLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, vars)| *vars)
        .with_context(|| format!("no teaching toggle {name:?}"))
}

fn set_toggle(toggles: &mut Vec<(String, String)>, name: &str, on: bool) -> anyhow::Result<()> {
    let vars = toggle_vars(name)?;
    toggles.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
    if on {
        toggles.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    }
    Ok(())
}

async fn cluster_node(own: &OwnStack, verb: &str, node: i32) -> anyhow::Result<()> {
    let cluster = own.cluster.as_ref().context(
        "refused: this control room shares the Kafka cluster with the tests; broker faults \
         need a cluster of its own (`make control-room-drill`, control-room --own-cluster)",
    )?;
    tokio::task::block_in_place(|| cluster.node(verb, node)).map_err(anyhow::Error::msg)
}

async fn own_action(
    own: &mut OwnStack,
    leader_of_0: Option<i32>,
    action: &Action,
) -> anyhow::Result<String> {
    match action {
        Action::Kill9 { service } => {
            own.kill9(service)?;
            Ok(format!(
                "{service} killed with SIGKILL: nothing flushed, nothing committed"
            ))
        }
        Action::Start { service } => {
            own.start(service).await?;
            Ok(format!("{service} serving again"))
        }
        Action::StopBroker { node } => {
            cluster_node(own, "stop", *node).await?;
            own.faulted.stopped_brokers.push(*node);
            Ok(format!("broker {node} stopped (kafka.sh stop-node {node})"))
        }
        Action::StartBroker { node } => {
            cluster_node(own, "start", *node).await?;
            own.faulted.stopped_brokers.retain(|n| n != node);
            Ok(format!("broker {node} started"))
        }
        Action::FreezeLeader => {
            let leader = leader_of_0.context("no leader of partition 0 known right now")?;
            cluster_node(own, "freeze", leader).await?;
            own.faulted.frozen_brokers.push(leader);
            Ok(format!(
                "broker {leader} (leader of partition 0) frozen with SIGSTOP: its port still accepts, nothing answers"
            ))
        }
        Action::StopRedis => {
            own.redis.cut();
            own.faulted.redis_down = true;
            Ok("Redis unreachable for the services (the drills' cuttable proxy)".into())
        }
        Action::StartRedis => {
            own.redis.restore();
            own.faulted.redis_down = false;
            Ok("Redis reachable again".into())
        }
        Action::CutPaymentDb => {
            own.payment_db.cut();
            own.faulted.payment_db_cut = true;
            Ok("payment database cut: every connection dropped and refused".into())
        }
        Action::RestorePaymentDb => {
            own.payment_db.restore();
            own.faulted.payment_db_cut = false;
            Ok("payment database reachable again".into())
        }
        Action::Toggle { name, on } => {
            set_toggle(&mut own.faulted.toggles, name, *on)?;
            restart_payment_own(own).await?;
            Ok(format!(
                "payment-service restarted with {}",
                describe(&own.faulted.toggles)
            ))
        }
        Action::Redeliver { .. } | Action::Poison | Action::HealAll => {
            unreachable!("handled for every stack in perform")
        }
    }
}

async fn restart_payment_own(own: &mut OwnStack) -> anyhow::Result<()> {
    if let Some(p) = own.payment.take() {
        p.stop().await;
    }
    own.start("payment-service").await
}

fn describe(toggles: &[(String, String)]) -> String {
    if toggles.is_empty() {
        "the safe defaults".into()
    } else {
        toggles
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Everything the buttons changed, undone: brokers thawed and started, Redis and the
/// database back, the toggles off, every service running.
pub async fn heal_all(targets: &Targets, control: &mut Control) -> anyhow::Result<String> {
    let mut done = Vec::new();
    match control {
        Control::Refused(why) => bail!("{why}"),
        Control::Own(own) => {
            for node in std::mem::take(&mut own.faulted.frozen_brokers) {
                cluster_node(own, "thaw", node).await?;
                done.push(format!("broker {node} thawed"));
            }
            for node in std::mem::take(&mut own.faulted.stopped_brokers) {
                cluster_node(own, "start", node).await?;
                done.push(format!("broker {node} started"));
            }
            own.redis.restore();
            own.payment_db.restore();
            own.faulted.redis_down = false;
            own.faulted.payment_db_cut = false;
            if !own.faulted.toggles.is_empty() {
                own.faulted.toggles.clear();
                restart_payment_own(own).await?;
                done.push("payment-service restarted with the safe defaults".into());
            }
            for service in ["payment-service", "order-service"] {
                let running = if service == "order-service" {
                    own.order.is_some()
                } else {
                    own.payment.is_some()
                };
                if !running {
                    own.start(service).await?;
                    done.push(format!("{service} started"));
                }
            }
        }
        Control::Native(native) => {
            for node in std::mem::take(&mut native.faulted.frozen_brokers) {
                native.kafka(&["thaw-node", &node.to_string()]).await?;
                done.push(format!("broker {node} thawed"));
            }
            for node in std::mem::take(&mut native.faulted.stopped_brokers) {
                native.kafka(&["start-node", &node.to_string()]).await?;
                done.push(format!("broker {node} started"));
            }
            if native.faulted.redis_down {
                native.script("redis.sh", &["start"], &[]).await?;
                native.faulted.redis_down = false;
                done.push("Redis started".into());
            }
            if let Some(proxy) = &native.payment_db {
                proxy.restore();
                native.faulted.payment_db_cut = false;
            }
            if !native.faulted.toggles.is_empty() {
                native.faulted.toggles.clear();
                native.stop_service("payment-service").await?;
                done.push("payment-service restarted with the safe defaults".into());
            }
            native.start_services().await?;
        }
    }
    let _ = targets;
    Ok(if done.is_empty() {
        "nothing was broken; every service running".into()
    } else {
        done.join("; ")
    })
}

/// When the control room stops: its own stack healed (then stopped by its owner); on
/// `make up`'s stack, frozen brokers thawed (a frozen JVM ignores `make down`'s SIGTERM)
/// and stopped ones started — never a service restarted while `make down` stops them.
pub async fn on_shutdown(targets: &Targets, control: &mut Control) {
    match control {
        Control::Own(_) => {
            if let Err(e) = heal_all(targets, control).await {
                tracing::warn!("heal all at shutdown: {e:#}");
            }
        }
        Control::Native(native) => {
            for node in std::mem::take(&mut native.faulted.frozen_brokers) {
                let _ = native.kafka(&["thaw-node", &node.to_string()]).await;
            }
            for node in std::mem::take(&mut native.faulted.stopped_brokers) {
                let _ = native.kafka(&["start-node", &node.to_string()]).await;
            }
        }
        Control::Refused(_) => {}
    }
}

impl NativeStack {
    async fn kafka(&self, args: &[&str]) -> anyhow::Result<String> {
        if !self.started_by_make_up("kafka-main") {
            bail!(
                "refused: the Kafka cluster on 9092-9094 was not started by `make up` (it reused \
                 one already running): the page stops only what it started"
            );
        }
        self.script("kafka.sh", args, &[("KAFKA_CLUSTER".into(), "main".into())])
            .await
    }

    /// `services.sh start`: starts whatever of the stack is not running, payment-service
    /// with the toggles of the moment (and through the cut proxy while one is set up).
    async fn start_services(&self) -> anyhow::Result<String> {
        let mut env = self.faulted.toggles.clone();
        if let Some(proxy) = &self.payment_db {
            env.push(("PAYMENT_DATABASE_PROXY".into(), proxy.listen.clone()));
        }
        self.script("services.sh", &["start"], &env).await
    }

    /// SIGTERM and a bounded wait (the graceful stop services.sh uses).
    async fn stop_service(&self, service: &str) -> anyhow::Result<()> {
        let Some(pid) = pid_alive(&self.pid_file(service)) else {
            return Ok(());
        };
        signal(pid, "-TERM")?;
        for _ in 0..100 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signal(pid, "-KILL")
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill {sig} {pid}: {status}");
    }
    Ok(())
}

async fn native_action(
    native: &mut NativeStack,
    leader_of_0: Option<i32>,
    action: &Action,
) -> anyhow::Result<String> {
    match action {
        Action::Kill9 { service } => {
            let pid = pid_alive(&native.pid_file(service))
                .with_context(|| format!("{service} is not running"))?;
            signal(pid, "-KILL")?;
            // Reap-free: services.sh started it with nohup; wait for it to be gone.
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(format!("{service} (pid {pid}) killed with SIGKILL"))
        }
        Action::Start { service } => {
            if pid_alive(&native.pid_file(service)).is_some() {
                bail!("{service} is already running (press kill -9 first)");
            }
            native.start_services().await?;
            Ok(format!(
                "{service} started (infra/native/services.sh start)"
            ))
        }
        Action::StopBroker { node } => {
            native.kafka(&["stop-node", &node.to_string()]).await?;
            native.faulted.stopped_brokers.push(*node);
            Ok(format!("broker {node} stopped (kafka.sh stop-node {node})"))
        }
        Action::StartBroker { node } => {
            native.kafka(&["start-node", &node.to_string()]).await?;
            native.faulted.stopped_brokers.retain(|n| n != node);
            Ok(format!("broker {node} started"))
        }
        Action::FreezeLeader => {
            let leader = leader_of_0.context("no leader of partition 0 known right now")?;
            native.kafka(&["freeze-node", &leader.to_string()]).await?;
            native.faulted.frozen_brokers.push(leader);
            Ok(format!(
                "broker {leader} (leader of partition 0) frozen with SIGSTOP"
            ))
        }
        Action::StopRedis | Action::StartRedis => {
            if !native.started_by_make_up("redis") {
                bail!(
                    "refused: Redis on 6379 was not started by `make up` (it reused one already running)"
                );
            }
            let stop = matches!(action, Action::StopRedis);
            native
                .script("redis.sh", &[if stop { "stop" } else { "start" }], &[])
                .await?;
            native.faulted.redis_down = stop;
            Ok(format!(
                "Redis {}",
                if stop { "stopped" } else { "started" }
            ))
        }
        Action::CutPaymentDb => {
            if native.payment_db.is_none() {
                // payment-service restarted through the drills' proxy, once.
                let proxy = drills::proxy::CuttableProxy::start("127.0.0.1:5432".into())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                native.payment_db = Some(proxy);
                native.stop_service("payment-service").await?;
                native.start_services().await?;
            }
            if let Some(proxy) = &native.payment_db {
                proxy.cut();
            }
            native.faulted.payment_db_cut = true;
            Ok("payment database cut for payment-service (through the drills' proxy)".into())
        }
        Action::RestorePaymentDb => {
            if let Some(proxy) = &native.payment_db {
                proxy.restore();
            }
            native.faulted.payment_db_cut = false;
            Ok("payment database reachable again".into())
        }
        Action::Toggle { name, on } => {
            set_toggle(&mut native.faulted.toggles, name, *on)?;
            native.stop_service("payment-service").await?;
            native.start_services().await?;
            Ok(format!(
                "payment-service restarted with {}",
                describe(&native.faulted.toggles)
            ))
        }
        Action::Redeliver { .. } | Action::Poison | Action::HealAll => {
            unreachable!("handled for every stack in perform")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::set_toggle;

    #[test]
    fn a_toggle_sets_and_clears_exactly_its_variables() {
        let mut toggles = Vec::new();
        set_toggle(&mut toggles, "inbox-off", true).expect("known toggle");
        set_toggle(&mut toggles, "offset-before-effect", true).expect("known toggle");
        assert_eq!(toggles.len(), 3);
        set_toggle(&mut toggles, "inbox-off", false).expect("known toggle");
        assert_eq!(
            toggles,
            vec![(
                "CONSUMER_OFFSET_COMMIT".to_owned(),
                "before-effect".to_owned()
            )]
        );
        assert!(set_toggle(&mut toggles, "no-such-toggle", true).is_err());
    }
}
