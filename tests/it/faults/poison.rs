//! Poison events: one route fails permanently for one event type only, in a mixed stream. Each
//! poison event is dead-lettered once at the failing action, with nothing of that route left
//! behind, while the other route on the same topic runs for it and every other event is applied
//! once.

use std::collections::HashSet;

use serde_json::json;
use sqlx::AnyPool;
use test_case::test_case;
use tokio::task::JoinSet;

use crate::support::{count, drained, Backend, Project};

const ORDERS_MIGRATION: &str = "
CREATE TABLE fulfilments (event_id TEXT NOT NULL, sku TEXT NOT NULL);
CREATE TABLE shipments (event_id TEXT NOT NULL);
CREATE TABLE seen (event_id TEXT NOT NULL, event_type TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0);
";

// `fulfil` runs first and fails for POISON events, whose `sku` is null, at its second action
// (index 1): after its counter moved and before its emit. `record` runs after it on the same
// event; on PostgreSQL that needs the failed route's savepoint rolled back properly.
const ORDERS_ROUTES: &str = r#"routes:
  - name: fulfil
    on: {topic: orders.events}
    actions:
      - upsert: {table: counters, where: {name: fulfil}, increment: {value: 1}}
      - insert: {table: fulfilments, values: {event_id: "{{ event.eventId }}", sku: "{{ data.sku }}"}}
      - emit: {topic: orders.shipping, eventType: SHIP, key: "{{ event.key }}", data: {order: "{{ event.eventId }}"}}
  - name: record
    on: {topic: orders.events}
    actions:
      - insert: {table: seen, values: {event_id: "{{ event.eventId }}", event_type: "{{ event.eventType }}"}}
      - upsert: {table: counters, where: {name: seen}, increment: {value: 1}}
  - name: ship
    on: {topic: orders.shipping, type: SHIP}
    actions:
      - insert: {table: shipments, values: {event_id: "{{ data.order }}"}}
"#;

const ORDERS: usize = 300;

async fn strings(db: &AnyPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(db).await.unwrap()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_route_failing_for_one_event_type_dead_letters_only_those_events(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_orders.sql", ORDERS_MIGRATION);
    project.write("routes/orders.yaml", ORDERS_ROUTES);
    let daemon = project.start();
    let mut poison = HashSet::new();
    let mut healthy = HashSet::new();
    for round in 0..ORDERS / 10 {
        let mut posts = JoinSet::new();
        for n in round * 10..round * 10 + 10 {
            let id = format!("00000000-0000-4000-b000-{n:012}");
            // Every tenth event, at a different place in each batch of ten.
            let body = if n % 10 == round % 10 {
                poison.insert(id.clone());
                json!({"eventId": id, "eventType": "POISON", "data": {"sku": null}})
            } else {
                healthy.insert(id.clone());
                json!({"eventId": id, "eventType": "ORDER", "data": {"sku": format!("SKU-{n}")}})
            };
            let request = daemon
                .request(reqwest::Method::POST, "/api/events/orders.events")
                .json(&body);
            posts.spawn(async move { request.send().await.unwrap().status().as_u16() });
        }
        while let Some(status) = posts.join_next().await {
            assert_eq!(status.unwrap(), 202);
        }
    }
    assert_eq!(poison.len(), ORDERS / 10);
    let db = project.database().await;
    drained(&db).await;

    // Each POISON event has exactly one dead letter, pointing at the failing action.
    let letters: Vec<(String, String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT event_id, event_type, route, action_index, action_kind, error, attempts \
         FROM dead_letters",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(letters.len(), poison.len(), "{letters:?}");
    let lettered: HashSet<String> = letters.iter().map(|letter| letter.0.clone()).collect();
    assert_eq!(lettered, poison);
    for (_, event_type, route, index, kind, error, attempts) in &letters {
        assert_eq!(
            (
                event_type.as_str(),
                route.as_str(),
                index.as_str(),
                kind.as_str(),
                *attempts
            ),
            ("POISON", "fulfil", "1", "insert", 1),
            "{error}"
        );
        let error = error.to_lowercase();
        assert!(
            error.contains("null") && error.contains("sku"),
            "the error names the constraint: {error}"
        );
    }

    // The failing route's effects exist once for every other event, and not at all for POISON:
    // its counter, its row, its emitted event and what that event caused.
    let healthy_count = healthy.len() as i64;
    for (sql, what) in [
        ("SELECT event_id FROM fulfilments", "fulfilments"),
        ("SELECT event_id FROM shipments", "shipments"),
    ] {
        let ids = strings(&db, sql).await;
        assert_eq!(ids.len(), healthy.len(), "{what} once each");
        assert_eq!(ids.into_iter().collect::<HashSet<_>>(), healthy, "{what}");
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'SHIP'"
        )
        .await,
        healthy_count,
        "emitted SHIP events"
    );
    assert_eq!(
        count(&db, "SELECT value FROM counters WHERE name = 'fulfil'").await,
        healthy_count
    );

    // The other route ran for every event, POISON included, once.
    let seen = strings(&db, "SELECT event_id FROM seen").await;
    assert_eq!(seen.len(), ORDERS);
    let seen: HashSet<String> = seen.into_iter().collect();
    assert_eq!(seen, &poison | &healthy);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM seen WHERE event_type = 'POISON'").await,
        poison.len() as i64
    );
    assert_eq!(
        count(&db, "SELECT value FROM counters WHERE name = 'seen'").await,
        ORDERS as i64
    );
}
