//! The audit log at the original CRM's `/api/audit`: what is recorded, in the change's own
//! transaction, and who may read it.

use serde_json::{json, Value};
use test_case::test_case;

use super::{id, Crm};
use crate::support::Backend;

/// (action, resourceType) of each entry of a page, newest first.
fn entries(page: &Value) -> Vec<(String, String)> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {page}"))
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap().to_owned(),
                entry["resourceType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(action, resource)| (action.to_string(), resource.to_string()))
        .collect()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn logins_and_changes_are_audited_and_only_admins_and_compliance_read_them(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let seller = crm
        .register(None, "seller@example.com", "SALES", None)
        .await;
    let auditor = crm
        .register(Some(&admin), "auditor@example.com", "COMPLIANCE", None)
        .await;
    let customer = id(&crm
        .created(
            &seller.token,
            "/api/customers",
            json!({"name": "Acme", "riskTolerance": 3}),
        )
        .await);
    let renamed = crm
        .put(
            &seller.token,
            &format!("/api/customers/{customer}"),
            json!({"name": "Acme Holdings"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let approval = id(&crm
        .created(
            &seller.token,
            "/api/approvals",
            json!({"title": "Discount", "customerId": customer}),
        )
        .await);
    // Refused changes leave nothing behind.
    let own = crm
        .post(
            &seller.token,
            &format!("/api/approvals/{approval}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(own.status, 403, "{}", own.body);
    let decided = crm
        .put(
            &auditor.token,
            &format!("/api/approvals/{approval}"),
            json!({"status": "REJECTED", "comment": "too steep"}),
        )
        .await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    let demoted = crm
        .put(
            &admin.token,
            &format!("/api/auth/users/{}", seller.id),
            json!({"name": "Seller Renamed"}),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    assert_eq!(
        crm.post(&seller.token, "/api/auth/logout", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        crm.delete(&admin.token, &format!("/api/customers/{customer}"))
            .await
            .status,
        204
    );

    let log = crm.get(&auditor.token, "/api/audit?limit=100").await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(
        entries(&log.body),
        pairs(&[
            ("DELETE", "Customer"),
            ("LOGOUT", "User"),
            ("UPDATE", "User"),
            ("UPDATE", "ApprovalRequest"),
            ("CREATE", "ApprovalRequest"),
            ("UPDATE", "Customer"),
            ("CREATE", "Customer"),
            ("CREATE", "User"),
            ("CREATE", "User"),
            ("LOGIN", "User"),
        ]),
        "{}",
        log.body
    );
    let data = &log.body["data"];
    assert_eq!(data[0]["userId"], admin.id.as_str());
    assert_eq!(data[0]["user"]["name"], "Root");
    assert_eq!(data[0]["user"]["role"], "ADMIN");
    assert_eq!(data[0]["ipAddress"], "127.0.0.1");
    assert_eq!(data[1]["resourceId"], seller.id.as_str());
    assert_eq!(data[2]["changes"]["before"]["name"], "seller");
    assert_eq!(data[2]["changes"]["after"]["name"], "Seller Renamed");
    assert_eq!(data[3]["userId"], auditor.id.as_str());
    assert_eq!(
        data[3]["changes"],
        json!({"status": "REJECTED", "comment": "too steep"})
    );
    assert_eq!(data[5]["changes"]["before"]["name"], "Acme");
    assert_eq!(data[5]["changes"]["after"]["name"], "Acme Holdings");
    assert_eq!(data[6]["changes"]["new"]["riskTolerance"], 3);
    // A sign-up is the new user's own act; an ADMIN adding a user is the ADMIN's.
    assert_eq!(data[7]["userId"], admin.id.as_str());
    assert_eq!(data[7]["resourceId"], auditor.id.as_str());
    assert_eq!(data[8]["userId"], seller.id.as_str());

    // The frontend's filters and paging.
    let page = crm.get(&admin.token, "/api/audit?limit=4&page=2").await;
    assert_eq!(page.body["pagination"]["totalPages"], 3, "{}", page.body);
    assert_eq!(page.body["pagination"]["total"], 10);
    assert_eq!(entries(&page.body), entries(&log.body)[4..8].to_vec());
    let customers = crm.get(&admin.token, "/api/audit?entity=Customer").await;
    assert_eq!(customers.total(), 3, "{}", customers.body);
    let by_seller = crm
        .get(
            &admin.token,
            &format!("/api/audit?userId={}&action=CREATE", seller.id),
        )
        .await;
    assert_eq!(
        entries(&by_seller.body),
        pairs(&[
            ("CREATE", "ApprovalRequest"),
            ("CREATE", "Customer"),
            ("CREATE", "User")
        ]),
        "{}",
        by_seller.body
    );
    let tomorrow = (chrono::Utc::now() + chrono::Days::new(1)).format("%Y-%m-%d");
    let later = crm
        .get(&admin.token, &format!("/api/audit?startDate={tomorrow}"))
        .await;
    assert_eq!(later.total(), 0, "{}", later.body);
    let bad = crm.get(&admin.token, "/api/audit?endDate=soon").await;
    assert_eq!(bad.outcome(), (400, "bad_request"));
    assert_eq!(bad.fields(), ["endDate"]);
    let one = crm
        .get(
            &admin.token,
            &format!("/api/audit/{}", data[3]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(one.body["data"], data[3], "{}", one.body);

    // Nobody else reads it: not the other roles, not without a token.
    let manager = crm
        .register(Some(&admin), "boss@example.com", "MANAGER", None)
        .await;
    let user = crm.register(None, "user@example.com", "USER", None).await;
    let sales = crm.login(&seller.email, super::PASSWORD).await;
    let sales = sales.body["token"].as_str().unwrap().to_owned();
    let entry = format!("/api/audit/{}", data[0]["id"].as_str().unwrap());
    for token in [&manager.token, &user.token, &sales] {
        for path in ["/api/audit", entry.as_str()] {
            let refused = crm.get(token, path).await;
            assert_eq!(
                refused.outcome(),
                (403, "forbidden"),
                "{path}: {}",
                refused.body
            );
        }
    }
    for path in ["/api/audit", entry.as_str()] {
        let anonymous = crm.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(anonymous.outcome(), (401, "unauthorized"), "{path}");
    }
}

/// An entry commits with its change or not at all: a change that fails after its entry was
/// written (here its event is refused by a trigger) leaves neither.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_entry_rolls_back_with_a_change_that_fails(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let customer = id(&crm
        .created(&admin.token, "/api/customers", json!({"name": "Before"}))
        .await);
    let refusal: &[&str] = match backend {
        Backend::Sqlite => &["CREATE TRIGGER refuse_updates BEFORE INSERT ON event_log \
             WHEN NEW.event_type = 'CUSTOMER_UPDATED' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_updates() RETURNS trigger AS $$ BEGIN \
             IF NEW.event_type = 'CUSTOMER_UPDATED' THEN RAISE EXCEPTION 'refused by the test'; \
             END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_updates BEFORE INSERT ON event_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_updates()",
        ],
    };
    for statement in refusal {
        sqlx::query(statement).execute(&crm.db).await.unwrap();
    }
    let failed = crm
        .put(
            &admin.token,
            &format!("/api/customers/{customer}"),
            json!({"name": "After"}),
        )
        .await;
    assert_eq!(failed.outcome(), (500, "internal"), "{}", failed.body);
    let name: String = sqlx::query_scalar(&format!(
        "SELECT name FROM customers WHERE id = '{customer}'"
    ))
    .fetch_one(&crm.db)
    .await
    .unwrap();
    assert_eq!(name, "Before");
    let log = crm
        .get(&admin.token, &format!("/api/audit?resourceId={customer}"))
        .await;
    assert_eq!(
        entries(&log.body),
        pairs(&[("CREATE", "Customer")]),
        "{}",
        log.body
    );
}
