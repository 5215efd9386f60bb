//! Text that is not valid UTF-8, and NUL: PostgreSQL cannot store NUL in text, SQLite could, and
//! both must answer alike — 400 in bodies and queries, 404 for a path (no id can hold it).

use serde_json::json;

use super::fixture::Fixture;
use super::table::json as body;
use super::table::{
    delete, event, get, key, post, put, raw, Table, BAD_REQUEST, EVENTS, NOT_FOUND,
};
use super::{Auth, Body, PASSWORD};

pub(super) fn cases(f: &Fixture, table: &mut Table) {
    let a = f.a.auth();
    let manager = f.manager.auth();
    let anonymous = Auth::Anonymous;

    #[rustfmt::skip]
    let bytes: [(&str, &[u8]); 8] = [
        ("bytes that are not UTF-8 in a string", b"{\"name\": \"\xff\xfe\"}"),
        ("bytes that are not UTF-8 in a key", b"{\"n\xffme\": \"Acme\"}"),
        ("an overlong encoding of /", b"{\"name\": \"\xc0\xaf\"}"),
        ("a surrogate encoded as UTF-8", b"{\"name\": \"\xed\xa0\x80\"}"),
        ("a character cut off after two of its three bytes", b"{\"name\": \"\xe6\x97\"}"),
        ("a lone surrogate escape", br#"{"name": "\ud800"}"#),
        ("a raw NUL byte in a string", b"{\"name\": \"A\x00cme\"}"),
        ("NUL escaped in a key", br#"{"na\u0000me": "Acme"}"#),
    ];
    for (name, bytes) in bytes {
        table.refuse(name, post("/api/customers", &a, raw(bytes)), BAD_REQUEST);
    }

    let nul = "Ac\u{0}me";
    let approve = format!("/api/approvals/{}/approve", f.b_approval);
    #[rustfmt::skip]
    let nul_in_bodies = [
        ("NUL in a customer name", post("/api/customers", &a, body(json!({"name": nul})))),
        ("NUL in a customer update", put(format!("/api/customers/{}", f.a_customer), &a, body(json!({"industry": nul})))),
        ("NUL in a task title update", put(format!("/api/tasks/{}", f.a_task), &a, body(json!({"title": nul})))),
        ("NUL in an opportunity name", post("/api/opportunities", &a, body(json!({"customerId": f.a_customer, "name": nul})))),
        ("NUL in a registration name", post("/api/auth/register", &anonymous, body(json!({"email": "nul@example.com", "password": PASSWORD, "name": nul})))),
        ("NUL in a login email", post("/api/auth/login", &anonymous, body(json!({"email": format!("{}\u{0}", f.a.email), "password": PASSWORD})))),
        ("NUL in event data", post(EVENTS, &key(), body(json!({"eventType": "HOSTILE_PROBE", "data": {"name": nul}})))),
        ("NUL in a decision comment", post(&approve, &manager, body(json!({"comment": nul})))),
        ("NUL in a dead-letter selection", post("/api/dlq/replay", &key(), body(json!({"route": nul})))),
        ("NUL in a query", get("/api/tasks?customerId=%00", &a)),
        ("NUL after a value in a query", get("/api/tasks?status=TODO%00", &a)),
        ("bytes that are not UTF-8 in a query", get("/api/tasks?status=%FF", &a)),
    ];
    for (name, request) in nul_in_bodies {
        table.refuse(name, request, BAD_REQUEST);
    }

    #[rustfmt::skip]
    let bad_paths = [
        ("%FF as a customer id", get("/api/customers/%FF", &a)),
        ("an overlong / as a customer id", get("/api/customers/%C0%AF", &a)),
        ("a surrogate as a task id", get("/api/tasks/%ED%A0%80", &a)),
        ("%FF as an opportunity id", get("/api/opportunities/%FF", &a)),
        ("%FE%FF as a dead-letter id", get("/api/dlq/%FE%FF", &key())),
        ("%FF as a topic", post("/api/events/%FF", &key(), body(event()))),
    ];
    for (name, request) in bad_paths {
        table.refuse(name, request, BAD_REQUEST);
    }

    #[rustfmt::skip]
    let nul_in_paths = [
        ("%00 as a customer id", get("/api/customers/%00", &a)),
        ("NUL inside a customer id", get("/api/customers/a%00b", &a)),
        ("%00 as a customer id to update", put("/api/customers/%00", &a, body(json!({"name": "x"})))),
        ("%00 as a task id to delete", delete("/api/tasks/%00", &a)),
        ("%00 as an opportunity id", get("/api/opportunities/%00", &a)),
        ("%00 as an approval id", post("/api/approvals/%00/approve", &manager, Body::Empty)),
        ("%00 as a notification id", post("/api/notifications/%00/read", &a, Body::Empty)),
        ("%00 as a dead-letter id", get("/api/dlq/%00", &key())),
        ("%00 as a route name", post("/api/routes/%00/trigger", &key(), Body::Empty)),
    ];
    for (name, request) in nul_in_paths {
        table.refuse(name, request, NOT_FOUND);
    }
}
