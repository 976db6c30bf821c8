//! What the page watches and what its buttons may break.
//!
//! Faults go only to a stack the control room may break: one it started itself
//! (`--own-stack`, `--own-cluster`: databases, topics, services and proxies of its own,
//! like a drill's), or `make up`'s native stack, which starts the control room with
//! `CONTROL_ROOM_STACK=native-make-up` and whose scripts it calls. Anything else — the
//! compose stack, servers `make up` reused rather than started, a control room started
//! by hand — gets counters and no faults, and every button says why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use drills::DrillEnv;
use drills::cluster::DrillCluster;
use drills::process::ServiceProcess;
use drills::proxy::CuttableProxy;
use service_config::{DEFAULT_KAFKA_BOOTSTRAP_SERVERS, DEFAULT_POSTGRES_SERVER};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `make up`'s native stack (`infra/native/services.sh` starts the control room).
    Native,
    /// Databases, topics, services and cuttable proxies of its own on the shared servers.
    OwnStack,
    /// The same on a Kafka cluster of its own, so the broker buttons may be pressed.
    OwnCluster,
}

/// Where the counters come from.
#[derive(Debug)]
pub struct Targets {
    pub mode: Mode,
    pub order_url: String,
    pub payment_url: String,
    pub orders_db: PgPool,
    pub payments_db: PgPool,
    pub kafka: String,
    pub order_topic: String,
    pub payment_topic: String,
    pub payment_group: String,
    pub traces_file: PathBuf,
    /// (node id, client address) of each broker.
    pub brokers: Vec<(i32, String)>,
    /// Broker and controller in one JVM per node (the demo cluster): two nodes down lose
    /// the controller quorum. The own cluster of `--own-cluster` is split.
    pub combined_nodes: bool,
}

/// What the faults have changed, so that "heal all" can undo exactly that.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Faulted {
    pub stopped_brokers: Vec<i32>,
    pub frozen_brokers: Vec<i32>,
    pub redis_down: bool,
    pub payment_db_cut: bool,
    /// Unsafe teaching toggles payment-service runs with (variable → value).
    pub toggles: Vec<(String, String)>,
}

/// The processes and proxies the buttons act on.
#[derive(Debug)]
pub enum Control {
    Own(Box<OwnStack>),
    Native(NativeStack),
    /// Counters only; the reason every fault button is refused with.
    Refused(String),
}

#[derive(Debug)]
pub struct OwnStack {
    pub env: DrillEnv,
    pub order: Option<ServiceProcess>,
    pub payment: Option<ServiceProcess>,
    pub order_port: u16,
    pub payment_port: u16,
    /// Redis and the payment database as the services see them: "stop Redis" and "cut
    /// the database" cut these, the shared servers keep running (the drills' way).
    pub redis: CuttableProxy,
    pub payment_db: CuttableProxy,
    pub cluster: Option<DrillCluster>,
    pub faulted: Faulted,
}

#[derive(Debug)]
pub struct NativeStack {
    pub root: PathBuf,
    pub state: PathBuf,
    pub faulted: Faulted,
    /// The payment database's proxy while it is cut (payment-service restarted through it).
    pub payment_db: Option<CuttableProxy>,
}

impl Control {
    pub fn faulted(&self) -> Faulted {
        match self {
            Self::Own(s) => s.faulted.clone(),
            Self::Native(s) => s.faulted.clone(),
            Self::Refused(_) => Faulted::default(),
        }
    }

    pub fn refused(&self) -> Option<&str> {
        match self {
            Self::Refused(why) => Some(why),
            _ => None,
        }
    }

    /// Stops what the control room started (own stack: services, proxies, cluster).
    pub async fn shutdown(&mut self) {
        if let Self::Own(s) = self {
            if let Some(p) = s.order.take() {
                p.stop().await;
            }
            if let Some(p) = s.payment.take() {
                p.stop().await;
            }
            if let Some(c) = s.cluster.take() {
                tokio::task::block_in_place(|| drop(c));
            }
        }
    }
}

fn pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(url)?)
}

/// The targets and controls of `mode`.
pub async fn prepare(mode: Mode) -> anyhow::Result<(Targets, Control)> {
    match mode {
        Mode::Native => Ok(native()),
        Mode::OwnStack | Mode::OwnCluster => own(mode).await,
    }
    .and_then(|(t, c)| Ok((t?, c)))
}

fn native() -> (anyhow::Result<Targets>, Control) {
    let root = test_support::repo_root();
    let state = drills::cluster::state_dir();
    let port = |name: &str, default: u16| {
        std::fs::read_to_string(state.join(format!("services/{name}.port")))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(default)
    };
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let kafka = var("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS);
    let targets = (|| {
        Ok(Targets {
            mode: Mode::Native,
            order_url: format!("http://127.0.0.1:{}", port("order-service", 8080)),
            payment_url: format!("http://127.0.0.1:{}", port("payment-service", 8081)),
            orders_db: pool(&format!("{DEFAULT_POSTGRES_SERVER}/orders"))?,
            payments_db: pool(&format!("{DEFAULT_POSTGRES_SERVER}/payments"))?,
            brokers: brokers_of(&kafka),
            kafka,
            order_topic: var("ORDER_EVENTS_TOPIC", "order-events"),
            payment_topic: var("PAYMENT_EVENTS_TOPIC", "payment-events"),
            payment_group: var("PAYMENT_CONSUMER_GROUP", "payment-service"),
            traces_file: state.join("traces/spans.jsonl"),
            combined_nodes: true,
        })
    })();
    let control = if std::env::var("CONTROL_ROOM_STACK").as_deref() != Ok("native-make-up") {
        Control::Refused(
            "faults refused: this control room was not started by `make up` on the native \
             stack (CONTROL_ROOM_STACK=native-make-up), so it may not break what it watches; \
             `control-room --own-stack` runs one with a stack of its own"
                .into(),
        )
    } else if !state.join("services/payment-service.pid").is_file() {
        Control::Refused(
            "faults refused: no .state/services/payment-service.pid — the services were not \
             started by `make up` (infra/native/services.sh)"
                .into(),
        )
    } else {
        Control::Native(NativeStack {
            root,
            state,
            faulted: Faulted::default(),
            payment_db: None,
        })
    };
    (targets, control)
}

/// Node ids 1..n in bootstrap order (how `kafka.sh` numbers its nodes).
fn brokers_of(bootstrap: &str) -> Vec<(i32, String)> {
    bootstrap
        .split(',')
        .enumerate()
        .map(|(i, a)| (i as i32 + 1, a.trim().to_owned()))
        .collect()
}

/// The own cluster's ports: away from the demo (9092), the drills (9900) and the soak (9940).
const OWN_CLUSTER_PORT_BASES: [u16; 3] = [9970, 9980, 9990];

async fn own(mode: Mode) -> anyhow::Result<(anyhow::Result<Targets>, Control)> {
    let cluster = if mode == Mode::OwnCluster {
        let base =
            drills::cluster::free_port_base(&OWN_CLUSTER_PORT_BASES).map_err(anyhow::Error::msg)?;
        Some(
            tokio::task::block_in_place(|| DrillCluster::start("control-room", base))
                .map_err(anyhow::Error::msg)?,
        )
    } else {
        None
    };
    let bootstrap = cluster.as_ref().map(DrillCluster::bootstrap_servers);
    let mut env = DrillEnv::create(bootstrap.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Redis and the payment database behind proxies the buttons can cut.
    let redis = CuttableProxy::start(env.redis_address())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    env.redis_url = format!("redis://{}", redis.listen);
    let payment_db = drills::matrix::outages::payment_database_behind_proxy(&mut env)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let run_dir = drills::cluster::state_dir().join(format!("control-room/{}", env.order_group));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    let traces_file = run_dir.join("spans.jsonl");
    for vars in [&mut env.order_vars, &mut env.payment_vars] {
        vars.insert("OTEL_TRACES_FILE".into(), traces_file.display().to_string());
    }
    let targets = Targets {
        mode,
        order_url: String::new(),
        payment_url: String::new(),
        orders_db: env.orders_pool().await,
        payments_db: env.payments_pool().await,
        brokers: brokers_of(&env.kafka_bootstrap_servers),
        kafka: env.kafka_bootstrap_servers.clone(),
        order_topic: env.order_topic.clone(),
        payment_topic: env.payment_topic.clone(),
        payment_group: env.payment_group.clone(),
        traces_file,
        combined_nodes: cluster.is_none(),
    };
    let mut own = OwnStack {
        order_port: test_support::unused_port(),
        payment_port: test_support::unused_port(),
        env,
        order: None,
        payment: None,
        redis,
        payment_db,
        cluster,
        faulted: Faulted::default(),
    };
    own.start("payment-service").await?;
    own.start("order-service").await?;
    let targets = Targets {
        order_url: format!("http://127.0.0.1:{}", own.order_port),
        payment_url: format!("http://127.0.0.1:{}", own.payment_port),
        ..targets
    };
    Ok((Ok(targets), Control::Own(Box::new(own))))
}

impl OwnStack {
    /// Starts `service` (if it is not running) with the toggles of the moment.
    pub async fn start(&mut self, service: &str) -> anyhow::Result<()> {
        let (name, port, env): (&'static str, u16, HashMap<String, String>) = match service {
            "order-service" => (
                "order-service",
                self.order_port,
                self.env.order_service_env(),
            ),
            "payment-service" => {
                let mut env = self.env.payment_service_env();
                env.extend(self.faulted.toggles.iter().cloned());
                ("payment-service", self.payment_port, env)
            }
            other => anyhow::bail!("no service {other:?} in this stack"),
        };
        let slot = if name == "order-service" {
            &mut self.order
        } else {
            &mut self.payment
        };
        if slot.is_some() {
            anyhow::bail!("{name} is already running (press kill -9 first)");
        }
        let mut process =
            ServiceProcess::spawn_on(port, name, &env, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        process
            .wait_serving()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        *slot = Some(process);
        Ok(())
    }

    /// `kill -9`: the drills' `ServiceProcess::kill9`, nothing flushed or committed.
    pub fn kill9(&mut self, service: &str) -> anyhow::Result<()> {
        let slot = match service {
            "order-service" => &mut self.order,
            "payment-service" => &mut self.payment,
            other => anyhow::bail!("no service {other:?} in this stack"),
        };
        slot.take()
            .with_context(|| format!("{service} is not running"))?
            .kill9();
        Ok(())
    }
}

impl NativeStack {
    /// `bash infra/native/<script> args…` with `env`; its output on failure.
    pub async fn script(
        &self,
        script: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<String> {
        let path = self.root.join("infra/native").join(script);
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env = env.to_vec();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(&path)
                .args(&args)
                .envs(env)
                .output()
        })
        .await??;
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            Ok(text)
        } else {
            anyhow::bail!("{script} {}: {}", out.status, last_lines(&text, 4))
        }
    }

    pub fn pid_file(&self, service: &str) -> PathBuf {
        self.state.join(format!("services/{service}.pid"))
    }

    /// Did `make up` start this server itself (its script's `started-by-us` marker)? The
    /// page only stops servers `make up` started, never ones it found running.
    pub fn started_by_make_up(&self, dir: &str) -> bool {
        self.state.join(dir).join("started-by-us").is_file()
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Whether `path` names a process that is alive.
pub fn pid_alive(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}
