//! Operator surface: SIGHUP and `POST /api/routes/reload` reload routes, JSON logs are one
//! object per line with the guide's messages.

use std::time::Duration;

use serde_json::{json, Value};
use test_case::test_case;

use crate::support::{drained, eventually, Backend, Daemon, Project, API_KEY};

async fn reload_time(daemon: &Daemon) -> String {
    let (status, listing) = daemon.get("/api/routes").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["reload"]["ok"], true, "{listing}");
    listing["reload"]["at"].as_str().unwrap().to_owned()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sighup_and_the_reload_endpoint_reload_the_routes(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let initial = reload_time(&daemon).await;

    daemon.hangup();
    let after_hangup = eventually(Duration::from_secs(5), "a reload after SIGHUP", || async {
        let at = reload_time(&daemon).await;
        (at != initial).then_some(at)
    })
    .await;
    assert!(daemon.log().contains("SIGHUP received; reloading routes"));

    let response = daemon
        .request(reqwest::Method::POST, "/api/routes/reload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    eventually(
        Duration::from_secs(5),
        "a reload after POST /api/routes/reload",
        || async { (reload_time(&daemon).await != after_hangup).then_some(()) },
    )
    .await;
    assert!(daemon.log().matches("🔁 Routes reloaded").count() >= 3);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_guide_messages(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = Daemon::start(
        &project,
        &[
            ("CRM_ROUTER_API_KEY", API_KEY),
            ("CRM_ROUTER_LOG_FORMAT", "json"),
        ],
    );
    let (status, body) = daemon
        .post_event(
            "user.events",
            json!({"eventType": "USER_CREATED", "data": {"userId": "u1", "email": "a@example.com", "name": "Taro", "role": "USER"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    drained(&project.database().await).await;
    let log = daemon.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"📥 Event received: USER_CREATED from topic user.events"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"📤 Event published: CUSTOMER_CREATED to topic customer.events"),
        "{messages:?}"
    );
    assert!(lines.iter().all(|line| line["level"].is_string()));
}

/// Instances starting together on a fresh database apply the migrations once: sqlx's migrator
/// holds a lock while it runs (an advisory lock on PostgreSQL; SQLite's write lock).
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn instances_starting_together_migrate_once(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let url = project.database_url();
    // `dlq discard` opens the database the way `run` does, migrations included.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(crate::support::binary())
                .args(["dlq", "discard", "--all", "--database-url", &url])
                .current_dir(project.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for start in starts {
        let output = start.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let db = project.database().await;
    let applied = crate::support::count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await;
    let distinct =
        crate::support::count(&db, "SELECT COUNT(DISTINCT version) FROM _sqlx_migrations").await;
    assert_eq!(applied, distinct);
    assert!(applied >= 4, "{applied} migrations recorded");
    // And the daemon starts on what they made.
    let daemon = project.start();
    let (status, _) = daemon.get("/readyz").await;
    assert_eq!(status, 200);
}

/// `check` and `dlq list|show` read; they change no database, not even its schema. On
/// PostgreSQL `check` runs the migrations in a transaction it rolls back, and still sees the
/// user's tables (a typo in a column of one is reported).
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn check_and_dead_letter_reads_change_no_database(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    project.write(
        "migrations/20270101000000_leads.sql",
        "CREATE TABLE leads (id TEXT PRIMARY KEY, email TEXT NOT NULL);\n",
    );
    project.write(
        "routes/leads.yaml",
        r#"routes:
  - name: lead-from-user
    on: {topic: user.events, type: USER_CREATED}
    actions:
      - insert: {table: leads, values: {id: "{{ data.userId }}", emial: "{{ data.email }}"}}
"#,
    );
    let checked = project.command(&["check"]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success(), "{stdout}");
    assert!(
        stdout.contains("routes/leads.yaml:5:66: unknown column \"emial\" in table leads"),
        "{stdout}"
    );
    let listed = project.command(&["dlq", "list"]);
    assert!(!listed.status.success());
    let stderr = String::from_utf8_lossy(&listed.stderr);
    match backend {
        // A file that does not exist is not created.
        Backend::Sqlite => {
            assert!(stderr.contains("cannot open database"), "{stderr}");
            assert!(!project.path().join("crm.db").exists());
        }
        Backend::Postgres => {
            assert!(
                stderr.contains(
                    "cannot read the dead letters (has crm-router run on this database?)"
                ),
                "{stderr}"
            );
            let db = project.database().await;
            let tables = "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema()";
            assert_eq!(crate::support::count(&db, tables).await, 0);
        }
    }
}

/// Secrets never reach a log line, at any level, nor an endpoint's answer: a database password
/// given as a URL parameter (where the userinfo redaction did not look), the API key and the
/// JWT secret.
#[tokio::test]
async fn secrets_never_reach_logs_or_endpoints() {
    let Some(project) = Project::bundled_on(Backend::Postgres) else {
        return;
    };
    const DATABASE_SECRET: &str = "canary-database-secret";
    const JWT_SECRET: &str = "canary-jwt-secret-0123456789abcdef0123456789";
    // The local server trusts every connection, so the password is carried but not needed.
    let url = format!("{}?password={DATABASE_SECRET}", project.database_url());
    let daemon = Daemon::start_at(
        &project,
        &url,
        &[
            ("RUST_LOG", "trace"),
            ("CRM_ROUTER_API_KEY", API_KEY),
            ("JWT_SECRET", JWT_SECRET),
        ],
    );
    let event = json!({"eventType": "PING", "data": {}});
    assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    let mut answers = String::new();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/routes",
    ] {
        let response = daemon
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        answers.push_str(&response.text().await.unwrap());
    }
    let db = project.database().await;
    drained(&db).await;
    let log = daemon.log();
    assert!(log.contains("database ready"), "{log}");
    assert!(
        log.contains("password=***"),
        "the redacted URL is logged: {log}"
    );
    for secret in [DATABASE_SECRET, JWT_SECRET, API_KEY] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!answers.contains(secret), "{secret} in an answer");
    }
}

/// On Render (`RENDER` set), a SQLite file on the image's filesystem is lost at the next deploy:
/// the start warns, with the fix. A file on a disk of its own, PostgreSQL, or another host is
/// not warned about.
#[tokio::test]
async fn sqlite_on_renders_ephemeral_filesystem_is_warned_about() {
    const WARNING: &str = "the SQLite database is on Render's ephemeral filesystem";
    use std::os::unix::fs::MetadataExt;
    /// The start's log up to the line after the one that may warn.
    async fn start_log(project: &Project, env: &[(&str, &str)]) -> String {
        let daemon = Daemon::start(project, env);
        eventually(Duration::from_secs(30), "the routes to load", || async {
            let log = daemon.log();
            log.contains("loading routes").then_some(log)
        })
        .await
    }
    let project = Project::bundled();
    // The test's temporary directory is ephemeral when it is on the root filesystem or in
    // memory (a tmpfs /tmp); only elsewhere is it what a persistent disk looks like.
    let on_root =
        std::fs::metadata(project.path()).unwrap().dev() == std::fs::metadata("/").unwrap().dev();
    let in_memory = nix::sys::statfs::statfs(project.path())
        .unwrap()
        .filesystem_type()
        == nix::sys::statfs::TMPFS_MAGIC;
    let ephemeral = on_root || in_memory;
    let log = start_log(&project, &[("RENDER", "true")]).await;
    assert_eq!(log.contains(WARNING), ephemeral, "{log}");
    if ephemeral {
        assert!(log.contains("attach a persistent disk"), "{log}");
    }
    assert!(!start_log(&project, &[]).await.contains(WARNING));
    if let Some(postgres) = Project::bundled_on(Backend::Postgres) {
        let log = start_log(&postgres, &[("RENDER", "true")]).await;
        assert!(!log.contains(WARNING), "{log}");
    }
}
