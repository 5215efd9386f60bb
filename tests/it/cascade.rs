//! An event runs a route that inserts a row and emits an event, which a second route turns
//! into another row: the bundled USER_CREATED → customer → first-contact task cascade.

use std::time::Duration;

use serde_json::json;
use test_case::test_case;

use crate::support::{count, drained, eventually, Backend, Project};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn user_created_cascades_to_customer_task_opportunity_and_analytics(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let (status, body) = daemon
        .post_event(
            "user.events",
            json!({
                "eventType": "USER_CREATED",
                "source": "auth-service",
                "key": "u-1",
                "data": {"userId": "u-1", "email": "kafka-test@example.com", "name": "Kafka Test User {{ 7*7 }}", "role": "USER"}
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(uuid::Uuid::parse_str(body["eventId"].as_str().unwrap()).is_ok());

    let db = project.database().await;
    drained(&db).await;
    let (customer_id, name, owner): (String, String, String) = sqlx::query_as(
        "SELECT id, name, owner_id FROM customers WHERE email = 'kafka-test@example.com'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    // Template syntax inside event data is data, never evaluated.
    assert_eq!(name, "Kafka Test User {{ 7*7 }}");
    assert_eq!(owner, "u-1");
    let (title, task_customer, assignee, priority, status): (
        String,
        String,
        String,
        String,
        String,
    ) = sqlx::query_as("SELECT title, customer_id, assignee_id, priority, status FROM tasks")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(title, "初回コンタクト: Kafka Test User {{ 7*7 }}");
    assert_eq!(
        (task_customer.as_str(), assignee.as_str()),
        (customer_id.as_str(), "u-1")
    );
    assert_eq!((priority.as_str(), status.as_str()), ("MEDIUM", "TODO"));
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM opportunities WHERE stage = 'PROSPECTING'"
        )
        .await,
        1
    );

    let emitted: Vec<(String, String, String)> =
        sqlx::query_as("SELECT topic, event_type, event_key FROM event_log ORDER BY seq")
            .fetch_all(&db)
            .await
            .unwrap();
    let types: Vec<&str> = emitted
        .iter()
        .map(|(_, event_type, _)| event_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "USER_CREATED",
            "CUSTOMER_CREATED",
            "TASK_CREATED",
            "OPPORTUNITY_CREATED"
        ]
    );
    assert_eq!(
        emitted[1].2, customer_id,
        "CUSTOMER_CREATED is keyed by the customer id"
    );
    let counts: i64 = count(
        &db,
        "SELECT CAST(SUM(count) AS BIGINT) FROM analytics_daily",
    )
    .await;
    assert_eq!(counts, 4, "analytics counted every event once");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);

    let log = daemon.log();
    assert!(
        log.contains("📥 Event received: USER_CREATED from topic user.events"),
        "{log}"
    );
    assert!(
        log.contains("📤 Event published: CUSTOMER_CREATED to topic customer.events"),
        "{log}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn resubmitting_an_event_id_is_idempotent_and_duplicates_by_email_are_ignored(
    backend: Backend,
) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let event = json!({
        "eventId": "7f1d8a52-0000-4000-8000-000000000001",
        "eventType": "USER_CREATED",
        "data": {"userId": "u-2", "email": "twice@example.com", "name": "Twice", "role": "USER"}
    });
    assert_eq!(daemon.post_event("user.events", event.clone()).await.0, 202);
    assert_eq!(daemon.post_event("user.events", event).await.0, 202);
    // A different event for the same email: the route's on_conflict ignore keeps one customer.
    let again = json!({"eventType": "USER_CREATED", "data": {"userId": "u-3", "email": "twice@example.com", "name": "Again", "role": "USER"}});
    assert_eq!(daemon.post_event("user.events", again).await.0, 202);
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE event_type = 'USER_CREATED'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM customers WHERE email = 'twice@example.com'"
        )
        .await,
        1
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tasks").await, 1);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn schema_failures_are_rejected_over_http_and_emitted_ones_dead_lettered(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let (status, body) = daemon
        .post_event("user.events", json!({"eventType": "USER_CREATED", "data": {"userId": "u", "email": 42, "name": "N", "role": "USER"}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "unprocessable_entity");
    let fields = body["fields"].as_array().unwrap();
    assert!(
        fields.iter().any(|field| field["field"] == "data/email"),
        "{body}"
    );

    // A route that emits an event its schema refuses: the route is dead-lettered, not retried,
    // and the stream continues.
    project.write(
        "routes/bad-emit.yaml",
        "routes:\n  - name: bad-emit\n    on: {topic: test.events, type: PING}\n    actions:\n      - emit: {topic: customer.events, eventType: CUSTOMER_CREATED, key: k, data: {customerId: 1}}\n",
    );
    let db = project.database().await;
    eventually(Duration::from_secs(10), "the route to load", || async {
        let (_, routes) = daemon.get("/api/routes").await;
        routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|route| route["name"] == "bad-emit")
            .then_some(())
    })
    .await;
    assert_eq!(
        daemon
            .post_event("test.events", json!({"eventType": "PING", "data": {}}))
            .await
            .0,
        202
    );
    drained(&db).await;
    let (route, error, attempts): (String, String, i64) =
        sqlx::query_as("SELECT route, error, attempts FROM dead_letters WHERE route IS NOT NULL")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(route, "bad-emit");
    assert!(error.contains("fails its schema"), "{error}");
    assert_eq!(attempts, 1, "schema failures are permanent");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM dead_letters WHERE route IS NULL AND event_type = 'USER_CREATED'"
        )
        .await,
        1,
        "the event refused over HTTP is kept as a dead letter"
    );
    assert_eq!(
        count(
            &db,
            "SELECT CAST(SUM(count) AS BIGINT) FROM analytics_daily WHERE event_type = 'PING'"
        )
        .await,
        1
    );
}

/// Appends `envelope` to the log as an outside producer writes it: the text as it is, no
/// `source` added.
async fn append_to_log(db: &sqlx::AnyPool, topic: &str, key: &str, envelope: &serde_json::Value) {
    sqlx::query(
        "INSERT INTO event_log (event_id, topic, event_key, event_type, envelope, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(envelope["eventId"].as_str().unwrap())
    .bind(topic)
    .bind(key)
    .bind(envelope["eventType"].as_str().unwrap())
    .bind(envelope.to_string())
    .bind(envelope["timestamp"].as_str().unwrap())
    .execute(db)
    .await
    .unwrap();
}

/// The old CRM's services publish `{eventId, eventType, timestamp, data}`, keyed by the event
/// id, with no `source`; the cascade runs for it as for crm-router's own envelope, and for
/// `user.created`, the old auth service's name for `USER_CREATED`, as for `USER_CREATED`.
#[test_case(Backend::Sqlite, "USER_CREATED" ; "sqlite")]
#[test_case(Backend::Postgres, "USER_CREATED" ; "postgres")]
#[test_case(Backend::Sqlite, "user.created" ; "sqlite, the dotted alias")]
#[test_case(Backend::Postgres, "user.created" ; "postgres, the dotted alias")]
#[tokio::test]
async fn an_old_services_envelope_without_source_cascades(backend: Backend, event_type: &str) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let db = project.database().await;
    let event_id = "3f9c2a71-5b1e-4d0a-8e6f-2c4b7a9d1e03";
    let envelope = json!({
        "eventId": event_id,
        "eventType": event_type,
        "timestamp": "2026-12-06T15:26:03.417Z",
        "data": {"userId": "u-old", "email": "old-service@example.com", "name": "Old Service User", "role": "USER"}
    });
    append_to_log(&db, "user.events", event_id, &envelope).await;
    drained(&db).await;

    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dead_letters").await,
        0,
        "{}",
        daemon.log()
    );
    let (customer_id, owner): (String, String) = sqlx::query_as(
        "SELECT id, owner_id FROM customers WHERE email = 'old-service@example.com'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(owner, "u-old");
    let (title, task_customer): (String, String) =
        sqlx::query_as("SELECT title, customer_id FROM tasks")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(title, "初回コンタクト: Old Service User");
    assert_eq!(task_customer, customer_id);
    assert!(
        daemon.log().contains(&format!(
            "📥 Event received: {event_type} from topic user.events"
        )),
        "{}",
        daemon.log()
    );
}

/// `user.created` is an alias of `USER_CREATED`: the same schema refuses the same data, with the
/// same words.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_dotted_alias_is_checked_by_its_types_schema(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let _daemon = project.start();
    let db = project.database().await;
    for (event_id, event_type) in [
        ("bad-upper", "USER_CREATED"),
        ("bad-dotted", "user.created"),
    ] {
        let envelope = json!({
            "eventId": event_id,
            "eventType": event_type,
            "timestamp": "2026-12-06T15:26:03.417Z",
            "data": {"userId": "u-bad", "email": 42, "name": "Bad Email", "role": "USER"}
        });
        append_to_log(&db, "user.events", event_id, &envelope).await;
    }
    drained(&db).await;
    let mut letters: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, error FROM dead_letters")
            .fetch_all(&db)
            .await
            .unwrap();
    letters.sort();
    let types: Vec<&str> = letters
        .iter()
        .map(|(event_type, _)| event_type.as_str())
        .collect();
    assert_eq!(types, ["USER_CREATED", "user.created"]);
    assert!(
        letters[0]
            .1
            .starts_with("event fails its schema: data/email: "),
        "{letters:?}"
    );
    assert_eq!(letters[0].1, letters[1].1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM customers").await, 0);
}
