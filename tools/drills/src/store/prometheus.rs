//! A Prometheus of the drill's own (`infra/native/prometheus.sh`, Debian's binary), scraping
//! the drill cluster's exporters every 2 s and evaluating the project's real alert rules
//! (`infra/prometheus/alerts.yml`), so a drill can show which alerts a fault fires.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::cluster::{DrillCluster, state_dir};
use crate::error::DrillError;
use crate::native_script;

/// A running Prometheus, stopped on drop.
#[derive(Debug)]
pub struct DrillPrometheus {
    name: String,
    port: u16,
    client: reqwest::Client,
}

/// One alert as `/api/v1/alerts` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub labels: std::collections::BTreeMap<String, String>,
    /// `pending` (the expression holds, `for` not yet over) or `firing`.
    pub state: String,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

#[derive(Deserialize)]
struct AlertsResponse {
    data: AlertsData,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct QueryResponse {
    data: QueryData,
}

#[derive(Deserialize)]
struct QueryData {
    result: Vec<QuerySample>,
}

#[derive(Deserialize)]
struct QuerySample {
    value: (f64, String),
}

impl DrillPrometheus {
    /// Starts Prometheus on `port`, scraping `cluster`'s exporters and no services.
    pub fn start(cluster: &DrillCluster, port: u16) -> Result<Self, DrillError> {
        let name = format!("drill-{}", cluster.name());
        let prometheus = Self {
            name,
            port,
            client: reqwest::Client::new(),
        };
        prometheus.run("start", &cluster.metrics_targets().join(","))?;
        Ok(prometheus)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn run(&self, command: &str, kafka_targets: &str) -> Result<(), DrillError> {
        let mut prometheus_sh = native_script::command("prometheus.sh", &[command]);
        prometheus_sh
            .env("PROMETHEUS_NAME", &self.name)
            .env("PROMETHEUS_PORT", self.port.to_string())
            .env("PROMETHEUS_KAFKA_TARGETS", kafka_targets)
            .env("PROMETHEUS_SERVICE_TARGETS", "")
            .env("PROMETHEUS_SCRAPE_INTERVAL", "2s")
            .stdout(std::process::Stdio::null());
        native_script::run(prometheus_sh, &format!("prometheus.sh {command}"))
    }

    /// The alerts that are pending or firing now.
    pub async fn alerts(&self) -> Result<Vec<Alert>, DrillError> {
        let url = reqwest::Url::parse(&format!("{}/api/v1/alerts", self.url()))
            .map_err(DrillError::unexpected)?;
        let response: AlertsResponse = self.get_json(url).await?;
        Ok(response.data.alerts)
    }

    /// One bounded GET of the HTTP API, its JSON answer decoded.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
    ) -> Result<T, DrillError> {
        self.client
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(DrillError::unexpected)?
            .json()
            .await
            .map_err(DrillError::unexpected)
    }

    /// The value of an instant query that returns one sample (`None`: no sample).
    pub async fn query(&self, promql: &str) -> Result<Option<f64>, DrillError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url()),
            &[("query", promql)],
        )
        .map_err(DrillError::unexpected)?;
        let response: QueryResponse = self.get_json(url).await?;
        Ok(response
            .data
            .result
            .first()
            .and_then(|s| s.value.1.parse().ok()))
    }

    /// Waits until every alert in `names` is in one of `states` (e.g. `["firing"]`), or
    /// `within` passes; returns what it saw last, for the report.
    pub async fn wait_for_alerts(
        &self,
        names: &[&str],
        states: &[&str],
        within: Duration,
    ) -> Result<Vec<Alert>, DrillError> {
        let deadline = Instant::now() + within;
        loop {
            let alerts = self.alerts().await.unwrap_or_default();
            let all = names.iter().all(|n| {
                alerts
                    .iter()
                    .any(|a| a.name() == *n && states.contains(&a.state.as_str()))
            });
            if all {
                return Ok(alerts);
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = alerts
                    .iter()
                    .map(|a| format!("{} {}", a.name(), a.state))
                    .collect();
                return Err(DrillError::Timeout(format!(
                    "alerts {names:?} not {states:?} within {within:?}; seen: {seen:?}"
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Drop for DrillPrometheus {
    fn drop(&mut self) {
        let _ = self.run("stop", "");
        // Its scrapes are worth nothing after the drill.
        let _ = std::fs::remove_dir_all(state_dir().join(format!("prometheus-{}", self.name)));
    }
}
