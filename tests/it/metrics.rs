//! `GET /metrics`: the counters move when a cascade runs.

use serde_json::json;
use test_case::test_case;

use crate::support::{drained, Backend, Daemon, Project};

/// The value of the sample `name{labels}` (labels in the exporter's order), or 0 when absent.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(daemon: &Daemon) -> String {
    let response = reqwest::get(format!("{}/metrics", daemon.base))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

fn user(n: u32) -> serde_json::Value {
    json!({"eventType": "USER_CREATED", "data": {"userId": format!("u{n}"), "email": format!("u{n}@example.com"), "name": format!("User {n}"), "role": "USER"}})
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_counters_move_after_a_cascade(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let db = project.database().await;
    assert_eq!(daemon.post_event("user.events", user(1)).await.0, 202);
    drained(&db).await;
    let first = scrape(&daemon).await;
    let received = r#"crm_router_events_received_total{topic="user.events",type="USER_CREATED"}"#;
    let routed =
        r#"crm_router_events_routed_total{topic="customer.events",type="CUSTOMER_CREATED"}"#;
    let applied =
        r#"crm_router_route_executions_total{route="user-creates-customer",outcome="applied"}"#;
    let inserts =
        r#"crm_router_action_duration_seconds_count{route="user-creates-customer",kind="insert"}"#;
    let posts = r#"crm_router_http_request_duration_seconds_count{method="POST",route="/api/events/{topic}",status="202"}"#;
    assert_eq!(sample(&first, received), 1.0, "{first}");
    assert_eq!(sample(&first, routed), 1.0, "{first}");
    assert_eq!(sample(&first, applied), 1.0, "{first}");
    assert!(sample(&first, inserts) >= 1.0, "{first}");
    assert!(sample(&first, posts) >= 1.0, "{first}");
    assert!(
        sample(&first, r#"crm_router_reloads_total{result="ok"}"#) >= 1.0,
        "{first}"
    );
    assert_eq!(
        sample(
            &first,
            r#"crm_router_consumer_lag{stream="__event_log",partition="0"}"#
        ),
        0.0,
        "{first}"
    );
    assert!(
        first.contains("# TYPE crm_router_action_duration_seconds histogram"),
        "{first}"
    );
    // A route's series are registered with its route set, only for the kinds it has.
    assert!(
        !first.contains(r#"route="user-creates-customer",kind="http""#),
        "{first}"
    );

    // A second cascade and an event that fails its schema move them again.
    assert_eq!(daemon.post_event("user.events", user(2)).await.0, 202);
    let broken = json!({"eventType": "USER_CREATED", "data": {"userId": "u3"}});
    assert_eq!(daemon.post_event("user.events", broken).await.0, 422);
    drained(&db).await;
    let second = scrape(&daemon).await;
    assert_eq!(sample(&second, received), 2.0, "{second}");
    assert_eq!(sample(&second, routed), 2.0, "{second}");
    assert_eq!(sample(&second, applied), 2.0, "{second}");
    assert!(sample(&second, posts) > sample(&first, posts), "{second}");
}

/// Every series the bundled Grafana dashboard queries is one the daemon exports (the outbox
/// backlog only exists on Kafka).
#[tokio::test]
async fn the_grafana_dashboard_queries_exported_series() {
    let project = Project::bundled();
    let daemon = project.start();
    assert_eq!(daemon.post_event("user.events", user(1)).await.0, 202);
    let broken = json!({"eventType": "USER_CREATED", "data": {"userId": "u3"}});
    assert_eq!(daemon.post_event("user.events", broken).await.0, 422);
    drained(&project.database().await).await;
    let exported = scrape(&daemon).await;
    let dashboard = std::fs::read_to_string(
        crate::support::repo().join("examples/grafana/crm-router-dashboard.json"),
    )
    .unwrap();
    let mut queried: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("crm_router_"))
        .collect();
    queried.sort_unstable();
    queried.dedup();
    assert!(queried.len() >= 8, "{queried:?}");
    for series in queried {
        if series == "crm_router_outbox_backlog" {
            continue;
        }
        assert!(
            exported.lines().any(|line| line.starts_with(series)),
            "the dashboard queries {series}, which /metrics does not export:\n{exported}"
        );
    }
}

/// A client cannot grow `/metrics` by inventing methods: every method outside HTTP's own is
/// counted as `OTHER`, so 200 made-up methods add one series, not 200.
#[tokio::test]
async fn made_up_methods_share_one_label() {
    let project = Project::empty();
    let daemon = project.start();
    let before = scrape(&daemon).await;
    for n in 0..200 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
        let status = daemon
            .request(method, "/healthz")
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_client_error(), "{status}");
    }
    let after = scrape(&daemon).await;
    assert!(!after.contains("MADEUP"), "{after}");
    assert!(after.contains("method=\"OTHER\""), "{after}");
    // One more series at most per (route, status), not one per method.
    assert!(
        after.len() < before.len() + 20_000,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

/// Topics and event types come from whoever submits events; past 1,000 distinct pairs, new
/// ones are counted under `other` instead of adding series without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_labels_stop_growing_past_their_bound() {
    let project = Project::empty();
    let daemon = std::sync::Arc::new(project.start());
    let mut posts = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let daemon = daemon.clone();
        posts.spawn(async move {
            for n in (worker..1_100).step_by(16) {
                let event = json!({"eventType": format!("MADE_UP_{n}"), "data": {}});
                assert_eq!(daemon.post_event("test.events", event).await.0, 202);
            }
        });
    }
    while let Some(posted) = posts.join_next().await {
        posted.unwrap();
    }
    let db = project.database().await;
    drained(&db).await;
    let metrics = scrape(&daemon).await;
    let received: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("crm_router_events_received_total{"))
        .collect();
    assert!(
        received.len() <= 1_001,
        "{} received series",
        received.len()
    );
    assert!(
        received
            .iter()
            .any(|line| line.contains("topic=\"other\"") && line.contains("type=\"other\"")),
        "{metrics}"
    );
}

/// An event whose topic and type no route reads (a misspelt topic) is counted as unrouted,
/// never as routed, and warned about once, not once per event.
#[tokio::test]
async fn events_no_route_reads_are_counted_and_warned_about_once() {
    let project = Project::empty();
    project.write(
        "routes/orders.yaml",
        "routes:\n  - name: order-placed\n    on: {topic: orders, type: ORDER_PLACED}\n    actions:\n      - emit: {topic: order-log, eventType: ORDER_SEEN, key: \"{{ data.id }}\", data: {id: \"{{ data.id }}\"}}\n",
    );
    let daemon = project.start();
    let placed = |n: u32| json!({"eventType": "ORDER_PLACED", "data": {"id": format!("o{n}")}});
    for n in 0..3 {
        let (status, body) = daemon.post_event("order", placed(n)).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = daemon.post_event("orders", placed(9)).await;
    assert_eq!(status, 202, "{body}");
    let db = project.database().await;
    drained(&db).await;
    let text = scrape(&daemon).await;
    assert_eq!(
        sample(
            &text,
            r#"crm_router_events_unrouted_total{topic="order",type="ORDER_PLACED"}"#
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"crm_router_events_routed_total{topic="order",type="ORDER_PLACED"}"#
        ),
        0.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"crm_router_events_routed_total{topic="orders",type="ORDER_PLACED"}"#
        ),
        1.0,
        "{text}"
    );
    // ORDER_SEEN on order-log is read by no route either.
    assert_eq!(
        sample(
            &text,
            r#"crm_router_events_unrouted_total{topic="order-log",type="ORDER_SEEN"}"#
        ),
        1.0,
        "{text}"
    );
    let log = daemon.log();
    let warnings = log.matches("no route reads").count();
    assert_eq!(warnings, 1, "{log}");
    assert!(
        log.contains("no route reads ORDER_PLACED on topic order:"),
        "{log}"
    );
}

/// With `unrouted: refuse`, `POST /api/events` refuses an event no route reads (422 on its
/// topic, with the topic it may have meant), and still takes the ones a route reads.
#[tokio::test]
async fn unrouted_events_can_be_refused_with_the_topic_meant() {
    let project = Project::empty();
    project.write(
        "routes/orders.yaml",
        "routes:\n  - name: order-placed\n    on: {topic: orders, type: ORDER_PLACED}\n    actions:\n      - emit: {topic: order-log, eventType: ORDER_SEEN, key: \"{{ data.id }}\", data: {id: \"{{ data.id }}\"}}\n",
    );
    project.write("crm-router.yaml", "unrouted: refuse\n");
    let daemon = project.start();
    let placed = json!({"eventType": "ORDER_PLACED", "data": {"id": "o1"}});
    let (status, body) = daemon.post_event("order", placed.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["message"],
        "no route reads ORDER_PLACED on topic order (did you mean topic orders?); unrouted events are refused here (unrouted: refuse)"
    );
    assert_eq!(body["fields"][0]["field"], "topic", "{body}");
    let (status, body) = daemon
        .post_event("orders", json!({"eventType": "ORDER_SHIPPED", "data": {}}))
        .await;
    assert_eq!(status, 422, "a type no route reads: {body}");
    let (status, body) = daemon.post_event("orders", placed).await;
    assert_eq!(status, 202, "{body}");
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(
        crate::support::count(&db, "SELECT COUNT(*) FROM event_log WHERE topic = 'order'").await,
        0
    );
}
