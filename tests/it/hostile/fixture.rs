//! The accounts and records the table points at, made through the API as a user would (the
//! first ADMIN with the CLI), and a token checked to prove the test signs tokens as the daemon
//! does.

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::AnyPool;

use super::send::send;
use super::{tokens, Auth, Body, Request, JWT_SECRET, PASSWORD};
use crate::crm_flows::create_user_with_cli;
use crate::support::{drained, Daemon, Project};

/// A user of the fixture and their token.
pub(super) struct Account {
    pub(super) id: String,
    pub(super) email: String,
    pub(super) token: String,
}

impl Account {
    pub(super) fn auth(&self) -> Auth {
        Auth::Bearer(self.token.clone())
    }
}

/// The accounts and records the table points at. B's records are out of A's reach; A's own are
/// the targets of bad updates; `gone` was deleted after it logged in.
pub(super) struct Fixture {
    pub(super) admin: Account,
    pub(super) manager: Account,
    pub(super) a: Account,
    pub(super) b: Account,
    pub(super) gone: Account,
    pub(super) a_customer: String,
    pub(super) a_task: String,
    pub(super) b_customer: String,
    pub(super) b_task: String,
    pub(super) b_opportunity: String,
    pub(super) b_approval: String,
    pub(super) admin_approval: String,
    pub(super) manager_notification: String,
}

/// The API as the fixture uses it: plain JSON requests that must succeed.
struct Api<'a> {
    http: reqwest::Client,
    base: &'a str,
}

impl Api<'_> {
    /// POSTs JSON, with a token when given; returns the status and body.
    async fn post(&self, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let request = Request {
            method: Method::POST,
            path: path.to_owned(),
            auth: token.map_or(Auth::Anonymous, |token| Auth::Bearer(token.to_owned())),
            body: Body::Json(body),
        };
        let answer = send(&self.http, self.base, &request).await;
        (answer.status, answer.body)
    }

    /// POSTs as `by` and insists on 201; returns the new record's id.
    async fn created(&self, by: &Account, path: &str, body: Value) -> String {
        let (status, body) = self.post(Some(&by.token), path, body).await;
        assert_eq!(status, 201, "POST {path}: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Registers a user (with `by`'s token when given) and insists on 201.
    async fn register(&self, by: Option<&Account>, email: &str, role: &str) -> Account {
        let body = json!({"email": email, "password": PASSWORD, "name": email, "role": role});
        let token = by.map(|account| account.token.as_str());
        let (status, body) = self.post(token, "/api/auth/register", body).await;
        assert_eq!(status, 201, "register {email}: {body}");
        Account {
            id: body["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Logs in and insists on 200.
    async fn login(&self, email: &str) -> Account {
        let credentials = json!({"email": email, "password": PASSWORD});
        let (status, body) = self.post(None, "/api/auth/login", credentials).await;
        assert_eq!(status, 200, "login {email}: {body}");
        Account {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }
}

pub(super) async fn fixture(project: &Project, daemon: &Daemon, db: &AnyPool) -> Fixture {
    let api = Api {
        http: reqwest::Client::new(),
        base: &daemon.base,
    };
    create_user_with_cli(project, "root@example.com", "Root", "ADMIN");
    let admin = api.login("root@example.com").await;
    let manager = api
        .register(Some(&admin), "manager@example.com", "MANAGER")
        .await;
    let a = api.register(None, "a@example.com", "USER").await;
    let b = api.register(None, "b@example.com", "USER").await;
    let gone = api.register(None, "gone@example.com", "USER").await;

    // No due dates: the scheduled due-soon route never touches these tasks while the table runs.
    let a_customer = api
        .created(&a, "/api/customers", json!({"name": "A Corp"}))
        .await;
    let a_task = api
        .created(&a, "/api/tasks", json!({"title": "A's task"}))
        .await;
    let b_customer = api
        .created(&b, "/api/customers", json!({"name": "B Corp"}))
        .await;
    let b_task = json!({"title": "B's task", "customerId": b_customer});
    let b_task = api.created(&b, "/api/tasks", b_task).await;
    let b_opportunity = json!({"customerId": b_customer, "name": "B's deal", "amount": 1000});
    let b_opportunity = api.created(&b, "/api/opportunities", b_opportunity).await;
    let b_approval = api
        .created(&b, "/api/approvals", json!({"title": "B asks"}))
        .await;
    let admin_approval = api
        .created(&admin, "/api/approvals", json!({"title": "Root asks"}))
        .await;
    drained(db).await;
    let manager_notification: String =
        sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = $1 ORDER BY id LIMIT 1")
            .bind(&manager.id)
            .fetch_one(db)
            .await
            .expect("the approval requests notified the manager");
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&gone.id)
        .execute(db)
        .await
        .unwrap();

    // The hand-made tokens of the table prove something only if a hand-made token with good
    // claims and our secret gets in.
    let control = tokens::signed(
        &tokens::hs256(),
        &tokens::claims(&a.id, &a.email, "USER"),
        JWT_SECRET.as_bytes(),
        jsonwebtoken::Algorithm::HS256,
    );
    let me = Request {
        method: Method::GET,
        path: "/api/auth/me".into(),
        auth: Auth::Bearer(control),
        body: Body::Empty,
    };
    let me = send(&api.http, api.base, &me).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["id"], a.id.as_str(), "{}", me.text);

    Fixture {
        admin,
        manager,
        a,
        b,
        gone,
        a_customer,
        a_task,
        b_customer,
        b_task,
        b_opportunity,
        b_approval,
        admin_approval,
        manager_notification,
    }
}
