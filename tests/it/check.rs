//! `crm-router check` reports every problem as file:line:col with a hint, and exits 1.
//!
//! `check` migrates a database to read its catalog (a scratch SQLite file, or the configured
//! PostgreSQL database), so each test runs on both.

use serde_json::json;
use test_case::test_case;

use crate::support::{Backend, Project};

/// Runs `check` over route files written into an otherwise empty project on `backend`, or
/// returns `None` (skip) when PostgreSQL is not reachable outside CI.
fn check(backend: Backend, files: &[(&str, &str)]) -> Option<(i32, String)> {
    let project = Project::empty_on(backend)?;
    for (name, text) in files {
        project.write(&format!("routes/{name}"), text);
    }
    let output = project.command(&["check", "--routes", "routes", "--schemas", "schemas"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Some((output.status.code().unwrap(), stdout))
}

fn assert_check(backend: Backend, files: &[(&str, &str)], expected: &[&str]) {
    let Some((code, stdout)) = check(backend, files) else {
        return;
    };
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "full output:\n{stdout}");
    assert_eq!(code, 1);
}

const GOOD: &str = r#"routes:
  - name: good
    on: {topic: user.events, type: USER_CREATED}
    actions:
      - insert:
          table: customers
          values: {id: "{{ uuid() }}", name: "{{ data.name }}", email: "{{ data.email }}", created_at: "{{ now() }}", updated_at: "{{ now() }}"}
"#;

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn a_valid_set_passes(backend: Backend) {
    let Some((code, stdout)) = check(backend, &[("good.yaml", GOOD)]) else {
        return;
    };
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("ok: 1 routes"), "{stdout}");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn the_bundled_routes_pass(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let output = project.command(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" routes, "), "{stdout}");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn unknown_columns_and_tables_get_suggestions(backend: Backend) {
    let text = r#"routes:
  - name: typo
    on: {topic: user.events}
    actions:
      - insert:
          table: customers
          values:
            id: "{{ uuid() }}"
            emial: "{{ data.email }}"
      - update:
          table: custmers
          where: {id: x}
          set: {name: y}
"#;
    assert_check(
        backend,
        &[("typo.yaml", text)],
        &[
            r#"routes/typo.yaml:9:13: unknown column "emial" in table customers (hint: did you mean "email"?)"#,
            r#"routes/typo.yaml:11:11: unknown table "custmers" (hint: did you mean "customers"?)"#,
        ],
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn every_problem_is_reported_not_just_the_first(backend: Backend) {
    let syntax = "routes:\n  - name: a\n    on: {topic: x.events}\n    actions:\n      - emit: {topic: x.events, eventType: A, key: \"{{ data.id \"}\n";
    let unknown_field = "routes:\n  - name: b\n    on: {topic: x.events}\n    retry: {attempts: 2}\n    actoins: []\n";
    let duplicate = "routes:\n  - name: a\n    on: {topic: y.events}\n    actions:\n      - emit: {topic: y.events, eventType: B, key: k}\n";
    let bad_yaml = "routes:\n  - name: c\n    on: {topic: [unclosed\n";
    let bad_when = "routes:\n  - name: d\n    on: {topic: x.events, when: \"{{ data.x }}\"}\n    actions:\n      - emit: {topic: 'bad topic', eventType: A, key: k}\n";
    assert_check(
        backend,
        &[
            ("1-syntax.yaml", syntax),
            ("2-unknown.yaml", unknown_field),
            ("3-dup.yaml", duplicate),
            ("4-bad.yaml", bad_yaml),
            ("5-when.yaml", bad_when),
        ],
        &[
            r#"routes/1-syntax.yaml:5:52: template syntax error: unexpected end of input, expected end of variable block (in actions[0].emit.key)"#,
            r#"routes/2-unknown.yaml:5:5: routes[0]: unknown field `actoins`, expected one of `name`, `description`, `on`, `retry`, `actions` (hint: check the spelling; the route format is in schemas/route.schema.json)"#,
            r#"routes/3-dup.yaml:2:5: duplicate route name "a" (hint: first defined at routes/1-syntax.yaml:2:5; route names must be unique)"#,
            r#"routes/4-bad.yaml:3:17: routes[0].on.topic: invalid type: sequence, expected a string"#,
            r#"routes/5-when.yaml:3:33: `when:` takes a bare expression; remove the `{{ }}` (in on.when)"#,
            r#"routes/5-when.yaml:5:16: topic "bad topic" is not a valid topic name (1-249 of letters, digits, '.', '_', '-')"#,
        ],
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn invalid_schedules_are_reported_at_their_place(backend: Backend) {
    let text = r#"routes:
  - name: too-few-fields
    on: {schedule: "*/5 * * *"}
    actions:
      - emit: {topic: x.events, eventType: A, key: k}
  - name: too-fast
    on:
      schedule: 100ms
    actions:
      - emit: {topic: x.events, eventType: A, key: k}
  - name: both
    on: {topic: x.events, schedule: 1m}
    actions:
      - emit: {topic: x.events, eventType: A, key: k}
  - name: typed
    on: {schedule: "@daily", type: A}
    retry: {attempts: 2}
    actions:
      - emit: {topic: x.events, eventType: A, key: k}
  - name: neither
    on: {when: "true"}
    actions:
      - emit: {topic: x.events, eventType: A, key: k}
  - name: empty
    on: {schedule: }
    actions:
      - emit: {topic: x.events, eventType: A, key: k}
"#;
    let hint = "(hint: write an interval such as `1m` or `every 30s` (1s to 1y), or five cron fields such as `*/5 * * * *` (minute hour day-of-month month day-of-week, in UTC))";
    let too_few = format!("routes/schedules.yaml:3:10: invalid cron expression \"*/5 * * *\": it has 4 fields; cron takes 5: minute, hour, day of month, month, day of week {hint}");
    let too_fast = format!("routes/schedules.yaml:8:7: interval \"100ms\" is out of range: it must be between 1s and 1y {hint}");
    let empty = format!("routes/schedules.yaml:25:10: `schedule` is empty {hint}");
    assert_check(
        backend,
        &[("schedules.yaml", text)],
        &[
            &too_few,
            &too_fast,
            "routes/schedules.yaml:12:27: `on` has both `topic` and `schedule` (hint: a route runs on events (`topic`, `type`) or on a timer (`schedule`); split it into two routes)",
            "routes/schedules.yaml:16:30: `type` selects events, and a scheduled route runs on a timer (hint: remove `type`, or use `topic` instead of `schedule`)",
            "routes/schedules.yaml:17:5: `retry` does not apply to a scheduled route (hint: a failed run is dead-lettered and the next tick runs the route again; remove `retry`)",
            "routes/schedules.yaml:21:5: `on` needs `topic` (to run on events) or `schedule` (to run on a timer)",
            &empty,
        ],
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn alias_bombs_are_refused_not_expanded(backend: Backend) {
    // Nine levels of ten-fold aliases: a billion leaves if expanded.
    let mut bomb = String::from(
        "routes:\n  - name: bomb\n    on: {topic: x.events}\n    actions:\n      - insert:\n          table: customers\n          values:\n            a: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for level in 1..9 {
        let previous = (b'a' + level - 1) as char;
        let current = (b'a' + level) as char;
        let refs = vec![format!("*{previous}"); 10].join(", ");
        bomb.push_str(&format!("            {current}: &{current} [{refs}]\n"));
    }
    let Some((code, stdout)) = check(backend, &[("bomb.yaml", &bomb)]) else {
        return;
    };
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("routes/bomb.yaml:"), "{stdout}");
    assert!(
        stdout.contains("repetition limit") || stdout.contains("recursion limit"),
        "{stdout}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn oversized_and_non_utf8_files_are_refused(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "routes/big.yaml",
        &format!("# {}\nroutes: []\n", "x".repeat(1 << 20)),
    );
    std::fs::write(
        project.path().join("routes/latin1.yaml"),
        b"routes: []\n# caf\xe9\n",
    )
    .unwrap();
    let output = project.command(&["check", "--routes", "routes", "--schemas", "schemas"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout.contains("routes/big.yaml:0:0: file is"), "{stdout}");
    assert!(
        stdout.contains("routes/latin1.yaml:0:0: file is not valid UTF-8"),
        "{stdout}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn user_migrations_add_tables_that_check_knows(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_leads.sql",
        "CREATE TABLE leads (id TEXT PRIMARY KEY, source TEXT NOT NULL);\n",
    );
    project.write(
        "routes/leads.yaml",
        "routes:\n  - name: lead\n    on: {topic: lead.events}\n    actions:\n      - insert: {table: leads, values: {id: \"{{ uuid() }}\", sorce: web}}\n",
    );
    let output = project.command(&["check", "--routes", "routes", "--schemas", "schemas"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        r#"routes/leads.yaml:5:61: unknown column "sorce" in table leads (hint: did you mean "source"?)"#
    );
    let Some(clash) = Project::empty_on(backend) else {
        return;
    };
    clash.write(
        "migrations/20261128000001_mine.sql",
        "CREATE TABLE mine (id TEXT);\n",
    );
    let output = clash.command(&["check", "--routes", "routes", "--schemas", "schemas"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("uses version 20261128000001, which crm-router's own migrations use"),
        "{stderr}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn init_writes_an_editable_project_that_checks_clean(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    let output = project.command(&["init", "app"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let app = project.path().join("app");
    assert!(app.join("routes/customer-from-user.yaml").is_file());
    assert!(app.join("schemas/route.schema.json").is_file());
    assert!(app.join("crm-router.yaml").is_file());
    assert!(app.join("migrations/README.md").is_file());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("crm-router init --bare starts a project without the CRM"),
        "{stdout}"
    );

    let check = std::process::Command::new(crate::support::binary())
        .args(["check"])
        .current_dir(&app)
        .env("DATABASE_URL", project.database_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(
        stdout.contains("(routes: routes, schemas: schemas)"),
        "{stdout}"
    );

    // The routes' tests come along, and pass where the project was written.
    assert!(app.join("routes/tests/first-contact-task.yaml").is_file());
    let tested = std::process::Command::new(crate::support::binary())
        .args(["test"])
        .current_dir(&app)
        .env("DATABASE_URL", project.database_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{stdout}");
    assert!(stdout.contains("24 passed, 0 failed"), "{stdout}");

    let again = project.command(&["init", "app"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists; pass --force"));

    let listing = project.command(&[
        "routes",
        "--routes",
        "app/routes",
        "--schemas",
        "app/schemas",
    ]);
    let stdout = String::from_utf8_lossy(&listing.stdout);
    assert!(
        stdout.contains("user-creates-customer: user.events [USER_CREATED, user.created] → insert customers, emit customer.events CUSTOMER_CREATED"),
        "{stdout}"
    );
}

/// `init --bare` starts a project of one's own: its example migration, routes and schemas run
/// as written, and the CRM's REST resources are not served.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn init_bare_writes_a_project_of_your_own_that_runs(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    let output = project.command(&["init", "--bare", "."]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for written in [
        "crm-router.yaml",
        "routes/orders.yaml",
        "schemas/orders/ORDER_PLACED.json",
        "schemas/route.schema.json",
        "migrations/20261207000000_orders.sql",
        "routes/tests/orders.yaml",
    ] {
        assert!(
            project.path().join(written).is_file(),
            "{written}: {stdout}"
        );
    }
    assert!(!project
        .path()
        .join("routes/customer-from-user.yaml")
        .exists());
    assert!(!stdout.contains("init --bare starts"), "{stdout}");

    let check = project.command(&["check"]);
    let checked = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{checked}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(checked.starts_with("ok: 3 routes"), "{checked}");
    let tested = project.command(&["test"]);
    let tested_output = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{tested_output}");
    assert!(
        tested_output.contains("3 passed, 0 failed"),
        "{tested_output}"
    );

    let daemon = project.start();
    let (status, body) = daemon
        .post_event(
            "orders",
            json!({"eventType": "ORDER_PLACED", "data": {"orderId": "o-1", "customer": "Acme", "amount": 12.5}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = daemon
        .post_event(
            "orders",
            json!({"eventType": "ORDER_PAID", "data": {"orderId": "o-1"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // The config refuses what no route reads, naming the topic meant.
    let (status, body) = daemon
        .post_event(
            "order",
            json!({"eventType": "ORDER_PAID", "data": {"orderId": "o-1"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("did you mean topic orders?"),
        "{body}"
    );

    let db = project.database().await;
    crate::support::drained(&db).await;
    let invoices: Vec<(String, String)> = sqlx::query_as("SELECT order_id, due_at FROM invoices")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    assert_eq!(invoices[0].0, "o-1");
    let paid: Option<String> = sqlx::query_scalar("SELECT paid_at FROM orders WHERE id = 'o-1'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(paid.is_some());

    // The operator endpoints stay; the CRM's resources and accounts are gone, from the
    // OpenAPI document too.
    let (status, _) = daemon.get("/api/dlq").await;
    assert_eq!(status, 200);
    for path in ["/api/customers", "/api/auth/me", "/api/auth/users"] {
        let (status, body) = daemon.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, document) = daemon.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    assert!(
        paths.iter().any(|path| path.starts_with("/api/events")),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|path| path.starts_with("/api/customers") || path.starts_with("/api/auth")),
        "{paths:?}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn the_examples_check_clean(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    let output = project.command(&[
        "check",
        "--routes",
        crate::support::repo()
            .join("examples/routes")
            .to_str()
            .unwrap(),
        "--config",
        crate::support::repo()
            .join("examples/crm-router.yaml")
            .to_str()
            .unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ok: 2 routes"), "{stdout}");
}

// No database: only the published schema and the route files.
/// The published route schema and the loader agree on the bundled and example routes, and the
/// schema refuses what the loader refuses.
#[test]
fn the_route_schema_matches_the_route_files() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::repo().join("schemas/route.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for directory in ["routes", "examples/routes", "examples/bare/routes"] {
        for entry in std::fs::read_dir(crate::support::repo().join(directory)).unwrap() {
            let path = entry.unwrap().path();
            // `routes/tests/` holds the routes' tests, not routes.
            if path.is_dir() {
                continue;
            }
            let document: serde_json::Value =
                serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&document)
                .map(|error| error.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
    }
    let typo: serde_json::Value = serde_yaml::from_str(
        "routes:\n  - name: a\n    on: {topic: x}\n    actions:\n      - insert: {tabel: t, values: {a: 1}}\n",
    )
    .unwrap();
    assert!(!validator.is_valid(&typo));
    let on = |trigger: &str| -> serde_json::Value {
        serde_yaml::from_str(&format!(
            "routes:\n  - name: a\n    on: {trigger}\n    actions:\n      - emit: {{topic: x, eventType: A, key: k}}\n"
        ))
        .unwrap()
    };
    for valid in [
        "{schedule: 1m}",
        "{schedule: every 30s}",
        "{schedule: '*/5 * * * *', when: 'env.ON'}",
        "{schedule: '@hourly'}",
        "{topic: x.events, type: A}",
    ] {
        assert!(validator.is_valid(&on(valid)), "{valid}");
    }
    for invalid in [
        "{schedule: 1m, topic: x.events}",
        "{schedule: 1m, type: A}",
        "{when: 'true'}",
        "{schedule: ''}",
        "{schedule: '* * * *'}",
        "{schedule: soon}",
    ] {
        assert!(!validator.is_valid(&on(invalid)), "{invalid}");
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn action_retry_policies_are_checked_at_their_place(backend: Backend) {
    let text = r#"routes:
  - name: events
    on: {topic: x.events}
    actions:
      - http: {url: "http://127.0.0.1:9/", retry: {attempts: 0}}
      - http: {url: "http://127.0.0.1:9/", retry: {attempts: 3, backoff: {initial: 2s, max: 1s, multiplier: 2}}}
      - http: {url: "http://127.0.0.1:9/", retry: {attempts: 8}}
  - name: ticks
    on: {schedule: 1m}
    actions:
      - http: {url: "http://127.0.0.1:9/", retry: {attempts: 2}}
"#;
    assert_check(
        backend,
        &[("retries.yaml", text)],
        &[
            "routes/retries.yaml:5:44: retry.attempts must be between 1 and 100",
            "routes/retries.yaml:6:44: retry.backoff.initial must not exceed retry.backoff.max",
            "routes/retries.yaml:11:44: `retry` does not apply to the actions of a scheduled route (hint: a failed run is dead-lettered and the next tick runs the route again; remove `retry`)",
        ],
    );
}

/// Runs `check` over `migration` (as the project's one user migration) and route files on
/// `backend`; `None` (skip) when PostgreSQL is not reachable outside CI.
fn check_with_migration(
    backend: Backend,
    migration: &str,
    files: &[(&str, &str)],
) -> Option<(i32, String)> {
    let project = Project::empty_on(backend)?;
    project.write("migrations/20270101000000_orders.sql", migration);
    for (name, text) in files {
        project.write(&format!("routes/{name}"), text);
    }
    let output = project.command(&["check", "--routes", "routes", "--schemas", "schemas"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Some((output.status.code().unwrap(), stdout))
}

const ORDERS: &str =
    "CREATE TABLE orders (id TEXT PRIMARY KEY, qty INTEGER, placed DATE, paid BOOLEAN, note TEXT);\n";

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn literals_that_can_never_fit_their_column_are_reported_at_their_place(backend: Backend) {
    let text = r#"routes:
  - name: orders
    on: {topic: order.events}
    actions:
      - insert:
          table: orders
          values:
            id: "{{ uuid() }}"
            qty: not-a-number
            placed: someday
            paid: yes
            note: 5
      - update:
          table: orders
          set:
            qty: [1, 2]
            paid: {a: 1}
          where: {id: x}
"#;
    let Some((code, stdout)) = check_with_migration(backend, ORDERS, &[("orders.yaml", text)])
    else {
        return;
    };
    // SQLite reads a declared INTEGER by affinity: a 64-bit integer.
    let (integer, integer_takes) = match backend {
        Backend::Sqlite => (
            "bigint",
            "a bigint column takes an integer (a number or a string of digits)",
        ),
        Backend::Postgres => (
            "integer",
            "an integer column takes an integer from -2147483648 to 2147483647",
        ),
    };
    let an_integer = match backend {
        Backend::Sqlite => "a bigint",
        Backend::Postgres => "an integer",
    };
    let expected = [
        format!(r#"routes/orders.yaml:9:13: value for column "qty" can never be stored: "not-a-number" does not fit type {integer} (hint: {integer_takes})"#),
        r#"routes/orders.yaml:10:13: value for column "placed" can never be stored: "someday" does not fit type date (hint: a date column takes a date, YYYY-MM-DD (or an RFC 3339 timestamp))"#.to_owned(),
        r#"routes/orders.yaml:11:13: value for column "paid" can never be stored: "yes" does not fit type boolean (hint: a boolean column takes true or false)"#.to_owned(),
        format!(r#"routes/orders.yaml:16:13: value for column "qty" can never be stored: a list does not fit type {integer} (hint: write a single value for {an_integer} column)"#),
        r#"routes/orders.yaml:17:13: value for column "paid" can never be stored: a map does not fit type boolean (hint: write a single value for a boolean column)"#.to_owned(),
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "full output:\n{stdout}");
    assert_eq!(code, 1);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn literals_of_every_accepted_form_pass(backend: Backend) {
    let text = r#"routes:
  - name: orders
    on: {topic: order.events}
    actions:
      - insert:
          table: orders
          values: {id: a, qty: 7, placed: 2026-11-29, paid: true, note: 5}
      - insert:
          table: orders
          values: {id: b, qty: "42", placed: "2026-11-29T23:30:00+09:00", paid: "FALSE", note: true}
      - insert:
          table: orders
          values: {id: c, qty: 3.0, placed: null, paid: null, note: null}
      - update:
          table: orders
          where: {id: a, qty: "7", paid: "true", placed: {gte: 2026-01-01}}
          set: {qty: "{{ data.qty }}", placed: "{{ today() }}", note: [1, 2]}
"#;
    let Some((code, stdout)) = check_with_migration(backend, ORDERS, &[("orders.yaml", text)])
    else {
        return;
    };
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("ok: 1 routes"), "{stdout}");
}

/// PostgreSQL's array columns: text where a list belongs is refused at its place.
#[test]
fn text_where_an_array_belongs_is_reported_on_postgres() {
    let migration = "CREATE TABLE orders (id TEXT PRIMARY KEY, tags TEXT[], nums INTEGER[]);\n";
    let text = r#"routes:
  - name: orders
    on: {topic: order.events}
    actions:
      - insert:
          table: orders
          values:
            id: "{{ data.id }}"
            tags: "a,b"
            nums: "{{ data.n }} and more"
      - insert:
          table: orders
          values: {id: x, tags: [a, 1, "{{ data.t }}"], nums: "{{ data.nums }}"}
"#;
    let Some((code, stdout)) =
        check_with_migration(Backend::Postgres, migration, &[("orders.yaml", text)])
    else {
        return;
    };
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            r#"routes/orders.yaml:9:13: value for column "tags" can never be stored: "a,b" does not fit type text[] (hint: a text[] column takes a list)"#,
            r#"routes/orders.yaml:10:13: value for column "nums" can never be stored: text does not fit type integer[] (hint: write a list, or a sole `{{ expression }}` that gives one)"#,
        ],
        "full output:\n{stdout}"
    );
    assert_eq!(code, 1);
}

/// A list literal whose item can never be an integer cannot fit an integer[] column.
#[test]
fn a_list_literal_with_a_non_integer_item_is_reported_on_postgres() {
    let migration = "CREATE TABLE orders (id TEXT PRIMARY KEY, nums INTEGER[]);\n";
    let text = r#"routes:
  - name: orders
    on: {topic: order.events}
    actions:
      - insert:
          table: orders
          values:
            id: "{{ data.id }}"
            nums: [1, x]
"#;
    let Some((code, stdout)) =
        check_with_migration(Backend::Postgres, migration, &[("orders.yaml", text)])
    else {
        return;
    };
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(
            r#"routes/orders.yaml:9:13: value for column "nums" can never be stored: "#
        ),
        "{stdout}"
    );
}

/// Columns of a type routes cannot write (PostgreSQL `interval`, `inet`) are refused where a
/// route writes or compares them, with the supported types; SQLite reads every declared type
/// by affinity, so there the same names are numeric columns and pass.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn columns_of_unsupported_types_are_refused_with_the_supported_list(backend: Backend) {
    let migration =
        "CREATE TABLE orders (id TEXT PRIMARY KEY, span INTERVAL, addr INET, note TEXT);\n";
    let text = r#"routes:
  - name: orders
    on: {topic: order.events}
    actions:
      - insert:
          table: orders
          values: {id: "{{ data.id }}", span: "{{ data.span }}"}
      - update:
          table: orders
          set: {note: x}
          where: {addr: "{{ data.addr }}"}
"#;
    let Some((code, stdout)) = check_with_migration(backend, migration, &[("orders.yaml", text)])
    else {
        return;
    };
    if backend == Backend::Sqlite {
        assert_eq!(code, 0, "{stdout}");
        assert!(stdout.starts_with("ok: 1 routes"), "{stdout}");
        return;
    }
    let supported = "(hint: supported types: smallint, integer, bigint, numeric/decimal, real, double precision, boolean, text/varchar/char, uuid, date, time, timestamp, timestamptz, json, jsonb, bytea, text[] and integer[] (on SQLite: any declared type, by affinity))";
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                r#"routes/orders.yaml:7:41: column "span" of table orders has type interval, which routes cannot write or compare {supported}"#
            ),
            format!(
                r#"routes/orders.yaml:11:19: column "addr" of table orders has type inet, which routes cannot write or compare {supported}"#
            ),
        ],
        "full output:\n{stdout}"
    );
    assert_eq!(code, 1);
}

/// `run` refuses routes that write a column of an unsupported type, naming it, and does not
/// start.
#[test]
fn run_refuses_to_start_when_a_route_writes_an_unsupported_type_on_postgres() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    project.write(
        "migrations/20270101000000_orders.sql",
        "CREATE TABLE orders (id TEXT PRIMARY KEY, span INTERVAL);\n",
    );
    project.write(
        "routes/orders.yaml",
        "routes:\n  - name: orders\n    on: {topic: order.events}\n    actions:\n      - insert: {table: orders, values: {id: \"{{ data.id }}\", span: 1 day}}\n",
    );
    let stderr = project.refused_start(&[]);
    assert!(
        stderr.contains(
            r#"routes/orders.yaml:5:63: column "span" of table orders has type interval, which routes cannot write or compare (hint: supported types: "#
        ),
        "{stderr}"
    );
}

/// `where:` operands are checked like written values: a literal that can never compare with its
/// column, alone or in a list, is reported at its place.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn where_literals_that_can_never_match_their_column_are_reported(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_jobs.sql",
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, due DATE, tries INTEGER);\n",
    );
    project.write(
        "routes/jobs.yaml",
        r#"routes:
  - name: jobs
    on: {topic: test.events, type: JOB}
    actions:
      - update: {table: jobs, set: {tries: 1}, where: {due: soon, tries: {in: [1, two]}}}
"#,
    );
    let output = project.command(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "routes/jobs.yaml:5:56: value for column \"due\" can never be stored: \"soon\" does not fit type date"
        ),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("value for column \"tries\" can never be stored: \"two\" does not fit type"),
        "{stdout}"
    );
}

/// The issue's first try, as a new user would write it: each template mistake certain to fail
/// on the first event is refused at load, at its place inside the template, with a fix.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn templates_certain_to_fail_are_refused_where_they_read(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_invoices.sql",
        "CREATE TABLE invoices (id TEXT PRIMARY KEY, amount NUMERIC NOT NULL, customer TEXT NOT NULL);\n",
    );
    project.write(
        "schemas/orders/ORDER_PAID.json",
        r#"{"type": "object", "required": ["amount", "customer"],
            "properties": {"amount": {"type": "number"}, "customer": {"type": "string"}, "note": {"type": "string"}}}"#,
    );
    project.write("crm-router.yaml", "env_allow: [BILLING_URL]\n");
    project.write(
        "routes/billing.yaml",
        r#"routes:
  - name: order-paid-creates-invoice
    on: {topic: orders, type: ORDER_PAID}
    actions:
      - insert:
          table: invoices
          values: {id: "{{ uuid() }}", amount: "{{ dta.amount }}", customer: "{{ data.customer | uppercase }}"}
          as: invoice
      - http:
          url: "{{ env.BILLING_WEBHOOK_URL }}/invoices/{{ steps.invoce.id }}"
          body:
            note: "{{ data.note }}"
            total: "{{ data.totl }}"
            id: "{{ steps.invoice.idd }}"
            fine: "{{ data.note | default('') }} {{ steps.invoice.amount }} {{ env.BILLING_URL }}"
      - emit:
          when: data.note is defined and data.note is filled
          topic: orders
          eventType: NOTED
          key: "{{ data.note }}"
"#,
    );
    let output = project.command(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "routes/billing.yaml:7:52: unknown variable dta (hint: did you mean data?)",
            "routes/billing.yaml:7:98: unknown filter uppercase (hint: did you mean upper?)",
            "routes/billing.yaml:10:20: env.BILLING_WEBHOOK_URL is not in env_allow (hint: did you mean env.BILLING_URL?)",
            "routes/billing.yaml:10:59: steps.invoce is not the `as:` of a step before this one (hint: did you mean steps.invoice?)",
            "routes/billing.yaml:12:23: data.note is optional in the schema of orders ORDER_PAID, so an event without it fails here (hint: write {{ data.note | default(none) }}, or add `when: data.note is defined` to the step)",
            "routes/billing.yaml:13:24: data.totl is not in the schema of orders ORDER_PAID (hint: if producers send it, declare it in the event's schema)",
            "routes/billing.yaml:14:21: steps.invoice has no column idd (it is a row of invoices) (hint: did you mean steps.invoice.id?)",
            "routes/billing.yaml:17:55: unknown test filled (hint: did you mean filter?)",
        ],
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(1));
}

/// What the template checks must not refuse: valid idioms that read what exists, or handle
/// its absence, in every way the docs allow.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn valid_template_idioms_load_clean(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_notes.sql",
        "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT, n INTEGER);\n",
    );
    project.write(
        "schemas/orders/PLACED.json",
        r#"{"type": "object", "required": ["amount", "items", "sku"],
            "properties": {"amount": {"type": "number"}, "items": {"type": "array"},
              "note": {"type": "string"}, "customer": {"type": "object", "required": ["id"],
                "properties": {"id": {}, "tier": {}}}}}"#,
    );
    project.write(
        "schemas/orders/PAID.json",
        r#"{"type": "object", "required": ["amount", "receipt"],
            "properties": {"amount": {"type": "number"}, "receipt": {"type": "string"}}}"#,
    );
    project.write(
        "schemas/orders/SHIPPED.json",
        r#"{"type": "object", "allOf": [{"required": ["carrier"]}]}"#,
    );
    project.write("crm-router.yaml", "env_allow: [HOOK_URL]\n");
    project.write(
        "routes/idioms.yaml",
        r#"routes:
  - name: placed
    on: {topic: orders, type: PLACED, when: "data.note is defined"}
    actions:
      - insert:
          table: notes
          values:
            id: "{{ uuid() }}"
            body: "{% set n = data.amount %}{{ n }} {{ data.note }} {{ event.data.note }} {{ data['whatever'] }}"
            n: "{{ data.items | length }}"
          as: note
      - insert:
          table: notes
          values:
            id: "{{ random_uuid() }}"
            body: "{% for item in data.items %}{{ loop.index }}{{ item }}{% endfor %}{% macro m(v) %}{{ v }}{% endmacro %}{{ m(data.sku) }}"
      - insert:
          table: notes
          values:
            id: "{{ now() }}-{{ today() }}-{{ range(3) | list | length }}"
            body: "{% if data.customer is defined %}{{ data.customer.tier }}{% endif %} {{ data.customer | d('') }} {{ data.customer.id | default(data.sku) }}"
            n: "{{ steps.note.n }}"
      - query:
          table: notes
          where: {body: {is_null: false}}
          as: found
          for_each:
            - query:
                table: notes
                where: {id: "{{ row.id }}"}
                as: inner
                for_each:
                  - update: {table: notes, where: {id: "{{ row.id }}"}, set: {body: "{{ steps.found[0].body }} {{ steps.inner[0].id }}"}}
      - http:
          url: "{{ env.HOOK_URL }}/notes/{{ steps.note.id }}"
          body: {first: "{{ steps.found[0].id }}", note: "{{ data.note }}"}
          as: hook
      - emit: {topic: orders, eventType: NOTED, key: "{{ steps.hook.status }}", data: {body: "{{ steps.hook.body }}"}}
  - name: paid-or-placed
    on: {topic: orders, type: [PLACED, PAID]}
    actions:
      - insert:
          when: "event.eventType == 'PAID'"
          table: notes
          values: {id: "{{ data.receipt }}", n: "{{ data.amount }}"}
      - insert:
          table: notes
          values: {id: "{{ data.receipt if event.eventType == 'PAID' else data.sku }}"}
  - name: shipped
    on: {topic: orders, type: SHIPPED}
    actions:
      - insert: {table: notes, values: {id: "{{ data.carrier }}", body: "{{ data.anything.deeper }}"}}
"#,
    );
    let output = project.command(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ok: 3 routes"), "{stdout}");
}
