//! SIGKILL in the middle of a stream of 1,000 events, repeatedly: after restarts every event's
//! effects (rows, counters, emitted events and their effects) exist exactly once.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use test_case::test_case;
use tokio::task::JoinSet;

// The counting routes the fault tests share: a row, a counter and an emitted CHILD per event.
use crate::faults::stream::{MIGRATION, ROUTES};
use crate::support::{count, drained, Backend, Project};

const EVENTS: usize = 1_000;
const CONCURRENCY: usize = 8;

/// Whether the log holds events the consumer has not committed yet.
async fn consumer_is_behind(db: &sqlx::AnyPool) -> bool {
    let (head, position): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM event_log), \
                (SELECT COALESCE(MAX(position), 0) FROM consumer_positions)",
    )
    .fetch_one(db)
    .await
    .unwrap();
    position < head
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sigkill_mid_stream_applies_every_effect_exactly_once(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_effects.sql", MIGRATION);
    project.write("routes/count.yaml", ROUTES);
    let mut accepted: HashSet<String> = HashSet::new();
    let mut kills = 0;
    let mut kills_with_work_pending = 0;
    let mut db = None;
    let mut next = 0usize;
    while accepted.len() < EVENTS {
        let mut daemon = project.start();
        if db.is_none() {
            db = Some(project.database().await);
        }
        let db = db.as_ref().expect("opened above");
        let kill_after = 60 + fastrand::usize(..200);
        let mut sent_this_round = 0;
        while accepted.len() < EVENTS && sent_this_round < kill_after {
            let mut posts = JoinSet::new();
            for _ in 0..CONCURRENCY.min(EVENTS - accepted.len()) {
                let id = format!("00000000-0000-4000-8000-{next:012}");
                let key = format!("k{}", next % 7);
                next += 1;
                let client = reqwest::Client::new();
                let url = format!("{}/api/events/test.events", daemon.base);
                posts.spawn(async move {
                    let response = client
                        .post(url)
                        .header("x-api-key", crate::support::API_KEY)
                        .json(&json!({"eventId": id, "eventType": "COUNT", "key": key, "data": {}}))
                        .send()
                        .await;
                    (id, response.map(|response| response.status().as_u16()))
                });
            }
            while let Some(result) = posts.join_next().await {
                let (id, status) = result.unwrap();
                assert_eq!(status.unwrap(), 202);
                accepted.insert(id);
                sent_this_round += 1;
            }
        }
        // The tail of the stream is killed too, while it is still being processed.
        if consumer_is_behind(db).await {
            kills_with_work_pending += 1;
        }
        daemon.kill();
        kills += 1;
    }
    assert!(kills >= 4, "the stream was interrupted {kills} times");
    assert!(
        kills_with_work_pending >= 1,
        "no kill landed while events were still unprocessed ({kills} kills)"
    );

    let _daemon = project.start();
    let db = db.expect("the daemon ran at least once");
    drained(&db).await;
    let n = EVENTS as i64;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'COUNT'"
        )
        .await,
        n
    );
    let logged: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM event_log WHERE event_type = 'COUNT'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        logged.into_iter().collect::<HashSet<_>>(),
        accepted,
        "every accepted write has its event"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'CHILD'"
        )
        .await,
        n
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM effects WHERE kind = 'parent'").await,
        n
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(DISTINCT event_id) FROM effects WHERE kind = 'parent'"
        )
        .await,
        n
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM effects WHERE kind = 'child'").await,
        n
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(DISTINCT event_id) FROM effects WHERE kind = 'child'"
        )
        .await,
        n
    );
    assert_eq!(
        count(&db, "SELECT value FROM counters WHERE name = 'parents'").await,
        n
    );
    assert_eq!(
        count(&db, "SELECT value FROM counters WHERE name = 'children'").await,
        n
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sigterm_finishes_the_batch_and_exits_zero(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_effects.sql", MIGRATION);
    project.write("routes/count.yaml", ROUTES);
    let mut daemon = project.start();
    for n in 0..50 {
        let body = json!({"eventId": format!("00000000-0000-4000-9000-{n:012}"), "eventType": "COUNT", "data": {}});
        assert_eq!(daemon.post_event("test.events", body).await.0, 202);
    }
    let started = std::time::Instant::now();
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!daemon.is_running());
    assert!(daemon.log().contains("stopped cleanly"), "{}", daemon.log());
    // Whatever was committed before the stop is consistent, and a restart finishes the rest.
    let _daemon = project.start();
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT value FROM counters WHERE name = 'children'").await,
        50
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM effects").await, 100);
}

/// The embedded bus is single-instance: a second daemon on the same database refuses to start
/// and says what to do instead; once the first dies (even by SIGKILL), a new one starts.
async fn second_daemon_refused(project: Project) {
    project.write("migrations/20270101000000_effects.sql", MIGRATION);
    project.write("routes/count.yaml", ROUTES);
    let mut first = project.start();
    let stderr = project.refused_start(&[("RUST_LOG", "info,sqlx=warn")]);
    assert!(
        stderr.contains("another crm-router already runs the embedded event bus on")
            && stderr.contains("KAFKA_ENABLED=true"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    // The first daemon is unaffected, and its death frees the bus for a replacement.
    assert!(first.is_running());
    first.kill();
    let replacement = project.start();
    let body = json!({"eventType": "COUNT", "data": {}});
    assert_eq!(replacement.post_event("test.events", body).await.0, 202);
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM effects WHERE kind = 'child'").await,
        1
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_second_daemon_on_the_embedded_bus_refuses_to_start(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    second_daemon_refused(project).await;
}

/// A daemon killed on PostgreSQL keeps the bus lock until the server's backend for its
/// session reads the closed socket, a moment later: a replacement started at once waits that
/// out instead of being refused. Here a `psql` session stands for the dying holder, letting
/// go of the lock a second and a half after the replacement starts.
#[tokio::test]
async fn a_replacement_outlasts_a_dying_holders_lock_on_postgres() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    project.write("migrations/20270101000000_effects.sql", MIGRATION);
    project.write("routes/count.yaml", ROUTES);
    // The embedded bus's advisory lock key ("crmrbus").
    let key = 0x63_72_6d_72_62_75_73_i64;
    let mut holder = std::process::Command::new("psql")
        .arg(project.database_url())
        .args([
            "-q",
            "-c",
            &format!("SELECT pg_advisory_lock({key}), pg_sleep(1.5)"),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let db = project.database().await;
    let held = format!(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {} AND granted",
        key & 0xffff_ffff
    );
    crate::support::eventually(
        Duration::from_secs(10),
        "psql to hold the bus lock",
        || async { (count(&db, &held).await == 1).then_some(()) },
    )
    .await;
    let daemon = project.start();
    assert!(holder.wait().unwrap().success());
    let body = json!({"eventType": "COUNT", "data": {}});
    assert_eq!(daemon.post_event("test.events", body).await.0, 202);
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM effects WHERE kind = 'child'").await,
        1
    );
}
