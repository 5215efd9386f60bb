//! Dead letters you can act on: list and filter them, replay them after fixing the route file
//! (one by one, in bulk, or from the CLI), and discard them, through `/api/dlq` and
//! `crm-router dlq`.

use std::time::Duration;

use serde_json::{json, Value};

use test_case::test_case;

use crate::support::{count, drained, eventually, Backend, Daemon, Project};

const MIGRATION: &str = "CREATE TABLE items (id TEXT NOT NULL, label TEXT NOT NULL);\n";

/// `data.nmae` is a typo: strict templates make every event fail for good.
fn route(field: &str) -> String {
    format!(
        r#"routes:
  - name: record
    on: {{topic: test.events, type: NAMED}}
    actions:
      - insert: {{table: items, values: {{id: "{{{{ event.eventId }}}}", label: "{{{{ data.{field} }}}}"}}}}
"#
    )
}

/// Rewrites the route file and waits until the daemon has reloaded it.
async fn rewrite_route(project: &Project, daemon: &Daemon, field: &str) {
    let (_, before) = daemon.get("/api/routes").await;
    project.write("routes/record.yaml", &route(field));
    let (status, _) = daemon.post("/api/routes/reload", json!({})).await;
    assert_eq!(status, 202);
    eventually(
        Duration::from_secs(10),
        "the route file to reload",
        || async {
            let (_, now) = daemon.get("/api/routes").await;
            (now["reload"]["at"] != before["reload"]["at"] && now["reload"]["ok"] == true)
                .then_some(())
        },
    )
    .await;
}

async fn pending(daemon: &Daemon) -> Vec<Value> {
    let (status, body) = daemon.get("/api/dlq?status=PENDING").await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn dead_letter_tools(project: Project) {
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write("routes/record.yaml", &route("nmae"));
    let daemon = project.start();
    for n in 0..3 {
        let event = json!({"eventType": "NAMED", "key": format!("k{n}"), "data": {"name": format!("item {n}")}});
        assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    }
    let db = project.database().await;
    drained(&db).await;

    // Listed with what an operator needs, and filtered.
    let letters = pending(&daemon).await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    let first = &letters[0];
    assert_eq!(first["route"], "record");
    assert_eq!(first["actionIndex"], "0");
    assert_eq!(first["actionKind"], "insert");
    assert_eq!(first["eventType"], "NAMED");
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["status"], "PENDING");
    assert!(first["error"].as_str().unwrap().contains("nmae"), "{first}");
    assert!(first["firstFailedAt"].as_str().is_some() && first["lastFailedAt"].as_str().is_some());
    let (_, none) = daemon.get("/api/dlq?since=2999-01-01T00:00:00Z").await;
    assert_eq!(none["data"], json!([]));
    assert_eq!(none["pagination"]["total"], 0);
    let (_, other_route) = daemon.get("/api/dlq?route=other").await;
    assert_eq!(other_route["data"], json!([]));
    let (status, bad) = daemon.get("/api/dlq?since=yesterday").await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["fields"][0]["field"], "since", "{bad}");
    let id = first["id"].as_str().unwrap().to_owned();
    let (status, shown) = daemon.get(&format!("/api/dlq/{id}")).await;
    assert_eq!((status, &shown["id"]), (200, &first["id"]));

    // Replayed before the fix: it fails again into a new dead letter.
    let (status, outcome) = daemon
        .post(&format!("/api/dlq/{id}/replay"), json!({}))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["outcome"], "failed_again", "{outcome}");
    let (_, old) = daemon.get(&format!("/api/dlq/{id}")).await;
    assert_eq!(old["status"], "REPLAYED");
    let letters = pending(&daemon).await;
    assert_eq!(letters.len(), 3);
    assert!(
        letters.iter().any(|letter| letter["attempts"] == 2),
        "{letters:?}"
    );
    let (status, again) = daemon
        .post(&format!("/api/dlq/{id}/replay"), json!({}))
        .await;
    assert_eq!(status, 409, "{again}");

    // Fix the route file; a bulk replay heals every pending letter exactly once.
    rewrite_route(&project, &daemon, "name").await;
    let (status, bulk) = daemon
        .post("/api/dlq/replay", json!({"route": "record"}))
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(
        (bulk["applied"].as_i64(), bulk["failedAgain"].as_i64()),
        (Some(3), Some(0)),
        "{bulk}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items").await, 3);
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT label) FROM items").await,
        3
    );
    assert!(pending(&daemon).await.is_empty());
    let (_, bulk_again) = daemon
        .post("/api/dlq/replay", json!({"route": "record"}))
        .await;
    assert_eq!(bulk_again["applied"], 0, "{bulk_again}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items").await, 3);

    // Discard; unknown ids and missing credentials get JSON errors.
    rewrite_route(&project, &daemon, "nmae").await;
    let event = json!({"eventType": "NAMED", "data": {"name": "discard me"}});
    assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    let letter = eventually(Duration::from_secs(10), "a new dead letter", || async {
        pending(&daemon).await.into_iter().next()
    })
    .await;
    let id = letter["id"].as_str().unwrap();
    let (status, discarded) = daemon
        .post(&format!("/api/dlq/{id}/discard"), json!({}))
        .await;
    assert_eq!(
        (status, &discarded["status"]),
        (200, &json!("DISCARDED")),
        "{discarded}"
    );
    let (status, _) = daemon
        .post(&format!("/api/dlq/{id}/discard"), json!({}))
        .await;
    assert_eq!(status, 409);
    let (status, missing) = daemon.get("/api/dlq/no-such-id").await;
    assert_eq!(status, 404, "{missing}");
    assert!(missing["message"].as_str().is_some());
    let anonymous = reqwest::get(format!("{}/api/dlq", daemon.base))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // The CLI sees and replays the same letters.
    let event = json!({"eventType": "NAMED", "data": {"name": "from the cli"}});
    assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    let letter = eventually(
        Duration::from_secs(10),
        "a dead letter for the CLI",
        || async { pending(&daemon).await.into_iter().next() },
    )
    .await;
    let id = letter["id"].as_str().unwrap();
    let url = project.database_url();
    let listed = project.command(&[
        "dlq",
        "list",
        "--status",
        "pending",
        "--json",
        "--database-url",
        &url,
    ]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], id);
    project.write("routes/record.yaml", &route("name"));
    let replayed = project.command(&["dlq", "replay", id, "--database-url", &url]);
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        replayed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(stdout.contains(&format!("{id}: applied")), "{stdout}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM items WHERE label = 'from the cli'"
        )
        .await,
        1
    );
    let bad = project.command(&["dlq", "list", "--since", "soon", "--database-url", &url]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn dead_letters_are_listed_replayed_after_a_fix_and_discarded(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    dead_letter_tools(project).await;
}

/// Operators racing: one letter replayed by many requests at once runs once; an event refused at
/// submission replays into the event log and goes the way of every event, once.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn concurrent_replays_run_once_and_refused_submissions_enter_the_log(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write("routes/record.yaml", &route("nmae"));
    project.write(
        "schemas/test.events/NAMED.json",
        r#"{"type": "object", "required": ["name"]}"#,
    );
    let daemon = project.start();
    let event = json!({"eventType": "NAMED", "data": {"name": "raced"}});
    assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    let db = project.database().await;
    drained(&db).await;
    let id = pending(&daemon).await[0]["id"].as_str().unwrap().to_owned();
    rewrite_route(&project, &daemon, "name").await;
    let mut replays = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = daemon.request(reqwest::Method::POST, &format!("/api/dlq/{id}/replay"));
        replays.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = replays.join_next().await {
        statuses.push(status.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|status| matches!(status, 200 | 409)),
        "{statuses:?}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items").await, 1);

    // Refused at submission (no name): the letter says so, and replaying it after the schema
    // is relaxed puts the event into the log, where the route applies it once.
    let refused = json!({"eventId": "5d9f4c2e-0000-4000-8000-000000000001", "eventType": "NAMED", "data": {"title": "no name"}});
    assert_eq!(
        daemon.post_event("test.events", refused.clone()).await.0,
        422
    );
    assert_eq!(daemon.post_event("test.events", refused).await.0, 422);
    let letters = pending(&daemon).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|letter| letter["actionKind"] == "submit"),
        "{letters:?}"
    );
    project.write("schemas/test.events/NAMED.json", r#"{"type": "object"}"#);
    rewrite_route(&project, &daemon, "name | default('unnamed')").await;
    let (status, bulk) = daemon
        .post("/api/dlq/replay", json!({"eventType": "NAMED"}))
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["requeued"], 1, "{bulk}");
    assert_eq!(
        bulk["skipped"], 1,
        "the second letter of the same event: {bulk}"
    );
    drained(&db).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM items WHERE label = 'unnamed'").await,
        1
    );
}

/// The issue's `dlq replay` that ran the route's webhook in the operator's shell, which lacked
/// its variable: with a daemon answering, the CLI replays through it (its routes, its
/// environment); offline it says so and refuses a route whose `http` step reads a variable the
/// shell does not have; and a daemon it cannot call is an error, not a reason to run here.
// Multi-threaded: the hook is served by this runtime while the test waits on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_replays_through_the_daemon_and_refuses_unset_variables_offline() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let target = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                // The first call fails for good; the replay's succeeds.
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    axum::http::StatusCode::BAD_REQUEST
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, target).await.unwrap() });

    let project = Project::empty();
    project.write("crm-router.yaml", "env_allow: [HOOK_URL]\n");
    project.write(
        "routes/hook.yaml",
        "routes:\n  - name: hook\n    on: {topic: test.events, type: HOOK}\n    retry: {attempts: 1}\n    actions:\n      - http: {url: \"{{ env.HOOK_URL }}\", body: {id: \"{{ event.eventId }}\"}}\n",
    );
    let daemon = Daemon::start(
        &project,
        &[
            ("CRM_ROUTER_API_KEY", crate::support::API_KEY),
            ("HOOK_URL", &hook),
        ],
    );
    let event = json!({"eventType": "HOOK", "data": {}});
    assert_eq!(daemon.post_event("test.events", event).await.0, 202);
    let letter = eventually(Duration::from_secs(10), "the dead letter", || async {
        pending(&daemon).await.into_iter().next()
    })
    .await;
    let id = letter["id"].as_str().unwrap();
    let listen = daemon.base.trim_start_matches("http://").to_owned();
    let replay = |extra: &[&str], key: Option<&str>| {
        let mut command = std::process::Command::new(crate::support::binary());
        command
            .args(["dlq", "replay", id, "--listen", &listen])
            .args(extra)
            .current_dir(project.path())
            .env("DATABASE_URL", project.database_url())
            .env_remove("HOOK_URL")
            .env_remove("CRM_ROUTER_API_KEY");
        if let Some(key) = key {
            command.env("CRM_ROUTER_API_KEY", key);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = replay(&["--offline"], None);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{id}: not replayed: route hook's http step 0 reads env.HOOK_URL, which is not set in this shell; replay through the running daemon (it has its environment), or set HOOK_URL here")),
        "{stdout}"
    );

    let (code, stdout, stderr) = replay(&[], None);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("but CRM_ROUTER_API_KEY is not set here to call it"),
        "{stderr}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "neither attempt called the hook"
    );
    assert_eq!(pending(&daemon).await.len(), 1);

    let (code, stdout, stderr) = replay(&[], Some(crate::support::API_KEY));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("replaying through the daemon at {}", daemon.base)),
        "{stderr}"
    );
    assert!(stdout.contains(&format!("{id}: applied")), "{stdout}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the daemon called the hook with its HOOK_URL"
    );
    assert!(pending(&daemon).await.is_empty());
}
