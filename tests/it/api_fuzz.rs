//! API fuzzing with schemathesis (PyPI): it reads `/api/openapi.json`, generates thousands of
//! requests (valid, boundary and malformed) for every operation, including stateful sequences
//! that reuse the ids it creates, and fails on any 5xx and on any answer the document does not
//! describe: an undocumented status, content type or header, or a body that does not match its
//! schema. So the document is checked against the API, not only the API against crashes.
//!
//! `.ci/run` installs schemathesis into `target/ci-tools`; the test finds it through
//! `SCHEMATHESIS_BIN` or `st` on the PATH. Under CI a missing schemathesis fails the test;
//! elsewhere it is skipped with a message.

use std::process::Command;

use crate::crm_flows::{create_user_with_cli, Client};
use test_case::test_case;

use crate::support::{Backend, Project, API_KEY};

fn schemathesis() -> Option<String> {
    if let Ok(path) = std::env::var("SCHEMATHESIS_BIN") {
        return Some(path);
    }
    let on_path = Command::new("st")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if on_path {
        return Some("st".to_owned());
    }
    if std::env::var_os("CI").is_some() {
        panic!("schemathesis is not installed; CI installs it (pip install schemathesis)");
    }
    eprintln!("SKIPPED: schemathesis is not installed (pip install schemathesis)");
    None
}

/// What schemathesis checks on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance";

async fn every_answer_is_documented_and_none_is_5xx(project: Project) {
    let Some(st) = schemathesis() else {
        return;
    };
    let daemon = project.start();
    create_user_with_cli(&project, "admin@example.com", "Admin", "ADMIN");
    let login = Client::anonymous(&daemon)
        .login("admin@example.com", "Password123!")
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.body["token"].as_str().unwrap().to_owned();
    // `CRM_ROUTER_SOAK=N` runs N times as many examples per operation.
    let soak: usize = std::env::var("CRM_ROUTER_SOAK")
        .ok()
        .and_then(|factor| factor.parse().ok())
        .unwrap_or(1);
    let examples = (50 * soak).to_string();
    let output = tokio::task::spawn_blocking({
        let base = daemon.base.clone();
        // Its cache directory goes into the project, not the repository.
        let directory = project.path().to_owned();
        move || {
            Command::new(st)
                .current_dir(directory)
                .args(["run", &format!("{base}/api/openapi.json")])
                .args(["--checks", CHECKS])
                .args(["--max-examples", &examples])
                .args(["--seed", "20261129"])
                .args(["-H", &format!("Authorization: Bearer {token}")])
                .args(["-H", &format!("X-API-Key: {API_KEY}")])
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    // It really exercised the API: thousands of generated requests, none failed.
    let generated: u64 = report
        .lines()
        .find_map(|line| {
            let (count, _) = line.trim().split_once(" generated,")?;
            count.parse().ok()
        })
        .unwrap_or_else(|| panic!("no test-case count in the report:\n{report}"));
    assert!(generated > 1_000, "{report}");
    let (status, _) = daemon.get("/healthz").await;
    assert_eq!(status, 200, "the daemon stays up");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    every_answer_is_documented_and_none_is_5xx(project).await;
}
