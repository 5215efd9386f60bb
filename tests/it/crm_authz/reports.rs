//! The original CRM's reports at `/api/reports`: totals, meetings per salesperson, task trends
//! and CSV exports, computed from the tables and limited to what the caller may see.

use serde_json::{json, Value};
use test_case::test_case;

use super::{id, Crm, User};
use crate::support::{drained, Backend};

fn days_ago(days: u64) -> String {
    (chrono::Utc::now() - chrono::Days::new(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `salesId → meetingCount` of a sales-metrics answer, in its order.
fn meeting_counts(answer: &Value) -> Vec<(String, i64)> {
    answer["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {answer}"))
        .iter()
        .map(|row| {
            (
                row["salesId"].as_str().unwrap().to_owned(),
                row["meetingCount"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn meeting(crm: &Crm, user: &User, customer: &str) {
    crm.created(
        &user.token,
        "/api/meetings",
        json!({"customerId": customer, "date": days_ago(1), "summary": "Review"}),
    )
    .await;
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn reports_count_what_the_caller_may_see(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let manager = crm
        .register(Some(&admin), "manager@example.com", "MANAGER", None)
        .await;
    let member = crm
        .register(Some(&admin), "member@example.com", "SALES", Some(&manager))
        .await;
    let seller = crm
        .register(None, "seller@example.com", "SALES", None)
        .await;
    // Each sign-up's customer and its first-contact task (due in three days) come from routes.
    drained(&crm.db).await;
    let tricky = id(&crm
        .created(
            &seller.token,
            "/api/customers",
            json!({"name": "=HYPERLINK(\"http://evil\")", "email": "a@example.com", "riskTolerance": 4}),
        )
        .await);
    crm.created(
        &seller.token,
        "/api/customers",
        json!({"name": "Doe, \"Jane\"\n2nd line"}),
    )
    .await;
    let late = id(&crm
        .created(
            &seller.token,
            "/api/tasks",
            json!({"title": "Late", "dueDate": days_ago(2)}),
        )
        .await);
    let done = crm
        .call(
            reqwest::Method::PATCH,
            &format!("/api/tasks/{late}/complete"),
            Some(&seller.token),
            None,
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    crm.created(
        &seller.token,
        "/api/tasks",
        json!({"title": "Later", "dueDate": days_ago(1)}),
    )
    .await;
    let first = id(&crm
        .created(
            &seller.token,
            "/api/approvals",
            json!({"title": "A", "customerId": tricky}),
        )
        .await);
    crm.created(&seller.token, "/api/approvals", json!({"title": "B"}))
        .await;
    let approved = crm
        .post(
            &admin.token,
            &format!("/api/approvals/{first}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    meeting(&crm, &seller, &tricky).await;
    let member_customer = crm.get(&member.token, "/api/customers").await.ids()[0].clone();
    meeting(&crm, &member, &member_customer).await;
    meeting(&crm, &member, &member_customer).await;
    drained(&crm.db).await;

    // The seller: their sign-up customer and two more; three first-contact tasks, two of
    // their own (one completed, one overdue) and the contract task of the approved request.
    let dashboard = crm.get(&seller.token, "/api/reports/dashboard").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert_eq!(
        dashboard.body["data"],
        json!({
            "customers": {"total": 3},
            "meetings": {"total": 1},
            "tasks": {"total": 6, "completed": 1, "pending": 5, "overdue": 1, "completionRate": 17},
            "approvals": {"total": 2, "pending": 1, "approved": 1, "rejected": 0, "approvalRate": 100},
        }),
        "{}",
        dashboard.body
    );
    let team = crm.get(&manager.token, "/api/reports/dashboard").await;
    assert_eq!(team.body["data"]["customers"]["total"], 2, "{}", team.body);
    assert_eq!(team.body["data"]["meetings"]["total"], 2);
    let everything = crm.get(&admin.token, "/api/reports/dashboard").await;
    assert_eq!(
        everything.body["data"]["customers"]["total"], 5,
        "{}",
        everything.body
    );

    let metrics = crm.get(&admin.token, "/api/reports/sales-metrics").await;
    assert_eq!(
        meeting_counts(&metrics.body),
        [(member.id.clone(), 2), (seller.id.clone(), 1)],
        "{}",
        metrics.body
    );
    assert_eq!(metrics.body["data"][0]["salesName"], "member");
    assert_eq!(metrics.body["data"][0]["salesEmail"], "member@example.com");
    let own = crm.get(&seller.token, "/api/reports/sales-metrics").await;
    assert_eq!(meeting_counts(&own.body), [(seller.id.clone(), 1)]);
    let before = crm
        .get(
            &admin.token,
            &format!("/api/reports/sales-metrics?endDate={}", days_ago(3)),
        )
        .await;
    assert_eq!(meeting_counts(&before.body), []);

    let trends = crm
        .get(&seller.token, "/api/reports/task-trends?days=7")
        .await;
    assert_eq!(trends.status, 200, "{}", trends.body);
    let days = trends.body["data"].as_array().unwrap();
    assert_eq!(days.len(), 8, "{}", trends.body);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        days[7],
        json!({"date": today, "created": 6, "completed": 1})
    );
    assert!(days[..7]
        .iter()
        .all(|day| day["created"] == 0 && day["completed"] == 0));
    assert_eq!(trends.body["dateRange"]["days"], 7);
    for bad in ["0", "367", "week"] {
        let refused = crm
            .get(
                &seller.token,
                &format!("/api/reports/task-trends?days={bad}"),
            )
            .await;
        assert_eq!(refused.outcome(), (400, "bad_request"), "days={bad}");
        assert_eq!(refused.fields(), ["days"]);
    }

    let export = crm
        .get(&seller.token, "/api/reports/export/customers")
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(
        export.headers["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    assert!(export.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"customers_"));
    let text = export
        .text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "ID",
            "名前",
            "メール",
            "電話",
            "住所",
            "投資プロファイル",
            "リスク許容度",
            "投資経験",
            "担当営業",
            "作成日"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let names: Vec<&str> = rows.iter().map(|row| &row[1]).collect();
    assert_eq!(
        names,
        [
            "seller",
            "'=HYPERLINK(\"http://evil\")",
            "Doe, \"Jane\"\n2nd line"
        ],
        "{text}"
    );
    assert_eq!(&rows[1][6], "4");
    assert_eq!(&rows[1][8], "seller");
    for kind in ["meetings", "tasks", "approvals"] {
        let export = crm
            .get(&seller.token, &format!("/api/reports/export/{kind}"))
            .await;
        assert_eq!(export.status, 200, "{kind}: {}", export.text);
    }
    let approvals = crm
        .get(&seller.token, "/api/reports/export/approvals")
        .await;
    let mut reader = csv::Reader::from_reader(&approvals.text.as_bytes()[3..]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{}", approvals.text);
    assert_eq!(
        (&rows[0][2], &rows[0][4], &rows[0][6]),
        ("A", "APPROVED", "Root")
    );
    let unknown = crm.get(&seller.token, "/api/reports/export/users").await;
    assert_eq!(unknown.outcome(), (400, "bad_request"));
    assert_eq!(unknown.fields(), ["type"]);
}
