//! Scheduled routes: ticks happen by themselves, a run is one transaction (the due-soon alert is
//! sent once per task), failures are dead-lettered without stopping the scheduler, a restart
//! or a second daemon does not run a tick again, and `POST /api/routes/{name}/trigger` runs a
//! route now.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sqlx::AnyPool;
use test_case::test_case;

use crate::support::{count, drained, eventually, Backend, Daemon, Project};

const TICKS: &str =
    "CREATE TABLE ticks (id TEXT PRIMARY KEY, route TEXT NOT NULL, at TEXT NOT NULL);\n\
                     CREATE TABLE seen (id TEXT PRIMARY KEY, at TEXT NOT NULL);\n";

/// A route that records each of its ticks in `ticks`.
fn ticking(name: &str, schedule: &str) -> String {
    format!(
        r#"routes:
  - name: {name}
    on: {{schedule: "{schedule}"}}
    actions:
      - insert: {{table: ticks, values: {{id: "{{{{ uuid() }}}}", route: "{{{{ data.route }}}}", at: "{{{{ data.scheduledAt }}}}"}}}}
"#
    )
}

/// POSTs `/api/routes/{name}/trigger`; returns status and JSON body.
async fn trigger(daemon: &Daemon, name: &str) -> (u16, Value) {
    let response = daemon
        .request(
            reqwest::Method::POST,
            &format!("/api/routes/{name}/trigger"),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn tick_times(db: &AnyPool, route: &str) -> Vec<DateTime<Utc>> {
    sqlx::query_scalar::<_, String>("SELECT at FROM ticks WHERE route = $1 ORDER BY at")
        .bind(route)
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|at| {
            DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect()
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn insert_task(db: &AnyPool, id: &str, status: &str, due_in: chrono::Duration) {
    let now = rfc3339(Utc::now());
    sqlx::query(
        "INSERT INTO tasks (id, title, customer_id, assignee_id, due_date, status, priority, created_at, updated_at) \
         VALUES ($1, $2, 'c-1', 'u-1', $3, $4, 'HIGH', $5, $5)",
    )
    .bind(id)
    .bind(format!("task {id}"))
    .bind(rfc3339(Utc::now() + due_in))
    .bind(status)
    .bind(&now)
    .execute(db)
    .await
    .unwrap();
}

async fn due_soon_events(db: &AnyPool) -> Vec<Value> {
    sqlx::query_scalar::<_, String>(
        "SELECT envelope FROM event_log WHERE event_type = 'TASK_DUE_SOON' ORDER BY seq",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|envelope| serde_json::from_str(envelope).unwrap())
    .collect()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_bundled_due_soon_alert_is_sent_once_per_open_task_due_within_a_day(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let db = project.database().await;
    // A route that never ran runs at once; after that first (empty) run, the next tick is a
    // minute away, so every run below is one this test asked for.
    eventually(
        Duration::from_secs(10),
        "the first scheduled run",
        || async {
            (count(
                &db,
                "SELECT COUNT(*) FROM schedule_runs WHERE route = 'task-due-soon-alerts'",
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    insert_task(&db, "due-soon", "TODO", chrono::Duration::hours(2)).await;
    insert_task(&db, "due-later", "TODO", chrono::Duration::days(3)).await;
    insert_task(&db, "done", "COMPLETED", chrono::Duration::hours(1)).await;

    let (status, body) = trigger(&daemon, "task-due-soon-alerts").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["route"], "task-due-soon-alerts");
    assert_eq!(body["emitted"], 1, "{body}");
    assert_eq!(body["skipped"], false);
    assert!(body["ranAt"].as_str().unwrap().ends_with('Z'), "{body}");
    drained(&db).await;

    let events = due_soon_events(&db).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let data = &events[0]["data"];
    assert_eq!(data["taskId"], "due-soon");
    assert_eq!(data["title"], "task due-soon");
    assert_eq!(data["customerId"], "c-1");
    assert_eq!(data["assigneeId"], "u-1");
    assert_eq!(data["priority"], "HIGH");
    assert!(data["dueDate"].as_str().unwrap().ends_with('Z'), "{data}");
    // Flow 8 turned it into a notification for the assignee.
    let notifications: Vec<(String, String, String)> =
        sqlx::query_as("SELECT user_id, type, link FROM notifications")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        notifications,
        [(
            "u-1".to_owned(),
            "TASK_DUE_SOON".to_owned(),
            "/dashboard/tasks/due-soon".to_owned()
        )]
    );
    let notified: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tasks WHERE due_soon_notified_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(notified, ["due-soon"]);

    // Exactly once: the next run finds nothing new.
    let (status, body) = trigger(&daemon, "task-due-soon-alerts").await;
    assert_eq!((status, &body["emitted"]), (200, &json!(0)), "{body}");
    drained(&db).await;
    assert_eq!(due_soon_events(&db).await.len(), 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM notifications").await, 1);

    // The listing shows the schedule in place of topic and types.
    let (_, listing) = daemon.get("/api/routes").await;
    let route = listing["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|route| route["name"] == "task-due-soon-alerts")
        .unwrap();
    assert_eq!(route["schedule"], "1m");
    assert!(route.get("topic").is_none(), "{route}");
    assert!(daemon
        .log()
        .contains("⏰ Scheduled route ran: task-due-soon-alerts"));
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn scheduled_routes_tick_by_themselves_and_failures_do_not_stop_them(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_ticks.sql", TICKS);
    project.write(
        "routes/ticks.yaml",
        r#"routes:
  - name: tick
    on: {schedule: 1s}
    actions:
      - insert: {table: ticks, values: {id: "{{ uuid() }}", route: "{{ data.route }}", at: "{{ data.scheduledAt }}"}}
      - emit: {topic: test.events, eventType: TICKED, key: "{{ event.key }}", data: {at: "{{ data.scheduledAt }}"}}
  - name: broken
    on: {schedule: every 1s}
    actions:
      - insert: {table: ticks, values: {id: "{{ uuid() }}", route: broken, at: "{{ data.nope }}"}}
  - name: ticked
    on: {topic: test.events, type: TICKED}
    actions:
      - insert: {table: seen, values: {id: "{{ event.eventId }}", at: "{{ data.at }}"}}
"#,
    );
    let started = Instant::now();
    let daemon = project.start();
    let db = project.database().await;
    eventually(Duration::from_secs(10), "three ticks", || async {
        (tick_times(&db, "tick").await.len() >= 3).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "two dead letters", || async {
        (count(
            &db,
            "SELECT COUNT(*) FROM dead_letters WHERE route = 'broken'",
        )
        .await
            >= 2)
            .then_some(())
    })
    .await;
    // One run per interval, counted from the start of the previous run: never faster.
    let ticks = tick_times(&db, "tick").await;
    for pair in ticks.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::seconds(1),
            "{ticks:?}"
        );
    }
    assert!(
        ticks.len() as u64 <= started.elapsed().as_secs() + 1,
        "{} ticks in {:?}",
        ticks.len(),
        started.elapsed()
    );
    // The emitted events woke the consumer, which ran the event route for them.
    drained(&db).await;
    assert!(count(&db, "SELECT COUNT(*) FROM seen").await >= 3);

    // The failing route rolled back and left a dead letter per tick, and kept ticking.
    assert!(tick_times(&db, "broken").await.is_empty());
    let letters: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT topic, event_type, event_key, action_index, action_kind, error FROM dead_letters WHERE route = 'broken'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let (topic, event_type, key, action, kind, error) = &letters[0];
    assert_eq!(
        (
            topic.as_str(),
            event_type.as_str(),
            key.as_str(),
            action.as_str(),
            kind.as_str()
        ),
        ("schedule", "SCHEDULE", "broken", "0", "insert")
    );
    assert!(error.contains("undefined"), "{error}");
    let log = daemon.log();
    assert!(log.contains("scheduled run failed; dead-lettered"), "{log}");
    assert!(log.contains("broken"), "{log}");

    // Triggered by hand, the failure comes back as the answer.
    let (status, body) = trigger(&daemon, "broken").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "route_failed");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("route \"broken\" failed and was dead-lettered: action 0 (insert) failed: template error:"),
        "{message}"
    );
    let ticks_before = tick_times(&db, "tick").await.len();
    eventually(
        Duration::from_secs(10),
        "ticks after the failures",
        || async { (tick_times(&db, "tick").await.len() > ticks_before).then_some(()) },
    )
    .await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_trigger_endpoint_refuses_unknown_and_event_routes_and_missing_keys(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_ticks.sql", TICKS);
    project.write("routes/hourly.yaml", &ticking("hourly", "0 * * * *"));
    project.write(
        "routes/events.yaml",
        "routes:\n  - name: on-event\n    on: {topic: test.events}\n    actions:\n      - insert: {table: seen, values: {id: \"{{ event.eventId }}\", at: x}}\n",
    );
    let daemon = project.start();

    let (status, body) = trigger(&daemon, "nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body,
        json!({
            "success": false,
            "error": "no route named \"nope\"",
            "message": "no route named \"nope\"",
            "code": "not_found",
        })
    );
    let (status, body) = trigger(&daemon, "on-event").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("runs on events, not on a schedule"),
        "{body}"
    );

    let client = reqwest::Client::new();
    let url = format!("{}/api/routes/hourly/trigger", daemon.base);
    let response = client.post(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = client
        .post(&url)
        .header("x-api-key", "wrong-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let db = project.database().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ticks").await, 0);

    // With the key, the cron route runs now, whatever its schedule.
    let (status, body) = trigger(&daemon, "hourly").await;
    assert_eq!((status, &body["emitted"]), (200, &json!(0)), "{body}");
    assert_eq!(tick_times(&db, "hourly").await.len(), 1);
    let (_, listing) = daemon.get("/api/routes").await;
    let schedules: Vec<&Value> = listing["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| &route["schedule"])
        .collect();
    // Files load in name order: events.yaml, then hourly.yaml.
    assert_eq!(schedules, [&Value::Null, &json!("0 * * * *")]);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_restart_does_not_rerun_a_tick_and_reloads_add_and_remove_schedules(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_ticks.sql", TICKS);
    project.write("routes/hourly.yaml", &ticking("every-hour", "1h"));
    let mut daemon = project.start();
    let db = project.database().await;
    eventually(Duration::from_secs(10), "the first run", || async {
        (tick_times(&db, "every-hour").await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(daemon.terminate(), Some(0));
    let daemon = project.start();
    // Several passes of the new scheduler: the hour since the stored tick has not passed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        tick_times(&db, "every-hour").await.len(),
        1,
        "{}",
        daemon.log()
    );

    // A schedule added by a reload starts ticking; removed, it stops.
    project.write("routes/fast.yaml", &ticking("fast", "1s"));
    eventually(
        Duration::from_secs(10),
        "ticks of the added route",
        || async { (tick_times(&db, "fast").await.len() >= 2).then_some(()) },
    )
    .await;
    std::fs::remove_file(project.path().join("routes/fast.yaml")).unwrap();
    eventually(Duration::from_secs(10), "the removal", || async {
        daemon.log().contains("(+0 ~0 -1)").then_some(())
    })
    .await;
    // A run in flight when the set was swapped may still commit; after that, none.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after_removal = tick_times(&db, "fast").await.len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(tick_times(&db, "fast").await.len(), after_removal);
}

/// Several instances share a database only with Kafka as the bus (the embedded bus refuses a
/// second one); their schedulers still run each tick once.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn two_instances_on_one_database_run_each_tick_once(backend: Backend) {
    let Some(broker) = crate::kafka::Broker::start() else {
        return;
    };
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_ticks.sql", TICKS);
    project.write("routes/ticks.yaml", &ticking("shared", "1s"));
    let env = crate::kafka::kafka_env(&broker, "ticks");
    let first = Daemon::start(&project, &env);
    let second = Daemon::start(&project, &env);
    let db = project.database().await;
    eventually(Duration::from_secs(15), "five ticks", || async {
        (tick_times(&db, "shared").await.len() >= 5).then_some(())
    })
    .await;
    // Each daemon claims a tick with a compare-and-set on the last one, so the two together
    // still run once per interval instead of twice.
    let ticks = tick_times(&db, "shared").await;
    for pair in ticks.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::seconds(1),
            "{ticks:?}\n{}\n{}",
            first.log(),
            second.log()
        );
    }
}
