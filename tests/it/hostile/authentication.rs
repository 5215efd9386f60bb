//! Missing, broken and forged credentials: every one gets 401, on the CRM endpoints (tokens
//! only), on registration (open, but a token that is sent must be valid) and on the operator
//! endpoints (the API key or an ADMIN's token).

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::fixture::Fixture;
use super::table::json as body;
use super::table::{authorization, event, get, post, raw, text, Table, EVENTS, UNAUTHORIZED};
use super::tokens::{claims, hs256, signed, unsigned};
use super::{Auth, Body, JWT_SECRET, PASSWORD};
use crate::support::API_KEY;

/// `claims` with one change.
fn changed(mut claims: Value, change: impl FnOnce(&mut Value)) -> Value {
    change(&mut claims);
    claims
}

pub(super) fn cases(f: &Fixture, table: &mut Table) {
    let secret = JWT_SECRET.as_bytes();
    let admin = claims(&f.admin.id, &f.admin.email, "ADMIN");
    let now = chrono::Utc::now().timestamp();
    // Well past the 30 s of leeway.
    let expired = changed(claims(&f.a.id, &f.a.email, "USER"), |claims| {
        claims["iat"] = json!(now - 7200);
        claims["exp"] = json!(now - 3600);
    });
    let no_exp = changed(admin.clone(), |claims| {
        claims.as_object_mut().unwrap().remove("exp");
    });
    let text_exp = changed(admin.clone(), |claims| claims["exp"] = json!("tomorrow"));
    let super_admin = changed(admin.clone(), |claims| claims["role"] = json!("SUPERADMIN"));
    let nobody = changed(admin.clone(), |claims| {
        claims["sub"] = json!(uuid::Uuid::new_v4().to_string())
    });
    let sql_sub = changed(admin.clone(), |claims| {
        claims["sub"] = json!("' OR role = 'ADMIN' --")
    });
    let real = f.a.token.as_str();
    let (unsigned_real, real_signature) = real.rsplit_once('.').unwrap();
    let hs = |header: Value, claims: &Value| {
        Auth::Bearer(signed(&header, claims, secret, Algorithm::HS256))
    };
    let bearer = |token: String| Auth::Bearer(token);
    let none = json!({"alg": "none", "typ": "JWT"});

    #[rustfmt::skip]
    let credentials: Vec<(&str, Auth)> = vec![
        ("no credentials", Auth::Anonymous),
        ("a garbage token", bearer("garbage".into())),
        ("three garbage segments", bearer("a.b.c".into())),
        ("a 20 KB token", bearer(text(20_000))),
        ("a token without its signature", bearer(unsigned_real.into())),
        ("a token with a character appended", bearer(format!("{real}x"))),
        ("a token with a fourth segment", bearer(format!("{real}.e30"))),
        ("the Basic scheme", authorization("Basic YTpQYXNzd29yZDEyMyE=")),
        ("a token without a scheme", authorization(real)),
        ("the scheme without a token", authorization("Bearer")),
        ("bytes that are not ASCII in Authorization", authorization(&b"Bearer \xff\xfe"[..])),
        // Two Authorization headers: the first is the one read, so garbage first is refused
        // whatever follows. (RFC 9110 allows only one; the daemon does not police that.)
        ("a garbage Authorization header before a valid one", Auth::Headers(vec![
            ("authorization", b"Bearer garbage".to_vec()),
            ("authorization", format!("Bearer {real}").into_bytes()),
        ])),
        ("an ADMIN token signed with another secret", bearer(signed(&hs256(), &admin, b"another secret of 32 bytes or so", Algorithm::HS256))),
        ("an ADMIN token signed with an empty secret", bearer(signed(&hs256(), &admin, b"", Algorithm::HS256))),
        ("an expired token", hs(hs256(), &expired)),
        ("alg none", bearer(unsigned(&none, &admin))),
        ("alg None", bearer(unsigned(&json!({"alg": "None", "typ": "JWT"}), &admin))),
        ("alg NONE", bearer(unsigned(&json!({"alg": "NONE"}), &admin))),
        ("alg none with a real signature kept", bearer(format!("{}{real_signature}", unsigned(&none, &admin)))),
        ("alg HS512, signed with our secret", bearer(signed(&json!({"alg": "HS512", "typ": "JWT"}), &admin, secret, Algorithm::HS512))),
        ("alg HS384, signed with our secret", bearer(signed(&json!({"alg": "HS384", "typ": "JWT"}), &admin, secret, Algorithm::HS384))),
        // Algorithm confusion: the header names a public-key algorithm over an HMAC made with
        // our secret.
        ("alg RS256 over an HMAC signature", hs(json!({"alg": "RS256", "typ": "JWT"}), &admin)),
        ("alg ES256 over an HMAC signature", hs(json!({"alg": "ES256", "typ": "JWT"}), &admin)),
        ("a header without alg", hs(json!({"typ": "JWT"}), &admin)),
        ("claims without exp, signed with our secret", hs(hs256(), &no_exp)),
        ("exp as text, signed with our secret", hs(hs256(), &text_exp)),
        ("role SUPERADMIN, signed with our secret", hs(hs256(), &super_admin)),
        ("the id of no user, signed with our secret", hs(hs256(), &nobody)),
        ("SQL as the user id, signed with our secret", hs(hs256(), &sql_sub)),
        ("the token of a deleted user", f.gone.auth()),
        // The CRM endpoints take tokens, never the API key.
        ("the API key", Auth::ApiKey(API_KEY.into())),
        ("the API key as a bearer token", bearer(API_KEY.into())),
    ];
    let credential = |wanted: &str| {
        let (_, auth) = credentials
            .iter()
            .find(|(name, _)| *name == wanted)
            .unwrap();
        auth.clone()
    };
    for (name, auth) in &credentials {
        table.refuse(
            format!("customers with {name}"),
            get("/api/customers", auth),
            UNAUTHORIZED,
        );
    }
    // Refused before the body is read, so before anything could be written.
    for name in ["a garbage token", "alg none", "the API key"] {
        table.refuse(
            format!("a customer in bad JSON with {name}"),
            post("/api/customers", &credential(name), raw("{not json")),
            UNAUTHORIZED,
        );
    }
    let registration = json!({"email": "open@example.com", "password": PASSWORD, "name": "Open"});
    for name in ["a garbage token", "an expired token", "alg none"] {
        table.refuse(
            format!("registering with {name}"),
            post(
                "/api/auth/register",
                &credential(name),
                body(registration.clone()),
            ),
            UNAUTHORIZED,
        );
    }

    let unsigned_admin = bearer(unsigned(&none, &admin));
    let hs512_admin = bearer(signed(
        &json!({"alg": "HS512"}),
        &admin,
        secret,
        Algorithm::HS512,
    ));
    #[rustfmt::skip]
    let operator: Vec<(&str, Auth)> = vec![
        ("no credentials", Auth::Anonymous),
        ("a wrong API key", Auth::ApiKey("wrong-key-0123456789".into())),
        ("an empty API key", Auth::ApiKey(String::new())),
        ("the API key's first half", Auth::ApiKey(API_KEY[..API_KEY.len() / 2].into())),
        ("the API key in upper case", Auth::ApiKey(API_KEY.to_uppercase())),
        ("the API key and one more character", Auth::ApiKey(format!("{API_KEY}0"))),
        ("the API key as a bearer token", bearer(API_KEY.into())),
        ("an unsigned ADMIN token", unsigned_admin.clone()),
        ("an HS512 ADMIN token", hs512_admin.clone()),
        // A key that is sent is judged on its own; an ADMIN token beside it does not rescue it.
        ("a wrong API key beside an ADMIN token", Auth::Headers(vec![
            ("x-api-key", b"wrong-key-0123456789".to_vec()),
            ("authorization", format!("Bearer {}", f.admin.token).into_bytes()),
        ])),
    ];
    for (name, auth) in operator {
        table.refuse(
            format!("an event with {name}"),
            post(EVENTS, &auth, body(event())),
            UNAUTHORIZED,
        );
    }
    #[rustfmt::skip]
    let more_operator = [
        ("the dead letters with an unsigned ADMIN token", get("/api/dlq", &unsigned_admin)),
        ("a reload with an HS512 ADMIN token", post("/api/routes/reload", &hs512_admin, Body::Empty)),
        ("the routes with an expired token", get("/api/routes", &credential("an expired token"))),
        ("a trigger with a deleted user's token", post("/api/routes/task-due-soon-alerts/trigger", &f.gone.auth(), Body::Empty)),
    ];
    for (name, request) in more_operator {
        table.refuse(name, request, UNAUTHORIZED);
    }
}
