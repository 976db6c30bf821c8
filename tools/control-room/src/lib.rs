//! The control room (docs/en/13-control-room.md): one page that shows the whole chain —
//! accepted → outbox → Kafka → consumed → applied → PAID — every second, lets a user
//! break it (kill -9 a service, stop a broker, cut a database, re-deliver messages,
//! switch a defence off) and shows, with the reconciliation checker's own code, that
//! nothing was lost and nothing applied twice.
//!
//! Mechanism only: every fault is the drills' code path (`tools/drills`,
//! `infra/native/*.sh`), every verdict `tools/reconcile`'s, every trace `tools/trace-view`'s.

pub mod counters;
pub mod faults;
pub mod follow;
pub mod load;
pub mod stack;
pub mod verdict;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Mutex;

pub use stack::Mode;

/// Everything the handlers share.
#[derive(Debug)]
pub struct Shared {
    pub targets: stack::Targets,
    /// The processes and proxies the faults act on; one action at a time.
    pub control: Mutex<stack::Control>,
    pub marks: faults::Marks,
    pub counters: counters::Live,
    pub verdict: verdict::Latest,
    pub load: load::Generator,
    /// A copy of what the faults changed, readable while an action holds `control`.
    pub faulted: std::sync::Mutex<stack::Faulted>,
    /// Why faults are refused, if they are.
    pub refused: Option<String>,
}

#[derive(Debug)]
pub struct App {
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
}

impl App {
    /// Finds (native) or starts (own stack) what the page watches, and binds 127.0.0.1
    /// only: the fault buttons must not be reachable from another machine.
    pub async fn build(mode: Mode, port: u16) -> anyhow::Result<Self> {
        let (targets, control) = stack::prepare(mode).await?;
        let refused = control.refused().map(str::to_owned);
        let shared = Arc::new(Shared {
            targets,
            faulted: std::sync::Mutex::default(),
            refused,
            control: Mutex::new(control),
            marks: faults::Marks::default(),
            counters: counters::Live::default(),
            verdict: verdict::Latest::default(),
            load: load::Generator::default(),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .with_context(|| format!("bind 127.0.0.1:{port}"))?;
        Ok(Self { shared, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let url = format!("http://{addr}/");
        tracing::info!("control room: {url}");
        if let Ok(file) = std::env::var("CONTROL_ROOM_URL_FILE") {
            std::fs::write(&file, &url).with_context(|| format!("write {file}"))?;
        }
        tokio::spawn(counters::run(Arc::clone(&self.shared)));
        tokio::spawn(verdict::run(Arc::clone(&self.shared)));
        let shared = Arc::clone(&self.shared);
        axum::serve(self.listener, web::router(Arc::clone(&self.shared)))
            .with_graceful_shutdown(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    () = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
                }
            })
            .await?;
        // Nothing left half-done: what the page broke is healed, what it started stopped.
        shared.load.stop();
        let mut control = shared.control.lock().await;
        faults::on_shutdown(&shared.targets, &mut control).await;
        control.shutdown().await;
        Ok(())
    }
}
