//! SIGKILL at random moments while 5,000 REST writes flow through the bundled cascade (customer →
//! first-contact task + opportunity + analytics counts), at least 20 kills, restarting each time.
//! At the end every accepted write has its row and its event, every event's effects exist
//! exactly once, and nothing is left pending.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use crate::crm_flows::{create_user_with_cli, Client};
use test_case::test_case;

use crate::support::{count, drained, Backend, Project};

const WRITES: usize = 5_000;
const KILLS: usize = 20;
const CONCURRENCY: usize = 8;

/// `CRM_ROUTER_SOAK=N` multiplies the writes and the kills by N (see docs/delivery.md, "Reliability").
fn soak_factor() -> usize {
    std::env::var("CRM_ROUTER_SOAK")
        .ok()
        .and_then(|factor| factor.parse().ok())
        .unwrap_or(1)
}

/// Posts customers `first..` until `stop` writes were started; returns the ids of those that
/// answered 201. Requests cut off by a kill simply fail.
async fn post_customers(base: &str, token: &str, first: usize, writes: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut posts = JoinSet::new();
    let mut accepted = Vec::new();
    for n in first..first + writes {
        let request = client
            .post(format!("{base}/api/customers"))
            .bearer_auth(token)
            .json(&json!({"name": format!("Crash Co {n}"), "industry": "Testing"}));
        posts.spawn(async move {
            let response = request.send().await.ok()?;
            if response.status().as_u16() != 201 {
                return None;
            }
            let body: serde_json::Value = response.json().await.ok()?;
            body["id"].as_str().map(str::to_owned)
        });
        if posts.len() >= CONCURRENCY {
            if let Some(Ok(Some(id))) = posts.join_next().await {
                accepted.push(id);
            }
        }
    }
    while let Some(result) = posts.join_next().await {
        if let Ok(Some(id)) = result {
            accepted.push(id);
        }
    }
    accepted
}

async fn sigkill_through_the_cascade(project: Project) {
    create_user_with_cli(&project, "writer@example.com", "Writer", "USER");
    let (writes, kills_wanted) = (WRITES * soak_factor(), KILLS * soak_factor());
    let mut accepted: HashSet<String> = HashSet::new();
    let mut kills = 0;
    let mut next = 0;
    let mut token = None;
    while accepted.len() < writes || kills < kills_wanted {
        let mut daemon = project.start();
        if token.is_none() {
            let login = Client::anonymous(&daemon)
                .login("writer@example.com", "Password123!")
                .await;
            assert_eq!(login.status, 200, "{}", login.body);
            token = Some(login.body["token"].as_str().unwrap().to_owned());
        }
        let token = token.clone().unwrap();
        // A round of writes, cut short by a SIGKILL at a random moment while they and the
        // cascade behind them are in flight.
        let round = 150 + fastrand::usize(..200);
        let writes = tokio::spawn({
            let base = daemon.base.clone();
            let token = token.clone();
            async move { post_customers(&base, &token, next, round).await }
        });
        tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(..400))).await;
        daemon.kill();
        kills += 1;
        accepted.extend(writes.await.unwrap());
        next += round;
    }
    // A last daemon finishes whatever the kills interrupted.
    let daemon = project.start();
    let db = project.database().await;
    drained(&db).await;
    let customers = count(&db, "SELECT COUNT(*) FROM customers").await;
    // Writes that committed just before a kill may have lost their answer, never the reverse.
    assert!(
        customers >= accepted.len() as i64,
        "{customers} < {}",
        accepted.len()
    );
    for id in &accepted {
        let events = count(
            &db,
            &format!("SELECT COUNT(*) FROM event_log WHERE event_type = 'CUSTOMER_CREATED' AND event_key = '{id}'"),
        )
        .await;
        assert_eq!(
            events, 1,
            "accepted customer {id} has {events} CUSTOMER_CREATED events"
        );
    }
    let problem = format!("after {kills} kills\n{}", daemon.log());
    for (sql, what) in [
        ("SELECT COUNT(*) FROM event_log WHERE event_type = 'CUSTOMER_CREATED'", "customer events"),
        ("SELECT COUNT(*) FROM tasks", "first-contact tasks"),
        ("SELECT COUNT(DISTINCT customer_id) FROM tasks", "customers with a task"),
        ("SELECT COUNT(*) FROM opportunities", "opportunities"),
        ("SELECT COUNT(*) FROM event_log WHERE event_type = 'TASK_CREATED'", "task events"),
        ("SELECT COUNT(*) FROM event_log WHERE event_type = 'OPPORTUNITY_CREATED'", "opportunity events"),
        (
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'CUSTOMER_CREATED'",
            "counted customer events",
        ),
        (
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'TASK_CREATED'",
            "counted task events",
        ),
        (
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'OPPORTUNITY_CREATED'",
            "counted opportunity events",
        ),
    ] {
        assert_eq!(count(&db, sql).await, customers, "{what} {problem}");
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM dead_letters").await,
        0,
        "{problem}"
    );
    assert!(kills >= kills_wanted && accepted.len() >= writes);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sigkill_mid_cascade_loses_nothing_and_doubles_nothing(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    sigkill_through_the_cascade(project).await;
}
