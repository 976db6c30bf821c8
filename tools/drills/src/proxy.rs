//! A TCP proxy the drill can cut: the service talks to Postgres or Redis through it,
//! and "the database is down" is the proxy refusing and dropping connections — the
//! service sees exactly what an outage looks like, while the shared server keeps
//! running for everyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::DrillError;

#[derive(Debug)]
pub struct CuttableProxy {
    pub listen: String,
    up: Arc<AtomicBool>,
    /// Bumped on every cut: live connections watch it and drop.
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: String) -> Result<Self, DrillError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DrillError::Setup(format!("proxy bind: {e}")))?;
        let listen = listener
            .local_addr()
            .map_err(DrillError::setup)?
            .to_string();
        let up = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let task = {
            let up = Arc::clone(&up);
            let cuts = cuts.clone();
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Down: accept and drop at once, like a server that is gone.
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let mut inbound = inbound;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Ok(Self {
            listen,
            up,
            cuts,
            task,
        })
    }

    /// Drops every live connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
