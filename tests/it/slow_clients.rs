//! Slow, idle and numerous clients on loopback, bounded in count and time: they cannot make the
//! daemon run out of files, hold connections past the head and body timeouts, delay other
//! clients' requests beyond a second, or hold up a shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Daemon, Project, API_KEY};

/// Half a request line: the classic slow client.
const HALF_A_REQUEST: &[u8] = b"GET /healthz HT";

fn address(daemon: &Daemon) -> String {
    daemon.base.trim_start_matches("http://").to_owned()
}

async fn connect(daemon: &Daemon) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address(daemon)))
        .await
        .expect("connecting took over 10 s")
        .unwrap()
}

/// Reads until the server closes the connection, for at most `bound`. Returns what the server
/// sent, or `None` when the connection was still open at the end.
async fn until_closed(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(bound, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    closed
        .is_ok()
        .then(|| String::from_utf8_lossy(&received).into_owned())
}

/// `GET /healthz` on a connection of its own must be answered within a second.
async fn healthz_answers_within_a_second(daemon: &Daemon) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let asked = Instant::now();
    let answer = client.get(format!("{}/healthz", daemon.base)).send().await;
    let took = asked.elapsed();
    let status = answer
        .unwrap_or_else(|error| panic!("/healthz got no answer ({error})\n{}", daemon.log()))
        .status();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
}

/// The reported defect: with the daemon at 256 open files, a few hundred sockets that sent half
/// a request line made `accept` fail with "Too many open files", and nobody got an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_clients_neither_exhaust_files_nor_delay_others() {
    let project = Project::empty();
    let daemon =
        Daemon::start_with_open_files_limit(&project, &[("CRM_ROUTER_API_KEY", API_KEY)], 256);
    let mut slow = Vec::with_capacity(1_000);
    for n in 0..1_000 {
        let mut stream = connect(&daemon).await;
        // Half of them send half a request line, the others nothing at all.
        if n % 2 == 0 {
            stream.write_all(HALF_A_REQUEST).await.unwrap();
        }
        slow.push(stream);
    }
    for _ in 0..5 {
        healthz_answers_within_a_second(&daemon).await;
    }
    // Room was made by closing the oldest connections without a request in flight.
    let oldest = until_closed(&mut slow[0], Duration::from_secs(5)).await;
    assert_eq!(oldest.as_deref(), Some(""), "the oldest slow client");
    let log = daemon.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("max_connections"), "{log}");
}

/// A configured connection limit holds the same way, far below the open-files limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_the_oldest_idle_connection_makes_room() {
    let project = Project::empty();
    project.write("crm-router.yaml", "http:\n  max_connections: 20\n");
    let daemon = project.start();
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(connect(&daemon).await);
    }
    healthz_answers_within_a_second(&daemon).await;
    for stream in &mut idle[..10] {
        let closed = until_closed(stream, Duration::from_secs(5)).await;
        assert_eq!(closed.as_deref(), Some(""), "one of the oldest connections");
    }
    assert!(
        daemon.log().contains("max_connections=20"),
        "{}",
        daemon.log()
    );
}

/// Checks that the server closed `stream` between `at_least` and 5 s after `since`, and returns
/// what it sent.
async fn closed_between(
    stream: &mut TcpStream,
    since: Instant,
    at_least: Duration,
    what: &str,
) -> String {
    let received = until_closed(stream, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{what}: still open after 5 s"));
    let after = since.elapsed();
    assert!(after >= at_least, "{what}: closed already after {after:?}");
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_whole_request_head_are_closed_after_the_head_timeout() {
    let project = Project::empty();
    project.write("crm-router.yaml", "http:\n  request_head_timeout: 1s\n");
    let daemon = project.start();
    let started = Instant::now();
    let mut silent = connect(&daemon).await;
    let mut half = connect(&daemon).await;
    half.write_all(HALF_A_REQUEST).await.unwrap();
    // A head sent a byte every 100 ms would take 3 s; the timeout counts from the start.
    let trickling = connect(&daemon).await;
    let (mut trickle_read, mut trickle_write) = trickling.into_split();
    tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" {
            if trickle_write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Kept alive after an answer, then idle.
    let mut kept_alive = connect(&daemon).await;
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();

    let at_least = Duration::from_millis(900);
    let answered = closed_between(&mut kept_alive, started, at_least, "kept alive").await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(
        closed_between(&mut silent, started, at_least, "silent").await,
        ""
    );
    assert_eq!(
        closed_between(&mut half, started, at_least, "half a request line").await,
        ""
    );
    let mut buffer = Vec::new();
    let trickled = tokio::time::timeout(
        Duration::from_millis(2500),
        trickle_read.read_to_end(&mut buffer),
    )
    .await;
    assert!(
        trickled.is_ok(),
        "a head trickling in was still open after 2.5 s"
    );
    assert!(buffer.is_empty(), "{}", String::from_utf8_lossy(&buffer));
    healthz_answers_within_a_second(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_trickling_in_is_refused_at_the_body_timeout() {
    let project = Project::empty();
    project.write("crm-router.yaml", "http:\n  request_body_timeout: 1s\n");
    let daemon = project.start();
    let stream = connect(&daemon).await;
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    write
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    // The remaining 99 bytes, one every 100 ms: 10 s if the server waited for all of them.
    tokio::spawn(async move {
        for _ in 0..99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let read_all =
        tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read_all.is_ok(), "still open after 5 s: {answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("the request body did not arrive within 1 s"),
        "{answer}"
    );
}

/// SIGTERM closes connections that have no request in flight at once instead of waiting for
/// their clients until the grace period runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_clients_without_a_request() {
    let project = Project::empty();
    let mut daemon = project.start();
    let _silent = connect(&daemon).await;
    let mut half = connect(&daemon).await;
    half.write_all(HALF_A_REQUEST).await.unwrap();
    let mut kept_alive = connect(&daemon).await;
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut status_line = [0u8; 12];
    kept_alive.read_exact(&mut status_line).await.unwrap();
    assert_eq!(&status_line, b"HTTP/1.1 200");
    // Let the server see the half request line before the stop signal.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = Instant::now();
    let code = daemon.terminate();
    let took = stopping.elapsed();
    assert_eq!(code, Some(0), "{}", daemon.log());
    assert!(took < Duration::from_secs(4), "stopping took {took:?}");
    assert!(daemon.log().contains("stopped cleanly"), "{}", daemon.log());
}
