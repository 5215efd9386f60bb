//! One USER against another: records, tasks, approvals and notifications.

use serde_json::{json, Value};
use test_case::test_case;

use super::{id, Crm, User, CRM_TABLES};
use crate::support::{count, drained, Backend};

/// Two USERs; B owns a customer, a task on it and an opportunity on it.
struct TwoUsers {
    crm: Crm,
    a: User,
    b: User,
    customer: String,
    task: String,
    opportunity: String,
}

const SECRET_NAME: &str = "B Secret Corp";

/// `None` (skip) when the backend is not usable; see [`Crm::start`].
async fn two_users(backend: Backend) -> Option<TwoUsers> {
    let crm = Crm::start(backend).await?;
    let a = crm.register(None, "a@example.com", "USER", None).await;
    let b = crm.register(None, "b@example.com", "USER", None).await;
    let customer = id(&crm
        .created(
            &b.token,
            "/api/customers",
            json!({"name": SECRET_NAME, "email": "ceo@bsecret.example", "size": "LARGE"}),
        )
        .await);
    let task = id(&crm
        .created(
            &b.token,
            "/api/tasks",
            json!({"title": "B private call", "customerId": customer}),
        )
        .await);
    let opportunity = id(&crm
        .created(
            &b.token,
            "/api/opportunities",
            json!({"customerId": customer, "name": "B big deal", "amount": 5000}),
        )
        .await);
    drained(&crm.db).await;
    Some(TwoUsers {
        crm,
        a,
        b,
        customer,
        task,
        opportunity,
    })
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_user_cannot_read_change_delete_or_list_another_users_records(backend: Backend) {
    let Some(TwoUsers {
        crm,
        a,
        b,
        customer,
        task,
        opportunity,
    }) = two_users(backend).await
    else {
        return;
    };
    let before = crm.dump(CRM_TABLES).await;

    let unknown = uuid::Uuid::new_v4();
    let missing = crm
        .get(&a.token, &format!("/api/customers/{unknown}"))
        .await;
    let attempts = [
        crm.get(&a.token, &format!("/api/customers/{customer}"))
            .await,
        crm.put(
            &a.token,
            &format!("/api/customers/{customer}"),
            json!({"name": "pwned", "ownerId": a.id}),
        )
        .await,
        crm.delete(&a.token, &format!("/api/customers/{customer}"))
            .await,
        crm.get(&a.token, &format!("/api/tasks/{task}")).await,
        crm.put(
            &a.token,
            &format!("/api/tasks/{task}"),
            json!({"title": "pwned", "status": "COMPLETED", "assigneeId": a.id}),
        )
        .await,
        crm.delete(&a.token, &format!("/api/tasks/{task}")).await,
        crm.get(&a.token, &format!("/api/opportunities/{opportunity}"))
            .await,
        crm.put(
            &a.token,
            &format!("/api/opportunities/{opportunity}"),
            json!({"stage": "LOST", "ownerId": a.id}),
        )
        .await,
    ];
    for answer in &attempts {
        assert_eq!(answer.outcome(), (404, "not_found"), "{}", answer.body);
    }
    // Indistinguishable from a record that does not exist.
    assert_eq!(attempts[0].body, missing.body);

    // Lists, with and without filters naming B's records.
    for path in [
        "/api/customers".to_owned(),
        "/api/tasks".to_owned(),
        "/api/opportunities".to_owned(),
        format!("/api/tasks?customerId={customer}"),
        format!("/api/tasks?assigneeId={}", b.id),
        format!("/api/opportunities?customerId={customer}"),
    ] {
        let list = crm.get(&a.token, &path).await;
        assert_eq!(list.status, 200, "{path}: {}", list.body);
        let text = list.body.to_string();
        assert!(
            !text.contains(&b.id) && !text.contains(SECRET_NAME) && !text.contains(&customer),
            "{path} shows B's data: {text}"
        );
        assert_eq!(list.total(), list.ids().len() as i64, "{path}");
    }
    // A sees exactly their own registration customer.
    let own = crm.get(&a.token, "/api/customers").await;
    assert_eq!(own.total(), 1, "{}", own.body);
    assert_eq!(own.body["data"][0]["ownerId"], a.id.as_str());

    // Handing records to B, or creating on B's customer, is refused too.
    let give = crm
        .post(
            &a.token,
            "/api/customers",
            json!({"name": "Gift", "ownerId": b.id}),
        )
        .await;
    assert_eq!(give.outcome(), (403, "forbidden"), "{}", give.body);
    let assign = crm
        .post(
            &a.token,
            "/api/tasks",
            json!({"title": "For B", "assigneeId": b.id}),
        )
        .await;
    assert_eq!(assign.outcome(), (403, "forbidden"), "{}", assign.body);
    let reassign = crm
        .put(
            &a.token,
            &format!("/api/customers/{}", own.ids()[0]),
            json!({"ownerId": b.id}),
        )
        .await;
    assert_eq!(reassign.outcome(), (403, "forbidden"), "{}", reassign.body);
    let deal = crm
        .post(
            &a.token,
            "/api/opportunities",
            json!({"customerId": customer, "name": "Poached"}),
        )
        .await;
    assert_eq!(deal.outcome(), (400, "bad_request"), "{}", deal.body);
    assert_eq!(deal.fields(), ["customerId"], "{}", deal.body);

    assert_eq!(crm.dump(CRM_TABLES).await, before, "B's records changed");
    // B still sees everything of theirs.
    let mine = crm
        .get(&b.token, &format!("/api/customers/{customer}"))
        .await;
    assert_eq!(mine.body["name"], SECRET_NAME, "{}", mine.body);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_user_cannot_attach_a_task_to_another_users_customer(backend: Backend) {
    let Some(TwoUsers {
        crm,
        a,
        b,
        customer,
        opportunity,
        ..
    }) = two_users(backend).await
    else {
        return;
    };
    // Opportunities refuse a customer the caller cannot see; tasks should as well.
    let attached = crm
        .post(
            &a.token,
            "/api/tasks",
            json!({"title": "Sneaky", "customerId": customer}),
        )
        .await;
    if attached.status == 201 {
        // A completes their own task, which counts as activity on the customer's deals.
        let completed = crm
            .put(
                &a.token,
                &format!("/api/tasks/{}", id(&attached.body)),
                json!({"status": "COMPLETED"}),
            )
            .await;
        assert_eq!(completed.status, 200, "{}", completed.body);
    }
    let own = id(&crm
        .created(&a.token, "/api/tasks", json!({"title": "Innocent"}))
        .await);
    let moved = crm
        .put(
            &a.token,
            &format!("/api/tasks/{own}"),
            json!({"customerId": customer}),
        )
        .await;
    drained(&crm.db).await;

    let deal = crm
        .get(&b.token, &format!("/api/opportunities/{opportunity}"))
        .await;
    assert_eq!(
        (
            deal.body["activityCount"].clone(),
            deal.body["lastActivityAt"].clone()
        ),
        (json!(0), Value::Null),
        "USER A changed USER B's opportunity through a task on B's customer: {}",
        deal.body
    );
    let b_tasks = crm.get(&b.token, "/api/tasks").await;
    assert!(
        !b_tasks.body.to_string().contains(&a.id),
        "A's tasks appear in B's task list: {}",
        b_tasks.body
    );
    assert_eq!(
        (attached.outcome(), attached.fields()),
        ((400, "bad_request"), vec!["customerId".to_owned()]),
        "POST /api/tasks with another user's customerId: {}",
        attached.body
    );
    assert_eq!(
        (moved.outcome(), moved.fields()),
        ((400, "bad_request"), vec!["customerId".to_owned()]),
        "PUT /api/tasks/{{own}} with another user's customerId: {}",
        moved.body
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_approval_cannot_name_a_customer_the_requester_cannot_see(backend: Backend) {
    let Some(TwoUsers {
        crm, a, customer, ..
    }) = two_users(backend).await
    else {
        return;
    };
    let admin = crm.admin().await;
    let request = crm
        .post(
            &a.token,
            "/api/approvals",
            json!({"title": "Please approve", "customerId": customer}),
        )
        .await;
    if request.status == 201 {
        // Approval creates a follow-up task for the requester, titled after the customer.
        let approved = crm
            .post(
                &admin.token,
                &format!("/api/approvals/{}/approve", id(&request.body)),
                json!({}),
            )
            .await;
        assert_eq!(approved.status, 200, "{}", approved.body);
        drained(&crm.db).await;
    }
    let tasks = crm.get(&a.token, "/api/tasks").await;
    assert!(
        !tasks.body.to_string().contains(SECRET_NAME),
        "USER A learned the name of USER B's customer: {}",
        tasks.body
    );
    assert_eq!(
        (request.outcome(), request.fields()),
        ((400, "bad_request"), vec!["customerId".to_owned()]),
        "POST /api/approvals with another user's customerId: {}",
        request.body
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn no_endpoint_shows_or_marks_another_users_notifications(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let a = crm.register(None, "a@example.com", "USER", None).await;
    let b = crm.register(None, "b@example.com", "USER", None).await;
    let for_a = crm.notify(&a, "for A").await;
    let for_b = crm.notify(&b, "for B only").await;

    for path in ["/api/notifications", "/api/notifications?unread=true"] {
        let list = crm.get(&a.token, path).await;
        assert_eq!(list.status, 200, "{}", list.body);
        assert_eq!(
            list.ids(),
            std::slice::from_ref(&for_a),
            "{path}: {}",
            list.body
        );
        assert_eq!(list.total(), 1);
    }
    // Not even an ADMIN may read someone else's notifications.
    let admin_list = crm.get(&admin.token, "/api/notifications").await;
    assert_eq!(
        admin_list.ids(),
        Vec::<String>::new(),
        "{}",
        admin_list.body
    );
    for reader in [&a, &admin] {
        let read = crm
            .post(
                &reader.token,
                &format!("/api/notifications/{for_b}/read"),
                json!({}),
            )
            .await;
        assert_eq!(read.outcome(), (404, "not_found"), "{}", read.body);
        assert!(!read.body.to_string().contains("for B only"));
    }
    let read_all = crm
        .post(&a.token, "/api/notifications/read-all", json!({}))
        .await;
    assert_eq!(read_all.body["data"], json!({"updated": 1}));

    let state = |id: String| {
        let db = crm.db.clone();
        async move {
            sqlx::query_as::<_, (i64, Option<String>)>(
                "SELECT read, read_at FROM notifications WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        state(for_b.clone()).await,
        (0, None),
        "B's notification was marked read"
    );
    assert_eq!(state(for_a).await.0, 1);
    let b_list = crm.get(&b.token, "/api/notifications?unread=true").await;
    assert_eq!(b_list.ids(), [for_b], "{}", b_list.body);
    assert_eq!(b_list.body["data"][0]["read"], false);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_user_cannot_see_decide_or_recall_another_users_approval(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let a = crm.register(None, "a@example.com", "USER", None).await;
    let b = crm.register(None, "b@example.com", "USER", None).await;
    let request = id(&crm
        .created(
            &b.token,
            "/api/approvals",
            json!({"title": "B discount", "amount": 100}),
        )
        .await);
    let listed = crm.get(&a.token, "/api/approvals").await;
    assert_eq!(listed.ids(), Vec::<String>::new(), "{}", listed.body);
    assert_eq!(listed.total(), 0);

    for action in ["approve", "reject"] {
        let answer = crm
            .post(
                &a.token,
                &format!("/api/approvals/{request}/{action}"),
                json!({"comment": "self-service"}),
            )
            .await;
        assert_eq!(
            answer.outcome(),
            (403, "forbidden"),
            "{action}: {}",
            answer.body
        );
    }
    // A USER cannot see B's request at all, so recall answers as for an unknown id: 404 (the
    // spec's "requester only" is met; 403 would confirm that the id exists).
    let recall = crm
        .post(
            &a.token,
            &format!("/api/approvals/{request}/recall"),
            json!({}),
        )
        .await;
    assert_eq!(recall.outcome(), (404, "not_found"), "{}", recall.body);

    let (status, approver): (String, Option<String>) =
        sqlx::query_as("SELECT status, approver_id FROM approvals WHERE id = $1")
            .bind(&request)
            .fetch_one(&crm.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), approver), ("PENDING", None));
    assert_eq!(
        count(
            &crm.db,
            "SELECT COUNT(*) FROM event_log WHERE event_type IN \
             ('APPROVAL_APPROVED', 'APPROVAL_REJECTED', 'APPROVAL_RECALLED')"
        )
        .await,
        0
    );
}
