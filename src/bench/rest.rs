//! The REST read variant: authenticated `GET /api/customers` from many connections at once.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::scenario::RunningDaemon;
use super::tracker::latency_histogram;
use super::BenchError;
use crate::auth::Role;
use crate::crm::users::{self, Registration};
use crate::store::Store;

const ADMIN_EMAIL: &str = "bench-admin@bench.example.com";
const ADMIN_PASSWORD: &str = "bench-password-not-secret";

/// Registers the ADMIN the load logs in as (before the daemon starts).
pub async fn register_admin(store: &Store) -> Result<(), BenchError> {
    users::register(
        store,
        Registration {
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
            name: "Bench Admin".into(),
            role: Role::Admin,
            manager_id: None,
        },
        None,
        None,
    )
    .await
    .map_err(|error| BenchError::Setup(format!("cannot register the bench user: {error}")))?;
    Ok(())
}

/// Logs in through `POST /api/auth/login` and returns the bearer token.
pub async fn log_in(daemon: &RunningDaemon) -> Result<String, BenchError> {
    let response = reqwest::Client::new()
        .post(format!("{}/api/auth/login", daemon.base))
        .json(&serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .map_err(|error| BenchError::Daemon(format!("login failed: {error}")))?;
    if !response.status().is_success() {
        return Err(BenchError::Daemon(format!(
            "login answered {}",
            response.status()
        )));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|error| BenchError::Daemon(format!("login answered no JSON: {error}")))?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::Daemon("login answered no token".into()))
}

/// What the read load measured.
pub struct ReadLoad {
    /// Successful requests.
    pub requests: u64,
    /// Wall time of the load.
    pub elapsed: Duration,
    /// Request latencies (µs).
    pub latencies: Histogram<u64>,
}

/// `connections` clients, each sending `GET /api/customers` one after another for `duration`.
/// Any answer but 200 fails the run.
pub async fn read_load(
    daemon: &RunningDaemon,
    token: &str,
    connections: usize,
    duration: Duration,
) -> Result<ReadLoad, BenchError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .map_err(|error| BenchError::Setup(error.to_string()))?;
    let url = format!("{}/api/customers", daemon.base);
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, authorization) = (client.clone(), url.clone(), format!("Bearer {token}"));
        clients.spawn(async move {
            let mut latencies = latency_histogram();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = client
                    .get(&url)
                    .header("Authorization", &authorization)
                    .send()
                    .await
                    .map_err(|error| {
                        BenchError::Daemon(format!("GET /api/customers failed: {error}"))
                    })?;
                let status = response.status();
                let body = response.bytes().await.map_err(|error| {
                    BenchError::Daemon(format!("GET /api/customers failed: {error}"))
                })?;
                if status != reqwest::StatusCode::OK || body.is_empty() {
                    return Err(BenchError::Daemon(format!(
                        "GET /api/customers answered {status}"
                    )));
                }
                latencies.saturating_record(sent.elapsed().as_micros() as u64);
            }
            Ok::<_, BenchError>(latencies)
        });
    }
    let mut latencies = latency_histogram();
    while let Some(joined) = clients.join_next().await {
        let client_latencies = joined.map_err(|error| BenchError::Daemon(error.to_string()))??;
        latencies
            .add(&client_latencies)
            .map_err(|error| BenchError::Daemon(error.to_string()))?;
    }
    Ok(ReadLoad {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}
