//! Unauthenticated floods on loopback, bounded in count and time: password hashing (Argon2id,
//! about 19 MiB a hash) is bounded, so a flood of sign-ups and logins neither exhausts memory
//! nor starves other requests. Those over the bound are told to come back (503, Retry-After).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Daemon, Project};

/// Concurrent sign-ups and logins, half each: more than the hashing queue holds on any machine
/// (at most 4 threads with 33 places each).
const FLOOD: usize = 500;

/// The daemon's peak resident memory so far, in MiB (`VmHWM`).
fn peak_rss_mib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_ups_and_logins_keeps_memory_bounded_and_others_answered() {
    let project = Project::empty();
    let daemon = project.start();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..FLOOD {
        let (client, base) = (client.clone(), daemon.base.clone());
        flood.spawn(async move {
            let (path, body) = if n % 2 == 0 {
                (
                    "/api/auth/register",
                    json!({"email": format!("flood{n}@example.com"), "password": "Password123!", "name": "F"}),
                )
            } else {
                (
                    "/api/auth/login",
                    json!({"email": format!("flood{n}@example.com"), "password": "Password123!"}),
                )
            };
            let response = client
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            (response.status().as_u16(), retry_after)
        });
    }
    // While the flood runs, the daemon keeps answering everyone else promptly.
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, _) = daemon.get("/healthz").await;
        assert_eq!(status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "/healthz took {:?} during the flood",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut busy = 0;
    while let Some(answer) = flood.join_next().await {
        let (status, retry_after) = answer.unwrap();
        match status {
            // Registered, wrong credentials, throttled by the login limiter.
            201 | 401 | 429 => {}
            503 => {
                busy += 1;
                assert_eq!(retry_after.unwrap(), "1");
            }
            other => panic!("unexpected status {other}\n{}", daemon.log()),
        }
    }
    assert!(busy > 0, "500 concurrent hashes were all admitted");
    let peak = peak_rss_mib(&daemon);
    assert!(peak <= 256, "peak RSS {peak} MiB during the flood");
}
