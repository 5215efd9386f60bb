//! `crm-router import`: the original CRM's data from its PostgreSQL database (tables as its
//! Prisma schema made them) or JSON lines, into either of our databases, idempotently, with bad
//! rows reported by table and key, and bcrypt users able to log in (and rehashed) afterwards.

use serde_json::json;
use sqlx::any::AnyPoolOptions;
use test_case::test_case;

use crate::support::{count, Backend, PostgresDatabase, Project};

/// The original's tables, as Prisma's migration created them (the columns the import reads).
const ORIGINAL_SCHEMA: &[&str] = &[
    r#"CREATE TYPE "Role" AS ENUM ('ADMIN', 'MANAGER', 'SALES', 'COMPLIANCE')"#,
    r#"CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, password TEXT NOT NULL,
       name TEXT NOT NULL, role "Role" NOT NULL DEFAULT 'SALES',
       "createdAt" TIMESTAMP(3) NOT NULL DEFAULT now(), "updatedAt" TIMESTAMP(3) NOT NULL)"#,
    r#"CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
       phone TEXT, address TEXT, "investmentProfile" TEXT NOT NULL, "riskTolerance" INTEGER NOT NULL,
       "investmentExperience" TEXT, "assignedSalesId" TEXT NOT NULL, "deletedAt" TIMESTAMP(3),
       "createdAt" TIMESTAMP(3) NOT NULL, "updatedAt" TIMESTAMP(3) NOT NULL)"#,
    r#"CREATE TABLE meetings (id TEXT PRIMARY KEY, "customerId" TEXT NOT NULL, "salesId" TEXT NOT NULL,
       date TIMESTAMP(3) NOT NULL, summary TEXT NOT NULL, "nextAction" TEXT, "nextActionDate" TIMESTAMP(3),
       "createdAt" TIMESTAMP(3) NOT NULL, "updatedAt" TIMESTAMP(3) NOT NULL)"#,
    r#"CREATE TABLE tasks (id TEXT PRIMARY KEY, "userId" TEXT NOT NULL, "customerId" TEXT, title TEXT NOT NULL,
       description TEXT, "dueDate" TIMESTAMP(3) NOT NULL, status TEXT NOT NULL, priority TEXT NOT NULL,
       "completedAt" TIMESTAMP(3), "createdAt" TIMESTAMP(3) NOT NULL, "updatedAt" TIMESTAMP(3) NOT NULL)"#,
    r#"CREATE TABLE approval_requests (id TEXT PRIMARY KEY, "requesterId" TEXT NOT NULL, "approverId" TEXT,
       "customerId" TEXT NOT NULL, "productName" TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL,
       status TEXT NOT NULL, comment TEXT, "requestedAt" TIMESTAMP(3) NOT NULL, "processedAt" TIMESTAMP(3),
       "createdAt" TIMESTAMP(3) NOT NULL, "updatedAt" TIMESTAMP(3) NOT NULL)"#,
    r#"CREATE TABLE notifications (id TEXT PRIMARY KEY, "userId" TEXT NOT NULL, type TEXT NOT NULL,
       title TEXT NOT NULL, message TEXT NOT NULL, link TEXT, "isRead" BOOLEAN NOT NULL DEFAULT false,
       "createdAt" TIMESTAMP(3) NOT NULL, "readAt" TIMESTAMP(3))"#,
    r#"CREATE TABLE audit_logs (id TEXT PRIMARY KEY, "userId" TEXT NOT NULL, action TEXT NOT NULL,
       "resourceType" TEXT NOT NULL, "resourceId" TEXT, changes JSONB, "ipAddress" TEXT,
       timestamp TIMESTAMP(3) NOT NULL DEFAULT now())"#,
];

/// The original CRM's database with two good users, one whose email a user here has (and their
/// customer), a good and a bad customer, and one of everything else.
async fn original_database() -> Option<PostgresDatabase> {
    let database = PostgresDatabase::create()?;
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&database.url())
        .await
        .unwrap();
    let admin_hash = bcrypt::hash("adminpass1", 4)
        .unwrap()
        .replacen("$2b$", "$2a$", 1);
    let sales_hash = bcrypt::hash("salespass1", 4).unwrap();
    let mut statements: Vec<String> = ORIGINAL_SCHEMA.iter().map(|s| s.to_string()).collect();
    statements.extend([
        format!(
            "INSERT INTO users VALUES \
             ('u-admin', 'admin@example.com', '{admin_hash}', 'Admin', 'ADMIN', '2025-10-01 09:00:00.123', '2025-10-01 09:00:00.123'), \
             ('u-sales', 'sales@example.com', '{sales_hash}', '営業 太郎', 'SALES', '2025-10-02 09:00:00', '2025-10-02 09:00:00'), \
             ('u-taken', 'taken@example.com', '{sales_hash}', 'Taken', 'SALES', '2025-10-03 09:00:00', '2025-10-03 09:00:00')"
        ),
        "INSERT INTO customers VALUES \
         ('c-good', '山田 花子', 'hanako@example.com', '090', 'Tokyo', 'moderate', 7, '5 years', 'u-sales', NULL, '2025-10-04 10:00:00', '2025-10-04 10:00:00'), \
         ('c-bad', 'Bad', 'bad@example.com', NULL, NULL, 'moderate', 42, NULL, 'u-sales', NULL, '2025-10-04 10:00:00', '2025-10-04 10:00:00'), \
         ('c-taken', 'Theirs', 'theirs@example.com', NULL, NULL, 'aggressive', 9, NULL, 'u-taken', NULL, '2025-10-04 11:00:00', '2025-10-04 11:00:00')"
            .into(),
        "INSERT INTO meetings VALUES ('m-1', 'c-good', 'u-sales', '2025-10-05 14:00:00', 'Kickoff', 'Send offer', '2025-10-07 00:00:00', '2025-10-05 15:00:00', '2025-10-05 15:00:00')".into(),
        "INSERT INTO tasks VALUES \
         ('t-open', 'u-sales', 'c-good', 'Call back', NULL, '2030-01-01 00:00:00', 'IN_PROGRESS', 'HIGH', NULL, '2025-10-05 16:00:00', '2025-10-05 16:00:00'), \
         ('t-done', 'u-sales', NULL, 'Offer', 'sent', '2025-10-06 00:00:00', 'COMPLETED', 'MEDIUM', '2025-10-06 12:00:00.5', '2025-10-05 16:00:00', '2025-10-06 12:00:00')"
            .into(),
        "INSERT INTO approval_requests VALUES ('a-1', 'u-sales', 'u-admin', 'c-good', 'Fund A', 1500000.5, 'APPROVED', 'ok', '2025-10-06 09:00:00', '2025-10-06 10:00:00', '2025-10-06 09:00:00', '2025-10-06 10:00:00')".into(),
        "INSERT INTO notifications VALUES ('n-1', 'u-sales', 'APPROVAL_APPROVED', 'Approved', 'Fund A', '/dashboard/approvals/a-1', true, '2025-10-06 10:00:00', '2025-10-06 11:00:00')".into(),
        r#"INSERT INTO audit_logs VALUES ('l-1', 'u-admin', 'UPDATE', 'ApprovalRequest', 'a-1', '{"status": "APPROVED"}', '10.0.0.1', '2025-10-06 10:00:00.250')"#.into(),
    ]);
    for statement in statements {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    Some(database)
}

/// The command's output with runs of spaces as one.
fn squeezed(output: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn log_in(daemon: &crate::support::Daemon, email: &str, password: &str) -> u16 {
    daemon
        .post(
            "/api/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
        .0
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_original_database_is_imported_once_and_its_users_log_in(backend: Backend) {
    let Some(original) = original_database().await else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let (status, _) = daemon
        .post(
            "/api/auth/register",
            json!({"email": "taken@example.com", "password": "already-here", "name": "Here"}),
        )
        .await;
    assert_eq!(status, 201);
    let db = project.database().await;
    crate::support::drained(&db).await;
    let events = count(&db, "SELECT COUNT(*) FROM event_log").await;
    let customers_before = count(&db, "SELECT COUNT(*) FROM customers").await;

    let first = project.command(&["import", &original.url()]);
    let summary = squeezed(&first);
    assert_eq!(
        first.status.code(),
        Some(1),
        "{summary}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for line in [
        "users 2 imported, 0 already here, 0 refused, 1 taken to be the user here with the same email",
        "customers 2 imported, 0 already here, 1 refused",
        "meetings 1 imported, 0 already here, 0 refused",
        "tasks 2 imported, 0 already here, 0 refused",
        "approval_requests 1 imported, 0 already here, 0 refused",
        "notifications 1 imported, 0 already here, 0 refused",
        "audit_logs 1 imported, 0 already here, 0 refused",
        "refused: customers c-bad: riskTolerance: must be a whole number from 1 to 10",
    ] {
        assert!(summary.contains(line), "{line}\nin:\n{summary}");
    }
    // Rows as they were, with our names and timestamps, and no event: nothing reacts.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM event_log").await, events);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM customers").await,
        customers_before + 2
    );
    // The user whose email was taken is the user here: what they owned is theirs.
    let here: String = sqlx::query_scalar("SELECT id FROM users WHERE email = 'taken@example.com'")
        .fetch_one(&db)
        .await
        .unwrap();
    let owner_of_theirs: String =
        sqlx::query_scalar("SELECT owner_id FROM customers WHERE id = 'c-taken'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(owner_of_theirs, here);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM users WHERE id = 'u-taken'").await,
        0
    );
    let (changes, recorded): (String, String) =
        sqlx::query_as("SELECT changes, recorded_at FROM audit_log WHERE id = 'l-1'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&changes).unwrap(),
        json!({"status": "APPROVED"})
    );
    assert_eq!(recorded, "2025-10-06T10:00:00.250Z");
    let (owner, risk, created_at): (String, i64, String) = sqlx::query_as(
        "SELECT owner_id, risk_tolerance, created_at FROM customers WHERE id = 'c-good'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (owner.as_str(), risk, created_at.as_str()),
        ("u-sales", 7, "2025-10-04T10:00:00.000Z")
    );
    let (title, status, decided): (String, String, String) =
        sqlx::query_as("SELECT title, status, decided_at FROM approvals WHERE id = 'a-1'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (title.as_str(), status.as_str(), decided.as_str()),
        ("Fund A", "APPROVED", "2025-10-06T10:00:00.000Z")
    );
    let completed: String =
        sqlx::query_scalar("SELECT completed_at FROM tasks WHERE id = 't-done'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(completed, "2025-10-06T12:00:00.500Z");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM notifications WHERE id = 'n-1' AND read = 1"
        )
        .await,
        1
    );

    // Importing again changes nothing.
    let second = project.command(&["import", &original.url()]);
    let summary = squeezed(&second);
    assert!(
        summary.contains(
            "users 0 imported, 2 already here, 0 refused, 1 taken to be the user here with the same email"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("customers 0 imported, 2 already here, 1 refused"),
        "{summary}"
    );
    assert!(
        summary.contains("tasks 0 imported, 2 already here, 0 refused"),
        "{summary}"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM customers").await,
        customers_before + 2
    );

    // bcrypt users log in with their old passwords; the first login stores Argon2id.
    assert_eq!(
        log_in(&daemon, "sales@example.com", "wrong-password").await,
        401
    );
    assert_eq!(
        log_in(&daemon, "sales@example.com", "salespass1").await,
        200
    );
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = 'u-sales'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(
        log_in(&daemon, "sales@example.com", "salespass1").await,
        200
    );
    assert_eq!(
        log_in(&daemon, "admin@example.com", "adminpass1").await,
        200
    );
}

#[tokio::test]
async fn json_lines_stop_at_the_first_bad_row_and_name_its_line() {
    let project = Project::bundled();
    let lines = [
        json!({"table": "users", "row": {"id": "u1", "email": "one@example.com", "password": bcrypt::hash("password1", 4).unwrap(), "name": "One", "role": "SALES"}}).to_string(),
        String::new(),
        json!({"table": "customers", "row": {"id": "c1", "name": "C", "assignedSalesId": "u1", "createdAt": "2025-10-01T00:00:00Z"}}).to_string(),
        "{not json".to_owned(),
        "\u{1}".to_owned(), // replaced by bytes that are not UTF-8 below
        json!({"table": "customers", "row": {"id": "c1", "name": "Again"}}).to_string(),
        json!({"table": "customers", "row": {"id": "c2", "name": "After"}}).to_string(),
    ];
    // A byte-order mark first, as Windows editors write one.
    let mut file = "\u{feff}".as_bytes().to_vec();
    file.extend(lines.join("\n").replace('\u{1}', "\u{2}").into_bytes());
    let invalid = file.iter().position(|byte| *byte == 2).unwrap();
    file.splice(invalid..=invalid, [0xff, 0xfe, b'{']);
    std::fs::write(project.path().join("original.jsonl"), file).unwrap();
    let skipped = project.command(&["import", "original.jsonl"]);
    let summary = squeezed(&skipped);
    assert_eq!(skipped.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("users 1 imported, 0 already here, 0 refused"),
        "{summary}"
    );
    assert!(
        summary.contains("customers 2 imported, 0 already here, 1 refused"),
        "{summary}"
    );
    let refusals: Vec<&str> = summary
        .lines()
        .filter(|line| line.starts_with("refused: "))
        .collect();
    assert_eq!(refusals.len(), 3, "{summary}");
    assert!(
        refusals[0].starts_with("refused: (unreadable line) ? (line 4): not a JSON object"),
        "{summary}"
    );
    assert!(
        refusals[1].starts_with("refused: (unreadable line) ? (line 5): not UTF-8 text"),
        "{summary}"
    );
    assert_eq!(
        refusals[2],
        "refused: customers c1 (line 6): the source has another row with this id before it"
    );
    let db = project.database().await;
    let name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = 'c1'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(name, "C");

    let other = Project::bundled();
    let lines = [
        lines[0].clone(),
        json!({"table": "invoices", "row": {"id": "i1"}}).to_string(),
        lines[2].clone(),
    ];
    other.write("original.jsonl", &lines.join("\n"));
    let stopped = other.command(&["import", "--on-error", "stop", "original.jsonl"]);
    let summary = squeezed(&stopped);
    assert_eq!(stopped.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("users 1 imported, 0 already here, 0 refused"),
        "{summary}"
    );
    assert!(
        summary.contains("refused: invoices i1 (line 2): `table` must be one of users, customers"),
        "{summary}"
    );
    assert!(
        summary.contains("stopped at the first refused row"),
        "{summary}"
    );
    assert!(
        !summary.lines().any(|line| line.starts_with("customers")),
        "{summary}"
    );
    let db = other.database().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM customers WHERE id = 'c1'").await,
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM users WHERE id = 'u1'").await,
        1
    );
}
