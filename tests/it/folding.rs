//! Counter increments folded across a batch leave exactly the rows the events leave one by
//! one: sums per key, skipped events skipped, and a failing sum found event by event.

use std::collections::BTreeMap;

use serde_json::json;
use test_case::test_case;

use crate::support::{drained, Backend, Daemon, Project};

/// A counter table folding may sum into: no CHECK, trigger, view or computed default. On
/// SQLite it is STRICT, so that an overflowing count is an error (as on PostgreSQL) instead of
/// turning into a REAL.
fn migration(backend: Backend) -> String {
    let (integer, strict) = match backend {
        Backend::Sqlite => ("INTEGER", " STRICT"),
        Backend::Postgres => ("BIGINT", ""),
    };
    format!(
        "CREATE TABLE hits (\n  day TEXT NOT NULL,\n  kind TEXT NOT NULL,\n  \
         n {integer} NOT NULL DEFAULT 0,\n  events {integer} NOT NULL DEFAULT 0,\n  \
         PRIMARY KEY (day, kind)\n){strict};\n"
    )
}

const ROUTE: &str = r#"routes:
  - name: count-hits
    on: {topic: test.events, type: HIT}
    actions:
      - upsert:
          when: "data.n != 0"
          table: hits
          where: {day: "{{ data.day }}", kind: "{{ data.kind }}"}
          increment: {n: "{{ data.n }}", events: 1}
"#;

/// `count` HIT events, appended to the log in one statement so that the consumer reads them
/// in batches of its `batch_size`: twelve keys (day, kind), increments from -3 to 9
/// (0 is skipped by the step's `when:`).
fn hits(count: usize) -> Vec<(String, String, i64)> {
    (0..count)
        .map(|i| {
            let day = format!("2026-12-0{}", 1 + i % 2);
            let kind = ["a", "b", "c", "d", "e", "f"][(i / 2) % 6].to_owned();
            let n = ((i * 7) % 13) as i64 - 3;
            (day, kind, n)
        })
        .collect()
}

async fn append(project: &Project, events: &[(String, String, i64)], first: usize) {
    let db = project.database().await;
    let mut sql = String::from(
        "INSERT INTO event_log (event_id, topic, event_key, event_type, envelope, created_at) VALUES ",
    );
    for (index, (day, kind, n)) in events.iter().enumerate() {
        let id = format!("hit-{:05}", first + index);
        let envelope = json!({
            "eventId": id, "eventType": "HIT", "timestamp": "2026-12-04T00:00:00.000Z",
            "source": "test", "data": {"day": day, "kind": kind, "n": n}
        });
        if index > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "('{id}', 'test.events', '{kind}', 'HIT', '{}', '2026-12-04T00:00:00.000Z')",
            envelope.to_string().replace('\'', "''")
        ));
    }
    sqlx::query(&sql).execute(&db).await.unwrap();
}

/// Each key's row: (day, kind) → (n, events).
type Rows = BTreeMap<(String, String), (i64, i64)>;

async fn rows(project: &Project) -> Rows {
    let db = project.database().await;
    drained(&db).await;
    sqlx::query_as::<_, (String, String, i64, i64)>("SELECT day, kind, n, events FROM hits")
        .fetch_all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|(day, kind, n, events)| ((day, kind), (n, events)))
        .collect()
}

/// What the events leave one by one, and which of them fail: an increment that would overflow
/// its key's count is refused and changes nothing.
fn one_by_one(events: &[(String, String, i64)]) -> (Rows, Vec<String>) {
    let mut expected = Rows::new();
    let mut refused = Vec::new();
    for (index, (day, kind, n)) in events.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let row = expected
            .entry((day.clone(), kind.clone()))
            .or_insert((0, 0));
        if row.0.checked_add(*n).is_none() {
            refused.push(format!("hit-{index:05}"));
            if row.1 == 0 {
                expected.remove(&(day.clone(), kind.clone()));
            }
            continue;
        }
        *row = (row.0 + n, row.1 + 1);
    }
    (expected, refused)
}

/// A project with the counter table and route, and its daemon running.
fn counting(backend: Backend) -> Option<(Project, Daemon)> {
    let project = Project::empty_on(backend)?;
    project.write("migrations/20270101000000_hits.sql", &migration(backend));
    project.write("routes/hits.yaml", ROUTE);
    let daemon = project.start();
    Some((project, daemon))
}

/// The ids of the dead-lettered events, in order.
async fn dead_letters(project: &Project) -> Vec<String> {
    let db = project.database().await;
    sqlx::query_scalar("SELECT event_id FROM dead_letters ORDER BY event_id")
        .fetch_all(&db)
        .await
        .unwrap()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn folded_increments_equal_the_events_one_by_one(backend: Backend) {
    let Some((project, _daemon)) = counting(backend) else {
        return;
    };
    // 1,200 events: two full batches of 500 and a partial one, twelve keys, skipped zeros.
    let events = hits(1_200);
    append(&project, &events, 0).await;
    let (expected, refused) = one_by_one(&events);
    assert!(refused.is_empty(), "this stream overflows nothing");
    assert_eq!(rows(&project).await, expected);
    assert_eq!(dead_letters(&project).await, Vec::<String>::new());
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_folded_sum_that_fails_is_found_event_by_event(backend: Backend) {
    let Some((project, _daemon)) = counting(backend) else {
        return;
    };
    let hot = |n: i64, count: usize| {
        (0..count).map(move |_| ("2026-12-09".to_owned(), "hot".to_owned(), n))
    };
    // First a count near the top of a 64-bit integer...
    let mut events: Vec<_> = hot(2_000_000_000_000_000_000, 4).collect();
    append(&project, &events, 0).await;
    rows(&project).await;
    // ...then a batch whose sum fits in Rust but overflows the row: the folded statement
    // fails, the batch is handled again one event at a time, and exactly the events that
    // would overflow are dead-lettered.
    let second: Vec<_> = hits(200)
        .into_iter()
        .chain(hot(100_000_000_000_000_000, 30))
        .chain(hits(20))
        .collect();
    append(&project, &second, events.len()).await;
    events.extend(second);
    let (expected, refused) = one_by_one(&events);
    assert_eq!(
        refused.len(),
        30 - 12,
        "8e18 + 12 × 1e17 fits, one more does not"
    );
    assert_eq!(rows(&project).await, expected);
    assert_eq!(dead_letters(&project).await, refused);
}
