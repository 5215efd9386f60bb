//! The daemon's link to PostgreSQL goes down and comes back: the server refuses nothing, but
//! nothing from the daemon reaches it. A cut closes the daemon's connections at both ends, as a
//! server restart does; a partition leaves the server's ends open, so the server keeps the
//! daemon's sessions, and what they hold, until it notices (by TCP keepalive, hours by
//! default).
//!
//! Several threads, because starting the daemon blocks the test's thread while the link must
//! carry its connections.

use std::time::Duration;

use serde_json::json;

use super::database_link::DatabaseLink;
use super::stream::{
    assert_counted_once, assert_ready_again, assert_second_daemon_refused, bus_lock_holder,
    counting_project, database_name, post_all,
};
use crate::support::{drained, eventually, Daemon, Project, API_KEY};

/// A daemon on the project's database, through `link`.
fn start_behind(project: &Project, link: &DatabaseLink) -> Daemon {
    Daemon::start_at(
        project,
        &link.url(&database_name(project)),
        &[("CRM_ROUTER_API_KEY", API_KEY)],
    )
}

fn event_ids(block: char, n: usize) -> Vec<String> {
    (0..n)
        .map(|n| format!("00000000-0000-4000-{block}000-{n:012}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_503_and_everything_recovers_when_it_ends() {
    let Some(project) = counting_project() else {
        return;
    };
    let link = DatabaseLink::start().await;
    let daemon = start_behind(&project, &link);
    let ids = event_ids('c', 200);
    let db = project.database().await;

    // An outage in the middle of a stream: clients see 503s and send again; nothing is lost.
    let (before, during) = ids[..100].split_at(40);
    post_all(&daemon, before).await;
    link.cut();
    let outage = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        link.restore();
    };
    let (unavailable, ()) = tokio::join!(post_all(&daemon, during), outage);
    assert!(
        unavailable > 0,
        "requests during the outage were answered 503"
    );
    drained(&db).await;
    assert_counted_once(&db, &ids[..100], &daemon).await;

    // An outage while the daemon is idle: REST writes are a 503 at once and /readyz says why;
    // once the database is back the daemon is ready again, without an event having to pass.
    link.cut();
    let (status, body) = daemon
        .post_event("test.events", json!({"eventType": "COUNT", "data": {}}))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("unavailable")),
        "{body}"
    );
    let reasons = eventually(
        Duration::from_secs(10),
        "/readyz to report the consumer's failure",
        || async {
            let (status, body) = daemon.get("/readyz").await;
            let reasons = body["reasons"].to_string();
            (status == 503 && reasons.contains("event consumer")).then_some(reasons)
        },
    )
    .await;
    assert!(reasons.contains("database"), "{reasons}");
    link.restore();
    assert_ready_again(&daemon).await;
    post_all(&daemon, &ids[100..]).await;
    drained(&db).await;
    assert_counted_once(&db, &ids, &daemon).await;
}

// The partition comes while the daemon is idle, so the sessions it strands hold no transaction:
// the bus lock is what they keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_partition_the_daemon_takes_the_bus_back_from_its_stranded_session() {
    let Some(project) = counting_project() else {
        return;
    };
    let link = DatabaseLink::start().await;
    let mut daemon = start_behind(&project, &link);
    let ids = event_ids('d', 40);
    let db = project.database().await;
    post_all(&daemon, &ids[..20]).await;
    drained(&db).await;

    let stranded_holder = bus_lock_holder(&db).await;
    assert!(stranded_holder.is_some());
    link.partition();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    link.restore();
    assert!(
        link.stranded() > 0,
        "the partition stranded sessions at the server"
    );
    // The daemon ends its own stranded session and takes the lock again on a new one, instead
    // of taking the old session for another daemon's and stopping.
    eventually(
        Duration::from_secs(10),
        "the daemon to hold the bus lock on a new session",
        || async {
            let holder = bus_lock_holder(&db).await;
            (holder.is_some() && holder != stranded_holder).then_some(())
        },
    )
    .await;
    assert!(daemon.is_running(), "{}", daemon.log());
    assert!(
        daemon
            .log()
            .contains("ended this process's own database session"),
        "{}",
        daemon.log()
    );
    assert_ready_again(&daemon).await;
    assert_second_daemon_refused(&project);
    post_all(&daemon, &ids[20..]).await;
    drained(&db).await;
    assert_counted_once(&db, &ids, &daemon).await;
}
