//! The bundled CRM end to end, through its REST API on the real binary: the guide's Test 1 and
//! Test 2, the approval flow, task activity, analytics, and the errors on the way, each on SQLite
//! and on a PostgreSQL database of its own.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use test_case::test_case;

use crate::support::{binary, count, drained, eventually, Backend, Daemon, Project};

/// A signed-in (or anonymous) client of the REST API.
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A response: status, `X-Total-Count` if any, JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) total: Option<i64>,
    pub(crate) body: Value,
}

impl Client {
    pub(crate) fn anonymous(daemon: &Daemon) -> Self {
        Self {
            base: daemon.base.clone(),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    /// A client signed in with the token of a login answer.
    pub(crate) fn signed_in(daemon: &Daemon, login: &Value) -> Self {
        Self {
            token: Some(login["token"].as_str().unwrap().to_owned()),
            ..Self::anonymous(daemon)
        }
    }

    /// Any method, with an optional JSON body.
    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let total = response
            .headers()
            .get("x-total-count")
            .map(|value| value.to_str().unwrap().parse().unwrap());
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            total,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Registers (with this client's token, if any) and returns a client signed in as the new user.
    pub(crate) async fn register(&self, email: &str, name: &str, role: &str) -> (Client, Value) {
        let answer = self
            .post(
                "/api/auth/register",
                json!({"email": email, "password": "Password123!", "name": name, "role": role}),
            )
            .await;
        assert_eq!(answer.status, 201, "register {email}: {}", answer.body);
        let client = Client {
            base: self.base.clone(),
            token: Some(answer.body["token"].as_str().unwrap().to_owned()),
            http: self.http.clone(),
        };
        (client, answer.body)
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/api/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }
}

/// `crm-router user create`, password on stdin.
pub(crate) fn create_user_with_cli(
    project: &Project,
    email: &str,
    name: &str,
    role: &str,
) -> String {
    let mut child = Command::new(binary())
        .args([
            "user", "create", "--email", email, "--name", name, "--role", role,
        ])
        .arg("--database-url")
        .arg(project.database_url())
        .current_dir(project.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Password123!\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Polls a list until `found` picks an item from it.
async fn wait_for_item(
    client: &Client,
    path: &str,
    what: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    eventually(Duration::from_secs(10), what, || async {
        let answer = client.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| found(item))
            .cloned()
    })
    .await
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn guide_test_1_registering_a_user_creates_their_customer(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let answer = anonymous
        .post(
            "/api/auth/register",
            json!({"email": "kafka-test@example.com", "password": "Password123!", "name": "Kafka Test User", "role": "USER"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["email"], "kafka-test@example.com");
    assert_eq!(answer.body["name"], "Kafka Test User");
    assert_eq!(answer.body["role"], "USER");
    let user_id = answer.body["id"].as_str().unwrap().to_owned();
    assert!(answer.body["token"].as_str().unwrap().starts_with("eyJ"));

    let login = anonymous
        .login("kafka-test@example.com", "Password123!")
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["user"]["id"], user_id.as_str());
    assert_eq!(login.body["user"]["role"], "USER");
    let user = Client::signed_in(&daemon, &login.body);
    let me = user.get("/api/auth/me").await;
    assert_eq!(
        (me.status, &me.body["email"]),
        (200, &json!("kafka-test@example.com"))
    );

    let customer = wait_for_item(&user, "/api/customers", "the user's customer", |customer| {
        customer["email"] == "kafka-test@example.com"
    })
    .await;
    assert_eq!(customer["name"], "Kafka Test User");
    assert_eq!(customer["ownerId"], user_id.as_str());

    let log = daemon.log();
    // On PostgreSQL: `database=postgres://postgres@127.0.0.1:5432/crm_router_test_…`.
    assert!(
        log.contains(&format!(
            "database ready database={}",
            project.database_url()
        )),
        "{log}"
    );
    assert!(
        log.contains("📤 Event published: USER_CREATED to topic user.events"),
        "{log}"
    );
    assert!(
        log.contains("📥 Event received: USER_CREATED from topic user.events"),
        "{log}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn guide_test_2_a_new_customer_gets_a_first_contact_task_and_an_opportunity(
    backend: Backend,
) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let (user, registered) = Client::anonymous(&daemon)
        .register("sales@example.com", "Sales Person", "USER")
        .await;
    let created = user
        .post(
            "/api/customers",
            json!({"name": "Test Company Inc.", "industry": "Technology", "size": "MEDIUM", "email": "contact@testcompany.com", "phone": "+81-3-1234-5678"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let customer_id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["ownerId"], registered["id"]);

    let task = wait_for_item(&user, "/api/tasks", "the first-contact task", |task| {
        task["title"] == "初回コンタクト: Test Company Inc."
    })
    .await;
    assert_eq!(task["customerId"], customer_id.as_str());
    assert_eq!(task["assigneeId"], registered["id"]);
    assert_eq!(task["priority"], "MEDIUM");
    assert_eq!(task["status"], "TODO");
    // The user's own customer from registration, and this one.
    let page = user.get("/api/customers?limit=1").await;
    assert_eq!((page.status, page.total), (200, Some(2)), "{}", page.body);
    let due = chrono::DateTime::parse_from_rfc3339(task["dueDate"].as_str().unwrap()).unwrap();
    let in_three_days = chrono::Utc::now() + chrono::Duration::days(3);
    assert!(
        (in_three_days - due.to_utc()).num_minutes().abs() < 5,
        "{due}"
    );

    let opportunity = wait_for_item(
        &user,
        &format!("/api/opportunities?customerId={customer_id}"),
        "the opportunity",
        |opportunity| opportunity["customerId"] == customer_id.as_str(),
    )
    .await;
    assert_eq!(opportunity["stage"], "PROSPECTING");

    // Completing the task records an activity on the customer's open opportunity (flow 4).
    let task_id = task["id"].as_str().unwrap();
    let done = user
        .put(
            &format!("/api/tasks/{task_id}"),
            json!({"status": "COMPLETED"}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body["completedAt"].is_string());
    let opportunity_id = opportunity["id"].as_str().unwrap();
    let recorded = eventually(Duration::from_secs(10), "the recorded activity", || async {
        let answer = user
            .get(&format!("/api/opportunities/{opportunity_id}"))
            .await;
        (answer.body["activityCount"] == 1).then_some(answer.body)
    })
    .await;
    assert!(recorded["lastActivityAt"].is_string());

    let log = daemon.log();
    assert!(log.contains("📤 Event published: CUSTOMER_CREATED to topic customer.events"));
    assert!(log.contains("📥 Event received: CUSTOMER_CREATED from topic customer.events"));

    // Updates and deletes announce themselves too.
    let renamed = user
        .put(
            &format!("/api/customers/{customer_id}"),
            json!({"phone": null, "name": "Renamed Inc."}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(
        (&renamed.body["name"], &renamed.body["phone"]),
        (&json!("Renamed Inc."), &Value::Null)
    );
    let deleted = user
        .send(
            Method::DELETE,
            &format!("/api/customers/{customer_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        user.get(&format!("/api/customers/{customer_id}"))
            .await
            .status,
        404
    );
    let db = project.database().await;
    drained(&db).await;
    for event_type in [
        "CUSTOMER_UPDATED",
        "CUSTOMER_DELETED",
        "TASK_UPDATED",
        "TASK_COMPLETED",
    ] {
        assert_eq!(
            count(
                &db,
                &format!("SELECT COUNT(*) FROM event_log WHERE event_type = '{event_type}'")
            )
            .await,
            1,
            "{event_type}"
        );
    }
    assert_no_dead_letters(&project).await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_approval_flow_notifies_managers_and_the_requester_and_creates_the_follow_up_task(
    backend: Backend,
) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let printed = create_user_with_cli(&project, "admin@example.com", "Admin", "ADMIN");
    assert!(
        printed.contains("created ADMIN admin@example.com"),
        "{printed}"
    );
    let anonymous = Client::anonymous(&daemon);
    let login = anonymous.login("admin@example.com", "Password123!").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let admin = Client::signed_in(&daemon, &login.body);
    // Only an ADMIN may create managers.
    let refused = anonymous
        .post(
            "/api/auth/register",
            json!({"email": "m@example.com", "password": "Password123!", "name": "M", "role": "MANAGER"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (manager, manager_body) = admin
        .register("manager@example.com", "Manager", "MANAGER")
        .await;
    let (requester, requester_body) = anonymous.register("rep@example.com", "Rep", "USER").await;
    let requester_id = requester_body["id"].as_str().unwrap();

    let customer = requester
        .post(
            "/api/customers",
            json!({"name": "Big Deal Corp", "size": "ENTERPRISE"}),
        )
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let customer_id = customer.body["id"].as_str().unwrap();
    let opportunity = requester
        .post(
            "/api/opportunities",
            json!({"customerId": customer_id, "name": "Enterprise licence", "amount": 4999999.5}),
        )
        .await;
    assert_eq!(opportunity.status, 201, "{}", opportunity.body);
    assert_eq!(opportunity.body["amount"], 4999999.5);
    let request = requester
        .post(
            "/api/approvals",
            json!({"title": "大型案件の承認", "opportunityId": opportunity.body["id"], "amount": 5000000}),
        )
        .await;
    assert_eq!(request.status, 201, "{}", request.body);
    assert_eq!(request.body["status"], "PENDING");
    assert_eq!(request.body["customerId"], customer_id);
    let approval_id = request.body["id"].as_str().unwrap().to_owned();

    // Every MANAGER and ADMIN is notified; the requester is not.
    for (client, who) in [(&manager, "manager"), (&admin, "admin")] {
        let notification = wait_for_item(client, "/api/notifications?unread=true", who, |n| {
            n["type"] == "APPROVAL_REQUEST"
        })
        .await;
        assert_eq!(notification["title"], "承認依頼: 大型案件の承認");
        assert_eq!(notification["read"], false);
    }
    drained(&project.database().await).await;
    let own = requester.get("/api/notifications").await;
    assert_eq!((own.status, own.total), (200, Some(0)), "{}", own.body);

    // A USER cannot decide; nobody decides their own request.
    let path = format!("/api/approvals/{approval_id}/approve");
    let by_user = requester.post(&path, json!({})).await;
    assert_eq!(by_user.status, 403, "{}", by_user.body);
    assert_eq!(by_user.body["code"], "forbidden");
    let approved = manager
        .post(&path, json!({"comment": "よろしくお願いします"}))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["status"], "APPROVED");
    assert_eq!(approved.body["approverId"], manager_body["id"]);
    let again = admin
        .post(&format!("/api/approvals/{approval_id}/reject"), json!({}))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["code"], "conflict");

    let notification = wait_for_item(&requester, "/api/notifications", "the decision", |n| {
        n["type"] == "APPROVAL_APPROVED"
    })
    .await;
    assert!(notification["message"]
        .as_str()
        .unwrap()
        .contains("よろしくお願いします"));
    let follow_up = wait_for_item(&requester, "/api/tasks", "the follow-up task", |task| {
        task["title"] == "契約手続き: Big Deal Corp"
    })
    .await;
    assert_eq!(follow_up["assigneeId"], requester_id);
    assert_eq!(follow_up["priority"], "HIGH");

    // Notifications can be read one by one or all at once, only one's own.
    let id = notification["id"].as_str().unwrap();
    let read = requester
        .post(&format!("/api/notifications/{id}/read"), json!({}))
        .await;
    assert_eq!((read.status, &read.body["read"]), (200, &json!(true)));
    let foreign = manager
        .post(&format!("/api/notifications/{id}/read"), json!({}))
        .await;
    assert_eq!(foreign.status, 404);
    let all = manager.post("/api/notifications/read-all", json!({})).await;
    assert_eq!((all.status, &all.body["updated"]), (200, &json!(1)));
    let unread = manager.get("/api/notifications?unread=true").await;
    assert_eq!(unread.total, Some(0));

    // A second request, recalled by its requester; only the requester may recall.
    let second = requester
        .post("/api/approvals", json!({"title": "値引き"}))
        .await;
    let second_id = second.body["id"].as_str().unwrap();
    let by_manager = manager
        .post(&format!("/api/approvals/{second_id}/recall"), json!({}))
        .await;
    assert_eq!(by_manager.status, 403, "{}", by_manager.body);
    let recalled = requester
        .post(&format!("/api/approvals/{second_id}/recall"), json!({}))
        .await;
    assert_eq!(
        (recalled.status, &recalled.body["status"]),
        (200, &json!("RECALLED"))
    );
    let pending = manager.get("/api/approvals?status=PENDING").await;
    assert_eq!(pending.total, Some(0), "{}", pending.body);
    assert_no_dead_letters(&project).await;
}

/// Every event the API wrote matched its schema and every route handled it.
async fn assert_no_dead_letters(project: &Project) {
    let db = project.database().await;
    drained(&db).await;
    let letters: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, error FROM dead_letters")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(letters.is_empty(), "{letters:?}");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn analytics_counts_every_event_by_type_and_day(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let (user, _) = anonymous.register("a@example.com", "A", "USER").await;
    anonymous.register("b@example.com", "B", "USER").await;
    let customer = user
        .post("/api/customers", json!({"name": "Counted Ltd"}))
        .await;
    assert_eq!(customer.status, 201);
    drained(&project.database().await).await;
    let summary = user.get("/api/analytics/summary").await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    let total = |event_type: &str| {
        summary.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["eventType"] == event_type)
            .map(|row| row["count"].as_i64().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(total("USER_CREATED"), 2);
    // One customer per registered user, plus the one created over the API.
    assert_eq!(total("CUSTOMER_CREATED"), 3);
    assert_eq!(total("TASK_CREATED"), 3);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let daily = summary.body["daily"].as_array().unwrap();
    assert!(daily.iter().any(|row| row["date"] == today.as_str()
        && row["eventType"] == "USER_CREATED"
        && row["count"] == 2));
    let db = project.database().await;
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily"
        )
        .await,
        count(&db, "SELECT COUNT(*) FROM event_log").await,
        "every logged event is counted once"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn errors_have_statuses_and_a_json_body(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let (user, _) = anonymous.register("taken@example.com", "T", "USER").await;

    let cases: Vec<(Answer, u16, &str, Option<&str>)> =
        vec![
        (anonymous.get("/api/customers").await, 401, "unauthorized", None),
        (
            anonymous
                .post(
                    "/api/auth/register",
                    json!({"email": "TAKEN@example.com", "password": "Password123!", "name": "T"}),
                )
                .await,
            409,
            "conflict",
            None,
        ),
        (
            anonymous
                .post(
                    "/api/auth/register",
                    json!({"email": "not-an-email", "password": "short", "name": "T"}),
                )
                .await,
            400,
            "bad_request",
            Some("password"),
        ),
        (anonymous.login("nobody@example.com", "Password123!").await, 401, "unauthorized", None),
        (anonymous.login("taken@example.com", "wrong-password").await, 401, "unauthorized", None),
        (user.get("/api/customers/does-not-exist").await, 404, "not_found", None),
        (
            user.post("/api/customers", json!({"name": "X", "size": "HUGE"})).await,
            400,
            "bad_request",
            Some("size"),
        ),
        (
            user.post("/api/tasks", json!({"title": "T", "dueDate": "next week"})).await,
            400,
            "bad_request",
            Some("dueDate"),
        ),
        (
            user.post("/api/approvals/does-not-exist/approve", json!({})).await,
            403,
            "forbidden",
            None,
        ),
        (user.get("/api/customers?limit=0").await, 400, "bad_request", Some("limit")),
        (
            user.post("/api/customers", json!({"name": "X", "emial": "x@example.com"})).await,
            400,
            "bad_request",
            None,
        ),
    ];
    for (index, (answer, status, code, field)) in cases.into_iter().enumerate() {
        assert_eq!(answer.status, status, "case {index}: {}", answer.body);
        assert_eq!(answer.body["code"], code, "case {index}: {}", answer.body);
        assert!(answer.body["message"].is_string(), "case {index}");
        if let Some(field) = field {
            let fields = answer.body["fields"].as_array().unwrap();
            assert!(
                fields.iter().any(|f| f["field"] == field),
                "case {index}: {}",
                answer.body
            );
        }
    }
    // Unknown email and wrong password read the same.
    let unknown = anonymous.login("nobody@example.com", "Password123!").await;
    let wrong = anonymous.login("taken@example.com", "wrong-password").await;
    assert_eq!(unknown.body, wrong.body);

    // The OpenAPI document describes the API.
    let document = anonymous.get("/api/openapi.json").await;
    assert_eq!(document.status, 200);
    assert!(document.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/customers",
        "/api/tasks/{id}",
        "/api/approvals/{id}/approve",
        "/api/auth/login",
        "/api/analytics/summary",
    ] {
        assert!(
            document.body["paths"][path].is_object(),
            "{path} is documented"
        );
    }
}

#[tokio::test]
async fn look_alike_emails_are_refused_and_equivalent_spellings_are_one_account() {
    let Some(project) = Project::bundled_on(Backend::Sqlite) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let register = |email: &str| json!({"email": email, "password": "Password123!", "name": "Kate", "role": "USER"});

    for (email, code) in [
        ("\u{200B}kate@example.com", "U+200B"),
        ("ka\u{0085}te@example.com", "U+0085"),
        ("kate@\u{202E}moc.elpmaxe", "U+202E"),
    ] {
        let refused = anonymous.post("/api/auth/register", register(email)).await;
        assert_eq!(refused.status, 400, "{email:?}: {}", refused.body);
        let fields = refused.body["fields"].as_array().unwrap();
        assert!(
            fields.iter().any(|field| field["field"] == "email"
                && field["message"].as_str().unwrap().contains(code)),
            "{email:?}: {}",
            refused.body
        );
    }

    // A decomposed é (e + U+0301) is stored precomposed, so the precomposed capital É is the
    // same address, and either spelling signs in.
    let created = anonymous
        .post("/api/auth/register", register("Rene\u{301}@example.com"))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["email"], "ren\u{e9}@example.com");
    let taken = anonymous
        .post("/api/auth/register", register("REN\u{c9}@example.com"))
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    let login = anonymous
        .login(" rene\u{301}@Example.com ", "Password123!")
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
}

#[tokio::test]
async fn query_parameters_an_endpoint_does_not_read_are_refused() {
    let Some(project) = Project::bundled_on(Backend::Sqlite) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let (user, _) = anonymous
        .register("query@example.com", "Query", "USER")
        .await;
    let customer = user.post("/api/customers", json!({"name": "Acme"})).await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let id = customer.body["id"].as_str().unwrap();

    for (answer, parameter) in [
        (user.get("/api/auth/me?role=ADMIN").await, "role"),
        (
            user.get(&format!("/api/customers/{id}?expand=all")).await,
            "expand",
        ),
        (
            user.post("/api/customers?dryRun=true", json!({"name": "Beta"}))
                .await,
            "dryRun",
        ),
        (user.get("/api/analytics/summary?days=7").await, "days"),
    ] {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.body["code"], "bad_request");
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{parameter}`")), "{message}");
    }
    // Nothing was created by the refused request.
    let list = user.get("/api/customers?limit=10").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let names: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|customer| customer["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Acme") && !names.contains(&"Beta"),
        "{names:?}"
    );
    // Lists still take theirs, and refuse unknown ones themselves.
    assert_eq!(user.get("/api/customers?limitt=10").await.status, 400);
    assert_eq!(anonymous.get("/api/openapi.json?v=2").await.status, 200);
}
