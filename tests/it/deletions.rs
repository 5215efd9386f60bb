//! The bundled deletion cascades (`routes/deletion-cascades.yaml`): what the original CRM's
//! services did on a deleted customer or user, counted row by row on each database.

use serde_json::{json, Value};
use sqlx::AnyPool;
use test_case::test_case;

use crate::crm_flows::{create_user_with_cli, Client};
use crate::support::{count, drained, Backend, Project};

/// `(tasks deleted, meetings deleted, approvals recalled with `comment`)` among the rows whose
/// `column` is `id`.
async fn cascaded(db: &AnyPool, column: &str, id: &str, comment: &str) -> (i64, i64, i64) {
    let tasks_column = if column == "requester_id" {
        "assignee_id"
    } else {
        column
    };
    let meetings_column = match column {
        "requester_id" => "sales_id",
        other => other,
    };
    (
        count(
            db,
            &format!(
                "SELECT COUNT(*) FROM tasks WHERE {tasks_column} = '{id}' \
                 AND deleted_at IS NOT NULL AND status = 'CANCELLED'"
            ),
        )
        .await,
        count(
            db,
            &format!(
                "SELECT COUNT(*) FROM meetings WHERE {meetings_column} = '{id}' \
                 AND deleted_at IS NOT NULL"
            ),
        )
        .await,
        count(
            db,
            &format!(
                "SELECT COUNT(*) FROM approvals WHERE {column} = '{id}' AND status = 'RECALLED' \
                 AND comment = '{comment}' AND decided_at IS NOT NULL"
            ),
        )
        .await,
    )
}

/// POSTs and insists on 201; returns the new record's id.
async fn created(client: &Client, path: &str, body: Value) -> String {
    let answer = client.post(path, body).await;
    assert_eq!(answer.status, 201, "{path}: {}", answer.body);
    id(&answer.body)
}

fn id(answer: &Value) -> String {
    answer["id"].as_str().unwrap().to_owned()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn deleting_a_customer_or_a_user_cascades_as_the_original_services_did(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    create_user_with_cli(&project, "boss@example.com", "Boss", "ADMIN");
    let daemon = project.start();
    let db = project.database().await;
    let anonymous = Client::anonymous(&daemon);
    let admin = Client::signed_in(
        &daemon,
        &anonymous
            .login("boss@example.com", "Password123!")
            .await
            .body,
    );
    let (a, a_user) = anonymous.register("a@example.com", "A", "SALES").await;
    let (b, _) = anonymous.register("b@example.com", "B", "SALES").await;
    let a_id = id(&a_user);
    let c1 = created(&a, "/api/customers", json!({"name": "One"})).await;
    let c2 = created(&a, "/api/customers", json!({"name": "Two"})).await;
    let cb = created(&b, "/api/customers", json!({"name": "B's"})).await;
    created(&a, "/api/tasks", json!({"title": "T1", "customerId": c1})).await;
    for customer in [&c1, &c2] {
        created(
            &a,
            "/api/meetings",
            json!({"customerId": customer, "date": "2030-01-01", "summary": "M"}),
        )
        .await;
    }
    let pending = created(
        &a,
        "/api/approvals",
        json!({"productName": "P1", "customerId": c1}),
    )
    .await;
    let decided = created(
        &a,
        "/api/approvals",
        json!({"productName": "P2", "customerId": c1}),
    )
    .await;
    let approved = admin
        .post(&format!("/api/approvals/{decided}/approve"), json!({}))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    created(
        &a,
        "/api/approvals",
        json!({"productName": "P3", "customerId": c2}),
    )
    .await;
    created(
        &b,
        "/api/approvals",
        json!({"productName": "PB", "customerId": cb}),
    )
    .await;
    drained(&db).await;
    let untouched = |db: AnyPool| async move {
        (
            count(&db, "SELECT COUNT(*) FROM tasks WHERE deleted_at IS NULL").await,
            count(
                &db,
                "SELECT COUNT(*) FROM meetings WHERE deleted_at IS NULL",
            )
            .await,
            count(
                &db,
                "SELECT COUNT(*) FROM approvals WHERE status = 'PENDING'",
            )
            .await,
            count(
                &db,
                "SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL",
            )
            .await,
        )
    };
    // Customers: each user's own (the boss's too), One, Two and B's. Each has its first-contact
    // task; One also has T1 and the follow-up task of the approved request.
    assert_eq!(untouched(db.clone()).await, (8, 2, 3, 6));

    // Deleting One: its three tasks and its meeting go, its pending request is recalled, the
    // decided one stays as it was.
    let deleted = a
        .send(
            reqwest::Method::DELETE,
            &format!("/api/customers/{c1}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    drained(&db).await;
    assert_eq!(
        cascaded(&db, "customer_id", &c1, "Customer deleted").await,
        (3, 1, 1)
    );
    let status = |approval: String| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM approvals WHERE id = $1")
                .bind(approval)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(status(pending).await, "RECALLED");
    assert_eq!(status(decided).await, "APPROVED");
    assert_eq!(untouched(db.clone()).await, (5, 1, 2, 5));

    // Deleting A (an old service's USER_DELETED): A's customers (their own and Two), the tasks
    // assigned to them (their own first contact and Two's), their meeting and their pending
    // request; B's records stay.
    let (status_code, body) = daemon
        .post_event(
            "user.events",
            json!({"eventType": "USER_DELETED", "key": a_id, "data": {"userId": a_id}}),
        )
        .await;
    assert_eq!(status_code, 202, "{body}");
    drained(&db).await;
    assert_eq!(
        cascaded(&db, "requester_id", &a_id, "Requester deleted").await,
        (3 + 2, 2, 1),
        "A's tasks (three by the customer's deletion, two now), meetings and recalled request"
    );
    assert_eq!(untouched(db.clone()).await, (3, 0, 1, 3));

    // The old services' dotted name does the same.
    let (status_code, body) = daemon
        .post_event(
            "customer.events",
            json!({"eventType": "customer.deleted", "key": cb, "data": {"customerId": cb}}),
        )
        .await;
    assert_eq!(status_code, 202, "{body}");
    drained(&db).await;
    assert_eq!(
        cascaded(&db, "customer_id", &cb, "Customer deleted").await,
        (1, 0, 1)
    );
    // The event deletes nothing itself: the customer row was the producer's to delete.
    assert_eq!(untouched(db.clone()).await, (2, 0, 0, 3));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dead_letters").await,
        0,
        "nothing dead-lettered"
    );
}
