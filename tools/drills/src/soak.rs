//! `make soak`: the whole chain under a steady, moderate k6 load for `DURATION` (60 min
//! by default), with a scripted fault every `DURATION / 13` ([`fault_interval`]), each
//! recovered before the next. The faults are the drills' own (`drills::broker`, `drills::outages`,
//! `drills::poison`), applied one after the other to one long-lived stack instead of a
//! fresh one each:
//!
//! kill -9 of payment-service, order-service, the standalone `outbox-relay` and the
//! direct-mode order-service; one broker stopped; the partition leader frozen
//! (`SIGSTOP`); every broker down for longer than the relay's old give-up
//! (`RELAY_MAX_ATTEMPTS=2`); Redis stopped; Postgres restarted; the payment database cut;
//! hand-made duplicates and poison messages; and, while the brokers are frozen or down,
//! clients that hang up mid-request on the direct-mode instance.
//!
//! It ends with the reconciliation (0 lost, 0 applied twice, 0 double-charged, every
//! accepted order final), and with what a long run adds: do the outbox, the inboxes and
//! the send log stay flat once their purges have caught up (the retentions are set to a
//! quarter of the run for that: [`Soak::retention`]), and each service's memory (RSS).
//!
//! Every fault goes to a stack of the soak's own: a Kafka cluster (`KAFKA_CLUSTER=soak`),
//! a Postgres and a Redis on other ports under `.state/soak/` ([`own_stack`]). The shared
//! :5432, :6379 and :9092-9094 the tests use are never touched.

mod own_stack;
mod report;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster::{DrillCluster, free_port_base};

use crate::matrix::broker::{self, BrokerOutage};
use crate::matrix::{outages, poison};
use crate::process::ServiceProcess;
use crate::settle::settle;
use crate::{DrillEnv, DrillError};
use crate::{k6, results_dir};

pub use own_stack::OwnStack;
pub use report::{Outcome, Rss, Sizes, markdown};

/// The soak's knobs, from the environment (the Makefile passes them through).
#[derive(Debug, Clone)]
pub struct Soak {
    /// `DURATION`: how long k6 runs and the schedule spreads over (`60m`, `8m`, `90s`).
    pub duration: Duration,
    /// `RATE`: orders/s, well below what the chain can take.
    pub rate: u32,
    /// How long the outbox keeps `SENT` rows and the inboxes keep event ids
    /// ([`retention_for`]).
    pub retention: Duration,
}

impl Soak {
    pub fn from_env() -> Self {
        let duration = std::env::var("DURATION")
            .ok()
            .and_then(|d| parse_duration(&d))
            .unwrap_or(Duration::from_secs(3600));
        Self {
            duration,
            rate: std::env::var("RATE")
                .ok()
                .and_then(|r| r.parse().ok())
                .filter(|r| *r > 0)
                .unwrap_or(20),
            retention: retention_for(duration),
        }
    }

    /// The direct-mode instance's steady load: a tenth of `RATE`, at least 1/s.
    pub fn direct_rate(&self) -> u32 {
        (self.rate / 10).max(1)
    }
}

/// The soak's retentions: a quarter of the run (15 min in 60), from one minute (the
/// least a retention may be) to an hour, so that the purges reach their steady state
/// with most of the run still to go.
///
/// This is far below the topics' retention (a day), and the services warn about it at
/// start: a copy read from the topic after its inbox id is gone would meet only the
/// business key. The soak's copies are of the latest events (`poison::publish_copies`),
/// and its redeliveries come minutes after the original at most.
pub fn retention_for(duration: Duration) -> Duration {
    (duration / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600))
}

/// `90s`, `8m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// The schedule, in order. Kills and outages alternate, so each recovery is exercised
/// with the load running.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillPaymentService,
    OneBrokerStopped,
    KillOrderService,
    RedisStopped,
    DuplicatesAndPoison,
    LeaderFrozen,
    KillRelay,
    PostgresRestarted,
    AllBrokersDown,
    KillDirectOrderService,
    PaymentDatabaseCut,
}

const SCHEDULE: [Fault; 11] = [
    Fault::KillPaymentService,
    Fault::OneBrokerStopped,
    Fault::KillOrderService,
    Fault::RedisStopped,
    Fault::DuplicatesAndPoison,
    Fault::LeaderFrozen,
    Fault::KillRelay,
    Fault::PostgresRestarted,
    Fault::AllBrokersDown,
    Fault::KillDirectOrderService,
    Fault::PaymentDatabaseCut,
];

/// The time between two faults: the schedule spread over the run with a slot to spare at
/// the end, since a fault that runs long (the cluster takes a minute or two to come back)
/// pushes the ones after it.
pub fn fault_interval(duration: Duration) -> Duration {
    duration / (SCHEDULE.len() as u32 + 2)
}

/// How long each outage lasts. The cluster is down for a minute: with
/// `RELAY_MAX_ATTEMPTS=2` and the 10 s delivery timeout, the relay used to give a row up
/// after about 20 s (drills/broker.rs).
const BROKER_STOPPED: Duration = Duration::from_secs(30);
const LEADER_FROZEN: Duration = Duration::from_secs(20);
const ALL_BROKERS_DOWN: Duration = Duration::from_secs(60);
/// The schedule's longest outage: the flatness judgement needs retentions several
/// times longer (`report::Outcome::tables_judged`).
pub const LONGEST_OUTAGE: Duration = ALL_BROKERS_DOWN;
const REDIS_STOPPED: Duration = Duration::from_secs(20);
const POSTGRES_DOWN: Duration = Duration::from_secs(5);
const PAYMENT_DATABASE_CUT: Duration = Duration::from_secs(15);
/// How long nothing may move before the soak counts. Longer than the matrix's 20 s: after
/// the minute without brokers a row waits up to 30 s between two sends (the relay's
/// retry cap, `outbox::relay::mark`), and a killed relay's rows up to the 20 s lease.
const SETTLE_QUIET: Duration = Duration::from_secs(60);
/// Hand-made copies of events already delivered.
const COPIES: usize = 20;
/// Requests that hang up on the direct-mode instance, per fault that slows it.
const HANG_UPS: usize = 10;

/// The soak's processes, each restartable on its port with the same environment.
struct Processes {
    order: Slot,
    direct: Slot,
    payment: Slot,
    relay: Slot,
}

struct Slot {
    name: &'static str,
    /// How the soak's tables and reports call it.
    label: &'static str,
    env: HashMap<String, String>,
    /// `None` for the relay, which serves no HTTP.
    port: Option<u16>,
    process: Option<ServiceProcess>,
    /// RSS when the measuring started, and just before its kill -9 (the first process
    /// after its whole life so far; 0 if it was never killed).
    rss_start: u64,
    rss_before_kill: u64,
}

impl Slot {
    async fn start(
        name: &'static str,
        label: &'static str,
        env: HashMap<String, String>,
        http: bool,
    ) -> Result<Self, DrillError> {
        let mut slot = Self {
            name,
            label,
            env,
            port: http.then(test_support::unused_port),
            process: None,
            rss_start: 0,
            rss_before_kill: 0,
        };
        slot.spawn().await?;
        Ok(slot)
    }

    async fn spawn(&mut self) -> Result<(), DrillError> {
        self.process = Some(match self.port {
            Some(port) => {
                let mut p = ServiceProcess::spawn_on(port, self.name, &self.env, None)?;
                p.wait_serving().await?;
                p
            }
            None => ServiceProcess::spawn_worker(self.name, 0, &self.env)?,
        });
        Ok(())
    }

    /// `kill -9`, a pause, and the same process again on the same port.
    async fn kill_and_restart(&mut self) -> Result<(), DrillError> {
        if let Some(p) = self.process.take() {
            self.rss_before_kill = p.rss_kib();
            p.kill9();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.spawn().await
    }

    fn base_url(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.base_url.clone())
            .unwrap_or_default()
    }

    fn rss(&self) -> u64 {
        self.process.as_ref().map_or(0, ServiceProcess::rss_kib)
    }
}

/// Runs the soak.
pub async fn run(settings: Soak) -> Result<Outcome, DrillError> {
    let load_at_start = crate::load_average();
    // Declared first, dropped last: the databases in `env` are dropped on this Postgres.
    let own = tokio::task::block_in_place(OwnStack::start)?;
    let base = free_port_base(&[9940, 9960, 9980])?;
    let cluster = tokio::task::block_in_place(|| DrillCluster::start("soak", base))?;
    let mut env = DrillEnv::create_on(
        &cluster.bootstrap_servers(),
        &own.postgres_server(),
        &own.redis_url(),
    )
    .await?;
    let proxy = outages::payment_database_behind_proxy(&mut env).await?;
    for (k, v) in [
        // The relay's old give-up, shortened as in broker_down_longer_than_give_up: the
        // minute without brokers must not turn a single row FAILED.
        ("RELAY_MAX_ATTEMPTS", "2"),
        // A loaded machine can take seconds to ack (scale_out.rs); the lease is twice
        // the delivery timeout, as the relay requires.
        ("RELAY_DELIVERY_TIMEOUT_MS", "10000"),
        ("RELAY_LEASE_MS", "20000"),
    ] {
        env.order_vars.insert(k.into(), v.into());
    }
    // Retentions short enough for the purges to reach their steady state well inside
    // the run: the sizes must then stay flat (`Outcome::flatness`).
    let hours = format!("{:.6}", settings.retention.as_secs_f64() / 3600.0);
    env.order_vars
        .insert("OUTBOX_RETENTION_HOURS".into(), hours.clone());
    for vars in [&mut env.order_vars, &mut env.payment_vars] {
        vars.insert("DEDUP_RETENTION_HOURS".into(), hours.clone());
        // Warnings kept in drill-results/logs (a send that failed, a purge): why
        // something waited. The Kafka client's complaints while brokers are down stay out.
        vars.insert(
            "RUST_LOG".into(),
            "warn,librdkafka=error,rdkafka=error".into(),
        );
    }
    let send_log = results_dir().join(format!("logs/soak-{}.send.log", env.order_group));
    let mut direct_env = env.order_service_env();
    direct_env.insert("PUBLISH_MODE".into(), "direct".into());
    direct_env.insert("SEND_LOG_PATH".into(), send_log.display().to_string());

    // payment-service first, so the first events find their consumer; the relay after
    // order-service, which migrates the outbox table.
    let mut procs = Processes {
        payment: Slot::start(
            "payment-service",
            "payment-service",
            env.payment_service_env(),
            true,
        )
        .await?,
        order: Slot::start(
            "order-service",
            "order-service (outbox)",
            env.order_service_env(),
            true,
        )
        .await?,
        direct: Slot::start("order-service", "order-service (direct)", direct_env, true).await?,
        relay: Slot::start(
            "outbox-relay",
            "outbox-relay",
            env.order_service_env(),
            false,
        )
        .await?,
    };

    let summary = results_dir().join("soak-k6-summary.json");
    let direct_summary = results_dir().join("soak-direct-k6-summary.json");
    // A client waits out a restart or a Postgres restart, retrying with its key.
    let patience = [("PATIENCE_MS", "120000")];
    let k6_run = k6::start(
        "soak",
        &procs.order.base_url(),
        settings.rate,
        settings.duration,
        &patience,
        &summary,
    )?;
    // A tenth of the load in direct mode, so that its send log fills, settles and is
    // compacted all along (its size is one of the soak's flat sizes).
    let direct_k6_run = k6::start(
        "soak-direct",
        &procs.direct.base_url(),
        settings.direct_rate(),
        settings.duration,
        &patience,
        &direct_summary,
    )?;
    let started = Instant::now();
    let at = move || started.elapsed().as_secs_f64();
    let mut outcome = Outcome::new(settings.clone(), load_at_start);
    outcome.timeline.push((
        0.0,
        format!(
            "k6 starts: {} orders/s for {} s on order-service (outbox) and {}/s on a direct-mode order-service; payment-service and a standalone outbox-relay beside them; outbox and inbox retention {} s",
            settings.rate,
            settings.duration.as_secs(),
            settings.direct_rate(),
            settings.retention.as_secs()
        ),
    ));

    let slot = fault_interval(settings.duration);
    for (i, fault) in SCHEDULE.iter().enumerate() {
        let due = slot * (i as u32 + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        // The sizes before each fault: the series the flatness is judged on.
        outcome
            .sizes
            .push((at(), Sizes::measure(&env, &send_log).await));
        if i == 0 {
            // A slot of steady load first: the starting point of RSS.
            for s in [
                &mut procs.order,
                &mut procs.direct,
                &mut procs.payment,
                &mut procs.relay,
            ] {
                s.rss_start = s.rss();
            }
        }
        let t = at();
        let what = inject(
            *fault,
            &mut procs,
            &env,
            &cluster,
            &own,
            &proxy,
            &mut outcome,
        )
        .await?;
        outcome.timeline.push((t, what));
    }

    let k6_status = k6::wait(k6_run).await?;
    let direct_k6_status = k6::wait(direct_k6_run).await?;
    outcome.timeline.push((
        at(),
        format!("k6 ends (exit {k6_status}; direct mode: exit {direct_k6_status})"),
    ));
    settle(&env, SETTLE_QUIET).await?;
    outcome.timeline.push((at(), "settled".into()));

    outcome
        .sizes
        .push((at(), Sizes::measure(&env, &send_log).await));
    for s in [&procs.order, &procs.direct, &procs.payment, &procs.relay] {
        outcome.rss.push(Rss {
            process: s.label,
            start_kib: s.rss_start,
            before_kill_kib: s.rss_before_kill,
            end_kib: s.rss(),
        });
    }
    let mut report = env.reconcile().await?;
    // The poison events carry event ids but are no orders (as in drills/poison.rs).
    report.published_unique = report
        .published_unique
        .saturating_sub(poison::POISON_ON_ORDER_TOPIC);
    outcome.report = report;
    outcome.failed_rows = broker::count(&env, broker::FAILED_ROWS).await;
    outcome.unsent_rows = report::unsent_rows(&env).await;
    outcome.dead_lettered = poison::dead_letters(&env).await?.len() as u64;
    let (orders, failed, replayed) = k6::read_summary(&summary);
    let (direct_orders, direct_failed, direct_replayed) = k6::read_summary(&direct_summary);
    outcome.k6_orders = orders + direct_orders;
    outcome.k6_failed_requests = failed + direct_failed;
    outcome.k6_replayed = replayed + direct_replayed;
    outcome.k6_status = if k6_status == 0 {
        direct_k6_status
    } else {
        k6_status
    };
    outcome.load_at_end = crate::load_average();

    for s in [procs.order, procs.direct, procs.payment, procs.relay] {
        if let Some(p) = s.process {
            p.stop().await;
        }
    }
    drop(env);
    drop(cluster);
    drop(own);
    Ok(outcome)
}

/// One fault, injected and recovered; what happened, for the timeline.
async fn inject(
    fault: Fault,
    procs: &mut Processes,
    env: &DrillEnv,
    cluster: &DrillCluster,
    own: &OwnStack,
    proxy: &crate::proxy::CuttableProxy,
    outcome: &mut Outcome,
) -> Result<String, DrillError> {
    let kill = |slot: &Slot| format!("kill -9 {}, restarted", slot.label);
    Ok(match fault {
        Fault::KillPaymentService => {
            procs.payment.kill_and_restart().await?;
            kill(&procs.payment)
        }
        Fault::KillOrderService => {
            procs.order.kill_and_restart().await?;
            kill(&procs.order)
        }
        Fault::KillRelay => {
            procs.relay.kill_and_restart().await?;
            kill(&procs.relay)
        }
        Fault::KillDirectOrderService => {
            procs.direct.kill_and_restart().await?;
            kill(&procs.direct)
        }
        Fault::OneBrokerStopped => {
            let (leader, _) = in_sync(env).await?;
            node(cluster, "stop", leader).await?;
            tokio::time::sleep(BROKER_STOPPED).await;
            node(cluster, "start", leader).await?;
            format!(
                "broker {leader} (a partition leader) stopped for {} s, started",
                BROKER_STOPPED.as_secs()
            )
        }
        Fault::LeaderFrozen => {
            let (leader, _) = in_sync(env).await?;
            node(cluster, "freeze", leader).await?;
            let direct = procs.direct.base_url();
            let ((), (hung_up, answered)) = tokio::join!(
                tokio::time::sleep(LEADER_FROZEN),
                hang_ups(&direct, HANG_UPS)
            );
            node(cluster, "thaw", leader).await?;
            outcome.hung_up += hung_up;
            format!(
                "leader {leader} frozen (SIGSTOP) for {} s, thawed; direct mode meanwhile: {hung_up} clients hung up mid-request, {answered} answered in time",
                LEADER_FROZEN.as_secs()
            )
        }
        Fault::AllBrokersDown => {
            in_sync(env).await?;
            let direct = procs.direct.base_url();
            let (figures, (hung_up, answered)) = broker::all_brokers_down(
                cluster,
                env,
                ALL_BROKERS_DOWN,
                hang_ups(&direct, HANG_UPS),
            )
            .await?;
            let BrokerOutage {
                backlog_start,
                backlog_end,
                failed_at_end_of_outage,
            } = figures;
            outcome.hung_up += hung_up;
            format!(
                "all brokers down for {} s (RELAY_MAX_ATTEMPTS=2), started; outbox backlog {backlog_start} → {backlog_end}, FAILED rows {failed_at_end_of_outage}; direct mode meanwhile: {hung_up} clients hung up mid-request, {answered} answered in time",
                ALL_BROKERS_DOWN.as_secs()
            )
        }
        Fault::RedisStopped => {
            tokio::task::block_in_place(|| own.redis("stop"))?;
            tokio::time::sleep(REDIS_STOPPED).await;
            tokio::task::block_in_place(|| own.redis("start"))?;
            format!("Redis stopped for {} s, started", REDIS_STOPPED.as_secs())
        }
        Fault::PostgresRestarted => {
            let t = Instant::now();
            tokio::task::block_in_place(|| own.postgres("stop"))?;
            tokio::time::sleep(POSTGRES_DOWN).await;
            tokio::task::block_in_place(|| own.postgres("start"))?;
            format!(
                "Postgres (both databases) stopped (fast shutdown) and started again: down {:.0} s",
                t.elapsed().as_secs_f64()
            )
        }
        Fault::PaymentDatabaseCut => {
            outages::cut_for(proxy, PAYMENT_DATABASE_CUT).await;
            format!(
                "payment database cut for {} s, restored",
                PAYMENT_DATABASE_CUT.as_secs()
            )
        }
        Fault::DuplicatesAndPoison => {
            let copies = poison::publish_copies(env, COPIES).await?;
            poison::publish_poison(env).await?;
            outcome.copies_sent += copies as u64;
            format!(
                "{copies} copies of the latest delivered events and {} poison messages published",
                poison::POISON_COUNT
            )
        }
    })
}

/// The first order-topic partition's leader, once all its replicas are in sync again:
/// the previous Kafka fault is over before the next begins.
async fn in_sync(env: &DrillEnv) -> Result<(i32, Vec<i32>), DrillError> {
    crate::store::replication::wait_in_sync(&env.kafka_bootstrap_servers, &env.order_topic).await
}

async fn node(cluster: &DrillCluster, verb: &str, id: i32) -> Result<(), DrillError> {
    tokio::task::block_in_place(|| cluster.node(verb, id))
}

/// `n` orders to the direct-mode instance by clients that give up after a second: with
/// the brokers frozen or down the request is still waiting for its ack (after the order
/// is committed), and the client hangs up on it. The order must still get its event,
/// from the request's own task or the send log's re-push
/// (services/order-service/tests/direct_publish.rs). Returns (hung up, answered).
async fn hang_ups(base_url: &str, n: usize) -> (u64, u64) {
    let Ok(impatient) = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return (0, 0);
    };
    let requests = (0..n).map(|i| {
        let request = impatient
            .post(format!("{base_url}/orders"))
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(&crate::load::order_body(i));
        async move { request.send().await }
    });
    let answers = futures::future::join_all(requests).await;
    let hung_up = answers
        .iter()
        .filter(|a| a.as_ref().is_err_and(reqwest::Error::is_timeout))
        .count() as u64;
    let answered = answers.iter().filter(|a| a.is_ok()).count() as u64;
    (hung_up, answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_k6_s() {
        assert_eq!(parse_duration("8m"), Some(Duration::from_secs(480)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("ten"), None);
    }

    #[test]
    fn the_retention_is_a_quarter_of_the_run_within_a_minute_and_an_hour() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(retention_for(minutes(60)), minutes(15));
        assert_eq!(retention_for(minutes(2)), minutes(1));
        assert_eq!(retention_for(minutes(600)), minutes(60));
    }
}
