//! Managers see their team, admins everyone; approvals have exactly one decision.

use serde_json::json;
use test_case::test_case;

use super::{id, Answer, Crm};
use crate::support::{count, drained, Backend};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_manager_sees_their_team_but_no_one_else_and_an_admin_sees_everyone(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let manager = crm
        .register(Some(&admin), "manager@example.com", "MANAGER", None)
        .await;
    let member = crm
        .register(Some(&admin), "member@example.com", "USER", Some(&manager))
        .await;
    let outsider = crm
        .register(None, "outsider@example.com", "USER", None)
        .await;
    let stored_manager = crm
        .text("SELECT manager_id FROM users WHERE id = $1", &member.id)
        .await;
    assert_eq!(stored_manager.as_deref(), Some(manager.id.as_str()));
    let team_customer = id(&crm
        .created(&member.token, "/api/customers", json!({"name": "Team Co"}))
        .await);
    let outside_customer = id(&crm
        .created(
            &outsider.token,
            "/api/customers",
            json!({"name": "Outside Co"}),
        )
        .await);
    drained(&crm.db).await;

    let owners = |answer: &Answer| -> Vec<String> {
        let mut owners: Vec<String> = answer.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row["ownerId"]
                    .as_str()
                    .or(row["assigneeId"].as_str())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        owners.sort();
        owners.dedup();
        owners
    };
    let mut team = vec![manager.id.clone(), member.id.clone()];
    team.sort();
    for path in ["/api/customers", "/api/opportunities", "/api/tasks"] {
        let seen = crm.get(&manager.token, path).await;
        assert_eq!(owners(&seen), team, "manager's {path}: {}", seen.body);
        assert!(
            !seen.body.to_string().contains("Outside Co"),
            "{path}: {}",
            seen.body
        );
    }
    let customers = crm.get(&manager.token, "/api/customers").await;
    // Registration gave the manager and the member a customer each; the member made one more.
    assert_eq!(customers.total(), 3, "{}", customers.body);
    assert!(customers.ids().contains(&team_customer));

    let inside = crm
        .get(&manager.token, &format!("/api/customers/{team_customer}"))
        .await;
    assert_eq!(inside.status, 200, "{}", inside.body);
    let before = crm.dump(&["customers"]).await;
    let outside = crm
        .get(
            &manager.token,
            &format!("/api/customers/{outside_customer}"),
        )
        .await;
    assert_eq!(outside.outcome(), (404, "not_found"), "{}", outside.body);
    let change = crm
        .put(
            &manager.token,
            &format!("/api/customers/{outside_customer}"),
            json!({"ownerId": member.id}),
        )
        .await;
    assert_eq!(change.outcome(), (404, "not_found"), "{}", change.body);
    let poach = crm
        .post(
            &manager.token,
            "/api/customers",
            json!({"name": "For the outsider", "ownerId": outsider.id}),
        )
        .await;
    assert_eq!(poach.outcome(), (403, "forbidden"), "{}", poach.body);
    assert_eq!(crm.dump(&["customers"]).await, before);

    // A team member does not see their manager's records.
    let upward = crm.get(&member.token, "/api/customers").await;
    assert_eq!(
        owners(&upward),
        std::slice::from_ref(&member.id),
        "{}",
        upward.body
    );

    // The ADMIN sees every customer: one per registration (not the inserted ADMIN) and two more.
    let everything = crm.get(&admin.token, "/api/customers").await;
    assert_eq!(everything.total(), 5, "{}", everything.body);
    assert_eq!(
        everything.total(),
        count(&crm.db, "SELECT COUNT(*) FROM customers").await
    );
    let outside = crm
        .get(&admin.token, &format!("/api/customers/{outside_customer}"))
        .await;
    assert_eq!(outside.body["name"], "Outside Co", "{}", outside.body);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn approvals_refuse_self_decisions_second_decisions_and_stray_recalls(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let first = crm
        .register(Some(&admin), "m1@example.com", "MANAGER", None)
        .await;
    let second = crm
        .register(Some(&admin), "m2@example.com", "MANAGER", None)
        .await;
    let user = crm.register(None, "u@example.com", "USER", None).await;

    let own = id(&crm
        .created(
            &first.token,
            "/api/approvals",
            json!({"title": "My own raise"}),
        )
        .await);
    for action in ["approve", "reject"] {
        let answer = crm
            .post(
                &first.token,
                &format!("/api/approvals/{own}/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(
            answer.outcome(),
            (403, "forbidden"),
            "{action}: {}",
            answer.body
        );
    }
    let too_long = crm
        .post(
            &second.token,
            &format!("/api/approvals/{own}/approve"),
            json!({"comment": "x".repeat(2001)}),
        )
        .await;
    assert_eq!(
        too_long.outcome(),
        (400, "bad_request"),
        "{}",
        too_long.body
    );
    assert_eq!(too_long.fields(), ["comment"]);

    let approved = crm
        .post(
            &second.token,
            &format!("/api/approvals/{own}/approve"),
            json!({"comment": "fine"}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["status"], "APPROVED");
    assert_eq!(approved.body["approverId"], second.id.as_str());
    for (who, action) in [
        (&second, "approve"),
        (&admin, "reject"),
        (&admin, "approve"),
        (&first, "recall"),
    ] {
        let answer = crm
            .post(
                &who.token,
                &format!("/api/approvals/{own}/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(
            answer.outcome(),
            (409, "conflict"),
            "{action}: {}",
            answer.body
        );
    }

    // A manager may see a USER's request but only its requester may recall it.
    let users_request = id(&crm
        .created(&user.token, "/api/approvals", json!({"title": "Discount"}))
        .await);
    let stray = crm
        .post(
            &second.token,
            &format!("/api/approvals/{users_request}/recall"),
            json!({}),
        )
        .await;
    assert_eq!(stray.outcome(), (403, "forbidden"), "{}", stray.body);
    let recalled = crm
        .post(
            &user.token,
            &format!("/api/approvals/{users_request}/recall"),
            json!({}),
        )
        .await;
    assert_eq!(recalled.body["status"], "RECALLED", "{}", recalled.body);
    let late = crm
        .post(
            &admin.token,
            &format!("/api/approvals/{users_request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(late.outcome(), (409, "conflict"), "{}", late.body);

    let (status, approver): (String, Option<String>) =
        sqlx::query_as("SELECT status, approver_id FROM approvals WHERE id = $1")
            .bind(&own)
            .fetch_one(&crm.db)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), approver),
        ("APPROVED", Some(second.id.clone()))
    );
    let decisions: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_key, event_type FROM event_log WHERE event_type IN \
         ('APPROVAL_APPROVED', 'APPROVAL_REJECTED', 'APPROVAL_RECALLED') ORDER BY seq",
    )
    .fetch_all(&crm.db)
    .await
    .unwrap();
    assert_eq!(
        decisions,
        [
            (own, "APPROVAL_APPROVED".to_owned()),
            (users_request, "APPROVAL_RECALLED".to_owned())
        ]
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn concurrent_decisions_on_one_request_have_exactly_one_winner(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let manager = crm
        .register(Some(&admin), "manager@example.com", "MANAGER", None)
        .await;
    let user = crm.register(None, "u@example.com", "USER", None).await;

    for round in 0..6 {
        let request = id(&crm
            .created(
                &user.token,
                "/api/approvals",
                json!({"title": format!("Request {round}")}),
            )
            .await);
        // Two approvals, then approve against reject, then approve against the recall.
        let (first_path, second_path, second_token) = match round % 3 {
            0 => ("approve", "approve", &manager.token),
            1 => ("approve", "reject", &manager.token),
            _ => ("approve", "recall", &user.token),
        };
        let first_path = format!("/api/approvals/{request}/{first_path}");
        let second_path = format!("/api/approvals/{request}/{second_path}");
        let (first, second) = tokio::join!(
            crm.post(&admin.token, &first_path, json!({})),
            crm.post(second_token, &second_path, json!({})),
        );
        let mut statuses = [first.status, second.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: {} / {}",
            first.body,
            second.body
        );
        let winner = if first.status == 200 { &first } else { &second };
        let stored = crm
            .text("SELECT status FROM approvals WHERE id = $1", &request)
            .await;
        assert_eq!(stored.as_deref(), winner.body["status"].as_str());
        let decisions: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM event_log WHERE event_key = $1 AND event_type IN \
             ('APPROVAL_APPROVED', 'APPROVAL_REJECTED', 'APPROVAL_RECALLED')",
        )
        .bind(&request)
        .fetch_all(&crm.db)
        .await
        .unwrap();
        let expected = match winner.body["status"].as_str().unwrap() {
            "APPROVED" => "APPROVAL_APPROVED",
            "REJECTED" => "APPROVAL_REJECTED",
            _ => "APPROVAL_RECALLED",
        };
        assert_eq!(decisions, [expected], "round {round}");
    }
    drained(&crm.db).await;
    // One decision notification per decided request, never two.
    let approved = count(
        &crm.db,
        "SELECT COUNT(*) FROM approvals WHERE status = 'APPROVED'",
    )
    .await;
    assert_eq!(
        count(
            &crm.db,
            "SELECT COUNT(*) FROM notifications WHERE type = 'APPROVAL_APPROVED'"
        )
        .await,
        approved
    );
}
