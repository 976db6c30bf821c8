//! The shared infrastructure: found if it answers, started once if it does not.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use service_config::{DEFAULT_KAFKA_BOOTSTRAP_SERVERS, DEFAULT_POSTGRES_SERVER, DEFAULT_REDIS_URL};

/// Where the tests find the stack. Overridable with the same variables the services read
/// (`TEST_POSTGRES_URL` is the server URL without a database name).
#[derive(Debug, Clone)]
pub struct StackUrls {
    pub postgres_server: String,
    pub redis_url: String,
    pub kafka_bootstrap_servers: String,
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Returns the stack's addresses, starting the native stack first if something does
/// not answer. Several test processes may call this at once: the start script runs
/// under a file lock, and it reuses whatever already answers.
pub fn ensure_stack() -> &'static StackUrls {
    static STACK: OnceLock<StackUrls> = OnceLock::new();
    STACK.get_or_init(|| {
        let urls = StackUrls {
            postgres_server: std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_SERVER.to_owned()),
            redis_url: std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned()),
            kafka_bootstrap_servers: std::env::var("KAFKA_BOOTSTRAP_SERVERS")
                .unwrap_or_else(|_| DEFAULT_KAFKA_BOOTSTRAP_SERVERS.to_owned()),
        };
        if !all_answer(&urls) {
            start_native_stack();
            assert!(
                all_answer(&urls),
                "the native stack was started but does not answer; see .state/*/ logs"
            );
        }
        urls
    })
}

fn all_answer(urls: &StackUrls) -> bool {
    let mut endpoints = vec![host_port(&urls.postgres_server), host_port(&urls.redis_url)];
    endpoints.extend(
        urls.kafka_bootstrap_servers
            .split(',')
            .map(|s| s.trim().to_owned()),
    );
    endpoints.iter().all(|addr| tcp_answers(addr))
}

/// `scheme://user:pass@host:port/...` → `host:port`.
fn host_port(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let after_auth = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, rest)| rest);
    after_auth
        .split('/')
        .next()
        .unwrap_or(after_auth)
        .to_owned()
}

fn tcp_answers(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|sock| {
            std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(500)).is_ok()
        })
}

fn start_native_stack() {
    let root = repo_root();
    let state = root.join(".state");
    std::fs::create_dir_all(&state).expect("creating .state");
    let status = Command::new("flock")
        .arg(state.join("stack.lock"))
        .arg("bash")
        .arg(root.join("infra/native/stack.sh"))
        .arg("start")
        .status()
        .expect("running infra/native/stack.sh (is flock installed?)");
    assert!(
        status.success(),
        "infra/native/stack.sh start failed: {status}"
    );
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_strips_scheme_credentials_and_path() {
        assert_eq!(
            host_port("postgres://u:p@127.0.0.1:5432/db"),
            "127.0.0.1:5432"
        );
        assert_eq!(host_port("redis://127.0.0.1:6379"), "127.0.0.1:6379");
    }
}
