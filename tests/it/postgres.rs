//! The guide's Test 1 and Test 2 and the approval flow with `DATABASE_URL=postgres://…`, each on
//! a database of its own on the local server (created and dropped by the test).
//!
//! Under CI an unreachable PostgreSQL fails these tests; elsewhere they are skipped with a
//! message.

use serde_json::json;

use crate::crm_flows::{create_user_with_cli, wait_for_item, Client};
use crate::support::{Backend, Project};

#[tokio::test]
async fn the_guides_tests_pass_on_postgres() {
    let Some(project) = Project::bundled_on(Backend::Postgres) else {
        return;
    };
    let daemon = project.start();
    let anonymous = Client::anonymous(&daemon);

    // Test 1: register → login → the customer exists.
    let (_, registered) = anonymous
        .register("kafka-test@example.com", "Kafka Test User", "USER")
        .await;
    let login = anonymous
        .login("kafka-test@example.com", "Password123!")
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let user = Client::signed_in(&daemon, &login.body);
    let customer = wait_for_item(&user, "/api/customers", "the user's customer", |customer| {
        customer["email"] == "kafka-test@example.com"
    })
    .await;
    assert_eq!(customer["name"], "Kafka Test User");
    assert_eq!(customer["ownerId"], registered["id"]);

    // Test 2: a customer → its first-contact task and opportunity.
    let created = user
        .post(
            "/api/customers",
            json!({"name": "Test Company Inc.", "industry": "Technology", "size": "MEDIUM", "email": "contact@testcompany.com", "phone": "+81-3-1234-5678"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let customer_id = created.body["id"].as_str().unwrap().to_owned();
    let task = wait_for_item(&user, "/api/tasks", "the first-contact task", |task| {
        task["title"] == "初回コンタクト: Test Company Inc."
    })
    .await;
    assert_eq!(task["customerId"], customer_id.as_str());
    let page = user.get("/api/customers?limit=1").await;
    assert_eq!((page.status, page.total), (200, Some(2)), "{}", page.body);
    let log = daemon.log();
    assert!(
        log.contains("database ready database=postgres://postgres@127.0.0.1:5432/crm_router_test_"),
        "{log}"
    );
    assert!(
        log.contains("database ready")
            && log.contains("postgres://postgres@127.0.0.1:5432/crm_router_test_"),
        "{log}"
    );
}

#[tokio::test]
async fn the_approval_flow_runs_on_postgres() {
    let Some(project) = Project::bundled_on(Backend::Postgres) else {
        return;
    };
    let daemon = project.start();
    create_user_with_cli(&project, "admin@example.com", "Admin", "ADMIN");
    let anonymous = Client::anonymous(&daemon);
    let admin_login = anonymous.login("admin@example.com", "Password123!").await;
    let admin = Client::signed_in(&daemon, &admin_login.body);
    let (manager, _) = admin
        .register("manager@example.com", "Manager", "MANAGER")
        .await;
    let (requester, _) = anonymous.register("rep@example.com", "Rep", "USER").await;
    let customer = requester
        .post("/api/customers", json!({"name": "PG Deal Corp"}))
        .await;
    let opportunity = requester
        .post(
            "/api/opportunities",
            json!({"customerId": customer.body["id"], "name": "Licence", "amount": 1200.5}),
        )
        .await;
    assert_eq!(opportunity.status, 201, "{}", opportunity.body);
    assert_eq!(opportunity.body["amount"], 1200.5);
    let request = requester
        .post(
            "/api/approvals",
            json!({"title": "値引き", "opportunityId": opportunity.body["id"]}),
        )
        .await;
    let approval_id = request.body["id"].as_str().unwrap().to_owned();
    wait_for_item(
        &manager,
        "/api/notifications",
        "the manager's notification",
        |n| n["type"] == "APPROVAL_REQUEST",
    )
    .await;
    let path = format!("/api/approvals/{approval_id}/approve");
    assert_eq!(requester.post(&path, json!({})).await.status, 403);
    assert_eq!(manager.post(&path, json!({})).await.status, 200);
    assert_eq!(admin.post(&path, json!({})).await.status, 409);
    wait_for_item(&requester, "/api/tasks", "the follow-up task", |task| {
        task["title"] == "契約手続き: PG Deal Corp"
    })
    .await;
    wait_for_item(&requester, "/api/notifications", "the decision", |n| {
        n["type"] == "APPROVAL_APPROVED"
    })
    .await;
}
