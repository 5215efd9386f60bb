//! Route values change type from event to event (a number, then `none`, then text): every
//! combination lands in integer, floating-point and text columns on both databases, where
//! PostgreSQL is strict about parameter types.

use serde_json::json;
use test_case::test_case;

use crate::support::{count, drained, Backend, Project};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn nulls_and_numbers_reach_typed_columns_in_any_order(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_nums.sql",
        "CREATE TABLE nums (id TEXT PRIMARY KEY, n BIGINT, f DOUBLE PRECISION, t TEXT);\n",
    );
    project.write(
        "routes/nums.yaml",
        r#"routes:
  - name: nums
    on: {topic: test.events, type: NUM}
    actions:
      - insert: {table: nums, values: {id: "{{ event.eventId }}", n: "{{ data.n }}", f: "{{ data.f }}", t: "{{ data.t }}"}}
"#,
    );
    let daemon = project.start();
    for data in [
        json!({"n": null, "f": null, "t": null}),
        json!({"n": 5, "f": 1.5, "t": "x"}),
        json!({"n": null, "f": 2.5, "t": null}),
        json!({"n": 7, "f": null, "t": "y"}),
        json!({"n": 8, "f": 3, "t": "z"}),
    ] {
        let event = json!({"eventType": "NUM", "data": data});
        assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    }
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dead_letters").await,
        0,
        "{}",
        daemon.log()
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM nums").await, 5);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM nums WHERE n IS NULL").await,
        2
    );
    assert_eq!(
        count(&db, "SELECT CAST(SUM(n) AS BIGINT) FROM nums").await,
        20
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM nums WHERE f IS NULL").await,
        2
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM nums WHERE t IS NULL").await,
        2
    );
}
