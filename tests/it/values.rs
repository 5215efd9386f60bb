//! Route values reach typed columns and come back typed, the same on both databases: each
//! value is converted for its column's type (strings of digits into integers, RFC 3339 into
//! dates and instants, lists into arrays and JSON), read back by `as:`, `query` and emitted
//! events as typed JSON, and a value that cannot fit is dead-lettered with the column, the
//! value and the type named. Values also change type from event to event (a number, then
//! `none`, then text), where PostgreSQL is strict about parameter types.

use serde_json::{json, Value};
use sqlx::AnyPool;
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

/// One column of the type matrix: its declared type on each database (`None`: the type has no
/// SQLite counterpart), the value the event carries for it, and the JSON it reads back as (on
/// SQLite, where it differs, `sqlite_reads`).
struct TypedColumn {
    name: &'static str,
    postgres: &'static str,
    sqlite: Option<&'static str>,
    written: Value,
    reads: Value,
    sqlite_reads: Option<Value>,
}

fn typed_column(
    name: &'static str,
    postgres: &'static str,
    sqlite: Option<&'static str>,
    written: Value,
    reads: Value,
) -> TypedColumn {
    TypedColumn {
        name,
        postgres,
        sqlite,
        written,
        reads,
        sqlite_reads: None,
    }
}

/// Every type a route can write, with the forms each accepts: strings of digits into integers,
/// decimal strings into numeric and double columns, "TRUE" into booleans, numbers and booleans
/// into text, an upper-case UUID, an RFC 3339 timestamp with an offset into date, timestamp and
/// timestamptz columns, maps, lists and strings into JSON, base64 into bytes, lists into
/// arrays.
fn typed_columns() -> Vec<TypedColumn> {
    let with_sqlite = |mut column: TypedColumn, reads: Value| {
        column.sqlite_reads = Some(reads);
        column
    };
    vec![
        typed_column(
            "small",
            "SMALLINT",
            Some("SMALLINT"),
            json!(-32768),
            json!(-32768),
        ),
        typed_column("int", "INTEGER", Some("INTEGER"), json!("42"), json!(42)),
        typed_column("whole", "INTEGER", Some("INTEGER"), json!(7.0), json!(7)),
        typed_column(
            "big",
            "BIGINT",
            Some("BIGINT"),
            json!(9007199254740993_i64),
            json!(9007199254740993_i64),
        ),
        typed_column(
            "num",
            "DECIMAL(10,2)",
            Some("DECIMAL(10,2)"),
            json!("12.50"),
            json!(12.5),
        ),
        typed_column(
            "num_number",
            "NUMERIC",
            Some("NUMERIC"),
            json!(0.1),
            json!(0.1),
        ),
        typed_column("re", "REAL", Some("REAL"), json!(1.5), json!(1.5)),
        typed_column(
            "dbl",
            "DOUBLE PRECISION",
            Some("DOUBLE PRECISION"),
            json!("2.25"),
            json!(2.25),
        ),
        typed_column(
            "flag",
            "BOOLEAN",
            Some("BOOLEAN"),
            json!("TRUE"),
            json!(true),
        ),
        typed_column(
            "off",
            "BOOLEAN",
            Some("BOOLEAN"),
            json!("false"),
            json!(false),
        ),
        typed_column("yes", "BOOLEAN", Some("BOOLEAN"), json!(true), json!(true)),
        typed_column(
            "label",
            "TEXT",
            Some("TEXT"),
            json!("héllo {{ 7*7 }}"),
            json!("héllo {{ 7*7 }}"),
        ),
        typed_column("count_text", "TEXT", Some("TEXT"), json!(5), json!("5")),
        typed_column("ratio_text", "TEXT", Some("TEXT"), json!(2.5), json!("2.5")),
        typed_column(
            "bool_text",
            "VARCHAR(10)",
            Some("VARCHAR(10)"),
            json!(true),
            json!("true"),
        ),
        typed_column(
            "letters",
            "CHAR(3)",
            Some("CHAR(3)"),
            json!("abc"),
            json!("abc"),
        ),
        typed_column(
            "ident",
            "UUID",
            Some("UUID"),
            json!("6F9619FF-8B86-D011-B42D-00C04FC964FF"),
            json!("6f9619ff-8b86-d011-b42d-00c04fc964ff"),
        ),
        typed_column(
            "day",
            "DATE",
            Some("DATE"),
            json!("2026-11-29T23:30:00+09:00"),
            json!("2026-11-29"),
        ),
        typed_column(
            "plain_day",
            "DATE",
            Some("DATE"),
            json!("2026-02-28"),
            json!("2026-02-28"),
        ),
        typed_column(
            "at",
            "TIME",
            Some("TIME"),
            json!("10:30"),
            json!("10:30:00"),
        ),
        typed_column(
            "at_fraction",
            "TIME",
            Some("TIME"),
            json!("10:30:15.25"),
            json!("10:30:15.250"),
        ),
        // SQLite has no timestamp without a zone: TIMESTAMP there means an instant.
        with_sqlite(
            typed_column(
                "stamp",
                "TIMESTAMP",
                Some("TIMESTAMP"),
                json!("2026-11-29T23:30:00+09:00"),
                json!("2026-11-29T23:30:00"),
            ),
            json!("2026-11-29T14:30:00Z"),
        ),
        with_sqlite(
            typed_column(
                "stamp_day",
                "TIMESTAMP",
                Some("TIMESTAMP"),
                json!("2026-11-29"),
                json!("2026-11-29T00:00:00"),
            ),
            json!("2026-11-29T00:00:00Z"),
        ),
        with_sqlite(
            typed_column(
                "stamp_space",
                "TIMESTAMP",
                Some("TIMESTAMP"),
                json!("2026-11-29 08:15:30"),
                json!("2026-11-29T08:15:30"),
            ),
            json!("2026-11-29T08:15:30Z"),
        ),
        typed_column(
            "instant",
            "TIMESTAMPTZ",
            Some("DATETIME"),
            json!("2026-11-29T23:30:00+09:00"),
            json!("2026-11-29T14:30:00Z"),
        ),
        typed_column(
            "instant_ms",
            "TIMESTAMP WITH TIME ZONE",
            Some("TIMESTAMPTZ"),
            json!("2026-01-02T03:04:05.123+00:00"),
            json!("2026-01-02T03:04:05.123Z"),
        ),
        typed_column(
            "instant_naive",
            "TIMESTAMPTZ",
            Some("DATETIME"),
            json!("2026-01-02 03:04:05"),
            json!("2026-01-02T03:04:05Z"),
        ),
        typed_column(
            "doc",
            "JSON",
            Some("JSON"),
            json!({"a": [1, 2], "b": null, "c": "x"}),
            json!({"a": [1, 2], "b": null, "c": "x"}),
        ),
        typed_column(
            "docb",
            "JSONB",
            Some("JSONB"),
            json!("plain"),
            json!("plain"),
        ),
        typed_column(
            "docb_list",
            "JSONB",
            Some("JSONB"),
            json!([1, "two", {"three": 3}]),
            json!([1, "two", {"three": 3}]),
        ),
        typed_column(
            "raw",
            "BYTEA",
            Some("BLOB"),
            json!("aGVsbG8="),
            json!("aGVsbG8="),
        ),
        typed_column(
            "tags",
            "TEXT[]",
            None,
            json!(["a", 1, true]),
            json!(["a", "1", "true"]),
        ),
        typed_column(
            "nums",
            "INTEGER[]",
            None,
            json!([1, "2", 3.0]),
            json!([1, 2, 3]),
        ),
    ]
}

/// The type matrix as a project: the table (DDL per backend) and two routes. `TYPED` inserts
/// a row from event data and template functions and emits `STORED` with what the insert
/// returned; `STORED` queries the row back and emits `READ` with the rows.
fn typed_project(backend: Backend) -> Option<(Project, Vec<TypedColumn>)> {
    let project = Project::empty_on(backend)?;
    let columns: Vec<TypedColumn> = typed_columns()
        .into_iter()
        .filter(|column| backend == Backend::Postgres || column.sqlite.is_some())
        .collect();
    let (created, born, token) = match backend {
        Backend::Postgres => ("TIMESTAMPTZ", "DATE", "UUID"),
        Backend::Sqlite => ("DATETIME", "DATE", "UUID"),
    };
    let mut ddl = String::from("CREATE TABLE typed (\n    id TEXT PRIMARY KEY");
    for column in &columns {
        let declared = match backend {
            Backend::Postgres => column.postgres,
            Backend::Sqlite => column.sqlite.unwrap(),
        };
        ddl.push_str(&format!(",\n    {} {declared}", column.name));
    }
    ddl.push_str(&format!(
        ",\n    created {created},\n    born {born},\n    token {token}\n);\n"
    ));
    project.write("migrations/20270101000000_typed.sql", &ddl);

    let mut values = String::from("            id: \"{{ data.id }}\"\n");
    for column in &columns {
        values.push_str(&format!(
            "            {0}: \"{{{{ data.{0} }}}}\"\n",
            column.name
        ));
    }
    values.push_str("            created: \"{{ now() }}\"\n");
    values.push_str("            born: \"{{ today() }}\"\n");
    values.push_str("            token: \"{{ uuid() }}\"\n");
    project.write(
        "routes/typed.yaml",
        &format!(
            r#"routes:
  - name: store
    on: {{topic: test.events, type: TYPED}}
    actions:
      - insert:
          table: typed
          values:
{values}          as: row
      - emit:
          topic: test.events
          eventType: STORED
          key: "{{{{ steps.row.id }}}}"
          data: {{row: "{{{{ steps.row }}}}"}}
  - name: read
    on: {{topic: test.events, type: STORED}}
    actions:
      - query:
          table: typed
          where: {{id: "{{{{ data.row.id }}}}"}}
          as: rows
      - emit:
          topic: test.events
          eventType: READ
          key: "{{{{ data.row.id }}}}"
          data: {{rows: "{{{{ steps.rows }}}}"}}
"#
        ),
    );
    Some((project, columns))
}

/// The `data` of every event of `event_type` in the log, in log order.
async fn emitted_data(db: &AnyPool, event_type: &str) -> Vec<Value> {
    let envelopes: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT envelope FROM event_log WHERE event_type = '{event_type}' ORDER BY seq"
    ))
    .fetch_all(db)
    .await
    .unwrap();
    envelopes
        .iter()
        .map(|envelope| {
            let envelope: Value = serde_json::from_str(envelope).unwrap();
            envelope["data"].clone()
        })
        .collect()
}

/// Takes the values of the template functions out of `row` and checks their shape: `now()` an
/// RFC 3339 instant in UTC with `Z`, `today()` a date, `uuid()` a lower-case hyphenated UUID.
fn take_function_values(row: &mut Value) -> (String, String, String) {
    let object = row.as_object_mut().unwrap();
    let mut take = |name: &str| match object.remove(name) {
        Some(Value::String(text)) => text,
        other => panic!("{name}: {other:?}"),
    };
    let (created, born, token) = (take("created"), take("born"), take("token"));
    assert!(created.ends_with('Z'), "{created}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&created).is_ok(),
        "{created}"
    );
    assert!(
        chrono::NaiveDate::parse_from_str(&born, "%Y-%m-%d").is_ok(),
        "{born}"
    );
    assert_eq!(born.len(), 10, "{born}");
    let parsed = uuid::Uuid::parse_str(&token).unwrap();
    assert_eq!(token, parsed.hyphenated().to_string(), "{token}");
    (created, born, token)
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn every_column_type_is_written_and_read_back_as_typed_json(backend: Backend) {
    let Some((project, columns)) = typed_project(backend) else {
        return;
    };
    let daemon = project.start();
    let mut full = serde_json::Map::new();
    let mut nulls = serde_json::Map::new();
    full.insert("id".into(), json!("full"));
    nulls.insert("id".into(), json!("nulls"));
    for column in &columns {
        full.insert(column.name.into(), column.written.clone());
        nulls.insert(column.name.into(), Value::Null);
    }
    for data in [full, nulls] {
        let event = json!({"eventType": "TYPED", "data": data});
        let (status, body) = daemon.post_event("test.events", event).await;
        assert_eq!(status, 202, "{body}");
    }
    let db = project.database().await;
    drained(&db).await;
    let letters: Vec<String> = sqlx::query_scalar("SELECT error FROM dead_letters")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(letters.is_empty(), "{letters:?}\n{}", daemon.log());

    let mut expected_full = serde_json::Map::new();
    let mut expected_nulls = serde_json::Map::new();
    expected_full.insert("id".into(), json!("full"));
    expected_nulls.insert("id".into(), json!("nulls"));
    for column in &columns {
        let reads = match (&column.sqlite_reads, backend) {
            (Some(sqlite_reads), Backend::Sqlite) => sqlite_reads.clone(),
            _ => column.reads.clone(),
        };
        expected_full.insert(column.name.into(), reads);
        expected_nulls.insert(column.name.into(), Value::Null);
    }

    let stored = emitted_data(&db, "STORED").await;
    let read = emitted_data(&db, "READ").await;
    assert_eq!((stored.len(), read.len()), (2, 2), "{stored:?}\n{read:?}");
    for (index, expected) in [expected_full, expected_nulls].into_iter().enumerate() {
        let expected = Value::Object(expected);
        // What `as:` of the insert returned, as the emitted event carries it.
        let mut returned = stored[index]["row"].clone();
        let functions = take_function_values(&mut returned);
        assert_eq!(returned, expected, "insert `as:` of {}", expected["id"]);
        // What `query` read back, as the second emit carries it.
        let rows = read[index]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let mut queried = rows[0].clone();
        assert_eq!(take_function_values(&mut queried), functions);
        assert_eq!(queried, expected, "query of {}", expected["id"]);
    }

    // JSON columns hold JSON (a string as a JSON string), not JSON quoted as text.
    for (column, value) in [
        ("doc", json!({"a": [1, 2], "b": null, "c": "x"})),
        ("docb", json!("plain")),
        ("docb_list", json!([1, "two", {"three": 3}])),
    ] {
        let text: String = sqlx::query_scalar(&format!(
            "SELECT CAST({column} AS TEXT) FROM typed WHERE id = 'full'"
        ))
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            value,
            "{column}: {text}"
        );
    }
    if backend == Backend::Sqlite {
        // SQLite stores an instant as RFC 3339 text in UTC with a fixed six-digit fraction (so
        // that text order is time order), a boolean as 0/1.
        let (instant, flag, off): (String, i64, i64) =
            sqlx::query_as("SELECT CAST(instant AS TEXT), CAST(flag AS INTEGER), CAST(off AS INTEGER) FROM typed WHERE id = 'full'")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(
            (instant.as_str(), flag, off),
            ("2026-11-29T14:30:00.000000Z", 1, 0)
        );
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn exact_decimals_read_back_exactly(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_amounts.sql",
        "CREATE TABLE amounts (id TEXT PRIMARY KEY, amount NUMERIC);\n",
    );
    project.write(
        "routes/amounts.yaml",
        r#"routes:
  - name: amounts
    on: {topic: test.events, type: AMOUNT}
    actions:
      - insert: {table: amounts, values: {id: "{{ data.id }}", amount: "{{ data.amount }}"}, as: row}
      - emit: {topic: test.events, eventType: STORED, key: "{{ data.id }}", data: "{{ steps.row }}"}
"#,
    );
    let daemon = project.start();
    // SQLite converts a NUMERIC value to floating point past 64-bit integers (its affinity
    // rules; docs/routes.md says to keep exact decimals in TEXT there): only PostgreSQL is exact.
    let (big, huge) = match backend {
        Backend::Postgres => (
            json!("12345678901234567890.123456789"),
            json!("99999999999999999999"),
        ),
        Backend::Sqlite => (json!(1.2345678901234567e19), json!(1e20)),
    };
    let cases = [
        ("big", json!("12345678901234567890.123456789"), big),
        ("huge_integer", json!("99999999999999999999"), huge),
        ("cents", json!("12.50"), json!(12.5)),
        ("integer", json!(1200), json!(1200)),
        ("fraction", json!(0.1), json!(0.1)),
    ];
    for (id, amount, _) in &cases {
        let event = json!({"eventType": "AMOUNT", "data": {"id": id, "amount": amount}});
        assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    }
    let db = project.database().await;
    drained(&db).await;
    let stored = emitted_data(&db, "STORED").await;
    let read: Vec<Value> = stored.iter().map(|row| row["amount"].clone()).collect();
    let expected: Vec<Value> = cases.iter().map(|(_, _, reads)| reads.clone()).collect();
    assert_eq!(read, expected, "{}", daemon.log());
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_value_that_does_not_fit_its_column_is_dead_lettered_and_others_flow(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_orders.sql",
        "CREATE TABLE orders (id TEXT PRIMARY KEY, qty INTEGER, placed DATE);\n",
    );
    project.write(
        "routes/orders.yaml",
        r#"routes:
  - name: orders
    on: {topic: test.events, type: ORDER}
    actions:
      - insert: {table: orders, values: {id: "{{ data.id }}", qty: "{{ data.qty }}", placed: "{{ data.placed }}"}}
"#,
    );
    let daemon = project.start();
    for (id, qty, placed) in [
        ("a", json!(1), json!("2026-11-29")),
        ("b", json!("abc"), json!("2026-11-29")),
        ("c", json!("3"), json!("2026-11-30")),
        ("d", json!(4), json!("yesterday")),
        ("e", json!(5), json!(null)),
        ("f", json!(3000000000_i64), json!(null)),
        ("g", json!(2.5), json!(null)),
    ] {
        let event = json!({"eventType": "ORDER", "key": id, "data": {"id": id, "qty": qty, "placed": placed}});
        assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    }
    let db = project.database().await;
    drained(&db).await;
    let letters: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT event_key, route, action_kind, error FROM dead_letters ORDER BY event_key",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let qty_at = "(at routes/orders.yaml:5:68)";
    let placed_at = "(at routes/orders.yaml:5:94)";
    // SQLite reads INTEGER by affinity: a 64-bit integer, where 3000000000 fits.
    let (integer, stored_ids, stored_sum) = match backend {
        Backend::Sqlite => (
            "bigint: expected an integer (a number or a string of digits)",
            vec!["a", "c", "e", "f"],
            3000000009,
        ),
        Backend::Postgres => (
            "integer: expected an integer from -2147483648 to 2147483647",
            vec!["a", "c", "e"],
            9,
        ),
    };
    let mut expected = vec![
        ("b", format!("column qty: \"abc\" does not fit type {integer} {qty_at}")),
        (
            "d",
            format!("column placed: \"yesterday\" does not fit type date: expected a date, YYYY-MM-DD (or an RFC 3339 timestamp) {placed_at}"),
        ),
    ];
    if backend == Backend::Postgres {
        expected.push((
            "f",
            format!("column qty: 3000000000 does not fit type {integer} {qty_at}"),
        ));
    }
    expected.push((
        "g",
        format!("column qty: 2.5 does not fit type {integer} {qty_at}"),
    ));
    let found: Vec<(&str, String)> = letters
        .iter()
        .map(|(key, _, _, error)| (key.as_str(), error.clone()))
        .collect();
    assert_eq!(found, expected, "{}", daemon.log());
    for (_, route, kind, _) in &letters {
        assert_eq!((route.as_str(), kind.as_str()), ("orders", "insert"));
    }
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM orders ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(stored, stored_ids);
    assert_eq!(
        count(&db, "SELECT CAST(SUM(qty) AS BIGINT) FROM orders").await,
        stored_sum
    );
}

/// `where:` values are converted to their column's type like written values (an upper-case
/// UUID, "false" for a boolean, an offset timestamp for an instant), instants compare as
/// instants (a fraction of a second counts), and `update`/`upsert` return their rows typed.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn filters_compare_typed_values_and_updates_return_typed_rows(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    let ddl = match backend {
        Backend::Postgres => "CREATE TABLE visits (id UUID PRIMARY KEY, day DATE, at TIMESTAMPTZ, done BOOLEAN, qty INTEGER, amount NUMERIC(12,2));\n",
        Backend::Sqlite => "CREATE TABLE visits (id UUID PRIMARY KEY, day DATE, at DATETIME, done BOOLEAN, qty INTEGER, amount NUMERIC(12,2));\n",
    };
    project.write("migrations/20270101000000_visits.sql", ddl);
    project.write(
        "routes/visits.yaml",
        r#"routes:
  - name: add
    on: {topic: test.events, type: ADD}
    actions:
      - insert:
          table: visits
          values: {id: "{{ data.id }}", day: "{{ data.day }}", at: "{{ data.at }}", done: "{{ data.done }}", qty: "{{ data.qty }}", amount: "{{ data.amount }}"}
  - name: find
    on: {topic: test.events, type: FIND}
    actions:
      - query: {table: visits, where: {id: "{{ data.id }}"}, as: by_id}
      - query: {table: visits, where: {day: "{{ data.day }}", done: "{{ data.done }}"}, as: by_day}
      - query: {table: visits, where: {at: {gte: "{{ data.from }}"}}, order_by: [at], as: since}
      - query: {table: visits, where: {at: {lt: "{{ data.from }}"}}, order_by: [at], as: before}
      - emit:
          topic: test.events
          eventType: FOUND
          key: k
          data: {by_id: "{{ steps.by_id }}", by_day: "{{ steps.by_day }}", since: "{{ steps.since }}", before: "{{ steps.before }}"}
  - name: bump
    on: {topic: test.events, type: BUMP}
    actions:
      - update:
          table: visits
          where: {id: "{{ data.id }}"}
          set: {done: "TRUE", at: "2026-12-01 00:00:00"}
          increment: {qty: 1, amount: "0.25"}
          as: changed
      - upsert:
          table: visits
          where: {id: "{{ data.new_id }}"}
          set: {day: "2026-12-01", done: false}
          increment: {qty: 5}
          as: up
      - emit:
          topic: test.events
          eventType: BUMPED
          key: k
          data: {changed: "{{ steps.changed }}", up: "{{ steps.up }}"}
"#,
    );
    let daemon = project.start();
    let ids = [
        "a0000000-0000-4000-8000-000000000001",
        "a0000000-0000-4000-8000-000000000002",
        "a0000000-0000-4000-8000-000000000003",
    ];
    let new_id = "a0000000-0000-4000-8000-000000000004";
    for (id, day, at, done, qty, amount) in [
        (
            ids[0],
            "2026-11-29",
            "2026-11-29T10:00:00Z",
            false,
            1,
            "1.10",
        ),
        (
            ids[1],
            "2026-11-29",
            "2026-11-29T10:00:00.500Z",
            true,
            2,
            "2.20",
        ),
        (
            ids[2],
            "2026-11-30",
            "2026-11-29T19:00:01+09:00",
            false,
            3,
            "3.30",
        ),
    ] {
        let data =
            json!({"id": id, "day": day, "at": at, "done": done, "qty": qty, "amount": amount});
        let event = json!({"eventType": "ADD", "data": data});
        assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    }
    let db = project.database().await;
    drained(&db).await;
    let find = json!({"eventType": "FIND", "data": {
        "id": ids[1].to_uppercase(),
        "day": "2026-11-29",
        "done": "false",
        "from": "2026-11-29T19:00:00.250+09:00",
    }});
    assert_eq!(daemon.post_event("test.events", find).await.0, 202);
    drained(&db).await;
    let bump =
        json!({"eventType": "BUMP", "data": {"id": ids[0].to_uppercase(), "new_id": new_id}});
    assert_eq!(daemon.post_event("test.events", bump).await.0, 202);
    drained(&db).await;
    let letters: Vec<String> = sqlx::query_scalar("SELECT error FROM dead_letters")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(letters.is_empty(), "{letters:?}\n{}", daemon.log());

    let row = |index: usize| {
        let (day, at, done, qty, amount) = [
            ("2026-11-29", "2026-11-29T10:00:00Z", false, 1, json!(1.1)),
            (
                "2026-11-29",
                "2026-11-29T10:00:00.500Z",
                true,
                2,
                json!(2.2),
            ),
            ("2026-11-30", "2026-11-29T10:00:01Z", false, 3, json!(3.3)),
        ][index]
            .clone();
        json!({"id": ids[index], "day": day, "at": at, "done": done, "qty": qty, "amount": amount})
    };
    let found = emitted_data(&db, "FOUND").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["by_id"], json!([row(1)]), "uuid filter");
    assert_eq!(
        found[0]["by_day"],
        json!([row(0)]),
        "date and boolean filter"
    );
    assert_eq!(
        found[0]["since"],
        json!([row(1), row(2)]),
        "instants at or after 10:00:00.250Z, in time order"
    );
    assert_eq!(
        found[0]["before"],
        json!([row(0)]),
        "instants before 10:00:00.250Z"
    );

    let bumped = emitted_data(&db, "BUMPED").await;
    assert_eq!(bumped.len(), 1);
    assert_eq!(
        bumped[0]["changed"],
        json!([{"id": ids[0], "day": "2026-11-29", "at": "2026-12-01T00:00:00Z", "done": true, "qty": 2, "amount": 1.35}])
    );
    assert_eq!(
        bumped[0]["up"],
        json!({"id": new_id, "day": "2026-12-01", "at": null, "done": false, "qty": 5, "amount": null})
    );
}

/// A row read back with a column of a type routes cannot write (an `interval` filled by its
/// default) gives that column as its text instead of failing the route.
#[tokio::test]
async fn columns_of_unreadable_types_read_back_as_text_on_postgres() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    project.write(
        "migrations/20270101000000_spans.sql",
        "CREATE TABLE spans (id TEXT PRIMARY KEY, span INTERVAL NOT NULL DEFAULT '1 day');\n",
    );
    project.write(
        "routes/spans.yaml",
        r#"routes:
  - name: spans
    on: {topic: test.events, type: SPAN}
    actions:
      - insert: {table: spans, values: {id: "{{ data.id }}"}, as: inserted}
      - query: {table: spans, where: {id: "{{ data.id }}"}, as: queried}
      - emit: {topic: test.events, eventType: SPAN_STORED, key: "{{ data.id }}", data: {inserted: "{{ steps.inserted }}", queried: "{{ steps.queried }}"}}
"#,
    );
    let daemon = project.start();
    let event = json!({"eventType": "SPAN", "data": {"id": "a"}});
    assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(
        emitted_data(&db, "SPAN_STORED").await,
        vec![json!({
            "inserted": {"id": "a", "span": "1 day"},
            "queried": [{"id": "a", "span": "1 day"}],
        })],
        "{}",
        daemon.log()
    );
}

/// Route statements stay prepared between events. A column added to the table while the daemon
/// runs must not break them (PostgreSQL refuses a cached `SELECT *`/`RETURNING *` whose result
/// grew: "cached plan must not change result type"); a `char(n)[]` column reads back too.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_column_added_while_running_does_not_break_prepared_routes(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    let codes = match backend {
        Backend::Postgres => "CHAR(3)[]",
        Backend::Sqlite => "TEXT",
    };
    project.write(
        "migrations/20270101000000_leads.sql",
        &format!("CREATE TABLE leads (id TEXT PRIMARY KEY, codes {codes});\n"),
    );
    project.write(
        "routes/leads.yaml",
        r#"routes:
  - name: leads
    on: {topic: test.events, type: LEAD}
    actions:
      - insert: {table: leads, values: {id: "{{ data.id }}", codes: "{{ data.codes }}"}, as: lead}
      - query: {table: leads, where: {id: "{{ data.id }}"}, as: found}
      - emit: {topic: test.events, eventType: LEAD_STORED, key: "{{ data.id }}", data: {lead: "{{ steps.lead }}", found: "{{ steps.found }}"}}
"#,
    );
    let daemon = project.start();
    let codes = match backend {
        Backend::Postgres => json!(["abc", "de "]),
        Backend::Sqlite => json!("abc"),
    };
    let send = |id: &'static str| {
        let codes = codes.clone();
        let daemon = &daemon;
        async move {
            let event = json!({"eventType": "LEAD", "data": {"id": id, "codes": codes}});
            assert_eq!(daemon.post_event("test.events", event).await.0, 202);
        }
    };
    send("a").await;
    let db = project.database().await;
    drained(&db).await;
    sqlx::query("ALTER TABLE leads ADD COLUMN extra INTEGER")
        .execute(&db)
        .await
        .unwrap();
    send("b").await;
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dead_letters").await,
        0,
        "{}",
        daemon.log()
    );
    let stored = emitted_data(&db, "LEAD_STORED").await;
    assert_eq!(stored.len(), 2);
    for (data, id) in stored.iter().zip(["a", "b"]) {
        let row = json!({"id": id, "codes": codes});
        assert_eq!(data, &json!({"lead": row, "found": [row]}));
    }
}
