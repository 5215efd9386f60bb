//! Hot reload on a live daemon: add, change and remove routes; an invalid edit keeps the old
//! routes running and is reported with its position.

use std::time::Duration;

use serde_json::json;
use test_case::test_case;

use crate::support::{drained, eventually, Backend, Daemon, Project};

const MIGRATION: &str = "CREATE TABLE items (id TEXT PRIMARY KEY, label TEXT NOT NULL);\n";

fn route(name: &str, event_type: &str, label: &str) -> String {
    format!(
        "routes:\n  - name: {name}\n    on: {{topic: test.events, type: {event_type}}}\n    actions:\n      - insert: {{table: items, values: {{id: \"{{{{ event.eventId }}}}\", label: \"{label}\"}}}}\n"
    )
}

/// Posts an event of `event_type` to `test.events` and expects it accepted.
async fn post(daemon: &Daemon, event_type: &str) {
    let (status, body) = daemon
        .post_event("test.events", json!({"eventType": event_type, "data": {}}))
        .await;
    assert_eq!(status, 202, "{body}");
}

async fn route_names(daemon: &Daemon) -> Vec<String> {
    let (_, listing) = daemon.get("/api/routes").await;
    let mut names: Vec<String> = listing["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| route["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn labels(project: &Project) -> Vec<String> {
    let db = project.database().await;
    drained(&db).await;
    sqlx::query_scalar("SELECT label FROM items ORDER BY label")
        .fetch_all(&db)
        .await
        .unwrap()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn routes_are_added_changed_and_removed_without_restart(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write("routes/items.yaml", &route("item", "ITEM", "v1"));
    let daemon = project.start();
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1"]);

    // Change: the target is to take effect within a second of the save; measured and printed,
    // not asserted, since CI machines vary.
    project.write("routes/items.yaml", &route("item", "ITEM", "v2"));
    let changed_at = std::time::Instant::now();
    eventually(Duration::from_secs(5), "the changed route", || async {
        daemon.log().contains("(+0 ~1 -0)").then_some(())
    })
    .await;
    eprintln!("reload after save took {:?}", changed_at.elapsed());
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1", "v2"]);

    // Add a route in a new file, saved the way editors do: write elsewhere, rename over.
    let staging = project.path().join("other.yaml.tmp");
    std::fs::write(&staging, route("other", "OTHER", "other")).unwrap();
    std::fs::rename(&staging, project.path().join("routes/other.yaml")).unwrap();
    eventually(Duration::from_secs(5), "the added route", || async {
        (route_names(&daemon).await == ["item", "other"]).then_some(())
    })
    .await;
    post(&daemon, "OTHER").await;
    assert_eq!(labels(&project).await, ["other", "v1", "v2"]);

    // An invalid edit: the old routes keep running and the error names the place.
    project.write("routes/items.yaml", "routes:\n  - name: item\n    on: {topic: test.events, type: ITEM}\n    actions:\n      - insert: {table: items, values: {labl: x}}\n");
    let (_, listing) = eventually(Duration::from_secs(5), "the failed reload", || async {
        let (status, listing) = daemon.get("/api/routes").await;
        (listing["reload"]["ok"] == false).then_some((status, listing))
    })
    .await;
    let error = listing["reload"]["error"].as_str().unwrap();
    assert!(
        error.contains("routes/items.yaml:5:41: unknown column \"labl\" in table items"),
        "{error}"
    );
    assert_eq!(listing["routes"].as_array().unwrap().len(), 2);
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["other", "v1", "v2", "v2"]);

    // Remove: the route no longer runs.
    std::fs::remove_file(project.path().join("routes/items.yaml")).unwrap();
    eventually(Duration::from_secs(5), "the removal", || async {
        (route_names(&daemon).await == ["other"]).then_some(())
    })
    .await;
    post(&daemon, "ITEM").await;
    post(&daemon, "OTHER").await;
    assert_eq!(labels(&project).await, ["other", "other", "v1", "v2", "v2"]);
    let (_, listing) = daemon.get("/api/routes").await;
    assert_eq!(listing["reload"]["ok"], true);
    assert_eq!(listing["routes"][0]["name"], "other");
}

#[cfg(unix)]
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_routes_directory_replaced_by_a_symlink_swap_is_followed(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write("releases/v1/items.yaml", &route("item", "ITEM", "v1"));
    project.write("releases/v2/items.yaml", &route("item", "ITEM", "v2"));
    std::fs::remove_dir(project.path().join("routes")).unwrap();
    std::os::unix::fs::symlink(
        project.path().join("releases/v1"),
        project.path().join("routes"),
    )
    .unwrap();
    let daemon = project.start();
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1"]);

    // Atomic swap as deploy tools do it: new link, renamed over the old one.
    std::os::unix::fs::symlink(
        project.path().join("releases/v2"),
        project.path().join("routes.new"),
    )
    .unwrap();
    std::fs::rename(
        project.path().join("routes.new"),
        project.path().join("routes"),
    )
    .unwrap();
    eventually(Duration::from_secs(5), "the swapped routes", || async {
        daemon.log().contains("(+0 ~1 -0)").then_some(())
    })
    .await;
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1", "v2"]);

    // And edits inside the new target are still seen.
    project.write("releases/v2/items.yaml", &route("item", "ITEM", "v3"));
    eventually(
        Duration::from_secs(5),
        "the edit after the swap",
        || async { (daemon.log().matches("(+0 ~1 -0)").count() >= 2).then_some(()) },
    )
    .await;
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1", "v2", "v3"]);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[tokio::test]
async fn a_routes_directory_renamed_over_is_followed(backend: Backend) {
    let Some(project) = Project::empty_on(backend) else {
        return;
    };
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    project.write("routes/items.yaml", &route("item", "ITEM", "v1"));
    project.write("routes.next/items.yaml", &route("item", "ITEM", "v2"));
    let daemon = project.start();
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1"]);

    // A real directory, not a link, replaced by renames: the path resolves to itself before
    // and after, only the directory behind it changed.
    std::fs::rename(
        project.path().join("routes"),
        project.path().join("routes.old"),
    )
    .unwrap();
    std::fs::rename(
        project.path().join("routes.next"),
        project.path().join("routes"),
    )
    .unwrap();
    eventually(Duration::from_secs(5), "the renamed-in routes", || async {
        daemon.log().contains("(+0 ~1 -0)").then_some(())
    })
    .await;
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1", "v2"]);

    project.write("routes/items.yaml", &route("item", "ITEM", "v3"));
    eventually(
        Duration::from_secs(5),
        "the edit after the rename",
        || async { (daemon.log().matches("(+0 ~1 -0)").count() >= 2).then_some(()) },
    )
    .await;
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["v1", "v2", "v3"]);
}

/// The reload that ignored `env_allow`: an edit of `crm-router.yaml` now reloads the
/// routes with its `env_allow` (a route may then read the new name), names the settings that
/// need a restart, and an invalid edit keeps what runs, reported with its position.
#[tokio::test]
async fn an_edited_config_file_reloads_env_allow_and_names_what_needs_a_restart() {
    let project = Project::empty();
    project.write("migrations/20270101000000_items.sql", MIGRATION);
    let reading = |name: &str| {
        format!("routes:\n  - name: item\n    on: {{topic: test.events, type: ITEM}}\n    actions:\n      - insert: {{table: items, values: {{id: \"{{{{ event.eventId }}}}\", label: \"{{{{ env.{name} }}}}\"}}}}\n")
    };
    project.write("routes/items.yaml", &reading("ITEM_LABEL"));
    project.write(
        "crm-router.yaml",
        "batch_size: 500\nenv_allow: [ITEM_LABEL]\n",
    );
    let daemon = Daemon::start(
        &project,
        &[
            ("CRM_ROUTER_API_KEY", crate::support::API_KEY),
            ("ITEM_LABEL", "from-env"),
            ("OTHER_LABEL", "other"),
        ],
    );
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["from-env"]);

    // A route reading a name env_allow lacks is refused where it reads it.
    project.write("routes/items.yaml", &reading("OTHER_LABEL"));
    let (_, listing) = eventually(Duration::from_secs(5), "the refused reload", || async {
        let (status, listing) = daemon.get("/api/routes").await;
        (listing["reload"]["ok"] == false).then_some((status, listing))
    })
    .await;
    let error = listing["reload"]["error"].as_str().unwrap();
    assert!(
        error.contains("routes/items.yaml:5:79: env.OTHER_LABEL is not in env_allow (hint: did you mean env.ITEM_LABEL?)"),
        "{error}"
    );

    // Allowing it in the config file is enough: the reload reads the file again.
    project.write(
        "crm-router.yaml",
        "batch_size: 100\nenv_allow: [ITEM_LABEL, OTHER_LABEL]\n",
    );
    eventually(Duration::from_secs(5), "the reload", || async {
        let (_, listing) = daemon.get("/api/routes").await;
        (listing["reload"]["ok"] == true).then_some(())
    })
    .await;
    let log = daemon.log();
    assert!(
        log.contains("crm-router.yaml changes settings that apply only after a restart: batch_size; the daemon keeps running with their old values"),
        "{log}"
    );
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["from-env", "other"]);

    // An invalid edit changes nothing and says where it is.
    project.write("crm-router.yaml", "env_allow: [ITEM_LABEL]\nenv_alow: []\n");
    let (_, listing) = eventually(Duration::from_secs(5), "the failed reload", || async {
        let (status, listing) = daemon.get("/api/routes").await;
        (listing["reload"]["ok"] == false).then_some((status, listing))
    })
    .await;
    let error = listing["reload"]["error"].as_str().unwrap();
    assert!(
        error.contains("crm-router.yaml:2:1: unknown field `env_alow`"),
        "{error}"
    );
    post(&daemon, "ITEM").await;
    assert_eq!(labels(&project).await, ["from-env", "other", "other"]);
}
