//! PostgreSQL terminates the daemon's sessions, all of them, again and again while events
//! stream in, as an administrator's `pg_terminate_backend` or a failover would.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;
use tokio::task::JoinSet;

use super::stream::{
    assert_counted_once, assert_ready_again, assert_second_daemon_refused, bus_lock_holder,
    counting_project, database_name, fail_with_errors, post_until_accepted,
};
use crate::support::{count, drained, eventually, Project};

/// How many times the daemon's sessions are terminated while events stream in.
const KILLS_MID_STREAM: usize = 8;

/// Time between two kills.
const KILL_EVERY: Duration = Duration::from_millis(350);

/// Terminates every server process connected to `database`; returns how many there were.
async fn terminate_sessions(database: &str) -> usize {
    assert!(
        database.starts_with("crm_router_test_"),
        "only a test's own database: {database}"
    );
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    // The call stays in the select list: there it runs only for the rows the WHERE clause kept.
    // In the WHERE clause the planner may call it before the other conditions, on every session
    // of the server.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    terminated.into_iter().filter(|&killed| killed).count()
}

/// Whether the log holds events the consumer has not committed yet. The connection is closed
/// again at once, so that the next kill finds only the daemon's sessions.
async fn consumer_is_behind(project: &Project) -> bool {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&project.database_url())
        .await
        .unwrap();
    let (head, position): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM event_log), \
                (SELECT COALESCE(MAX(position), 0) FROM consumer_positions)",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    position < head
}

/// What the kills found.
#[derive(Debug, Default)]
struct Kills {
    /// Sessions terminated by each kill.
    terminated: Vec<usize>,
    /// How many kills came while the consumer had events left to commit.
    while_behind: usize,
}

impl Kills {
    async fn kill(&mut self, project: &Project, database: &str) {
        if consumer_is_behind(project).await {
            self.while_behind += 1;
        }
        self.terminated.push(terminate_sessions(database).await);
    }
}

#[tokio::test]
async fn terminated_sessions_lose_nothing_double_nothing_and_the_daemon_recovers() {
    let Some(project) = counting_project() else {
        return;
    };
    let mut daemon = project.start();
    let database = database_name(&project);

    // Events stream in, eight requests at a time, and the daemon's sessions are terminated
    // every few hundred milliseconds, while requests are in flight; the stream goes on until
    // the last kill.
    let client = reqwest::Client::new();
    let url = format!("{}/api/events/test.events", daemon.base);
    let mut accepted = Vec::new();
    let mut unavailable = 0;
    let mut kills = Kills::default();
    let mut next_kill = Instant::now() + KILL_EVERY;
    while kills.terminated.len() < KILLS_MID_STREAM {
        let mut posts = JoinSet::new();
        for _ in 0..8 {
            let id = format!(
                "00000000-0000-4000-8000-{:012}",
                accepted.len() + posts.len()
            );
            let request = post_until_accepted(client.clone(), url.clone(), id.clone());
            posts.spawn(async move { (id, request.await) });
        }
        if Instant::now() >= next_kill {
            kills.kill(&project, &database).await;
            next_kill = Instant::now() + KILL_EVERY;
        }
        let mut round = Vec::new();
        while let Some(result) = posts.join_next().await {
            let (id, answer) = result.unwrap();
            match answer {
                Ok(answers_503) => unavailable += answers_503,
                Err(problem) => fail_with_errors(&daemon, &problem),
            }
            round.push(id);
        }
        accepted.extend(round);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Once more after the stream, once the daemon holds the bus lock again on a new session.
    let db = project.database().await;
    eventually(
        Duration::from_secs(10),
        "the daemon to hold the bus lock again",
        || async { bus_lock_holder(&db).await },
    )
    .await;
    db.close().await;
    kills.kill(&project, &database).await;
    eprintln!(
        "{} events accepted, {unavailable} answers 503, {kills:?}",
        accepted.len()
    );
    assert!(
        kills.while_behind > 0,
        "no kill came while events were still unprocessed: {kills:?}"
    );
    assert!(
        kills.terminated.iter().all(|&sessions| sessions > 0),
        "every kill found daemon sessions to terminate: {kills:?}"
    );

    let db = project.database().await;
    drained(&db).await;
    assert_counted_once(&db, &accepted, &daemon).await;

    // The daemon is whole again: running, ready, holding the embedded bus, and routing.
    assert!(daemon.is_running(), "{}", daemon.log());
    assert_ready_again(&daemon).await;
    eventually(
        Duration::from_secs(10),
        "the daemon to hold the bus lock again",
        || async { bus_lock_holder(&db).await },
    )
    .await;
    assert_second_daemon_refused(&project);
    let (status, body) = daemon
        .post_event("test.events", json!({"eventType": "COUNT", "data": {}}))
        .await;
    assert_eq!(status, 202, "{body}");
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT value FROM counters WHERE name = 'children'").await,
        accepted.len() as i64 + 1
    );
}
