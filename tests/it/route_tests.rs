//! `crm-router test`: route tests beside the routes, run on a database made for the run.

use test_case::test_case;

use crate::support::{Backend, Project};

fn run_tests(project: &Project, args: &[&str]) -> (i32, String) {
    let mut command = vec!["test"];
    command.extend_from_slice(args);
    let output = project.command(&command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap(), format!("{stdout}{stderr}"))
}

/// Every bundled route has tests, and they pass; the configured database is never touched.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn the_bundled_routes_pass_their_tests(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let (code, output) = run_tests(&project, &[]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("24 passed, 0 failed"), "{output}");
    // Every bundled route ran in some test, directly or through a cascade.
    assert!(!output.contains("no test ran these routes"), "{output}");
    if backend == Backend::Sqlite {
        assert!(
            !project.path().join("crm.db").exists(),
            "the configured database was touched"
        );
    }
}

/// A broken bundled route fails its tests with what differs, at the expectation's place.
#[test]
fn a_broken_bundled_route_fails_with_a_diff() {
    let project = Project::bundled();
    let route = project.path().join("routes/first-contact-task.yaml");
    let text = std::fs::read_to_string(&route).unwrap();
    std::fs::write(&route, text.replace("初回コンタクト: ", "First contact: ")).unwrap();
    let (code, output) = run_tests(&project, &[]);
    assert_eq!(code, 1, "{output}");
    for expected in [
        "FAILED routes/tests/first-contact-task.yaml: a new customer gets a first-contact task for its owner",
        "  routes/tests/first-contact-task.yaml:23:13: none of the rows of tasks matches",
        "    the closest differs in:\n      title: expected \"初回コンタクト: Acme\", actual \"First contact: Acme\"",
        "  routes/tests/first-contact-task.yaml:25:16: none of the emitted events matches",
        "      data.title: expected \"初回コンタクト: Acme\", actual \"First contact: Acme\"",
        "20 passed, 4 failed",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in:\n{output}");
    }
}

const MIGRATION: &str =
    "CREATE TABLE payments (id TEXT PRIMARY KEY, order_id TEXT NOT NULL, receipt TEXT);\n\
CREATE TABLE sweeps (id TEXT PRIMARY KEY, swept INTEGER NOT NULL);\n";

const ROUTES: &str = r#"routes:
  - name: payment-asks-the-bank
    on: {topic: orders, type: ORDER_PAID}
    actions:
      - http:
          url: "{{ env.BANK_URL }}/receipts"
          headers: {X-Order: "{{ data.orderId }}"}
          body: {order: "{{ data.orderId }}"}
          as: bank
      - insert:
          table: payments
          values: {id: "{{ uuid() }}", order_id: "{{ data.orderId }}", receipt: "{{ steps.bank.body.receipt }}"}
  - name: sweep
    on: {schedule: 1h}
    actions:
      - update: {table: sweeps, where: {id: s-1}, set: {swept: 1}}
"#;

const TESTS: &str = r#"tests:
  - name: the bank's receipt is kept
    env: {BANK_URL: "https://bank.test"}
    http:
      - {method: POST, url: "https://bank.test/receipts", body: {receipt: r-9}}
    events:
      - {topic: orders, eventType: ORDER_PAID, data: {orderId: o-1}}
    expect:
      rows:
        payments: [{order_id: o-1, receipt: r-9}]
      requests:
        - {method: POST, url: "https://bank.test/receipts", headers: {X-Order: o-1}, body: {order: o-1}}
      dead_letters: []
  - name: a bank error dead-letters the payment and keeps nothing
    env: {BANK_URL: "https://bank.test"}
    http:
      - {url: "https://bank.test/receipts", status: 503, body: {error: busy}}
    events:
      - {topic: orders, eventType: ORDER_PAID, data: {orderId: o-2}}
    expect:
      rows:
        payments: []
      dead_letters:
        - {route: payment-asks-the-bank, error: "status 503"}
  - name: a scheduled route runs once with run
    rows:
      sweeps: [{id: s-1, swept: 0}]
    events:
      - run: sweep
    expect:
      rows:
        sweeps: [{id: s-1, swept: 1}]
  - name: a wrong expectation is reported
    env: {BANK_URL: "https://bank.test"}
    events:
      - {topic: orders, eventType: ORDER_PAID, data: {orderId: o-3}}
    expect:
      dead_letters: []
"#;

/// Seeded rows, answers to http steps, test-given env values, requests and dead letters
/// expected, a scheduled route run by name; a failure names the test file's line.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
fn tests_answer_http_steps_and_expect_requests_and_dead_letters(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_payments.sql", MIGRATION);
    project.write("crm-router.yaml", "env_allow: [BANK_URL]\n");
    project.write("routes/payments.yaml", ROUTES);
    project.write("routes/tests/payments.yaml", TESTS);
    let (code, output) = run_tests(&project, &[]);
    assert_eq!(code, 1, "{output}");
    for expected in [
        "ok     routes/tests/payments.yaml: the bank's receipt is kept",
        "ok     routes/tests/payments.yaml: a bank error dead-letters the payment and keeps nothing",
        "ok     routes/tests/payments.yaml: a scheduled route runs once with run",
        "FAILED routes/tests/payments.yaml: a wrong expectation is reported",
        "  routes/tests/payments.yaml:38:21: expected 0 dead letters, found 1",
        "the test gives no answer for POST https://bank.test/receipts (add it under http:)",
        "3 passed, 1 failed",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in:\n{output}");
    }
    // A file named on the command line runs alone; a test file that does not parse is a
    // problem at its place.
    project.write("other/broken.yaml", "tests:\n  - name: x\n    evnts: []\n");
    let (code, output) = run_tests(&project, &["other/broken.yaml"]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("other/broken.yaml:3:5: tests[0]: unknown field `evnts`"),
        "{output}"
    );
}
