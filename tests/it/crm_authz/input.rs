//! Hostile input: malformed bodies and queries, SQL and template text, unknown ids, paging.

use reqwest::Method;
use serde_json::{json, Value};
use test_case::test_case;

use super::{id, Crm, User, CRM_TABLES, PASSWORD};
use crate::support::{count, drained, Backend};

const JSON: &str = "application/json";

/// Request bodies, each with the field its 400 must name.
type Bodies = Vec<(Value, &'static str)>;

/// A raw body the server must refuse, and the answer it must give.
struct Refused {
    what: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn refused(
    what: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Refused {
    Refused {
        what,
        body: body.into(),
        content_type: Some(JSON),
        status,
        code,
    }
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn malformed_bodies_and_query_strings_are_refused_with_the_field_named(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let user = crm.register(None, "u@example.com", "USER", None).await;
    let customer = id(&crm
        .created(&user.token, "/api/customers", json!({"name": "Mine"}))
        .await);
    let task = id(&crm
        .created(&user.token, "/api/tasks", json!({"title": "Mine"}))
        .await);
    let approval = id(&crm
        .created(&user.token, "/api/approvals", json!({"title": "Mine"}))
        .await);
    drained(&crm.db).await;
    let before = crm.dump(CRM_TABLES).await;
    let opportunity = format!("/api/opportunities/{}", {
        let list = crm.get(&user.token, "/api/opportunities").await;
        list.ids()[0].clone()
    });
    let customer_path = format!("/api/customers/{customer}");
    let task_path = format!("/api/tasks/{task}");
    let approve = format!("/api/approvals/{approval}/approve");

    // Unknown fields (mass assignment), wrong types and invalid values: (body, field named).
    let cases: Vec<(Method, &str, Bodies)> = vec![
        (
            Method::POST,
            "/api/customers",
            vec![
                (json!({"name": "x", "evil": 1}), "evil"),
                (json!({"name": 5}), "name"),
                (json!({"name": "x", "email": ["a@example.com"]}), "email"),
                (json!({"name": "x", "size": "HUGE"}), "size"),
                (json!({"name": "   "}), "name"),
                (json!({"name": null}), "name"),
                (json!({"name": "x", "email": "not-an-email"}), "email"),
            ],
        ),
        (
            Method::PUT,
            &customer_path,
            vec![
                (json!({"deletedAt": null}), "deletedAt"),
                (json!({"size": "small"}), "size"),
            ],
        ),
        (
            Method::POST,
            "/api/tasks",
            vec![
                (
                    json!({"title": "x", "completedAt": "2020-01-01"}),
                    "completedAt",
                ),
                (json!({"title": {"$ne": null}}), "title"),
                (json!({"title": "x", "status": "DONE"}), "status"),
                (json!({"title": "x", "priority": "CRITICAL"}), "priority"),
                (json!({"title": "x", "dueDate": "tomorrow"}), "dueDate"),
            ],
        ),
        (
            Method::PUT,
            &task_path,
            vec![
                (json!({"priority": 3}), "priority"),
                (json!({"status": "DONE"}), "status"),
            ],
        ),
        (
            Method::POST,
            "/api/opportunities",
            vec![
                (
                    json!({"customerId": customer, "name": "n", "amount": "lots"}),
                    "amount",
                ),
                (
                    json!({"customerId": customer, "name": "n", "stage": "X"}),
                    "stage",
                ),
                (
                    json!({"customerId": customer, "name": "n", "amount": -1}),
                    "amount",
                ),
            ],
        ),
        (
            Method::PUT,
            &opportunity,
            vec![
                (json!({"activityCount": 99}), "activityCount"),
                (json!({"stage": "X"}), "stage"),
            ],
        ),
        (
            Method::POST,
            "/api/approvals",
            vec![
                (json!({"title": "x", "status": "APPROVED"}), "status"),
                (
                    json!({"title": "x", "requesterId": "someone"}),
                    "requesterId",
                ),
                (json!({"title": "x", "amount": true}), "amount"),
            ],
        ),
        (
            Method::POST,
            &approve,
            vec![(json!({"comment": "x", "status": "REJECTED"}), "status")],
        ),
        (
            Method::POST,
            "/api/auth/login",
            vec![(
                json!({"email": "u@example.com", "password": PASSWORD, "admin": true}),
                "admin",
            )],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, bodies) in &cases {
        for (body, field) in bodies {
            let answer = crm
                .call(method.clone(), path, Some(&user.token), Some(body))
                .await;
            let named = answer.fields().iter().any(|named| named == field)
                || answer.message().contains(&format!("`{field}`"));
            if answer.outcome() != (400, "bad_request") || !named {
                failures.push(format!(
                    "{method} {path} {body}: expected 400 naming {field:?}, got {} {}",
                    answer.status, answer.body
                ));
            }
        }
    }

    // Bodies that are not JSON objects, not JSON, or too big; every answer in our format.
    let big = format!(r#"{{"comment": "{}"}}"#, "a".repeat(2 << 20)).into_bytes();
    let raw: Vec<(&str, Refused)> = vec![
        (
            "/api/customers",
            refused("an array", "[]", 400, "bad_request"),
        ),
        (
            "/api/customers",
            refused("null", "null", 400, "bad_request"),
        ),
        (
            "/api/customers",
            refused("truncated JSON", "{\"name\": ", 400, "bad_request"),
        ),
        (
            "/api/customers",
            Refused {
                content_type: None,
                ..refused(
                    "no content type",
                    r#"{"name": "x"}"#,
                    415,
                    "unsupported_media_type",
                )
            },
        ),
        (
            "/api/customers",
            refused("a 2 MiB body", big.clone(), 413, "payload_too_large"),
        ),
        (
            "/api/tasks",
            refused("a 2 MiB body", big.clone(), 413, "payload_too_large"),
        ),
        (
            "/api/auth/register",
            refused("a 2 MiB body", big.clone(), 413, "payload_too_large"),
        ),
        (
            &approve,
            refused("a 2 MiB body", big, 413, "payload_too_large"),
        ),
        (
            &approve,
            refused("truncated JSON", "{\"comment\": ", 400, "bad_request"),
        ),
    ];
    for (path, case) in raw {
        // A fresh connection each: the server closes one whose body it did not read.
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", crm.daemon.base))
            .bearer_auth(&user.token)
            .body(case.body);
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let answer = Crm::answer(request).await;
        if answer.outcome() != (case.status, case.code) {
            failures.push(format!(
                "POST {path} with {}: expected {} {} with a JSON error body, got {} {:?}",
                case.what, case.status, case.code, answer.status, answer.text
            ));
        }
    }
    let no_delete = crm.delete(&user.token, &opportunity).await;
    if no_delete.outcome() != (405, "method_not_allowed") {
        failures.push(format!(
            "DELETE {opportunity}: {} {}",
            no_delete.status, no_delete.body
        ));
    }

    // Paging and filters on every list.
    for list in [
        "/api/customers",
        "/api/tasks",
        "/api/opportunities",
        "/api/approvals",
        "/api/notifications",
    ] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("offset=-1", "offset"),
            ("page=0", "page"),
            ("limit=abc", "limit"),
            ("limit=1.5", "limit"),
            ("offset=x", "offset"),
            ("limit=99999999999999999999", "limit"),
        ] {
            let answer = crm.get(&user.token, &format!("{list}?{query}")).await;
            let named = answer.fields().iter().any(|named| named == field)
                || answer.message().contains(field);
            if answer.outcome() != (400, "bad_request") || !named {
                failures.push(format!(
                    "GET {list}?{query}: expected 400 naming {field}, got {} {}",
                    answer.status, answer.body
                ));
            }
        }
        // A page larger than the largest is served as the largest, not refused.
        for query in [
            "limit=1",
            "limit=500",
            "limit=501",
            "offset=1000000",
            "page=3",
        ] {
            let answer = crm.get(&user.token, &format!("{list}?{query}")).await;
            if answer.status != 200 || answer.body["pagination"]["limit"].as_i64() > Some(500) {
                failures.push(format!(
                    "GET {list}?{query}: {} {}",
                    answer.status, answer.body
                ));
            }
        }
    }
    for (path, field) in [
        ("/api/tasks?status=DONE", "status"),
        ("/api/opportunities?stage=X", "stage"),
        ("/api/approvals?status=MAYBE", "status"),
        ("/api/notifications?unread=perhaps", "unread"),
    ] {
        let answer = crm.get(&user.token, path).await;
        let named =
            answer.fields().iter().any(|named| named == field) || answer.message().contains(field);
        if answer.outcome() != (400, "bad_request") || !named {
            failures.push(format!(
                "GET {path}: expected 400 naming {field}, got {} {}",
                answer.status, answer.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        crm.dump(CRM_TABLES).await,
        before,
        "a refused request changed data"
    );
    let health = crm.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sql_and_template_looking_text_is_stored_and_returned_verbatim(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let name = "{{ 7*7 }} '; DROP TABLE users; --";
    let registered = crm
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(&json!({"email": "o'brien@example.com", "password": PASSWORD, "name": name})),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["name"], name);
    let user = User {
        id: id(&registered.body),
        email: "o'brien@example.com".into(),
        token: registered.body["token"].as_str().unwrap().to_owned(),
    };
    let hostile = json!({
        "name": "'; DROP TABLE customers; --",
        "industry": "{{ 7*7 }}",
        "address": "{% for i in range(1000000) %}x{% endfor %}",
        "phone": "' OR '1'='1",
        "email": "x'--@example.com",
    });
    let created = crm
        .created(&user.token, "/api/customers", hostile.clone())
        .await;
    let customer = id(&created);
    let fetched = crm
        .get(&user.token, &format!("/api/customers/{customer}"))
        .await;
    for field in ["name", "industry", "address", "phone", "email"] {
        assert_eq!(created[field], hostile[field], "{field} in the 201");
        assert_eq!(fetched.body[field], hostile[field], "{field} in GET");
    }
    let stored: (String, String, String, String) =
        sqlx::query_as("SELECT name, industry, address, phone FROM customers WHERE id = $1")
            .bind(&customer)
            .fetch_one(&crm.db)
            .await
            .unwrap();
    assert_eq!(
        stored,
        (
            "'; DROP TABLE customers; --".to_owned(),
            "{{ 7*7 }}".to_owned(),
            "{% for i in range(1000000) %}x{% endfor %}".to_owned(),
            "' OR '1'='1".to_owned()
        )
    );
    let task = crm
        .created(
            &user.token,
            "/api/tasks",
            json!({"title": "{{ 7*7 }}", "description": "\"; DELETE FROM tasks; --", "customerId": customer}),
        )
        .await;
    assert_eq!(task["title"], "{{ 7*7 }}");
    drained(&crm.db).await;

    // The routes copied the text as data: no template ran, no SQL ran.
    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM tasks WHERE customer_id = $1 ORDER BY title")
            .bind(&customer)
            .fetch_all(&crm.db)
            .await
            .unwrap();
    assert_eq!(
        titles,
        ["{{ 7*7 }}", "初回コンタクト: '; DROP TABLE customers; --"]
    );
    let opportunity = crm
        .get(
            &user.token,
            &format!("/api/opportunities?customerId={customer}"),
        )
        .await;
    assert_eq!(
        opportunity.body["data"][0]["name"],
        "'; DROP TABLE customers; --"
    );
    let me = crm.get(&user.token, "/api/auth/me").await;
    assert_eq!(me.body["name"], name);
    assert_eq!(me.body["email"], user.email.as_str());
    let own: Vec<String> = sqlx::query_scalar(
        "SELECT t.title FROM tasks t JOIN customers c ON c.id = t.customer_id WHERE c.owner_id = $1 AND c.name = $2",
    )
    .bind(&user.id)
    .bind(name)
    .fetch_all(&crm.db)
    .await
    .unwrap();
    assert_eq!(
        own,
        [format!("初回コンタクト: {name}")],
        "the registration's customer and task"
    );
    assert_eq!(count(&crm.db, "SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(count(&crm.db, "SELECT COUNT(*) FROM dead_letters").await, 0);

    // SQL in filters and ids matches nothing.
    let injected = crm
        .get(&user.token, "/api/tasks?customerId=x'%20OR%20'1'='1")
        .await;
    assert_eq!(
        (injected.status, injected.total()),
        (200, 0),
        "{}",
        injected.body
    );
    let injected = crm
        .get(&user.token, "/api/customers/x'%20OR%20'1'='1")
        .await;
    assert_eq!(injected.outcome(), (404, "not_found"), "{}", injected.body);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn unknown_ids_answer_404_even_to_an_admin(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let events = count(&crm.db, "SELECT COUNT(*) FROM event_log").await;
    let long = "x".repeat(5000);
    for unknown in [
        uuid::Uuid::new_v4().to_string(),
        "%2e%2e%2fusers".to_owned(),
        "1%20OR%201=1".to_owned(),
        "%00".to_owned(),
        long,
    ] {
        let requests = [
            (Method::GET, format!("/api/customers/{unknown}"), None),
            (
                Method::PUT,
                format!("/api/customers/{unknown}"),
                Some(json!({"name": "x"})),
            ),
            (Method::DELETE, format!("/api/customers/{unknown}"), None),
            (Method::GET, format!("/api/tasks/{unknown}"), None),
            (
                Method::PUT,
                format!("/api/tasks/{unknown}"),
                Some(json!({"title": "x"})),
            ),
            (Method::DELETE, format!("/api/tasks/{unknown}"), None),
            (Method::GET, format!("/api/opportunities/{unknown}"), None),
            (
                Method::PUT,
                format!("/api/opportunities/{unknown}"),
                Some(json!({"name": "x"})),
            ),
            (
                Method::POST,
                format!("/api/approvals/{unknown}/approve"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/api/approvals/{unknown}/reject"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/api/approvals/{unknown}/recall"),
                None,
            ),
            (
                Method::POST,
                format!("/api/notifications/{unknown}/read"),
                None,
            ),
        ];
        for (method, path, body) in requests {
            let answer = crm
                .call(method.clone(), &path, Some(&admin.token), body.as_ref())
                .await;
            assert_eq!(
                answer.outcome(),
                (404, "not_found"),
                "{method} {}: {}",
                &path[..path.len().min(80)],
                answer.body
            );
        }
    }
    assert_eq!(
        count(&crm.db, "SELECT COUNT(*) FROM event_log").await,
        events
    );

    // An id that is not UTF-8 cannot exist either; the answer is still in our error format.
    let mut failures = Vec::new();
    for path in [
        "/api/customers/%FF",
        "/api/tasks/%FF",
        "/api/opportunities/%FF",
        "/api/approvals/%FF/approve",
        "/api/notifications/%FF/read",
    ] {
        let method = if path.starts_with("/api/approvals") || path.starts_with("/api/notifications")
        {
            Method::POST
        } else {
            Method::GET
        };
        let answer = crm
            .call(method.clone(), path, Some(&admin.token), None)
            .await;
        if ![(404, "not_found"), (400, "bad_request")].contains(&answer.outcome()) {
            failures.push(format!(
                "{method} {path}: expected 404 (or 400) with a JSON error body, got {} {:?}",
                answer.status, answer.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn paging_returns_newest_first_with_the_total_in_a_header(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let mut created = Vec::new();
    for number in 1..=7 {
        created.push(id(&crm
            .created(
                &admin.token,
                "/api/customers",
                json!({"name": format!("Customer {number}")}),
            )
            .await));
        // Creation times have millisecond resolution; keep them distinct.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    created.reverse();
    let mut paged = Vec::new();
    for (offset, expected) in [(0, 3), (3, 3), (6, 1), (7, 0), (100, 0)] {
        let page = crm
            .get(
                &admin.token,
                &format!("/api/customers?limit=3&offset={offset}"),
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.total(), 7, "offset {offset}");
        assert_eq!(page.ids().len(), expected, "offset {offset}: {}", page.body);
        paged.extend(page.ids());
    }
    assert_eq!(paged, created, "pages in order, without gaps or repeats");
    let whole = crm.get(&admin.token, "/api/customers").await;
    assert_eq!(whole.ids(), created);

    drained(&crm.db).await;
    let deleted = crm
        .delete(&admin.token, &format!("/api/customers/{}", created[0]))
        .await;
    assert_eq!(deleted.status, 204);
    let after = crm.get(&admin.token, "/api/customers?limit=2").await;
    assert_eq!((after.total(), after.ids()), (6, created[1..3].to_vec()));

    // Every customer got a task and an opportunity from the routes; page through those too.
    // The deleted customer's task went with it (the bundled deletion cascade); opportunities
    // stay, as the original services left them.
    drained(&crm.db).await;
    for (list, total) in [
        ("/api/tasks", 6),
        ("/api/opportunities?stage=PROSPECTING", 7),
    ] {
        let mut seen = Vec::new();
        for offset in (0..9).step_by(3) {
            let separator = if list.contains('?') { '&' } else { '?' };
            let page = crm
                .get(
                    &admin.token,
                    &format!("{list}{separator}limit=3&offset={offset}"),
                )
                .await;
            assert_eq!(page.total(), total, "{list}: {}", page.body);
            seen.extend(page.ids());
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            (seen.len(), unique.len()),
            (total as usize, total as usize),
            "{list}"
        );
    }
    let none = crm.get(&admin.token, "/api/opportunities?stage=WON").await;
    assert_eq!((none.total(), none.ids().len()), (0, 0));
}
