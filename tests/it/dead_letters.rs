//! Retries and dead letters: transient failures are retried with backoff (the same
//! Idempotency-Key each time), permanent ones dead-lettered at once, exhausted ones after the
//! configured attempts; the failing route's effects are rolled back, the others commit, and
//! the stream moves on.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;
use test_case::test_case;

use crate::support::{count, drained, Backend, Project};

const MIGRATION: &str = "CREATE TABLE items (id TEXT NOT NULL, label TEXT NOT NULL);\n";

/// What a target received: each request's Idempotency-Key and JSON body, in order.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// An HTTP target that answers 500 `failures` times, then 200, recording what it received.
async fn flaky_target(failures: usize) -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                let mut received = seen.lock().unwrap();
                received.push((key, body));
                if received.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), received)
}

/// The Idempotency-Keys a target received, in order.
fn keys_of(received: &Received) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|(key, _)| key.clone())
        .collect()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn failing_routes_are_retried_then_dead_lettered_and_the_stream_moves_on(backend: Backend) {
    let (hook, keys) = flaky_target(2).await;
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write(
        "routes/routes.yaml",
        &format!(
            r#"routes:
  - name: record
    on: {{topic: test.events}}
    actions:
      - insert: {{table: items, values: {{id: "{{{{ event.eventId }}}}", label: "{{{{ event.eventType }}}}"}}}}
  - name: unreachable
    on: {{topic: test.events, type: UNREACHABLE}}
    retry: {{attempts: 3, backoff: {{initial: 10ms, max: 50ms, multiplier: 2}}}}
    actions:
      - insert: {{table: items, values: {{id: x, label: rolled-back}}}}
      - http: {{url: "http://127.0.0.1:1/nothing", timeout: 1s}}
  - name: typo
    on: {{topic: test.events, type: TYPO}}
    actions:
      - insert: {{table: items, values: {{id: y, label: "{{{{ data.nmae }}}}"}}}}
  - name: flaky
    on: {{topic: test.events, type: FLAKY}}
    retry: {{attempts: 5, backoff: {{initial: 10ms, max: 50ms, multiplier: 2}}}}
    actions:
      - http: {{url: "{hook}", body: {{id: "{{{{ event.eventId }}}}"}}}}
"#
        ),
    );
    let daemon = project.start();
    for event_type in ["UNREACHABLE", "TYPO", "FLAKY", "AFTER"] {
        let (status, body) = daemon
            .post_event(
                "test.events",
                json!({"eventType": event_type, "data": {"name": "n"}}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let db = project.database().await;
    drained(&db).await;

    // The `record` route ran for all four events, including the ones whose other routes failed.
    let labels: Vec<String> = sqlx::query_scalar("SELECT label FROM items ORDER BY label")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        labels,
        ["AFTER", "FLAKY", "TYPO", "UNREACHABLE"],
        "failed routes left no rows behind"
    );

    let letters: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT route, action_index, action_kind, error, attempts FROM dead_letters ORDER BY route",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let (route, index, kind, error, attempts) = &letters[0];
    assert_eq!(
        (route.as_str(), index.as_str(), kind.as_str(), *attempts),
        ("typo", "0", "insert", 1)
    );
    // The error names the expression and where its template is written, and no values.
    assert_eq!(
        error,
        "template error: undefined value `data.nmae` (routes/routes.yaml:15:59, typo actions[0].insert.values.label)"
    );
    let (route, index, kind, error, attempts) = &letters[1];
    assert_eq!(
        (route.as_str(), index.as_str(), kind.as_str(), *attempts),
        ("unreachable", "1", "http", 3)
    );
    assert!(
        error.contains("http POST http://127.0.0.1/nothing: request failed"),
        "{error}"
    );

    // The flaky target saw three attempts with one idempotency key, then succeeded.
    let keys = keys_of(&keys);
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|key| key == &keys[0]));
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM dead_letters WHERE route = 'flaky'"
        )
        .await,
        0
    );
    assert!(daemon.log().contains("event dead-lettered"));
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn each_for_each_row_sends_its_own_idempotency_key(backend: Backend) {
    let (hook, keys) = flaky_target(0).await;
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write(
        "routes/fanout.yaml",
        &format!(
            r#"routes:
  - name: fanout
    on: {{topic: test.events, type: FANOUT}}
    actions:
      - insert: {{table: items, values: {{id: a, label: "{{{{ event.eventId }}}}"}}}}
      - insert: {{table: items, values: {{id: b, label: "{{{{ event.eventId }}}}"}}}}
      - insert: {{table: items, values: {{id: c, label: "{{{{ event.eventId }}}}"}}}}
      - query:
          table: items
          where: {{label: "{{{{ event.eventId }}}}"}}
          order_by: [id]
          as: rows
          for_each:
            - http: {{url: "{hook}", body: {{id: "{{{{ row.id }}}}"}}}}
"#
        ),
    );
    let daemon = project.start();
    let (status, body) = daemon
        .post_event("test.events", json!({"eventType": "FANOUT", "data": {}}))
        .await;
    assert_eq!(status, 202, "{body}");
    drained(&project.database().await).await;
    let keys = keys_of(&keys);
    assert_eq!(keys.len(), 3, "one call per row: {keys:?}");
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), 3, "every row has its own key: {keys:?}");
}

/// The issue's webhook saw four attempts with one Idempotency-Key and four different
/// `invoiceId`s: `uuid()` now renders the same id on every attempt, in each row its own, and
/// the row the route wrote holds the id the webhook was sent.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn uuid_is_the_same_on_every_attempt_and_random_uuid_is_not(backend: Backend) {
    let (hook, received) = flaky_target(3).await;
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write(
        "routes/invoice.yaml",
        &format!(
            r#"routes:
  - name: invoice
    on: {{topic: test.events, type: PAID}}
    retry: {{attempts: 5, backoff: {{initial: 10ms, max: 50ms, multiplier: 2}}}}
    actions:
      - insert: {{table: items, values: {{id: "{{{{ uuid() }}}}", label: invoice}}, as: invoice}}
      - http:
          url: "{hook}"
          body: {{invoiceId: "{{{{ steps.invoice.id }}}}", again: "{{{{ uuid() }}}}", fresh: "{{{{ random_uuid() }}}}"}}
"#
        ),
    );
    let daemon = project.start();
    let (status, body) = daemon
        .post_event("test.events", json!({"eventType": "PAID", "data": {}}))
        .await;
    assert_eq!(status, 202, "{body}");
    let db = project.database().await;
    drained(&db).await;

    let received = received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        4,
        "three failures, then success: {received:?}"
    );
    let field = |name: &str| -> Vec<String> {
        received
            .iter()
            .map(|(_, body)| body[name].as_str().unwrap().to_owned())
            .collect()
    };
    let invoice_ids = field("invoiceId");
    assert!(
        invoice_ids.iter().all(|id| id == &invoice_ids[0]),
        "{received:?}"
    );
    let again = field("again");
    assert!(again.iter().all(|id| id == &again[0]), "{received:?}");
    assert_ne!(again[0], invoice_ids[0], "each step has its own id");
    let fresh: std::collections::HashSet<_> = field("fresh").into_iter().collect();
    assert_eq!(
        fresh.len(),
        4,
        "random_uuid() is new on every attempt: {received:?}"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM items")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        stored,
        [invoice_ids[0].clone()],
        "the committed row has the id that was sent"
    );
}
