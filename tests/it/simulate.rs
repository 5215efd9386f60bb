//! `crm-router simulate`: what the routes would do with one event, shown step by step, with
//! the database left as it was and no HTTP request sent.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use test_case::test_case;

use crate::support::{binary, count, drained, Backend, Project};

const MIGRATION: &str =
    "CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT NOT NULL, amount NUMERIC NOT NULL);
CREATE TABLE order_lines (order_id TEXT NOT NULL, note TEXT NOT NULL);
";

const SCHEMA: &str = r#"{"type": "object", "required": ["id", "customer", "amount"],
  "properties": {"id": {"type": "string"}, "customer": {"type": "string"}, "amount": {"type": "number"}}}"#;

/// Routes with every kind of step: an insert kept as `order`, an `http` call to `hook`, an
/// emit another route reads, and a query whose `for_each` sees the row inserted before it.
fn routes(hook: &str) -> String {
    format!(
        r#"routes:
  - name: order-placed-records-order
    on: {{topic: orders, type: ORDER_PLACED}}
    actions:
      - insert: {{table: orders, values: {{id: "{{{{ data.id }}}}", customer: "{{{{ data.customer }}}}", amount: "{{{{ data.amount }}}}"}}, as: order}}
      - http: {{url: "{hook}", headers: {{X-Order: "{{{{ data.id }}}}"}}, body: {{id: "{{{{ steps.order.id }}}}"}}, as: hook}}
      - emit: {{topic: invoices, eventType: INVOICE_DUE, key: "{{{{ data.id }}}}", data: {{orderId: "{{{{ data.id }}}}", hook: "{{{{ steps.hook }}}}"}}}}
      - query:
          table: orders
          where: {{customer: "{{{{ data.customer }}}}"}}
          as: same_customer
          for_each:
            - insert: {{table: order_lines, values: {{order_id: "{{{{ row.id }}}}", note: "{{{{ steps.order.customer }}}}"}}}}
            - insert: {{table: order_lines, values: {{order_id: "{{{{ row.id }}}}", note: big}}, when: "data.amount > 100"}}
  - name: order-broken
    on: {{topic: orders, type: ORDER_BROKEN}}
    actions:
      - insert: {{table: orders, values: {{id: "{{{{ data.id }}}}", customer: c, amount: 1}}}}
      - insert: {{table: order_lines, values: {{order_id: "{{{{ data.id }}}}", note: "{{{{ data.nmae }}}}"}}}}
  - name: order-duplicated
    on: {{topic: orders, type: ORDER_DUPLICATED}}
    actions:
      - insert: {{table: orders, values: {{id: "{{{{ data.id }}}}", customer: c, amount: 1}}}}
      - insert: {{table: orders, values: {{id: "{{{{ data.id }}}}", customer: c, amount: 2}}}}
  - name: orders-counted
    on: {{topic: orders}}
    actions:
      - insert: {{table: order_lines, values: {{order_id: "{{{{ event.eventType }}}}", note: counted}}}}
  - name: invoice-due-records-invoice
    on: {{topic: invoices, type: INVOICE_DUE}}
    actions:
      - insert: {{table: order_lines, values: {{order_id: "{{{{ data.orderId }}}}", note: invoice}}}}
"#
    )
}

/// A project with [`routes`] calling `hook`, its migration and the schema of `ORDER_PLACED`,
/// whose database the daemon has prepared (simulate never migrates).
fn project(backend: Backend, hook: &str) -> Option<Project> {
    let project = Project::empty_on(backend)?;
    project.write("migrations/20270101000000_orders.sql", MIGRATION);
    project.write("schemas/orders/ORDER_PLACED.json", SCHEMA);
    project.write("routes/orders.yaml", &routes(hook));
    drop(project.start());
    Some(project)
}

/// A database crm-router never ran on is refused, and left without a schema.
#[test]
fn an_unprepared_database_is_refused_and_not_migrated() {
    let project = Project::empty();
    project.write("placed.json", PLACED);
    let (code, stdout, stderr) = simulate(&project, &["--event", "placed.json"], "");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("has not been prepared: run `crm-router run` on it once (simulate never changes its schema)"),
        "{stderr}"
    );
}

/// An HTTP target that counts the requests it gets.
async fn counting_target() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"accepted": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), calls)
}

/// Runs `crm-router simulate` with `args` in the project, `stdin` piped in; returns the exit
/// code, stdout and stderr.
fn simulate(project: &Project, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary())
        .arg("simulate")
        .args(args)
        .current_dir(project.path())
        .env("DATABASE_URL", project.database_url())
        .env_remove("PORT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const PLACED: &str = r#"{"topic": "orders", "eventType": "ORDER_PLACED", "key": "o-1",
  "data": {"id": "o-1", "customer": "Acme", "amount": 12.5}}"#;

/// What the simulations must leave: no row, no event, no dead letter, and the hook uncalled.
async fn nothing_left(project: &Project, calls: &AtomicUsize) {
    let db = project.database().await;
    for table in ["orders", "order_lines", "event_log", "dead_letters"] {
        let rows = count(&db, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(rows, 0, "{table} has rows after a simulation");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the hook received a request"
    );
}

// Multi-threaded: the hook is served by this runtime while the test waits on the CLI.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_shows_every_step_and_leaves_nothing_behind(backend: Backend) {
    let (hook, calls) = counting_target().await;
    let Some(project) = project(backend, &hook) else {
        return;
    };
    project.write("placed.json", PLACED);

    let (code, stdout, stderr) = simulate(&project, &["--event", "placed.json"], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    for expected in [
        "route order-placed-records-order (routes/orders.yaml)\n".to_owned(),
        r#"  0 insert orders: INSERT INTO "orders" ("id", "customer", "amount") VALUES ($1, $2, $3) RETURNING "id", "customer", "amount"  ["o-1", "Acme", 12.5]"#.to_owned(),
        r#"      → steps.order = {"id":"o-1","customer":"Acme","amount":12.5}"#.to_owned(),
        format!(r#"  1 http POST {hook}  (not sent)  body {{"id":"o-1"}}"#),
        "x-order: o-1".to_owned(),
        "      → steps.hook = null\n".to_owned(),
        r#"  2 emit invoices INVOICE_DUE key=o-1 {"orderId":"o-1","hook":null} → read by invoice-due-records-invoice"#.to_owned(),
        r#"  3 query orders: SELECT "id", "customer", "amount" FROM "orders" WHERE "customer" = $1 LIMIT $2  ["Acme", 1000]"#.to_owned(),
        r#"      → 1 row(s) steps.same_customer = [{"id":"o-1","customer":"Acme","amount":12.5}]"#.to_owned(),
        r#"  3.for_each.0@0 insert order_lines: INSERT INTO "order_lines" ("order_id", "note") VALUES ($1, $2)  ["o-1", "Acme"]"#.to_owned(),
        "  3.for_each.1@0 insert order_lines: when does not hold, skipped\n".to_owned(),
        "route orders-counted (routes/orders.yaml)\n".to_owned(),
        r#"["ORDER_PLACED", "counted"]"#.to_owned(),
        "rolled back: nothing was written".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("order-broken"), "{stdout}");

    let (code, stdout, stderr) = simulate(&project, &["--event", "placed.json", "--json"], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["rolledBack"], true);
    assert_eq!(report["event"]["key"], "o-1");
    let route = &report["routes"][0];
    assert_eq!(route["name"], "order-placed-records-order");
    assert_eq!(route["outcome"], "applied");
    let steps = route["steps"].as_array().unwrap();
    let paths: Vec<&str> = steps
        .iter()
        .map(|step| step["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["0", "1", "2", "3", "3.for_each.0@0", "3.for_each.1@0"]
    );
    assert_eq!(
        steps[0]["statement"]["params"],
        json!(["o-1", "Acme", 12.5])
    );
    assert_eq!(steps[0]["statement"]["returned"]["id"], "o-1");
    let http = &steps[1]["http"];
    assert_eq!(
        (&http["method"], &http["url"]),
        (&json!("POST"), &json!(hook))
    );
    assert_eq!(http["sent"], false);
    assert_eq!(http["body"], json!({"id": "o-1"}));
    assert_eq!(http["headers"]["x-order"], "o-1");
    assert!(http["headers"]["Idempotency-Key"].is_string(), "{http}");
    assert_eq!(http["response"], Value::Null);
    let emit = &steps[2]["emit"];
    assert_eq!(emit["key"], "o-1");
    assert_eq!(emit["data"], json!({"orderId": "o-1", "hook": null}));
    assert_eq!(emit["readBy"], json!(["invoice-due-records-invoice"]));
    assert_eq!(
        steps[3]["statement"]["returned"].as_array().unwrap().len(),
        1
    );
    assert_eq!(steps[4]["statement"]["params"], json!(["o-1", "Acme"]));
    assert_eq!(steps[5]["when"], false);
    assert!(steps[5].get("statement").is_none(), "{}", steps[5]);
    assert_eq!(report["routes"][1]["name"], "orders-counted");

    nothing_left(&project, &calls).await;

    // The same event through the daemon calls the hook and writes the rows: the checks above
    // looked at the right target and tables.
    let daemon = project.start();
    let event: Value = serde_json::from_str(PLACED).unwrap();
    let body = json!({"eventType": event["eventType"], "key": event["key"], "data": event["data"]});
    assert_eq!(daemon.post_event("orders", body).await.0, 202);
    let db = project.database().await;
    drained(&db).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM order_lines WHERE note = 'invoice'"
        )
        .await,
        1
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_is_refused_naming_the_field(backend: Backend) {
    let (hook, calls) = counting_target().await;
    let Some(project) = project(backend, &hook) else {
        return;
    };
    // From stdin, the topic given by --topic.
    let not_a_number = r#"{"eventType": "ORDER_PLACED", "data": {"id": "o-1", "customer": "Acme", "amount": "lots"}}"#;
    let (code, stdout, stderr) = simulate(
        &project,
        &["--event", "-", "--topic", "orders"],
        not_a_number,
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(r#"the event is refused: ORDER_PLACED on orders does not match schemas/orders/ORDER_PLACED.json: data/amount: "lots" is not of type "number""#),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");

    let cases = [
        (
            r#"{"topic": "orders", "data": {}}"#,
            "missing field `eventType`",
        ),
        (
            r#"{"topic": "orders", "eventType": "ORDER PLACED", "data": {}}"#,
            r#"eventType "ORDER PLACED" must be"#,
        ),
        (
            r#"{"eventType": "ORDER_PLACED", "data": {}}"#,
            "topic: the event has no topic",
        ),
        (
            r#"{"topic": "orders", "eventType": "ORDER_PLACED", "data": {}, "amount": 1}"#,
            "unknown field `amount`",
        ),
    ];
    for (event, expected) in cases {
        let (code, stdout, stderr) = simulate(&project, &["--event", "-"], event);
        assert_eq!(code, Some(1), "{event}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{event}: {stderr}");
    }
    // Refused like the API refuses it, but no dead letter is kept for it.
    nothing_left(&project, &calls).await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_shown_at_its_step_and_the_other_routes_still_run(backend: Backend) {
    let (hook, calls) = counting_target().await;
    let Some(project) = project(backend, &hook) else {
        return;
    };
    let broken = r#"{"topic": "orders", "eventType": "ORDER_BROKEN", "data": {"id": "o-9"}}"#;
    let (code, stdout, stderr) = simulate(&project, &["--event", "-"], broken);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    for expected in [
        "route order-broken (routes/orders.yaml)\n",
        r#"  0 insert orders: INSERT INTO "orders" ("id", "customer", "amount") VALUES ($1, $2, $3)  ["o-9", "c", 1]"#,
        "  1 insert order_lines\n      ✗ template error: undefined value",
        "data.nmae",
        "  FAILED at step 1: its effects were undone; the daemon would dead-letter it\n",
        "route orders-counted (routes/orders.yaml)\n",
        r#"["ORDER_BROKEN", "counted"]"#,
        "  applied\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    let (code, stdout, stderr) = simulate(&project, &["--event", "-", "--json"], broken);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let route = &report["routes"][0];
    assert_eq!(
        (&route["name"], &route["outcome"], &route["step"]),
        (&json!("order-broken"), &json!("failed"), &json!("1"))
    );
    assert!(route["steps"][0].get("error").is_none(), "{route}");
    let error = route["steps"][1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("template error: undefined value"),
        "{error}"
    );
    assert_eq!(report["routes"][1]["outcome"], "applied");

    // A database refusal: on PostgreSQL it aborts the transaction unless the route's
    // savepoint is rolled back, and the next route could not run.
    let duplicated =
        r#"{"topic": "orders", "eventType": "ORDER_DUPLICATED", "data": {"id": "o-9"}}"#;
    let (code, stdout, stderr) = simulate(&project, &["--event", "-"], duplicated);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    for expected in [
        r#"  1 insert orders: INSERT INTO "orders" ("id", "customer", "amount") VALUES ($1, $2, $3)  ["o-9", "c", 2]"#,
        "      ✗ database error: ",
        "  FAILED at step 1: its effects were undone; the daemon would dead-letter it\n",
        r#"["ORDER_DUPLICATED", "counted"]"#,
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.ends_with("  applied\nrolled back: nothing was written, no HTTP request was sent\n"),
        "{stdout}"
    );

    nothing_left(&project, &calls).await;
}
