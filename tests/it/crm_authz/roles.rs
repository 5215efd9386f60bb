//! The original CRM's roles: SALES signs up like USER; COMPLIANCE, given by an ADMIN, reads
//! everything and decides approvals but changes no record.

use serde_json::json;
use test_case::test_case;

use super::{id, Crm};
use crate::support::{drained, eventually, Backend};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sales_signs_up_like_user_and_only_an_admin_gives_compliance(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    // The original frontend's register page sends `role: SALES`.
    let sales = crm.register(None, "rep@example.com", "SALES", None).await;
    // The bundled route still makes their customer from USER_CREATED with role SALES.
    let customers = eventually(
        std::time::Duration::from_secs(10),
        "the SALES user's customer",
        || async {
            let answer = crm.get(&sales.token, "/api/customers").await;
            (answer.total() == 1).then_some(answer)
        },
    )
    .await;
    assert_eq!(customers.body["data"][0]["email"], "rep@example.com");
    let me = crm.get(&sales.token, "/api/auth/me").await;
    assert_eq!(me.body["data"]["role"], "SALES");

    for role in ["COMPLIANCE", "MANAGER", "ADMIN"] {
        let body = json!({"email": format!("{role}@example.com"), "password": "long enough pw", "name": role, "role": role});
        let refused = crm
            .call(
                reqwest::Method::POST,
                "/api/auth/register",
                None,
                Some(&body),
            )
            .await;
        assert_eq!(
            refused.outcome(),
            (403, "forbidden"),
            "{role}: {}",
            refused.body
        );
    }
    let admin = crm.admin().await;
    crm.register(Some(&admin), "auditor@example.com", "COMPLIANCE", None)
        .await;
    let unknown = crm
        .call(
            reqwest::Method::POST,
            "/api/auth/register",
            None,
            Some(&json!({"email": "x@example.com", "password": "long enough pw", "name": "X", "role": "AUDITOR"})),
        )
        .await;
    assert_eq!(unknown.outcome(), (400, "bad_request"), "{}", unknown.body);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn compliance_reads_everything_decides_approvals_and_changes_nothing(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let auditor = crm
        .register(Some(&admin), "auditor@example.com", "COMPLIANCE", None)
        .await;
    let sales = crm.register(None, "rep@example.com", "SALES", None).await;
    let other = crm.register(None, "other@example.com", "SALES", None).await;
    let customer = id(&crm
        .created(
            &sales.token,
            "/api/customers",
            json!({"name": "Watched Co"}),
        )
        .await);
    let task = id(&crm
        .created(
            &sales.token,
            "/api/tasks",
            json!({"title": "Call", "customerId": customer}),
        )
        .await);
    drained(&crm.db).await;
    let opportunity = crm
        .get(
            &sales.token,
            &format!("/api/opportunities?customerId={customer}"),
        )
        .await
        .ids()[0]
        .clone();
    let approval = id(&crm
        .created(
            &sales.token,
            "/api/approvals",
            json!({"title": "Discount", "opportunityId": opportunity}),
        )
        .await);

    // Reads: every record, whoever owns it.
    let customers = crm.get(&auditor.token, "/api/customers").await;
    assert!(customers.ids().contains(&customer), "{}", customers.body);
    assert_eq!(
        crm.get(&auditor.token, &format!("/api/tasks/{task}"))
            .await
            .status,
        200
    );
    assert!(crm
        .get(&auditor.token, "/api/approvals")
        .await
        .ids()
        .contains(&approval));
    // Another salesperson sees none of it.
    assert_eq!(
        crm.get(&other.token, &format!("/api/customers/{customer}"))
            .await
            .outcome(),
        (404, "not_found")
    );

    // Writes: refused, and nothing changes (once the request's notifications are written).
    drained(&crm.db).await;
    let before = crm.dump(super::CRM_TABLES).await;
    let refusals = [
        crm.post(
            &auditor.token,
            "/api/customers",
            json!({"name": "Mine now"}),
        )
        .await,
        crm.put(
            &auditor.token,
            &format!("/api/customers/{customer}"),
            json!({"name": "Renamed"}),
        )
        .await,
        crm.delete(&auditor.token, &format!("/api/customers/{customer}"))
            .await,
        crm.post(&auditor.token, "/api/tasks", json!({"title": "Audit"}))
            .await,
        crm.put(
            &auditor.token,
            &format!("/api/tasks/{task}"),
            json!({"status": "COMPLETED"}),
        )
        .await,
        crm.delete(&auditor.token, &format!("/api/tasks/{task}"))
            .await,
        crm.post(
            &auditor.token,
            "/api/opportunities",
            json!({"customerId": customer, "name": "Side deal"}),
        )
        .await,
        crm.post(&auditor.token, "/api/approvals", json!({"title": "Mine"}))
            .await,
    ];
    for refused in &refusals {
        assert_eq!(refused.outcome(), (403, "forbidden"), "{}", refused.body);
        assert!(refused.message().contains("COMPLIANCE"), "{}", refused.body);
    }
    assert_eq!(
        crm.dump(super::CRM_TABLES).await,
        before,
        "a refused write changed data"
    );

    // Deciding: COMPLIANCE is notified of the request and may decide it; SALES may not.
    let notified = eventually(
        std::time::Duration::from_secs(10),
        "the auditor's notification",
        || async {
            let answer = crm.get(&auditor.token, "/api/notifications").await;
            (answer.total() == 1).then_some(answer)
        },
    )
    .await;
    assert_eq!(notified.body["data"][0]["type"], "APPROVAL_REQUEST");
    let by_sales = crm
        .post(
            &other.token,
            &format!("/api/approvals/{approval}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(by_sales.outcome(), (403, "forbidden"), "{}", by_sales.body);
    let decided = crm
        .put(
            &auditor.token,
            &format!("/api/approvals/{approval}"),
            json!({"status": "APPROVED", "comment": "compliant"}),
        )
        .await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert_eq!(decided.body["data"]["approverId"], auditor.id.as_str());
}
