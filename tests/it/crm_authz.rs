//! Adversarial tests of the CRM REST layer: who may see and change what, and what hostile
//! input does. The real binary on each database backend; users are registered over HTTP, and the
//! first ADMIN is a row written straight into `users` with a hash from the library, as an
//! operator would bootstrap one.

use std::sync::OnceLock;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::AnyPool;

use crate::support::{Backend, Daemon, Project};

mod administration;
mod audit;
mod authentication;
mod input;
mod ownership;
mod reports;
mod roles;
mod teams;

const PASSWORD: &str = "correct horse battery staple";

/// One Argon2 hash of [`PASSWORD`] for every bootstrapped ADMIN (hashing is slow).
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crm_router::auth::password::hash(PASSWORD).unwrap())
}

/// A response: status, headers and the body, as JSON (`Null` when it is not JSON) and as text.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// The `field`s of `error.fields`.
    fn fields(&self) -> Vec<String> {
        self.body["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|field| field["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn total(&self) -> i64 {
        self.headers
            .get("x-total-count")
            .unwrap_or_else(|| panic!("no X-Total-Count: {}", self.body))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The `id` of every row of a list.
    fn ids(&self) -> Vec<String> {
        self.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", self.body))
            .iter()
            .map(|row| row["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `status` and the error's `code`, for one-line comparisons.
    fn outcome(&self) -> (u16, &str) {
        (self.status, self.code())
    }
}

/// A signed-in user.
struct User {
    id: String,
    email: String,
    token: String,
}

fn id(row: &Value) -> String {
    row["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {row}"))
        .to_owned()
}

/// A daemon with the bundled routes, its database, and an HTTP client that sends no API key.
struct Crm {
    daemon: Daemon,
    db: AnyPool,
    http: reqwest::Client,
    _project: Project,
}

impl Crm {
    /// `None` (skip) when PostgreSQL is not reachable outside CI.
    async fn start(backend: Backend) -> Option<Self> {
        let project = Project::bundled_on(backend)?;
        let daemon = project.start();
        let db = project.database().await;
        Some(Self {
            daemon,
            db,
            http: reqwest::Client::new(),
            _project: project,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.daemon.base))
    }

    async fn answer(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::answer(request).await
    }

    async fn get(&self, token: &str, path: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(&body))
            .await
    }

    async fn put(&self, token: &str, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(token), Some(&body)).await
    }

    async fn delete(&self, token: &str, path: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// POSTs and insists on 201; returns the created row.
    async fn created(&self, token: &str, path: &str, body: Value) -> Value {
        let answer = self.post(token, path, body).await;
        assert_eq!(answer.status, 201, "POST {path}: {}", answer.body);
        answer.body
    }

    /// Writes an ADMIN straight into `users` and logs in as them.
    async fn admin(&self) -> User {
        let hash = tokio::task::spawn_blocking(password_hash).await.unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let email = "root@example.com";
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, name, role, manager_id, created_at, updated_at) \
             VALUES ($1, $2, $3, 'Root', 'ADMIN', NULL, $4, $5)",
        )
        .bind(&id)
        .bind(email)
        .bind(hash)
        .bind(&now)
        .bind(&now)
        .execute(&self.db)
        .await
        .unwrap();
        let login = self.login(email, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.body);
        assert_eq!(login.body["user"]["role"], "ADMIN", "{}", login.body);
        assert_eq!(login.body["user"]["id"], id.as_str());
        User {
            id,
            email: email.into(),
            token: login.body["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn login(&self, email: &str, password: &str) -> Answer {
        let body = json!({"email": email, "password": password});
        self.call(Method::POST, "/api/auth/login", None, Some(&body))
            .await
    }

    /// Registers a user over HTTP (with `by`'s token when given) and insists on 201.
    async fn register(
        &self,
        by: Option<&User>,
        email: &str,
        role: &str,
        manager: Option<&User>,
    ) -> User {
        let mut body = json!({"email": email, "password": PASSWORD, "name": email.split('@').next().unwrap(), "role": role});
        if let Some(manager) = manager {
            body["managerId"] = json!(manager.id);
        }
        let answer = self
            .call(
                Method::POST,
                "/api/auth/register",
                by.map(|user| user.token.as_str()),
                Some(&body),
            )
            .await;
        assert_eq!(answer.status, 201, "register {email}: {}", answer.body);
        assert_eq!(answer.body["role"], role, "{}", answer.body);
        User {
            id: id(&answer.body),
            email: answer.body["email"].as_str().unwrap().to_owned(),
            token: answer.body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A notification for `user`, written as a route would write it.
    async fn notify(&self, user: &User, title: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO notifications (id, user_id, type, title, message, read, created_at) \
             VALUES ($1, $2, 'TASK_DUE_SOON', $3, 'private', 0, $4)",
        )
        .bind(&id)
        .bind(&user.id)
        .bind(title)
        .bind(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .execute(&self.db)
        .await
        .unwrap();
        id
    }

    /// The rows of `tables` as JSON text, for "nothing changed" comparisons.
    async fn dump(&self, tables: &[&str]) -> String {
        let mut dump = String::new();
        for table in tables {
            let rows = crate::support::table_rows(&self.db, table).await;
            dump.push_str(&format!("{table}: {rows}\n"));
        }
        dump
    }

    /// One text value of a query with one parameter.
    async fn text(&self, sql: &str, parameter: &str) -> Option<String> {
        sqlx::query_scalar(sql)
            .bind(parameter)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

const CRM_TABLES: &[&str] = &[
    "customers",
    "tasks",
    "opportunities",
    "approvals",
    "notifications",
];
