//! The original CRM's API as its frontend calls it (`frontend/lib/auth-context.tsx` and the
//! pages under `frontend/app/dashboard/`): the same paths, methods and bodies, asserting the
//! fields those pages read, on each database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use test_case::test_case;

use crate::crm_flows::{create_user_with_cli, Answer, Client};
use crate::support::{eventually, Backend, Project};

/// The rows of a list answer.
fn rows(answer: &Answer) -> &Vec<Value> {
    answer.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list answer: {}", answer.body))
}

fn ids(answer: &Answer) -> Vec<&str> {
    rows(answer)
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect()
}

/// An error body the frontend can show: `message` and `error` the same text, `code` for
/// programs.
fn assert_refusal(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["success"], false, "{}", answer.body);
    assert_eq!(answer.body["code"], code, "{}", answer.body);
    let message = answer.body["message"].as_str().unwrap();
    assert!(!message.is_empty());
    assert_eq!(answer.body["error"], message, "{}", answer.body);
}

fn in_hours(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sign_in_and_lists_answer_what_the_frontend_reads(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);

    // auth-context.tsx: `const { user, token } = response.data.data`.
    let registered = anonymous
        .post(
            "/api/auth/register",
            json!({"email": "sales@example.com", "password": "Password123!", "name": "Sales Person"}),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["success"], true);
    assert_eq!(
        registered.body["data"]["user"]["email"],
        "sales@example.com"
    );
    assert_eq!(registered.body["data"]["token"], registered.body["token"]);
    assert_eq!(registered.body["id"], registered.body["data"]["user"]["id"]);
    let login = anonymous.login("sales@example.com", "Password123!").await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["data"]["user"]["name"], "Sales Person");
    assert!(login.body["data"]["token"].is_string(), "{}", login.body);
    let user = Client::signed_in(&daemon, &login.body["data"]);
    let me = user.get("/api/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["data"]["email"], "sales@example.com");
    assert_eq!(me.body["data"]["id"], registered.body["id"]);

    // A wrong password: the login page shows `response.data.message`.
    let refused = anonymous.login("sales@example.com", "Wrong123!").await;
    assert_refusal(&refused, 401, "unauthorized");

    // dashboard/page.tsx counts with `limit: 1` and reads `pagination.total`; the route made
    // the user's customer from USER_CREATED.
    let customers = eventually(Duration::from_secs(10), "the user's customer", || async {
        let answer = user.get("/api/customers?limit=1").await;
        (answer.status == 200 && answer.body["pagination"]["total"] == 1).then_some(answer)
    })
    .await;
    assert_eq!(rows(&customers).len(), 1);
    assert_eq!(
        customers.body["pagination"],
        json!({"page": 1, "limit": 1, "offset": 0, "total": 1, "totalPages": 1})
    );
    let created = user
        .post(
            "/api/customers",
            json!({"name": "Acme Trading", "email": "desk@acme.example"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["data"]["id"], created.body["id"]);
    // Select boxes ask for 1,000 rows: served as the largest page, not refused.
    let all = user.get("/api/customers?limit=1000").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.body["pagination"]["limit"], 500);
    assert_eq!(rows(&all).len(), 2);
    // customers/page.tsx pages with `page` and searches by name or email, in any case.
    let second = user.get("/api/customers?page=2&limit=1").await;
    assert_eq!(second.body["pagination"]["page"], 2, "{}", second.body);
    assert_eq!(second.body["pagination"]["totalPages"], 2);
    assert_eq!(rows(&second).len(), 1);
    let found = user.get("/api/customers?page=1&limit=10&search=ACME").await;
    assert_eq!(ids(&found), [created.body["id"].as_str().unwrap()]);
    let found = user.get("/api/customers?search=desk%40acme").await;
    assert_eq!(found.body["pagination"]["total"], 1, "{}", found.body);
    let literal = user.get("/api/customers?search=%25").await;
    assert_eq!(literal.body["pagination"]["total"], 0, "{}", literal.body);
    let misspelt = user.get("/api/customers?serach=acme").await;
    assert_refusal(&misspelt, 400, "bad_request");
    assert!(
        misspelt.body["message"]
            .as_str()
            .unwrap()
            .contains("`search`"),
        "{}",
        misspelt.body
    );
    let both = user.get("/api/customers?page=2&offset=10").await;
    assert_refusal(&both, 400, "bad_request");
    assert_eq!(both.body["fields"][0]["field"], "page");

    // customers/new/page.tsx sends the investment fields, validated as the original did.
    let investor = user
        .post(
            "/api/customers",
            json!({
                "name": "Investor Yamada", "email": "yamada@example.jp", "phone": "090-0000-0000",
                "address": "Tokyo", "investmentProfile": "moderate", "riskTolerance": 5,
                "investmentExperience": "10 years of equities",
            }),
        )
        .await;
    assert_eq!(investor.status, 201, "{}", investor.body);
    assert_eq!(investor.body["data"]["investmentProfile"], "moderate");
    assert_eq!(investor.body["data"]["riskTolerance"], 5);
    let listed = user.get("/api/customers?search=yamada").await;
    assert_eq!(
        rows(&listed)[0]["investmentExperience"],
        "10 years of equities"
    );
    for (body, field) in [
        (json!({"name": "R", "riskTolerance": 11}), "riskTolerance"),
        (json!({"name": "R", "riskTolerance": 0}), "riskTolerance"),
        (
            json!({"name": "R", "investmentProfile": "reckless"}),
            "investmentProfile",
        ),
    ] {
        let refused = user.post("/api/customers", body).await;
        assert_refusal(&refused, 400, "bad_request");
        assert_eq!(
            refused.body["fields"][0]["field"], field,
            "{}",
            refused.body
        );
    }

    // customers/[id]/page.tsx reads `data`; a missing one is a 404 the page can show.
    let one = user
        .get(&format!(
            "/api/customers/{}",
            created.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one.body["data"]["name"], "Acme Trading");
    // customers/[id]/page.tsx reads `customer.assignedSales.name`.
    assert_eq!(one.body["data"]["assignedSales"]["name"], "Sales Person");
    assert_eq!(created.body["assignedSales"]["email"], "sales@example.com");
    assert_refusal(
        &user.get("/api/customers/no-such-id").await,
        404,
        "not_found",
    );

    let health = anonymous.get("/health").await;
    assert_eq!((health.status, health.body), (200, json!({"status": "ok"})));

    // The layout's logout button: this token and every other of the user's stop working.
    let other_session = Client::signed_in(
        &daemon,
        &anonymous
            .login("sales@example.com", "Password123!")
            .await
            .body,
    );
    let logout = user.post("/api/auth/logout", json!({})).await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert_eq!(logout.body["success"], true);
    for ended in [&user, &other_session] {
        let refused = ended.get("/api/auth/me").await;
        assert_refusal(&refused, 401, "unauthorized");
        assert!(
            refused.body["message"].as_str().unwrap().contains("logout"),
            "{}",
            refused.body
        );
    }
    let again = anonymous.login("sales@example.com", "Password123!").await;
    let fresh = Client::signed_in(&daemon, &again.body);
    assert_eq!(fresh.get("/api/auth/me").await.status, 200);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn tasks_due_soon_overdue_and_completed_as_the_dashboard_asks(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let (user, _) = anonymous
        .register("tasks@example.com", "Task Owner", "USER")
        .await;
    let customer = user.post("/api/customers", json!({"name": "Due Co"})).await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();

    // The first-contact tasks (of the user's own customer and of Due Co), due in three days,
    // are upcoming; so is one due in two hours.
    let first_contacts = eventually(
        Duration::from_secs(10),
        "the first-contact tasks",
        || async {
            let answer = user.get("/api/tasks/upcoming").await;
            (answer.status == 200 && rows(&answer).len() == 2).then_some(answer)
        },
    )
    .await;
    let due_co_task = rows(&first_contacts)
        .iter()
        .find(|task| task["title"] == "初回コンタクト: Due Co")
        .unwrap_or_else(|| panic!("{}", first_contacts.body))
        .clone();
    // tasks/page.tsx and the dashboard read `task.customer.name` and `task.user.name`.
    assert_eq!(due_co_task["customer"]["name"], "Due Co");
    assert_eq!(due_co_task["customer"]["id"], customer_id.as_str());
    assert_eq!(due_co_task["user"]["name"], "Task Owner");
    let one = user
        .get(&format!(
            "/api/tasks/{}",
            due_co_task["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one.body["data"]["user"]["email"], "tasks@example.com");
    let overdue = user
        .post(
            "/api/tasks",
            json!({"title": "late", "customerId": customer_id, "dueDate": in_hours(-24)}),
        )
        .await;
    assert_eq!(overdue.status, 201, "{}", overdue.body);
    let overdue_id = overdue.body["id"].as_str().unwrap().to_owned();
    let soon = user
        .post(
            "/api/tasks",
            json!({"title": "soon", "dueDate": in_hours(2)}),
        )
        .await;
    let later = user
        .post(
            "/api/tasks",
            json!({"title": "later", "dueDate": in_hours(240)}),
        )
        .await;
    assert_eq!(later.status, 201, "{}", later.body);

    let listed = user.get("/api/tasks/overdue").await;
    assert_eq!(ids(&listed), [overdue_id.as_str()], "{}", listed.body);
    let upcoming = user.get("/api/tasks/upcoming").await;
    let upcoming_ids = ids(&upcoming);
    assert_eq!(upcoming_ids.len(), 3, "{}", upcoming.body);
    assert_eq!(upcoming_ids[0], soon.body["id"], "soonest first");
    assert!(!upcoming_ids.contains(&later.body["id"].as_str().unwrap()));
    assert_eq!(upcoming.body["pagination"]["total"], 3);

    // tasks/page.tsx completes with PATCH; it leaves the overdue list.
    let completed = user
        .send(
            Method::PATCH,
            &format!("/api/tasks/{overdue_id}/complete"),
            None,
        )
        .await;
    assert_eq!(completed.status, 200, "{}", completed.body);
    assert_eq!(completed.body["data"]["status"], "COMPLETED");
    assert!(completed.body["data"]["completedAt"].is_string());
    assert!(rows(&user.get("/api/tasks/overdue").await).is_empty());
    // The original also took PUT; a task nobody can see is a 404.
    let again = user
        .send(
            Method::PUT,
            &format!("/api/tasks/{overdue_id}/complete"),
            None,
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let missing = user
        .send(Method::PATCH, "/api/tasks/no-such-task/complete", None)
        .await;
    assert_refusal(&missing, 404, "not_found");
    // customers/[id]/page.tsx lists a customer's tasks with `limit`.
    let of_customer = user
        .get(&format!("/api/tasks?customerId={customer_id}&limit=10"))
        .await;
    assert_eq!(
        of_customer.body["pagination"]["total"], 2,
        "{}",
        of_customer.body
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn approvals_and_notifications_as_their_pages_use_them(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    create_user_with_cli(&project, "boss@example.com", "Boss", "ADMIN");
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let (requester, _) = anonymous
        .register("asker@example.com", "Asker", "USER")
        .await;
    let login = anonymous.login("boss@example.com", "Password123!").await;
    let admin = Client::signed_in(&daemon, &login.body);

    let customer = requester
        .post("/api/customers", json!({"name": "Deal Co"}))
        .await;
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();
    // approvals/new/page.tsx sends {customerId, productName, amount, comment}.
    let filed = requester
        .post(
            "/api/approvals",
            json!({"customerId": customer_id, "productName": "Discount", "amount": 1000, "comment": "long-standing client"}),
        )
        .await;
    assert_eq!(filed.status, 201, "{}", filed.body);
    assert_eq!(filed.body["data"]["productName"], "Discount");
    assert_eq!(filed.body["data"]["customer"]["name"], "Deal Co");
    assert_eq!(filed.body["data"]["requester"]["name"], "Asker");
    assert_eq!(filed.body["data"]["approver"], Value::Null);
    assert_eq!(filed.body["data"]["comment"], "long-standing client");
    let approval_id = filed.body["id"].as_str().unwrap().to_owned();

    // approvals/[id]/page.tsx reads one request and decides with PUT {status}.
    let shown = admin.get(&format!("/api/approvals/{approval_id}")).await;
    assert_eq!(shown.body["data"]["status"], "PENDING", "{}", shown.body);
    let own = requester
        .put(
            &format!("/api/approvals/{approval_id}"),
            json!({"status": "APPROVED"}),
        )
        .await;
    assert_refusal(&own, 403, "forbidden");
    let unknown = admin
        .put(
            &format!("/api/approvals/{approval_id}"),
            json!({"status": "MAYBE"}),
        )
        .await;
    assert_refusal(&unknown, 400, "bad_request");
    assert_eq!(unknown.body["fields"][0]["field"], "status");

    // The admin was notified; layout badge and notifications/page.tsx read these.
    let count = eventually(
        Duration::from_secs(10),
        "the admin's notification",
        || async {
            let answer = admin.get("/api/notifications/unread-count").await;
            (answer.body["data"]["count"] == 1).then_some(answer)
        },
    )
    .await;
    assert_eq!(count.body["count"], 1);
    let unread = admin
        .get("/api/notifications?isRead=false&page=1&limit=20")
        .await;
    let notification = rows(&unread)[0].clone();
    assert_eq!(notification["isRead"], false);
    assert_eq!(
        notification["link"],
        format!("/dashboard/approvals/{approval_id}")
    );
    let notification_id = notification["id"].as_str().unwrap();
    let read = admin
        .put(
            &format!("/api/notifications/{notification_id}/read"),
            json!({}),
        )
        .await;
    assert_eq!(read.body["data"]["isRead"], true, "{}", read.body);
    assert!(rows(&admin.get("/api/notifications?isRead=false").await).is_empty());
    assert_eq!(
        admin.get("/api/notifications?isRead=true").await.body["pagination"]["total"],
        1
    );
    let all_read = admin.put("/api/notifications/read-all", json!({})).await;
    assert_eq!(all_read.status, 200, "{}", all_read.body);

    let decided = admin
        .put(
            &format!("/api/approvals/{approval_id}"),
            json!({"status": "APPROVED", "comment": "ok"}),
        )
        .await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert_eq!(decided.body["data"]["status"], "APPROVED");
    // approvals/[id]/page.tsx reads who decided and when.
    assert_eq!(decided.body["data"]["approver"]["name"], "Boss");
    assert!(decided.body["data"]["processedAt"].is_string());
    assert_eq!(decided.body["data"]["comment"], "ok");
    let listed = admin.get("/api/approvals?status=APPROVED").await;
    assert_eq!(rows(&listed)[0]["requester"]["email"], "asker@example.com");
    let twice = admin
        .put(
            &format!("/api/approvals/{approval_id}"),
            json!({"status": "REJECTED"}),
        )
        .await;
    assert_refusal(&twice, 409, "conflict");

    // Deleting: gone from the list, and only once; never someone else's.
    let stranger = requester
        .send(
            Method::DELETE,
            &format!("/api/notifications/{notification_id}"),
            None,
        )
        .await;
    assert_refusal(&stranger, 404, "not_found");
    let deleted = admin
        .send(
            Method::DELETE,
            &format!("/api/notifications/{notification_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert!(rows(&admin.get("/api/notifications").await).is_empty());
    let again = admin
        .send(
            Method::DELETE,
            &format!("/api/notifications/{notification_id}"),
            None,
        )
        .await;
    assert_refusal(&again, 404, "not_found");
}

/// Runs the bundled meeting reminders now, as their minute would.
async fn remind(daemon: &crate::support::Daemon) {
    let response = daemon
        .request(Method::POST, "/api/routes/meeting-reminder-alerts/trigger")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn meetings_are_recorded_listed_by_date_and_reminded_once(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = project.start();
    let db = project.database().await;
    let anonymous = Client::anonymous(&daemon);
    let (user, registered) = anonymous
        .register("meets@example.com", "Meeting Holder", "SALES")
        .await;
    let (stranger, _) = anonymous
        .register("stranger@example.com", "Stranger", "SALES")
        .await;
    let customer = user.post("/api/customers", json!({"name": "Met Co"})).await;
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();

    // meetings/new/page.tsx posts these fields; the list page reads the nested customer and
    // salesperson.
    let soon = user
        .post(
            "/api/meetings",
            json!({
                "customerId": customer_id, "date": in_hours(2), "summary": "Portfolio review",
                "nextAction": "Send the proposal", "nextActionDate": in_hours(72),
            }),
        )
        .await;
    assert_eq!(soon.status, 201, "{}", soon.body);
    assert_eq!(soon.body["data"]["customer"]["name"], "Met Co");
    assert_eq!(soon.body["data"]["sales"]["name"], "Meeting Holder");
    assert_eq!(soon.body["salesId"], registered["id"]);
    let soon_id = soon.body["id"].as_str().unwrap().to_owned();
    let past = user
        .post(
            "/api/meetings",
            json!({"customerId": customer_id, "date": in_hours(-240), "summary": "First call"}),
        )
        .await;
    assert_eq!(past.status, 201, "{}", past.body);
    let refused = user
        .post(
            "/api/meetings",
            json!({"customerId": customer_id, "summary": "When?"}),
        )
        .await;
    assert_refusal(&refused, 400, "bad_request");
    assert_eq!(refused.body["fields"][0]["field"], "date");
    let elsewhere = stranger
        .post(
            "/api/meetings",
            json!({"customerId": customer_id, "date": in_hours(1), "summary": "Poaching"}),
        )
        .await;
    assert_refusal(&elsewhere, 400, "bad_request");

    let of_customer = user
        .get(&format!("/api/meetings?customerId={customer_id}&limit=10"))
        .await;
    assert_eq!(
        ids(&of_customer),
        [soon_id.as_str(), past.body["id"].as_str().unwrap()]
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let from_today = user.get(&format!("/api/meetings?from={today}")).await;
    assert_eq!(ids(&from_today), [soon_id.as_str()], "{}", from_today.body);
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let until_yesterday = user.get(&format!("/api/meetings?to={yesterday}")).await;
    assert_eq!(until_yesterday.body["pagination"]["total"], 1);
    assert_refusal(
        &user.get("/api/meetings?from=soon").await,
        400,
        "bad_request",
    );
    assert_eq!(
        stranger.get("/api/meetings").await.body["pagination"]["total"],
        0
    );
    assert_refusal(
        &stranger.get(&format!("/api/meetings/{soon_id}")).await,
        404,
        "not_found",
    );

    // The reminder goes out once, however often the schedule runs; a meeting moved to
    // another time is reminded of again.
    let reminders = || {
        let db = db.clone();
        async move {
            crate::support::count(
                &db,
                "SELECT COUNT(*) FROM notifications WHERE type = 'MEETING_REMINDER'",
            )
            .await
        }
    };
    remind(&daemon).await;
    remind(&daemon).await;
    crate::support::drained(&db).await;
    assert_eq!(reminders().await, 1);
    let unread = user.get("/api/notifications?isRead=false").await;
    assert!(
        rows(&unread)
            .iter()
            .any(|n| n["type"] == "MEETING_REMINDER"),
        "{}",
        unread.body
    );
    let moved = user
        .put(
            &format!("/api/meetings/{soon_id}"),
            json!({"date": in_hours(3), "nextAction": null}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["data"]["nextAction"], Value::Null);
    remind(&daemon).await;
    crate::support::drained(&db).await;
    assert_eq!(reminders().await, 2);

    let deleted = user
        .send(Method::DELETE, &format!("/api/meetings/{soon_id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_refusal(
        &user.get(&format!("/api/meetings/{soon_id}")).await,
        404,
        "not_found",
    );
    let events = |event_type: &'static str| {
        let db = db.clone();
        async move {
            crate::support::count(
                &db,
                &format!("SELECT COUNT(*) FROM event_log WHERE event_type = '{event_type}'"),
            )
            .await
        }
    };
    assert_eq!(
        (
            events("MEETING_CREATED").await,
            events("MEETING_UPDATED").await,
            events("MEETING_DELETED").await,
            events("MEETING_REMINDER").await
        ),
        (2, 1, 1, 2)
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn reports_and_the_audit_log_as_their_pages_read_them(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    create_user_with_cli(&project, "boss@example.com", "Boss", "ADMIN");
    create_user_with_cli(&project, "auditor@example.com", "Auditor", "COMPLIANCE");
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);
    let (sales, _) = anonymous.register("rep@example.com", "Rep", "SALES").await;
    let login = anonymous.login("boss@example.com", "Password123!").await;
    let admin = Client::signed_in(&daemon, &login.body);
    let auditor_login = anonymous.login("auditor@example.com", "Password123!").await;
    let auditor = Client::signed_in(&daemon, &auditor_login.body);
    let customer = sales
        .post("/api/customers", json!({"name": "Report Co"}))
        .await;
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();
    let meeting = sales
        .post(
            "/api/meetings",
            json!({"customerId": customer_id, "date": in_hours(-2), "summary": "Review"}),
        )
        .await;
    assert_eq!(meeting.status, 201, "{}", meeting.body);

    // reports/page.tsx: `statsRes.data.data` and its nested totals and rates.
    let stats = admin.get("/api/reports/dashboard").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let data = &stats.body["data"];
    for (group, keys) in [
        ("customers", &["total"][..]),
        ("meetings", &["total"]),
        ("tasks", &["total", "completed", "completionRate"]),
        ("approvals", &["approved", "rejected", "approvalRate"]),
    ] {
        for key in keys {
            assert!(data[group][key].is_i64(), "{group}.{key}: {data}");
        }
    }
    assert_eq!(data["meetings"]["total"], 1);
    // `task-trends?days=${dateRange}` and `sales-metrics`: arrays in `data` for the charts.
    let trends = admin.get("/api/reports/task-trends?days=30").await;
    assert_eq!(rows(&trends).len(), 31, "{}", trends.body);
    assert!(rows(&trends).iter().all(|day| day["date"].is_string()
        && day["created"].is_i64()
        && day["completed"].is_i64()));
    let metrics = admin.get("/api/reports/sales-metrics").await;
    assert_eq!(rows(&metrics)[0]["salesName"], "Rep", "{}", metrics.body);
    assert_eq!(rows(&metrics)[0]["meetingCount"], 1);
    // `export/${type}` is fetched as a blob and saved as CSV.
    let export = reqwest::Client::new()
        .get(format!("{}/api/reports/export/meetings", daemon.base))
        .bearer_auth(auditor_login.body["data"]["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let csv = export.text().await.unwrap();
    assert!(
        csv.starts_with("\u{feff}ID,顧客名,担当営業,日付,要約"),
        "{csv}"
    );
    assert!(csv.contains("Report Co,Rep,"), "{csv}");

    // audit/page.tsx: `{page, limit: 50}` plus its filters; `data` and
    // `pagination.totalPages`; each row's `user.{name,email,role}`, `action`, `resourceType`,
    // `changes` and `timestamp`.
    for query in [
        "page=1&limit=50",
        "page=1&limit=50&action=CREATE",
        "page=1&limit=50&entity=Meeting",
    ] {
        let log = auditor.get(&format!("/api/audit?{query}")).await;
        assert_eq!(log.status, 200, "{query}: {}", log.body);
        assert!(
            log.body["pagination"]["totalPages"].is_i64(),
            "{}",
            log.body
        );
        assert!(!rows(&log).is_empty(), "{query}: {}", log.body);
        for row in rows(&log) {
            assert!(row["user"]["name"].is_string(), "{row}");
            assert!(row["user"]["email"].is_string(), "{row}");
            assert!(row["user"]["role"].is_string(), "{row}");
            assert!(
                row["timestamp"].is_string() && row["resourceType"].is_string(),
                "{row}"
            );
        }
    }
    let meetings = auditor.get("/api/audit?entity=Meeting").await;
    assert_eq!(rows(&meetings)[0]["action"], "CREATE");
    assert_eq!(rows(&meetings)[0]["changes"]["new"]["summary"], "Review");
    // The page shows `err.response?.data?.error` as text.
    let refused = sales.get("/api/audit?page=1&limit=50").await;
    assert_refusal(&refused, 403, "forbidden");
}
