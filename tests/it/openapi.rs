//! The OpenAPI document against the API it describes, on the real binary: every parameter is
//! declared where its handler reads it, and every documented response schema names the
//! properties the endpoint really answers. Generated clients are built from exactly these two
//! things.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::crm_flows::{create_user_with_cli, Answer, Client};
use crate::support::{eventually, Project};

/// The `{name}`s of a path template.
fn template_names(path: &str) -> BTreeSet<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Every operation of the document as (method, path, operation).
fn operations(document: &Value) -> Vec<(&str, &str, &Value)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            operations.push((method.as_str(), path.as_str(), operation));
        }
    }
    operations
}

#[tokio::test]
async fn every_parameter_is_declared_where_its_handler_reads_it() {
    let project = Project::bundled();
    let daemon = project.start();
    let (status, document) = daemon.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{document}");

    let mut misplaced = Vec::new();
    for (method, path, operation) in operations(&document) {
        let in_template = template_names(path);
        let mut declared_in_path = BTreeSet::new();
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("a parameter name");
            let location = parameter["in"].as_str().expect("a parameter location");
            if location == "path" {
                declared_in_path.insert(name);
                if !in_template.contains(name) {
                    misplaced.push(format!(
                        "{method} {path}: `{name}` is declared `in: path`, but the path has no {{{name}}}"
                    ));
                }
            }
        }
        for name in in_template.difference(&declared_in_path) {
            misplaced.push(format!(
                "{method} {path}: {{{name}}} is not declared as a path parameter"
            ));
        }
    }
    assert!(misplaced.is_empty(), "{}", misplaced.join("\n"));

    // The lists' filters and paging are optional query parameters.
    for (path, names) in [
        ("/api/customers", &["search", "limit", "offset", "page"][..]),
        (
            "/api/tasks",
            &[
                "customerId",
                "assigneeId",
                "status",
                "limit",
                "offset",
                "page",
            ],
        ),
        (
            "/api/opportunities",
            &["customerId", "stage", "limit", "offset", "page"],
        ),
        ("/api/approvals", &["status", "limit", "offset", "page"]),
        (
            "/api/notifications",
            &["unread", "isRead", "limit", "offset", "page"],
        ),
        (
            "/api/audit",
            &[
                "userId",
                "action",
                "resourceType",
                "entity",
                "resourceId",
                "startDate",
                "endDate",
                "limit",
                "offset",
                "page",
            ],
        ),
        ("/api/reports/task-trends", &["days"]),
        ("/api/reports/sales-metrics", &["startDate", "endDate"]),
        (
            "/api/dlq",
            &[
                "route",
                "eventType",
                "since",
                "until",
                "status",
                "limit",
                "offset",
                "page",
            ],
        ),
    ] {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path} documents no parameters"));
        let documented: BTreeSet<&str> = parameters
            .iter()
            .filter(|parameter| parameter["in"] == "query" && parameter["required"] != true)
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        let expected: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(
            documented, expected,
            "GET {path}: optional query parameters"
        );
    }
}

/// Follows `$ref`s into `#/components/schemas`.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {reference}"));
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Where the object keys of `value` are not the property names `schema` documents (an
/// undocumented key, or a required one missing), one line per object, recursively through arrays, nested objects and `oneOf`/`anyOf`/`allOf`.
fn property_mismatches(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(document, schema);
    for combinator in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[combinator].as_array() {
            if value.is_null() {
                return Vec::new();
            }
            let mut first_failure = None;
            for alternative in alternatives {
                if resolve(document, alternative)["type"] == "null" {
                    continue;
                }
                let mismatches = property_mismatches(document, alternative, value, at);
                if mismatches.is_empty() {
                    return mismatches;
                }
                first_failure.get_or_insert(mismatches);
            }
            return first_failure.unwrap_or_default();
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // A value of `allOf` has every part's properties: checked against their union, as one
        // object schema, or each part would call the others' properties undocumented.
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for part in parts {
            let part = resolve(document, part);
            if let Some(part_properties) = part["properties"].as_object() {
                properties.extend(part_properties.clone());
            }
            required.extend(part["required"].as_array().into_iter().flatten().cloned());
        }
        let merged = json!({"type": "object", "properties": properties, "required": required});
        return property_mismatches(document, &merged, value, at);
    }
    match value {
        Value::Array(items) => match schema.get("items") {
            Some(item_schema) => items
                .iter()
                .enumerate()
                .flat_map(|(index, item)| {
                    property_mismatches(document, item_schema, item, &format!("{at}/{index}"))
                })
                .collect(),
            None => Vec::new(),
        },
        Value::Object(object) => {
            let Some(properties) = schema["properties"].as_object() else {
                // A map or a free-form object: only its values' shapes are documented.
                return match schema.get("additionalProperties") {
                    Some(values) if values.is_object() => object
                        .iter()
                        .flat_map(|(key, item)| {
                            property_mismatches(document, values, item, &format!("{at}/{key}"))
                        })
                        .collect(),
                    _ => Vec::new(),
                };
            };
            let answered: BTreeSet<&str> = object.keys().map(String::as_str).collect();
            let documented: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut mismatches = Vec::new();
            // Optional properties may be left out; nothing undocumented may appear.
            if !answered.is_subset(&documented) || !required.is_subset(&answered) {
                mismatches.push(format!(
                    "{at}: answered {answered:?}, documented {documented:?} (required {required:?})"
                ));
            }
            for (key, item) in object {
                if let Some(property) = properties.get(key) {
                    mismatches.extend(property_mismatches(
                        document,
                        property,
                        item,
                        &format!("{at}/{key}"),
                    ));
                }
            }
            mismatches
        }
        _ => Vec::new(),
    }
}

/// Checks one real answer against the schema documented for its operation and status.
fn conformance(document: &Value, method: &str, path: &str, answer: &Answer) -> Vec<String> {
    let label = format!("{} {path} ({})", method.to_uppercase(), answer.status);
    let response = &document["paths"][path][method]["responses"][answer.status.to_string()];
    if response.is_null() {
        return vec![format!("{label}: status not documented")];
    }
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return vec![format!("{label}: no JSON schema documented")];
    };
    property_mismatches(document, schema, &answer.body, &label)
}

async fn wait_for_first(client: &Client, path: &str) -> Answer {
    eventually(Duration::from_secs(10), path, || async {
        let answer = client.get(path).await;
        let filled = answer.body["data"]
            .as_array()
            .is_some_and(|items| !items.is_empty());
        filled.then_some(answer)
    })
    .await
}

#[tokio::test]
async fn documented_response_properties_are_the_ones_the_api_answers() {
    let project = Project::bundled();
    let daemon = project.start();
    let (status, document) = daemon.get("/api/openapi.json").await;
    assert_eq!(status, 200, "{document}");

    create_user_with_cli(&project, "admin@example.com", "Admin", "ADMIN");
    let anonymous = Client::anonymous(&daemon);
    let login = anonymous.login("admin@example.com", "Password123!").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let admin = Client::signed_in(&daemon, &login.body);
    let registered = anonymous
        .post(
            "/api/auth/register",
            json!({"email": "rep@example.com", "password": "Password123!", "name": "Rep"}),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let rep = Client::signed_in(&daemon, &registered.body);
    let rep_id = registered.body["id"].as_str().unwrap().to_owned();
    let health = anonymous.get("/health").await;

    let mut answers = vec![
        ("post", "/api/auth/register", registered),
        ("post", "/api/auth/login", login),
        ("get", "/api/auth/me", rep.get("/api/auth/me").await),
    ];
    let customer = rep
        .post(
            "/api/customers",
            json!({"name": "Acme", "email": "buyer@acme.example"}),
        )
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();
    answers.push(("post", "/api/customers", customer));
    let task = rep
        .post(
            "/api/tasks",
            json!({"title": "Call", "customerId": customer_id, "dueDate": "2030-01-01"}),
        )
        .await;
    assert_eq!(task.status, 201, "{}", task.body);
    let task_id = task.body["id"].as_str().unwrap().to_owned();
    answers.push(("post", "/api/tasks", task));
    let opportunity = rep
        .post(
            "/api/opportunities",
            json!({"customerId": customer_id, "name": "Big deal", "amount": 1200.5}),
        )
        .await;
    assert_eq!(opportunity.status, 201, "{}", opportunity.body);
    let opportunity_id = opportunity.body["id"].as_str().unwrap().to_owned();
    answers.push(("post", "/api/opportunities", opportunity));
    let approval = rep
        .post(
            "/api/approvals",
            json!({"title": "Discount", "opportunityId": opportunity_id, "amount": 100.0}),
        )
        .await;
    assert_eq!(approval.status, 201, "{}", approval.body);
    let approval_id = approval.body["id"].as_str().unwrap().to_owned();
    answers.push(("post", "/api/approvals", approval));

    for (list, template, record) in [
        (
            "/api/customers",
            "/api/customers/{id}",
            format!("/api/customers/{customer_id}"),
        ),
        (
            "/api/tasks",
            "/api/tasks/{id}",
            format!("/api/tasks/{task_id}"),
        ),
        (
            "/api/opportunities",
            "/api/opportunities/{id}",
            format!("/api/opportunities/{opportunity_id}"),
        ),
    ] {
        answers.push(("get", list, wait_for_first(&rep, list).await));
        answers.push(("get", template, rep.get(&record).await));
    }
    answers.push((
        "get",
        "/api/approvals",
        wait_for_first(&rep, "/api/approvals").await,
    ));
    // The request notifies the admin (a route), and the decision notifies the requester.
    let notifications = wait_for_first(&admin, "/api/notifications").await;
    let notification_id = notifications.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    answers.push(("get", "/api/notifications", notifications));
    answers.push((
        "post",
        "/api/notifications/{id}/read",
        admin
            .post(
                &format!("/api/notifications/{notification_id}/read"),
                json!({}),
            )
            .await,
    ));
    answers.push((
        "post",
        "/api/notifications/read-all",
        admin.post("/api/notifications/read-all", json!({})).await,
    ));
    answers.push((
        "post",
        "/api/approvals/{id}/approve",
        admin
            .post(
                &format!("/api/approvals/{approval_id}/approve"),
                json!({"comment": "fine"}),
            )
            .await,
    ));
    answers.push((
        "get",
        "/api/notifications/unread-count",
        admin.get("/api/notifications/unread-count").await,
    ));
    answers.push((
        "get",
        "/api/approvals/{id}",
        admin.get(&format!("/api/approvals/{approval_id}")).await,
    ));
    answers.push((
        "get",
        "/api/tasks/upcoming",
        rep.get("/api/tasks/upcoming").await,
    ));
    answers.push((
        "get",
        "/api/tasks/overdue",
        rep.get("/api/tasks/overdue").await,
    ));
    answers.push((
        "patch",
        "/api/tasks/{id}/complete",
        rep.send(
            reqwest::Method::PATCH,
            &format!("/api/tasks/{task_id}/complete"),
            None,
        )
        .await,
    ));
    answers.push(("get", "/health", health));
    answers.push(("get", "/api/auth/users", admin.get("/api/auth/users").await));
    answers.push((
        "get",
        "/api/auth/users/{id}",
        admin.get(&format!("/api/auth/users/{rep_id}")).await,
    ));
    answers.push((
        "put",
        "/api/auth/users/{id}",
        admin
            .put(
                &format!("/api/auth/users/{rep_id}"),
                json!({"name": "Rep Renamed"}),
            )
            .await,
    ));
    let meeting = rep
        .post(
            "/api/meetings",
            json!({"customerId": customer_id, "date": "2030-01-01T10:00:00Z", "summary": "Review"}),
        )
        .await;
    assert_eq!(meeting.status, 201, "{}", meeting.body);
    answers.push(("post", "/api/meetings", meeting));
    answers.push(("get", "/api/meetings", rep.get("/api/meetings").await));
    let summary = eventually(Duration::from_secs(10), "analytics", || async {
        let answer = admin.get("/api/analytics/summary").await;
        let counted = answer.body["daily"]
            .as_array()
            .is_some_and(|daily| !daily.is_empty());
        counted.then_some(answer)
    })
    .await;
    answers.push(("get", "/api/analytics/summary", summary));
    let audit = admin.get("/api/audit?limit=5").await;
    let audit_id = audit.body["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no audit entries: {}", audit.body))
        .to_owned();
    answers.push(("get", "/api/audit", audit));
    answers.push((
        "get",
        "/api/audit/{id}",
        admin.get(&format!("/api/audit/{audit_id}")).await,
    ));
    answers.push((
        "get",
        "/api/reports/dashboard",
        rep.get("/api/reports/dashboard").await,
    ));
    answers.push((
        "get",
        "/api/reports/sales-metrics",
        admin.get("/api/reports/sales-metrics").await,
    ));
    answers.push((
        "get",
        "/api/reports/task-trends",
        rep.get("/api/reports/task-trends?days=7").await,
    ));
    // Errors answer the one error shape, with `fields` when a field is at fault.
    answers.push((
        "get",
        "/api/customers/{id}",
        rep.get("/api/customers/no-such-customer").await,
    ));
    answers.push((
        "post",
        "/api/customers",
        rep.post("/api/customers", json!({"name": "Beta", "size": "HUGE"}))
            .await,
    ));
    answers.push(("get", "/api/auth/me", anonymous.get("/api/auth/me").await));
    answers.push((
        "post",
        "/api/auth/logout",
        rep.post("/api/auth/logout", json!({})).await,
    ));

    let mut mismatches = Vec::new();
    for (method, path, answer) in &answers {
        mismatches.extend(conformance(&document, method, path, answer));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let statuses: Vec<u16> = answers.iter().map(|(_, _, answer)| answer.status).collect();
    assert!(
        statuses.contains(&404) && statuses.contains(&400) && statuses.contains(&401),
        "{statuses:?}"
    );
}
