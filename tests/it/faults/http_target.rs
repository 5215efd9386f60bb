//! An HTTP target that fails in every way a route should survive: it times out, answers 500,
//! and recovers, or never does. The route retries with the same Idempotency-Key, applies the
//! event once, or dead-letters it after its attempts; the events behind it flow either way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use sqlx::AnyPool;
use test_case::test_case;

use crate::support::{count, drained, Backend, Daemon, Project};

/// How a scripted HTTP target answers one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Answers 200 only after far longer than any route's timeout.
    Hang,
    /// Answers at once with this status.
    Status(u16),
}

/// One request the target received.
#[derive(Debug, Clone)]
struct Call {
    idempotency_key: String,
    event_id: String,
}

/// An HTTP target that answers its `n`th request (counting from 0) with `script(n)`, and
/// records every request.
async fn scripted_target(script: fn(usize) -> Answer) -> (String, Arc<Mutex<Vec<Call>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let call = Call {
                    idempotency_key: headers
                        .get("idempotency-key")
                        .map(|key| key.to_str().unwrap().to_owned())
                        .unwrap_or_default(),
                    event_id: body["id"].as_str().unwrap_or_default().to_owned(),
                };
                let answer = {
                    let mut calls = seen.lock().unwrap();
                    calls.push(call);
                    script(calls.len() - 1)
                };
                match answer {
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        StatusCode::OK
                    }
                    Answer::Status(status) => StatusCode::from_u16(status).unwrap(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), calls)
}

const ITEMS_MIGRATION: &str = "
CREATE TABLE items (event_id TEXT NOT NULL, label TEXT NOT NULL);
";

/// `record` notes every event; `notify` notes NOTIFY events, then calls the target, with five
/// attempts in all and short fixed backoff.
fn notify_routes(hook: &str) -> String {
    format!(
        r#"routes:
  - name: record
    on: {{topic: test.events}}
    actions:
      - insert: {{table: items, values: {{event_id: "{{{{ event.eventId }}}}", label: seen}}}}
  - name: notify
    on: {{topic: test.events, type: NOTIFY}}
    retry: {{attempts: 5, backoff: {{initial: 50ms, max: 200ms, multiplier: 2}}, jitter: false}}
    actions:
      - insert: {{table: items, values: {{event_id: "{{{{ event.eventId }}}}", label: notified}}}}
      - http: {{url: "{hook}", timeout: 300ms, body: {{id: "{{{{ event.eventId }}}}"}}}}
"#
    )
}

/// Labels of `items` rows for one event, sorted.
async fn labels(db: &AnyPool, event_id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT label FROM items WHERE event_id = $1 ORDER BY label")
        .bind(event_id)
        .fetch_all(db)
        .await
        .unwrap()
}

/// Posts a NOTIFY event and then `after` AFTER events; returns their ids in that order.
async fn post_notify_then_others(daemon: &Daemon, after: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..=after {
        let id = format!("00000000-0000-4000-a000-{n:012}");
        let event_type = if n == 0 { "NOTIFY" } else { "AFTER" };
        let (status, body) = daemon
            .post_event(
                "test.events",
                json!({"eventId": id, "eventType": event_type, "data": {}}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(id);
    }
    ids
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_http_target_that_times_out_then_fails_then_recovers_gets_the_event_applied_once(
    backend: Backend,
) {
    let (hook, calls) = scripted_target(|n| match n {
        0 => Answer::Hang,
        1 => Answer::Status(500),
        _ => Answer::Status(200),
    })
    .await;
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", ITEMS_MIGRATION);
    project.write("routes/notify.yaml", &notify_routes(&hook));
    let daemon = project.start();
    let ids = post_notify_then_others(&daemon, 3).await;
    let db = project.database().await;
    drained(&db).await;

    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        3,
        "a timeout, a 500, then success: {calls:?}\n{}",
        daemon.log()
    );
    assert!(
        calls
            .iter()
            .all(|call| call.event_id == ids[0] && call.idempotency_key == calls[0].idempotency_key),
        "every attempt carried the same Idempotency-Key: {calls:?}"
    );
    assert!(!calls[0].idempotency_key.is_empty());
    // The insert before the call was rolled back with each failed attempt and applied once.
    assert_eq!(labels(&db, &ids[0]).await, ["notified", "seen"]);
    for id in &ids[1..] {
        assert_eq!(labels(&db, id).await, ["seen"], "the events behind it ran");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);
    let log = daemon.log();
    assert!(log.contains("route failed; retrying"), "{log}");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_http_target_that_stays_down_dead_letters_the_event_and_the_rest_flows(
    backend: Backend,
) {
    let (hook, calls) = scripted_target(|n| match n {
        0 => Answer::Hang,
        _ => Answer::Status(500),
    })
    .await;
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", ITEMS_MIGRATION);
    project.write("routes/notify.yaml", &notify_routes(&hook));
    let daemon = project.start();
    let ids = post_notify_then_others(&daemon, 20).await;
    let db = project.database().await;
    drained(&db).await;

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 5, "five attempts in all: {calls:?}");
    assert!(
        calls
            .iter()
            .all(|call| call.event_id == ids[0] && call.idempotency_key == calls[0].idempotency_key),
        "every attempt carried the same Idempotency-Key: {calls:?}"
    );
    let letters: Vec<(String, String, String, String, String, i64, String)> = sqlx::query_as(
        "SELECT event_id, route, action_index, action_kind, error, attempts, status \
         FROM dead_letters",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (event_id, route, index, kind, error, attempts, status) = &letters[0];
    assert_eq!(
        (
            event_id.as_str(),
            route.as_str(),
            index.as_str(),
            kind.as_str(),
            *attempts,
            status.as_str()
        ),
        (ids[0].as_str(), "notify", "1", "http", 5, "PENDING")
    );
    assert!(error.contains("500"), "{error}");
    // The dead-lettered route left nothing behind; the other route committed for the same
    // event, and every event after it was applied.
    assert_eq!(labels(&db, &ids[0]).await, ["seen"]);
    for id in &ids[1..] {
        assert_eq!(labels(&db, id).await, ["seen"], "the events behind it ran");
    }
}

/// An HTTP route's event and a failing event in one batch: the failure makes the consumer run
/// the batch again guarded, and the request must not be sent a second time by that.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_failure_later_in_the_batch_does_not_send_a_request_again(backend: Backend) {
    let (hook, calls) = scripted_target(|_| Answer::Status(200)).await;
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", ITEMS_MIGRATION);
    project.write(
        "routes/notify.yaml",
        &format!(
            r#"routes:
  - name: notify
    on: {{topic: test.events, type: NOTIFY}}
    actions:
      - http: {{url: "{hook}", timeout: 2s, body: {{id: "{{{{ event.eventId }}}}"}}}}
  - name: broken
    on: {{topic: test.events, type: BROKEN}}
    actions:
      - insert: {{table: items, values: {{event_id: "{{{{ event.eventId }}}}", label: "{{{{ data.missing }}}}"}}}}
"#
        ),
    );
    // Migrated by a first start; then both events go into the log while no daemon runs, so
    // the next start reads them in one batch.
    drop(project.start());
    let db = project.database().await;
    for (n, event_type) in ["NOTIFY", "BROKEN"].into_iter().enumerate() {
        let id = format!("00000000-0000-4000-b000-{n:012}");
        let envelope = json!({"eventId": id, "eventType": event_type, "timestamp": "2026-11-29T00:00:00Z", "source": "test", "data": {}});
        sqlx::query(
            "INSERT INTO event_log (event_id, topic, event_key, event_type, envelope, created_at) \
             VALUES ($1, 'test.events', $1, $2, $3, '2026-11-29T00:00:00Z')",
        )
        .bind(&id)
        .bind(event_type)
        .bind(envelope.to_string())
        .execute(&db)
        .await
        .unwrap();
    }
    let daemon = project.start();
    drained(&db).await;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM dead_letters WHERE route = 'broken'"
        )
        .await,
        1,
        "{}",
        daemon.log()
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one request, not one per pass: {calls:?}");
}
