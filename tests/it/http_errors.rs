//! Bad requests get a clear 4xx with a JSON error body, nothing is half-written, and the
//! process stays up.

use serde_json::{json, Value};
use test_case::test_case;

use crate::support::{count, Backend, Daemon, Project, API_KEY};

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    key: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    message_contains: &'static str,
}

fn case(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
    message_contains: &'static str,
) -> Case {
    Case {
        name,
        path: "/api/events/user.events",
        content_type: Some("application/json"),
        key: Some(API_KEY),
        body: body.into(),
        status,
        code,
        message_contains,
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn bad_event_submissions_are_refused_clearly(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let client = reqwest::Client::new();
    let valid = json!({"eventType": "USER_CREATED", "data": {"userId": "u", "email": "e@x", "name": "n", "role": "USER"}}).to_string();
    let cases = vec![
        case(
            "malformed JSON",
            "{\"eventType\": ",
            400,
            "bad_request",
            "malformed JSON",
        ),
        case(
            "not an object",
            "[1,2,3]",
            400,
            "bad_request",
            "invalid request body",
        ),
        case(
            "missing eventType",
            r#"{"data": {}}"#,
            400,
            "bad_request",
            "eventType",
        ),
        case(
            "missing data",
            r#"{"eventType": "USER_CREATED"}"#,
            400,
            "bad_request",
            "data",
        ),
        case(
            "eventType of the wrong type",
            r#"{"eventType": 5, "data": {}}"#,
            400,
            "bad_request",
            "eventType",
        ),
        case(
            "unknown field",
            r#"{"eventType": "X", "data": {}, "evil": 1}"#,
            400,
            "bad_request",
            "evil",
        ),
        case(
            "bad eventType characters",
            r#"{"eventType": "DROP TABLE", "data": {}}"#,
            400,
            "bad_request",
            "eventType",
        ),
        case(
            "bad timestamp",
            r#"{"eventType": "X", "data": {}, "timestamp": "yesterday"}"#,
            400,
            "bad_request",
            "RFC 3339",
        ),
        case(
            "empty key",
            r#"{"eventType": "X", "data": {}, "key": ""}"#,
            400,
            "bad_request",
            "key",
        ),
        case(
            "invalid UTF-8",
            b"{\"eventType\": \"X\", \"data\": {\"a\": \"\xff\xfe\"}}".to_vec(),
            400,
            "bad_request",
            "malformed JSON",
        ),
        case(
            "schema violation",
            r#"{"eventType": "USER_CREATED", "data": {"userId": "u"}}"#,
            422,
            "unprocessable_entity",
            "USER_CREATED",
        ),
        case(
            "over 1 MiB",
            format!(
                r#"{{"eventType": "X", "data": {{"s": "{}"}}}}"#,
                "a".repeat(1_100_000)
            ),
            413,
            "payload_too_large",
            "larger than",
        ),
        Case {
            content_type: None,
            ..case(
                "no content type",
                valid.clone(),
                415,
                "unsupported_media_type",
                "application/json",
            )
        },
        Case {
            key: None,
            ..case(
                "no API key",
                valid.clone(),
                401,
                "unauthorized",
                "X-API-Key",
            )
        },
        Case {
            key: Some("wrong-key-0123456789"),
            ..case(
                "wrong API key",
                valid.clone(),
                401,
                "unauthorized",
                "invalid API key",
            )
        },
        Case {
            path: "/api/events/bad%20topic",
            ..case("invalid topic", valid.clone(), 400, "bad_request", "topic")
        },
        Case {
            path: "/api/nothing-here",
            ..case(
                "unknown endpoint",
                valid.clone(),
                404,
                "not_found",
                "no such endpoint",
            )
        },
    ];
    for case in cases {
        let mut request = client
            .post(format!("{}{}", daemon.base, case.path))
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = case.key {
            request = request.header("x-api-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{}: body is not JSON", case.name));
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["code"], case.code, "{}: {body}", case.name);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case.message_contains),
            "{}: {message:?} lacks {:?}",
            case.name,
            case.message_contains
        );
    }
    let db = project.database().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM event_log").await,
        0,
        "no refused event was written"
    );
    let refused: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, error FROM dead_letters WHERE route IS NULL")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        refused.len(),
        1,
        "only the schema violation is dead-lettered: {refused:?}"
    );
    assert_eq!(refused[0].0, "USER_CREATED");
    assert!(
        refused[0].1.contains("event fails its schema"),
        "{refused:?}"
    );
    let health = client
        .get(format!("{}/healthz", daemon.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn operator_endpoints_are_disabled_without_an_api_key(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = Daemon::start(&project, &[]);
    let (status, body) = daemon
        .post_event("user.events", json!({"eventType": "X", "data": {}}))
        .await;
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("CRM_ROUTER_API_KEY"),
        "{body}"
    );
    let (status, _) = daemon.get("/api/routes").await;
    assert_eq!(status, 403);
    let ready = reqwest::get(format!("{}/readyz", daemon.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
