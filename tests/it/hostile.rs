//! Issue 6, "Hostile input": one table of bad requests against the real daemon with the bundled
//! routes, on each database. Every refusal must get its 4xx and a JSON error body in our format,
//! and must change nothing; the injection strings of the table must be stored verbatim. After the
//! table the daemon is still up.
//!
//! The cases live in one file per [`Category`] (`hostile/transport.rs`, …), built with the
//! helpers of `hostile/table.rs`; this file holds the case type, the fixture the cases point at,
//! and the one loop that runs them.

use std::collections::BTreeMap;
use std::time::Instant;

use reqwest::Method;
use serde_json::Value;
use sqlx::AnyPool;
use test_case::test_case;

use crate::support::{count, drained, Backend, Daemon, Project, API_KEY};
use fixture::{fixture, Fixture};
use send::{send, Answer};

mod authentication;
mod encoding;
mod fields;
mod fixture;
mod injection;
mod privilege;
mod send;
mod table;
mod tokens;
mod transport;

/// The daemon's token secret, so the test can sign tokens the daemon accepts.
const JWT_SECRET: &str = "hostile-input-test-secret-0123456789abcdef";
const PASSWORD: &str = "Password123!";

/// What a case probes, for the counts printed at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    /// Malformed and truncated JSON, content types, sizes, nesting.
    Transport,
    /// Wrong types, missing, unknown and oversized fields, bad enums, dates and amounts, bad
    /// queries.
    Fields,
    /// Invalid UTF-8 and NUL in bodies, paths and queries.
    Encoding,
    /// Missing, broken and forged credentials.
    Authentication,
    /// Doing what one's role or ownership does not allow; unknown and malformed ids.
    Privilege,
    /// SQL and template text, which must be stored as it is.
    Injection,
}

/// Credentials of a request.
#[derive(Clone, Debug)]
enum Auth {
    Anonymous,
    Bearer(String),
    ApiKey(String),
    /// Header lines as given, for credentials no well-behaved client sends.
    Headers(Vec<(&'static str, Vec<u8>)>),
}

/// A request body.
#[derive(Clone, Debug)]
enum Body {
    Empty,
    /// Serialised, with `Content-Type: application/json`.
    Json(Value),
    /// These bytes, with this content type (or none).
    Raw(Option<&'static str>, Vec<u8>),
}

/// One request of the table.
#[derive(Clone, Debug)]
struct Request {
    method: Method,
    path: String,
    auth: Auth,
    body: Body,
}

/// Where a stored record is read back from.
#[derive(Clone, Copy, Debug)]
enum ReadBack {
    /// `GET {collection}/{id}`, with the case's credentials.
    Item(&'static str),
    /// `GET {collection}?limit=500`, the row with the id, with the case's credentials.
    Listed(&'static str),
    /// `GET /api/auth/me` with the token of the answer (a registration).
    Me,
}

#[derive(Clone, Debug)]
enum Expect {
    /// This status and `error.code`, and no change to any data.
    Refused(u16, &'static str),
    /// This status; `field` of the answer and of the record read back is exactly `value`.
    Stored {
        status: u16,
        field: &'static str,
        value: String,
        read_back: ReadBack,
    },
}

#[derive(Clone, Debug)]
struct Case {
    category: Category,
    name: String,
    request: Request,
    expect: Expect,
}

/// Adds the cases of one category.
type AddCases = fn(&Fixture, &mut table::Table);

/// Every case, category by category; the accepted ones (injection) last.
fn all_cases(fixture: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let categories: [(Category, AddCases); 6] = [
        (Category::Transport, transport::cases),
        (Category::Fields, fields::cases),
        (Category::Encoding, encoding::cases),
        (Category::Authentication, authentication::cases),
        (Category::Privilege, privilege::cases),
        (Category::Injection, injection::cases),
    ];
    for (category, add) in categories {
        add(
            fixture,
            &mut table::Table {
                category,
                cases: &mut cases,
            },
        );
    }
    cases
}

/// What is wrong with a refusal: another status or code, or a body that is not exactly
/// `{"success": false, "error", "message", "code", "fields"?}` with a message (the same text in
/// `error`) and well-formed fields.
fn refusal_problem(answer: &Answer, status: u16, code: &str) -> Option<String> {
    let got = || format!("got {} {:?}", answer.status, answer.excerpt());
    if answer.status != status || answer.body["code"] != code {
        return Some(format!("expected {status} {code}, {}", got()));
    }
    if !answer.content_type.starts_with("application/json") {
        return Some(format!("content type {:?}, {}", answer.content_type, got()));
    }
    // The code matched, so the body is an object.
    let body = answer.body.as_object().unwrap();
    let unexpected = body
        .keys()
        .any(|key| !["success", "error", "message", "code", "fields"].contains(&key.as_str()));
    let message = body.get("message").and_then(Value::as_str).unwrap_or("");
    let fields_ok = match body.get("fields") {
        None => true,
        Some(fields) => fields.as_array().is_some_and(|fields| {
            !fields.is_empty()
                && fields
                    .iter()
                    .all(|field| field["field"].is_string() && field["message"].is_string())
        }),
    };
    if unexpected
        || message.is_empty()
        || body.get("error").and_then(Value::as_str) != Some(message)
        || body.get("success") != Some(&Value::Bool(false))
        || !fields_ok
    {
        return Some(format!("not our error format: {}", got()));
    }
    None
}

/// What is wrong with an accepted case: its status, the value in the answer, or the value read
/// back.
async fn stored_problem(
    http: &reqwest::Client,
    base: &str,
    case: &Request,
    answer: &Answer,
    (status, field, value, read_back): (u16, &str, &str, ReadBack),
) -> Option<String> {
    if answer.status != status || answer.body[field] != value {
        return Some(format!(
            "expected {status} with {field} = {value:?}, got {} {:?}",
            answer.status,
            answer.excerpt()
        ));
    }
    let id = answer.body["id"].as_str().unwrap_or_default();
    let (path, auth) = match read_back {
        ReadBack::Item(collection) => (format!("{collection}/{id}"), case.auth.clone()),
        ReadBack::Listed(collection) => (format!("{collection}?limit=500"), case.auth.clone()),
        ReadBack::Me => (
            "/api/auth/me".to_owned(),
            Auth::Bearer(answer.body["token"].as_str().unwrap_or_default().to_owned()),
        ),
    };
    let read = Request {
        method: Method::GET,
        path: path.clone(),
        auth,
        body: Body::Empty,
    };
    let fetched = send(http, base, &read).await;
    let record = match read_back {
        ReadBack::Listed(_) => fetched.body["data"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["id"] == id))
            .cloned()
            .unwrap_or(Value::Null),
        ReadBack::Item(_) | ReadBack::Me => fetched.body.clone(),
    };
    if fetched.status != 200 || record[field] != value {
        return Some(format!(
            "GET {path} did not return {field} = {value:?}: {} {:?}",
            fetched.status,
            fetched.excerpt()
        ));
    }
    None
}

/// Tables a refusal must not touch, row by row.
const WATCHED_TABLES: &[&str] = &[
    "users",
    "customers",
    "tasks",
    "opportunities",
    "approvals",
    "notifications",
];

/// The state a refusal must leave as it found: every row of [`WATCHED_TABLES`], and the number
/// of events and dead letters.
async fn fingerprint(db: &AnyPool) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for table in WATCHED_TABLES {
        let rows = crate::support::table_rows(db, table).await;
        state.insert((*table).to_owned(), rows.to_string());
    }
    for table in ["event_log", "dead_letters"] {
        let rows = count(db, &format!("SELECT COUNT(*) FROM {table}")).await;
        state.insert(table.to_owned(), rows.to_string());
    }
    state
}

/// Requests that never reach our code: hyper refuses them while parsing, with a bare status and
/// no body, so they cannot be held to our error format. They must still be refused and must not
/// hurt the daemon.
async fn protocol_problems(daemon: &Daemon, token: &str) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = daemon.base.trim_start_matches("http://");
    let long_path = format!("/api/customers/{}", "x".repeat(70_000));
    let requests: [(&str, Vec<u8>, &str); 2] = [
        (
            "raw bytes that are not UTF-8 in the request line",
            b"GET /api/customers/\xff\xfe HTTP/1.1\r\n".to_vec(),
            "400",
        ),
        (
            "a path over 64 KiB",
            format!("GET {long_path} HTTP/1.1\r\n").into_bytes(),
            "414",
        ),
    ];
    let mut problems = Vec::new();
    for (name, request_line, status) in requests {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut request = request_line;
        request.extend_from_slice(
            format!(
                "Host: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        stream.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        if !response.starts_with(&format!("HTTP/1.1 {status} ")) {
            problems.push(format!("{name}: expected {status}, got {response:?}"));
        }
    }
    problems
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn hostile_requests_are_refused_cleanly_and_injection_text_is_stored_verbatim(
    backend: Backend,
) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let started = Instant::now();
    let mut daemon = Daemon::start(
        &project,
        &[("CRM_ROUTER_API_KEY", API_KEY), ("JWT_SECRET", JWT_SECRET)],
    );
    let db = project.database().await;
    let fixture = fixture(&project, &daemon, &db).await;
    let cases = all_cases(&fixture);
    let set_up = started.elapsed();

    // One connection per request: the daemon closes a connection whose body it did not read.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let mut before = fingerprint(&db).await;
    for case in &cases {
        let request = &case.request;
        let answer = send(&http, &daemon.base, request).await;
        let (problem, refused) = match &case.expect {
            Expect::Refused(status, code) => (refusal_problem(&answer, *status, code), true),
            Expect::Stored {
                status,
                field,
                value,
                read_back,
            } => {
                let expected = (*status, *field, value.as_str(), *read_back);
                let problem = stored_problem(&http, &daemon.base, request, &answer, expected);
                (problem.await, false)
            }
        };
        let path: String = request.path.chars().take(100).collect();
        let name = format!(
            "[{:?}] {} ({} {path})",
            case.category, case.name, request.method
        );
        if let Some(problem) = problem {
            failures.push(format!("{name}: {problem}"));
        }
        let mut after = fingerprint(&db).await;
        if refused && after != before {
            let changed: Vec<&String> = after
                .keys()
                .filter(|table| before.get(*table) != after.get(*table))
                .collect();
            failures.push(format!("{name}: the refusal changed {changed:?}"));
        }
        if !refused || after != before {
            // Let the routes react to what was written, so the next case starts from rest.
            drained(&db).await;
            after = fingerprint(&db).await;
        }
        before = after;
    }
    failures.extend(protocol_problems(&daemon, &fixture.a.token).await);

    let mut per_category = BTreeMap::new();
    for case in &cases {
        *per_category.entry(case.category).or_insert(0) += 1;
    }
    eprintln!(
        "{backend:?}: {} cases {per_category:?}; set-up {set_up:.1?}, all {:.1?}",
        cases.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} problems in {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 100, "{} cases", cases.len());

    // Still up and ready; the tables the injection text named are all there; no route choked on
    // the stored text.
    assert!(daemon.is_running(), "{}", daemon.log());
    for path in ["/healthz", "/readyz"] {
        let health = http
            .get(format!("{}{path}", daemon.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{path}");
    }
    for table in ["customers", "users", "tasks", "approvals", "event_log"] {
        let rows = count(&db, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert!(rows > 0, "{table} is empty");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);
    assert!(
        !daemon.log().contains("panicked"),
        "the daemon panicked:\n{}",
        daemon.log()
    );
}
