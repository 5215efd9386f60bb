//! Tokens, registration, login and the operator endpoints.

use crm_router::auth::token::TOKEN_LIFETIME_SECONDS;
use crm_router::auth::{Role, TokenKeys};
use reqwest::Method;
use serde_json::{json, Value};
use test_case::test_case;

use super::{id, Crm, CRM_TABLES, PASSWORD};
use crate::support::{count, drained, Backend};

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn every_endpoint_answers_401_without_a_valid_token(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let victim = crm.register(None, "victim@example.com", "USER", None).await;
    let customer = id(&crm
        .created(&victim.token, "/api/customers", json!({"name": "Acme"}))
        .await);
    let task = id(&crm
        .created(
            &victim.token,
            "/api/tasks",
            json!({"title": "Call Acme", "customerId": customer}),
        )
        .await);
    let opportunity = id(&crm
        .created(
            &victim.token,
            "/api/opportunities",
            json!({"customerId": customer, "name": "Acme deal"}),
        )
        .await);
    let approval = id(&crm
        .created(
            &victim.token,
            "/api/approvals",
            json!({"title": "Discount"}),
        )
        .await);
    let notification = crm.notify(&victim, "for the victim only").await;
    drained(&crm.db).await;

    // Real ids everywhere: the 401 must come before any lookup.
    let endpoints: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/auth/me".into(), None),
        (Method::GET, "/api/customers".into(), None),
        (
            Method::POST,
            "/api/customers".into(),
            Some(json!({"name": "Intruder Inc"})),
        ),
        (Method::GET, format!("/api/customers/{customer}"), None),
        (
            Method::PUT,
            format!("/api/customers/{customer}"),
            Some(json!({"name": "Hijacked"})),
        ),
        (Method::DELETE, format!("/api/customers/{customer}"), None),
        (Method::GET, "/api/tasks".into(), None),
        (
            Method::POST,
            "/api/tasks".into(),
            Some(json!({"title": "Intruder task"})),
        ),
        (Method::GET, format!("/api/tasks/{task}"), None),
        (
            Method::PUT,
            format!("/api/tasks/{task}"),
            Some(json!({"status": "COMPLETED"})),
        ),
        (Method::DELETE, format!("/api/tasks/{task}"), None),
        (Method::GET, "/api/opportunities".into(), None),
        (
            Method::POST,
            "/api/opportunities".into(),
            Some(json!({"customerId": customer, "name": "Intruder deal"})),
        ),
        (
            Method::GET,
            format!("/api/opportunities/{opportunity}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/opportunities/{opportunity}"),
            Some(json!({"stage": "LOST"})),
        ),
        (Method::GET, "/api/approvals".into(), None),
        (
            Method::POST,
            "/api/approvals".into(),
            Some(json!({"title": "Intruder request"})),
        ),
        (
            Method::POST,
            format!("/api/approvals/{approval}/approve"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/approvals/{approval}/reject"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/approvals/{approval}/recall"),
            None,
        ),
        (Method::GET, "/api/notifications".into(), None),
        (
            Method::POST,
            format!("/api/notifications/{notification}/read"),
            None,
        ),
        (Method::POST, "/api/notifications/read-all".into(), None),
        (Method::GET, "/api/analytics/summary".into(), None),
        // The operator endpoints take an ADMIN's token instead of the API key.
        (Method::GET, "/api/routes".into(), None),
        (Method::POST, "/api/routes/reload".into(), None),
        (
            Method::POST,
            "/api/events/user.events".into(),
            Some(json!({"eventType": "INTRUDER", "data": {}})),
        ),
    ];

    let secret = crm
        .text("SELECT value FROM settings WHERE name = $1", "jwt_secret")
        .await
        .expect("the generated signing secret is stored");
    let ours = TokenKeys::new(secret.as_bytes());
    let now = chrono::Utc::now().timestamp();
    let expired = ours.issue(
        &victim.id,
        &victim.email,
        Role::User,
        0,
        now - 2 * TOKEN_LIFETIME_SECONDS,
    );
    let foreign = TokenKeys::new(b"some other 32-byte secret.......").issue(
        &admin.id,
        &admin.email,
        Role::Admin,
        0,
        now,
    );
    let admin_claims = foreign.split('.').nth(1).unwrap();
    let victim_parts: Vec<&str> = victim.token.split('.').collect();
    // {"alg":"none","typ":"JWT"}
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{admin_claims}.");
    let tampered = format!("{}.{admin_claims}.{}", victim_parts[0], victim_parts[2]);
    let credentials: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("an empty bearer token", Some("Bearer ".into())),
        (
            "the Basic scheme",
            Some("Basic cm9vdDpwYXNzd29yZA==".into()),
        ),
        ("a token without a scheme", Some(victim.token.clone())),
        ("a malformed token", Some("Bearer not-a-token".into())),
        ("three garbage segments", Some("Bearer a.b.c".into())),
        ("an expired token", Some(format!("Bearer {expired}"))),
        (
            "an ADMIN token signed with a foreign secret",
            Some(format!("Bearer {foreign}")),
        ),
        (
            "an unsigned (alg none) ADMIN token",
            Some(format!("Bearer {unsigned}")),
        ),
        (
            "a valid token with its claims swapped for an ADMIN's",
            Some(format!("Bearer {tampered}")),
        ),
    ];

    let before = crm.dump(CRM_TABLES).await;
    let events_before = count(&crm.db, "SELECT COUNT(*) FROM event_log").await;
    let mut failures = Vec::new();
    let probe = |label: &str, credential: &Option<String>| -> Vec<_> {
        endpoints
            .iter()
            .map(|(method, path, body)| {
                let mut request = crm.request(method.clone(), path);
                if let Some(value) = credential {
                    request = request.header("authorization", value.as_str());
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                (format!("{method} {path} with {label}"), request)
            })
            .collect()
    };
    let mut all = Vec::new();
    for (label, credential) in &credentials {
        all.extend(probe(label, credential));
    }
    for (what, request) in all {
        let answer = Crm::answer(request).await;
        if answer.outcome() != (401, "unauthorized") || answer.message().is_empty() {
            failures.push(format!("{what}: {} {}", answer.status, answer.body));
        }
    }
    assert!(
        failures.is_empty(),
        "expected 401 unauthorized with a JSON error body:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        crm.dump(CRM_TABLES).await,
        before,
        "a refused request changed data"
    );
    assert_eq!(
        count(&crm.db, "SELECT COUNT(*) FROM event_log").await,
        events_before
    );

    // Control: a valid token passes, and /me shows no password hash.
    let me = crm.get(&victim.token, "/api/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["id"], victim.id.as_str());
    assert!(
        !me.body.to_string().to_lowercase().contains("password"),
        "{}",
        me.body
    );

    // A deleted user's token is worthless at once, although it has not expired.
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&victim.id)
        .execute(&crm.db)
        .await
        .unwrap();
    let deleted = Some(format!("Bearer {}", victim.token));
    for (what, request) in probe("a deleted user's token", &deleted) {
        let answer = Crm::answer(request).await;
        if answer.outcome() != (401, "unauthorized") || answer.message().is_empty() {
            failures.push(format!("{what}: {} {}", answer.status, answer.body));
        }
    }
    assert!(
        failures.is_empty(),
        "expected 401 unauthorized:\n{}",
        failures.join("\n")
    );
    let me = crm.get(&victim.token, "/api/auth/me").await;
    assert!(me.message().contains("no longer exists"), "{}", me.body);
    assert_eq!(
        crm.dump(CRM_TABLES).await,
        before,
        "a refused request changed data"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn only_an_admin_registers_managers_and_admins_and_emails_are_unique_ignoring_case(
    backend: Backend,
) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let register = |token: Option<String>, body: Value| {
        let crm = &crm;
        async move {
            crm.call(
                Method::POST,
                "/api/auth/register",
                token.as_deref(),
                Some(&body),
            )
            .await
        }
    };
    let body = |email: &str, role: &str| json!({"email": email, "password": PASSWORD, "name": "Someone", "role": role});
    for role in ["MANAGER", "ADMIN"] {
        let answer = register(None, body("climber@example.com", role)).await;
        assert_eq!(
            answer.outcome(),
            (403, "forbidden"),
            "{role}: {}",
            answer.body
        );
    }
    let admin = crm.admin().await;
    let user = crm.register(None, "user@example.com", "USER", None).await;
    let mut self_managed = body("sneaky@example.com", "USER");
    self_managed["managerId"] = json!(user.id);
    let answer = register(None, self_managed.clone()).await;
    assert_eq!(answer.outcome(), (403, "forbidden"), "{}", answer.body);
    for role in ["MANAGER", "ADMIN"] {
        let answer = register(Some(user.token.clone()), body("climber@example.com", role)).await;
        assert_eq!(
            answer.outcome(),
            (403, "forbidden"),
            "{role}: {}",
            answer.body
        );
    }
    let answer = register(Some(user.token.clone()), self_managed).await;
    assert_eq!(answer.outcome(), (403, "forbidden"), "{}", answer.body);

    crm.register(Some(&admin), "boss@example.com", "MANAGER", None)
        .await;
    let second_admin = crm
        .register(Some(&admin), "root2@example.com", "ADMIN", None)
        .await;
    let me = crm.get(&second_admin.token, "/api/auth/me").await;
    assert_eq!(me.body["role"], "ADMIN", "{}", me.body);

    for taken in ["USER@Example.COM", " user@example.com "] {
        let duplicate = register(None, body(taken, "USER")).await;
        assert_eq!(
            duplicate.outcome(),
            (409, "conflict"),
            "{taken:?}: {}",
            duplicate.body
        );
    }
    // Two registrations of one address at once: one wins, the other is a clean 409.
    let (first, second) = tokio::join!(
        register(None, body("twin@example.com", "USER")),
        register(None, body("TWIN@example.com", "USER")),
    );
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", first.body, second.body);
    // managerId must name a MANAGER or ADMIN.
    for manager in [user.id.clone(), uuid::Uuid::new_v4().to_string()] {
        let mut managed = body("managed@example.com", "USER");
        managed["managerId"] = json!(manager);
        let answer = register(Some(admin.token.clone()), managed).await;
        assert_eq!(answer.outcome(), (400, "bad_request"), "{}", answer.body);
        assert_eq!(answer.fields(), ["managerId"], "{}", answer.body);
    }
    let bad = register(
        None,
        json!({"email": "not-an-email", "password": "short", "name": "Someone"}),
    )
    .await;
    assert_eq!(bad.outcome(), (400, "bad_request"), "{}", bad.body);
    let mut fields = bad.fields();
    fields.sort();
    assert_eq!(fields, ["email", "password"], "{}", bad.body);
    let unknown_role = register(None, body("role@example.com", "SUPERUSER")).await;
    assert_eq!(
        unknown_role.outcome(),
        (400, "bad_request"),
        "{}",
        unknown_role.body
    );
    assert!(
        unknown_role.message().contains("role"),
        "{}",
        unknown_role.body
    );

    let roles: Vec<(String, String)> =
        sqlx::query_as("SELECT email, role FROM users ORDER BY email")
            .fetch_all(&crm.db)
            .await
            .unwrap();
    let expect = |email: &str, role: &str| (email.to_owned(), role.to_owned());
    assert_eq!(
        roles,
        [
            expect("boss@example.com", "MANAGER"),
            expect("root2@example.com", "ADMIN"),
            expect("root@example.com", "ADMIN"),
            expect("twin@example.com", "USER"),
            expect("user@example.com", "USER"),
        ]
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn login_failures_look_alike_and_attempts_are_throttled_per_account(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let victim = crm.register(None, "victim@example.com", "USER", None).await;
    let unknown = crm.login("nobody@example.com", "wrong-password").await;
    let wrong = crm.login(&victim.email, "wrong-password").await;
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(unknown.body, wrong.body, "the answers tell the cases apart");

    assert_eq!(wrong.message(), "Invalid email or password");
    for attempt in 2..=10 {
        let answer = crm.login(&victim.email, "wrong-password").await;
        assert_eq!(answer.status, 401, "attempt {attempt}: {}", answer.body);
    }
    let eleventh = crm.login(&victim.email, "wrong-password").await;
    assert_eq!(
        eleventh.outcome(),
        (429, "too_many_requests"),
        "{}",
        eleventh.body
    );
    let retry_after: u64 = eleventh
        .headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=12).contains(&retry_after),
        "Retry-After: {retry_after}"
    );

    // The right password does not get through while the account is throttled, however the
    // email is spelled.
    for spelling in [
        "victim@example.com",
        "VICTIM@Example.com",
        " victim@example.com",
        "victim@example.com ",
    ] {
        let answer = crm.login(spelling, PASSWORD).await;
        assert_eq!(
            answer.outcome(),
            (429, "too_many_requests"),
            "correct password as {spelling:?} while throttled: {}",
            answer.body
        );
    }
    let logins = count(
        &crm.db,
        "SELECT COUNT(*) FROM event_log WHERE event_type = 'USER_LOGGED_IN'",
    )
    .await;
    assert_eq!(logins, 0);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn spraying_many_accounts_from_one_address_is_throttled(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let mut attempts = tokio::task::JoinSet::new();
    for number in 0..40 {
        let request = crm.request(Method::POST, "/api/auth/login").json(
            &json!({"email": format!("target{number}@example.com"), "password": "Winter2026!"}),
        );
        attempts.spawn(Crm::answer(request));
    }
    let mut outcomes = Vec::new();
    while let Some(answer) = attempts.join_next().await {
        let answer = answer.unwrap();
        outcomes.push(answer.status);
    }
    let throttled = outcomes.iter().filter(|status| **status == 429).count();
    let refused = outcomes.iter().filter(|status| **status == 401).count();
    assert_eq!(throttled + refused, 40, "{outcomes:?}");
    assert!(
        (5..=10).contains(&throttled),
        "a burst of 30 per address, then one a second: {outcomes:?}"
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn operator_endpoints_take_an_admin_token_and_refuse_other_roles(backend: Backend) {
    let Some(crm) = Crm::start(backend).await else {
        return;
    };
    let admin = crm.admin().await;
    let manager = crm
        .register(Some(&admin), "manager@example.com", "MANAGER", None)
        .await;
    let user = crm.register(None, "u@example.com", "USER", None).await;
    drained(&crm.db).await;

    let routes = crm
        .call(Method::GET, "/api/routes", Some(&admin.token), None)
        .await;
    assert_eq!(routes.status, 200, "{}", routes.body);
    assert!(!routes.body["routes"].as_array().unwrap().is_empty());
    let event = json!({"eventType": "ADMIN_PROBE", "eventId": "admin-probe", "data": {}});
    let submitted = crm
        .call(
            Method::POST,
            "/api/events/ops.events",
            Some(&admin.token),
            Some(&event),
        )
        .await;
    assert_eq!(submitted.status, 202, "{}", submitted.body);
    let reload = crm
        .call(Method::POST, "/api/routes/reload", Some(&admin.token), None)
        .await;
    assert_eq!(reload.status, 202, "{}", reload.body);

    for caller in [&manager, &user] {
        let routes = crm
            .call(Method::GET, "/api/routes", Some(&caller.token), None)
            .await;
        assert_eq!(routes.outcome(), (403, "forbidden"), "{}", routes.body);
        let reload = crm
            .call(
                Method::POST,
                "/api/routes/reload",
                Some(&caller.token),
                None,
            )
            .await;
        assert_eq!(reload.outcome(), (403, "forbidden"), "{}", reload.body);
        let event = json!({"eventType": "USER_PROBE", "eventId": format!("probe-{}", caller.id), "data": {}});
        let submitted = crm
            .call(
                Method::POST,
                "/api/events/ops.events",
                Some(&caller.token),
                Some(&event),
            )
            .await;
        assert_eq!(
            submitted.outcome(),
            (403, "forbidden"),
            "{}",
            submitted.body
        );
        // Refused before the body is judged.
        let garbage = crm
            .request(Method::POST, "/api/events/ops.events")
            .bearer_auth(&caller.token)
            .header("content-type", "application/json")
            .body("{not json");
        let garbage = Crm::answer(garbage).await;
        assert_eq!(garbage.outcome(), (403, "forbidden"), "{}", garbage.body);
    }
    let probes: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM event_log WHERE topic = 'ops.events'")
            .fetch_all(&crm.db)
            .await
            .unwrap();
    assert_eq!(probes, ["admin-probe"]);

    // The role comes from the database, not from the token: a USER's token that claims ADMIN
    // (signed with the daemon's own secret) gets nothing, and a demoted ADMIN loses access at once.
    let secret = crm
        .text("SELECT value FROM settings WHERE name = $1", "jwt_secret")
        .await
        .unwrap();
    let claims_admin = TokenKeys::new(secret.as_bytes()).issue(
        &user.id,
        &user.email,
        Role::Admin,
        0,
        chrono::Utc::now().timestamp(),
    );
    let forged = crm
        .call(Method::GET, "/api/routes", Some(&claims_admin), None)
        .await;
    assert_eq!(forged.outcome(), (403, "forbidden"), "{}", forged.body);
    sqlx::query("UPDATE users SET role = 'USER' WHERE id = $1")
        .bind(&admin.id)
        .execute(&crm.db)
        .await
        .unwrap();
    let demoted = crm
        .call(Method::GET, "/api/routes", Some(&admin.token), None)
        .await;
    assert_eq!(demoted.outcome(), (403, "forbidden"), "{}", demoted.body);
}
