//! The stream of COUNT events the database faults interrupt, and what must hold after them.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::AnyPool;
use tokio::task::JoinSet;

use crate::support::{count, Daemon, Project, API_KEY};

// `effects` has no unique key on purpose: an event applied twice shows up as a duplicate row
// instead of failing.
pub const MIGRATION: &str = "
CREATE TABLE effects (event_id TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0);
";

/// Each COUNT event writes a row, moves a counter and emits a CHILD, which writes a row and
/// moves a counter of its own.
pub const ROUTES: &str = r#"routes:
  - name: count
    on: {topic: test.events, type: COUNT}
    actions:
      - insert: {table: effects, values: {event_id: "{{ event.eventId }}", kind: parent}}
      - upsert: {table: counters, where: {name: parents}, increment: {value: 1}}
      - emit: {topic: test.events, eventType: CHILD, key: "{{ event.key }}", data: {parent: "{{ event.eventId }}"}}
  - name: child
    on: {topic: test.events, type: CHILD}
    actions:
      - insert: {table: effects, values: {event_id: "{{ data.parent }}", kind: child}}
      - upsert: {table: counters, where: {name: children}, increment: {value: 1}}
"#;

/// A project on PostgreSQL with the counting routes, or `None` (skip) when PostgreSQL is not
/// reachable outside CI.
pub fn counting_project() -> Option<Project> {
    let project = Project::empty_on(crate::support::Backend::Postgres)?;
    project.write("migrations/20270101000000_effects.sql", MIGRATION);
    project.write("routes/count.yaml", ROUTES);
    Some(project)
}

/// The name of the project's PostgreSQL database.
pub fn database_name(project: &Project) -> String {
    let url = project.database_url();
    url.rsplit('/').next().unwrap().to_owned()
}

/// The daemon's PostgreSQL pool gives up acquiring a connection after 10 s; a request may take
/// that long and a little more, never longer.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// POSTs the COUNT event `id` until it is accepted; returns how many 503s came first. Every
/// answer must be a 202 or a 503 with our JSON error (the client then sends the same event
/// again, which is idempotent by `eventId`), and come within [`REQUEST_LIMIT`]; otherwise this
/// says what came instead.
pub async fn post_until_accepted(
    client: reqwest::Client,
    url: String,
    id: String,
) -> Result<usize, String> {
    let mut unavailable = 0;
    let key = format!("k{}", id.as_bytes()[id.len() - 1] % 7);
    let body = json!({"eventId": id, "eventType": "COUNT", "key": key, "data": {}});
    loop {
        let started = Instant::now();
        let response = client
            .post(&url)
            .header("x-api-key", API_KEY)
            .timeout(REQUEST_LIMIT)
            .json(&body)
            .send()
            .await
            .map_err(|error| {
                format!(
                    "POST of {id} got no answer within {REQUEST_LIMIT:?} ({:?}): {error}",
                    started.elapsed()
                )
            })?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            202 => return Ok(unavailable),
            503 if answer["code"] == "unavailable" && answer["message"].is_string() => {
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => return Err(format!("POST of {id} answered {status}: {answer}")),
        }
    }
}

/// Panics with `problem` and the daemon's error lines.
pub fn fail_with_errors(daemon: &Daemon, problem: &str) -> ! {
    let log = daemon.log();
    let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
    panic!("{problem}\ndaemon errors:\n{}", errors.join("\n"))
}

/// Posts the COUNT events `ids`, eight at a time, each until it is accepted (see
/// [`post_until_accepted`]); returns how many 503s came first.
pub async fn post_all(daemon: &Daemon, ids: &[String]) -> usize {
    let client = reqwest::Client::new();
    let url = format!("{}/api/events/test.events", daemon.base);
    let mut unavailable = 0;
    for chunk in ids.chunks(8) {
        let mut posts = JoinSet::new();
        for id in chunk {
            posts.spawn(post_until_accepted(client.clone(), url.clone(), id.clone()));
        }
        while let Some(result) = posts.join_next().await {
            match result.unwrap() {
                Ok(answers_503) => unavailable += answers_503,
                Err(problem) => fail_with_errors(daemon, &problem),
            }
        }
    }
    unavailable
}

/// Asserts that `ids` are exactly the COUNT events in the log, that each was applied once with
/// its child, and that nothing was dead-lettered.
pub async fn assert_counted_once(db: &AnyPool, ids: &[String], daemon: &Daemon) {
    let mut logged: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM event_log WHERE event_type = 'COUNT'")
            .fetch_all(db)
            .await
            .unwrap();
    logged.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(logged, expected, "every accepted event is in the log, once");
    let n = ids.len() as i64;
    for (sql, what) in [
        (
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'CHILD'",
            "emitted children",
        ),
        (
            "SELECT COUNT(*) FROM effects WHERE kind = 'parent'",
            "parent rows",
        ),
        (
            "SELECT COUNT(DISTINCT event_id) FROM effects WHERE kind = 'parent'",
            "distinct parents",
        ),
        (
            "SELECT COUNT(*) FROM effects WHERE kind = 'child'",
            "child rows",
        ),
        (
            "SELECT COUNT(DISTINCT event_id) FROM effects WHERE kind = 'child'",
            "distinct children",
        ),
        (
            "SELECT value FROM counters WHERE name = 'parents'",
            "parents counter",
        ),
        (
            "SELECT value FROM counters WHERE name = 'children'",
            "children counter",
        ),
    ] {
        assert_eq!(count(db, sql).await, n, "{what}\n{}", daemon.log());
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM dead_letters").await, 0);
}

/// Asserts that `/readyz` answers 200 within a few seconds (the consumer polls the log every
/// second), showing its last answer if not.
pub async fn assert_ready_again(daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = daemon.get("/readyz").await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {status} after the fault ended: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The advisory lock key of the embedded bus (`Job::EmbeddedBus`, "crmrbus" in ASCII). A
/// bigint key shows in `pg_locks` as its high half in `classid` and its low half in `objid`.
const BUS_LOCK_KEY: i64 = 0x63_72_6d_72_62_75_73;

/// The server process whose session holds the embedded bus's lock on the test's database.
pub async fn bus_lock_holder(db: &AnyPool) -> Option<i32> {
    let holders: Vec<i32> = sqlx::query_scalar(&format!(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid = {} AND objid = {} AND objsubid = 1",
        BUS_LOCK_KEY >> 32,
        BUS_LOCK_KEY & 0xffff_ffff
    ))
    .fetch_all(db)
    .await
    .unwrap();
    assert!(holders.len() <= 1, "{holders:?}");
    holders.first().copied()
}

/// Asserts that a second daemon on the project's database refuses to start: the first still
/// holds the bus.
pub fn assert_second_daemon_refused(project: &Project) {
    let output = std::process::Command::new(crate::support::binary())
        .args(["run", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(project.database_url())
        .current_dir(project.path())
        .env_remove("DATABASE_URL")
        .env_remove("PORT")
        .env("RUST_LOG", "info,sqlx=warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("another crm-router already runs the embedded event bus"),
        "{stderr}"
    );
}
