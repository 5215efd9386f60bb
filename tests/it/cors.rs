//! CORS is off unless origins are configured; configured origins get answers to their
//! preflight requests and no one else does. (Database-independent: runs on SQLite only.)

use crate::support::{Daemon, Project, API_KEY};

async fn preflight(daemon: &Daemon, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/customers", daemon.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_configured_origins() {
    let project = Project::bundled();
    let closed = project.start();
    let response = preflight(&closed, "https://crm.example.com").await;
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    drop(closed);

    let open = Daemon::start(
        &project,
        &[
            ("CRM_ROUTER_API_KEY", API_KEY),
            (
                "CRM_ROUTER_CORS_ORIGINS",
                "https://crm.example.com, http://localhost:5173",
            ),
        ],
    );
    let response = preflight(&open, "https://crm.example.com").await;
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://crm.example.com"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(headers.get("access-control-allow-credentials").is_none());
    let stranger = preflight(&open, "https://evil.example.net").await;
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // Real requests carry the header too, and the total count is readable by the page.
    let response = reqwest::Client::new()
        .get(format!("{}/healthz", open.base))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
}

#[tokio::test]
async fn a_malformed_origin_stops_the_start_and_names_it() {
    let project = Project::bundled();
    let output = std::process::Command::new(crate::support::binary())
        .args(["run", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(project.database_url())
        .current_dir(project.path())
        .env("CRM_ROUTER_CORS_ORIGINS", "crm.example.com/app")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cors_origins")
            && stderr.contains("\"crm.example.com/app\" is not an origin"),
        "{stderr}"
    );
}
