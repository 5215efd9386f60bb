//! Unauthenticated floods on loopback, bounded in count and time. A flood from one address
//! meets the sign-up and login throttles (429, Retry-After). One spread over many addresses
//! passes them and meets the bound on password hashing (Argon2id, about 19 MiB a hash), so it
//! neither exhausts memory nor starves other requests; those over the bound are told to come
//! back (503, Retry-After).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::crm_flows::{create_user_with_cli, Client};
use crate::support::{Daemon, Project};

/// Concurrent sign-ups and logins, half each: more than the hashing queue holds on any machine
/// (at most 4 threads with 33 places each).
const FLOOD: usize = 500;

/// The flood comes from this many loopback addresses (127.0.1.1, ...), each staying under the
/// per-address throttles: ten requests, five sign-ups and five logins.
const FLOOD_ADDRESSES: usize = 50;

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
    let clients: Vec<reqwest::Client> = (0..FLOOD_ADDRESSES)
        .map(|n| {
            let address = Ipv4Addr::new(127, 0, 1, u8::try_from(n + 1).unwrap());
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .local_address(IpAddr::V4(address))
                .build()
                .unwrap()
        })
        .collect();
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..FLOOD {
        let (client, base) = (clients[n % FLOOD_ADDRESSES].clone(), daemon.base.clone());
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
            // Registered, or wrong credentials.
            201 | 401 => {}
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

/// A client from one address signing up as fast as it can.
fn register_from(address: Ipv4Addr, base: &str, email: &str) -> reqwest::RequestBuilder {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .build()
        .unwrap()
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": "Password123!", "name": "S"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ups_from_one_address_is_throttled_and_others_keep_answering() {
    let project = Project::empty();
    let daemon = project.start();
    let flooder = Ipv4Addr::new(127, 0, 2, 1);
    // 25 at once: the check comes before hashing, so all of them fall within one refill
    // period (6 s) and exactly the burst of 20 gets through.
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..25 {
        let request = register_from(flooder, &daemon.base, &format!("burst{n}@example.com"));
        burst.spawn(async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, retry_after, body)
        });
    }
    let (mut registered, mut throttled) = (0, 0);
    // Which 20 get through depends on arrival order; one of them logs in below.
    let mut a_registered_email = None;
    while let Some(answer) = burst.join_next().await {
        let (status, retry_after, body) = answer.unwrap();
        match status {
            201 => {
                registered += 1;
                a_registered_email = body["email"].as_str().map(str::to_owned);
            }
            429 => {
                throttled += 1;
                assert_eq!(body["code"], "too_many_requests", "{body}");
                assert_eq!(
                    body["message"],
                    "too many sign-ups from this address; try again later"
                );
                let seconds: u64 = retry_after
                    .expect("a Retry-After header")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=6).contains(&seconds), "Retry-After: {seconds}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((registered, throttled), (20, 5));

    // The throttled address still reaches everything else.
    let anonymous = Client::anonymous(&daemon);
    let email = a_registered_email.expect("some sign-ups got through");
    let login = anonymous.login(&email, "Password123!").await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(daemon.get("/healthz").await.0, 200);
    let again = register_from(flooder, &daemon.base, "again@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 429);
    // Another address signs up as usual, and an ADMIN adding users is not a sign-up.
    let neighbour = register_from(Ipv4Addr::new(127, 0, 2, 2), &daemon.base, "n@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(neighbour.status(), 201);
    create_user_with_cli(&project, "admin@example.com", "Admin", "ADMIN");
    let admin_login = anonymous.login("admin@example.com", "Password123!").await;
    assert_eq!(admin_login.status, 200, "{}", admin_login.body);
    let admin_token = admin_login.body["token"].as_str().unwrap().to_owned();
    let by_admin = register_from(flooder, &daemon.base, "team@example.com")
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_admin.status(), 201);
}
