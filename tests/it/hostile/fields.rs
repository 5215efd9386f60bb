//! Well-formed JSON with bad fields: wrong types, missing required and unknown fields (every body
//! denies them), text over its limit, invalid enums, dates and amounts; bad query strings.

use serde_json::{json, Value};

use super::fixture::Fixture;
use super::table::json as body;
use super::table::{event, get, key, post, put, text, Table, BAD_REQUEST, EVENTS, UNAUTHORIZED};
use super::{Auth, PASSWORD};

pub(super) fn cases(f: &Fixture, table: &mut Table) {
    let a = f.a.auth();
    let anonymous = Auth::Anonymous;
    let long_email = format!("{}@example.com", text(243));

    #[rustfmt::skip]
    let customers: [(&str, Value); 22] = [
        ("a customer name that is a number", json!({"name": 5})),
        ("a customer name that is a list", json!({"name": ["Acme"]})),
        ("a customer name that is an object", json!({"name": {"first": "Acme"}})),
        ("a customer name that is a boolean", json!({"name": true})),
        ("a customer without a name", json!({"phone": "+1 555 0100"})),
        ("an empty customer name", json!({"name": ""})),
        ("a customer id chosen by the client", json!({"name": "Acme", "id": "00000000-0000-0000-0000-000000000000"})),
        ("a customer createdAt chosen by the client", json!({"name": "Acme", "createdAt": "2000-01-01T00:00:00Z"})),
        ("a customer field in snake_case", json!({"name": "Acme", "owner_id": f.a.id})),
        ("a customer field in the wrong case", json!({"Name": "Acme"})),
        ("a 201-character customer name", json!({"name": text(201)})),
        // 100 KB is far under the 1 MiB body limit: validation refuses it, with the field named.
        ("a 100 KB customer name", json!({"name": text(100_000)})),
        ("a 51-character phone", json!({"name": "Acme", "phone": text(51)})),
        ("a 101-character industry", json!({"name": "Acme", "industry": text(101)})),
        ("a 501-character address", json!({"name": "Acme", "address": text(501)})),
        ("a 100 KB address", json!({"name": "Acme", "address": text(100_000)})),
        ("a 255-character email", json!({"name": "Acme", "email": long_email})),
        ("an email without @", json!({"name": "Acme", "email": "acme.example.com"})),
        ("an email smuggling a header", json!({"name": "Acme", "email": "a@example.com\r\nBcc: all@example.com"})),
        ("size HUGE", json!({"name": "Acme", "size": "HUGE"})),
        ("size in lower case", json!({"name": "Acme", "size": "small"})),
        ("size as a number", json!({"name": "Acme", "size": 3})),
    ];
    for (name, value) in customers {
        table.refuse(name, post("/api/customers", &a, body(value)), BAD_REQUEST);
    }

    #[rustfmt::skip]
    let tasks: [(&str, Value); 16] = [
        ("a task without a title", json!({"priority": "HIGH"})),
        ("a 301-character task title", json!({"title": text(301)})),
        ("a 5001-character description", json!({"title": "Call", "description": text(5001)})),
        ("task status DONE", json!({"title": "Call", "status": "DONE"})),
        ("task status in lower case", json!({"title": "Call", "status": "completed"})),
        ("task priority CRITICAL", json!({"title": "Call", "priority": "CRITICAL"})),
        ("task priority as a number", json!({"title": "Call", "priority": 3})),
        ("dueDate 30 February", json!({"title": "Call", "dueDate": "2026-02-30"})),
        ("dueDate in month 13", json!({"title": "Call", "dueDate": "2026-13-01T00:00:00Z"})),
        ("dueDate at 25 o'clock", json!({"title": "Call", "dueDate": "2026-11-29T25:00:00Z"})),
        ("dueDate without a time zone", json!({"title": "Call", "dueDate": "2026-11-29T10:00:00"})),
        ("dueDate empty", json!({"title": "Call", "dueDate": ""})),
        ("dueDate 0000-00-00", json!({"title": "Call", "dueDate": "0000-00-00"})),
        ("dueDate in words", json!({"title": "Call", "dueDate": "next Tuesday"})),
        ("dueDate as Unix seconds", json!({"title": "Call", "dueDate": 1_700_000_000})),
        ("assigneeId as a number", json!({"title": "Call", "assigneeId": 42})),
    ];
    for (name, value) in tasks {
        table.refuse(name, post("/api/tasks", &a, body(value)), BAD_REQUEST);
    }
    #[rustfmt::skip]
    let task_updates: [(&str, Value); 4] = [
        ("a task update to status DONE", json!({"status": "DONE"})),
        ("a task update to a blank title", json!({"title": "  "})),
        ("a task update of completedAt", json!({"completedAt": "2026-01-01T00:00:00Z"})),
        ("a task update of the id", json!({"id": "00000000-0000-0000-0000-000000000000"})),
    ];
    for (name, value) in task_updates {
        table.refuse(
            name,
            put(format!("/api/tasks/{}", f.a_task), &a, body(value)),
            BAD_REQUEST,
        );
    }

    let customer = f.a_customer.as_str();
    #[rustfmt::skip]
    let opportunities: [(&str, Value); 10] = [
        ("an opportunity without customerId", json!({"name": "Deal"})),
        ("an opportunity without a name", json!({"customerId": customer})),
        ("an amount of -0.01", json!({"customerId": customer, "name": "Deal", "amount": -0.01})),
        ("an amount of -1e308", json!({"customerId": customer, "name": "Deal", "amount": -1e308})),
        ("an amount as a string", json!({"customerId": customer, "name": "Deal", "amount": "1000"})),
        ("an amount of \"NaN\"", json!({"customerId": customer, "name": "Deal", "amount": "NaN"})),
        ("stage in lower case", json!({"customerId": customer, "name": "Deal", "stage": "won"})),
        ("stage CLOSED", json!({"customerId": customer, "name": "Deal", "stage": "CLOSED"})),
        ("a 301-character opportunity name", json!({"customerId": customer, "name": text(301)})),
        ("activityCount chosen by the client", json!({"customerId": customer, "name": "Deal", "activityCount": 1000})),
    ];
    for (name, value) in opportunities {
        table.refuse(
            name,
            post("/api/opportunities", &a, body(value)),
            BAD_REQUEST,
        );
    }

    #[rustfmt::skip]
    let approvals: [(&str, Value); 5] = [
        ("an approval without a title", json!({"amount": 10})),
        ("a 301-character approval title", json!({"title": text(301)})),
        ("a negative approval amount", json!({"title": "Discount", "amount": -5})),
        ("an approval amount as a list", json!({"title": "Discount", "amount": [1]})),
        ("an approverId chosen by the client", json!({"title": "Discount", "approverId": f.a.id})),
    ];
    for (name, value) in approvals {
        table.refuse(name, post("/api/approvals", &a, body(value)), BAD_REQUEST);
    }

    let email = "new@example.com";
    let huge_email = format!("{}@example.com", text(100_000));
    #[rustfmt::skip]
    let registrations: [(&str, Value); 11] = [
        ("a registration without email", json!({"password": PASSWORD, "name": "New"})),
        ("a registration without password", json!({"email": email, "name": "New"})),
        ("a 7-character password", json!({"email": email, "password": "Passwd1", "name": "New"})),
        ("a 257-character password", json!({"email": email, "password": text(257), "name": "New"})),
        // Refused before Argon2 sees it.
        ("a 100 KB password", json!({"email": email, "password": text(100_000), "name": "New"})),
        ("a 201-character user name", json!({"email": email, "password": PASSWORD, "name": text(201)})),
        ("a 100 KB email", json!({"email": huge_email, "password": PASSWORD, "name": "New"})),
        ("role in lower case", json!({"email": email, "password": PASSWORD, "name": "New", "role": "admin"})),
        ("role as a list", json!({"email": email, "password": PASSWORD, "name": "New", "role": ["ADMIN"]})),
        ("role ROOT", json!({"email": email, "password": PASSWORD, "name": "New", "role": "ROOT"})),
        ("an isAdmin flag", json!({"email": email, "password": PASSWORD, "name": "New", "isAdmin": true})),
    ];
    for (name, value) in registrations {
        table.refuse(
            name,
            post("/api/auth/register", &anonymous, body(value)),
            BAD_REQUEST,
        );
    }
    #[rustfmt::skip]
    let logins: [(&str, Value); 3] = [
        ("a login without password", json!({"email": f.a.email})),
        ("a login password that is a number", json!({"email": f.a.email, "password": 12345678})),
        ("a login with a role", json!({"email": f.a.email, "password": PASSWORD, "role": "ADMIN"})),
    ];
    for (name, value) in logins {
        table.refuse(
            name,
            post("/api/auth/login", &anonymous, body(value)),
            BAD_REQUEST,
        );
    }
    // Well-formed, so an attempt like any other: one Argon2 verification, then 401.
    let huge_password = json!({"email": f.a.email, "password": text(100_000)});
    table.refuse(
        "a login with a 100 KB password",
        post("/api/auth/login", &anonymous, body(huge_password)),
        UNAUTHORIZED,
    );

    #[rustfmt::skip]
    let events: [(&str, Value); 8] = [
        ("an eventType with a space", json!({"eventType": "DROP TABLE", "data": {}})),
        ("a 201-character eventType", json!({"eventType": text(201), "data": {}})),
        ("a 201-character eventId", json!({"eventType": "HOSTILE_PROBE", "eventId": text(201), "data": {}})),
        ("a 1025-character key", json!({"eventType": "HOSTILE_PROBE", "key": text(1025), "data": {}})),
        ("an event timestamp on 30 February", json!({"eventType": "HOSTILE_PROBE", "timestamp": "2026-02-30T00:00:00Z", "data": {}})),
        ("an event without data", json!({"eventType": "HOSTILE_PROBE"})),
        ("an event source that is a number", json!({"eventType": "HOSTILE_PROBE", "source": 5, "data": {}})),
        ("an event with a seq", json!({"eventType": "HOSTILE_PROBE", "seq": 1, "data": {}})),
    ];
    for (name, value) in events {
        table.refuse(name, post(EVENTS, &key(), body(value)), BAD_REQUEST);
    }
    #[rustfmt::skip]
    let topics = [
        ("a 250-character topic", format!("/api/events/{}", text(250))),
        ("a topic with encoded slashes", "/api/events/user.events%2F..%2Fx".to_owned()),
    ];
    for (name, path) in topics {
        table.refuse(name, post(path, &key(), body(event())), BAD_REQUEST);
    }

    for path in [
        "/api/customers?evil=1",
        "/api/customers?limit=1&limit=2",
        "/api/opportunities?limit=-1",
        "/api/tasks?status=done",
        "/api/approvals?status=pending",
    ] {
        table.refuse(format!("the query {path}"), get(path, &a), BAD_REQUEST);
    }
    for path in [
        "/api/dlq?status=FOO",
        "/api/dlq?since=yesterday",
        "/api/dlq?until=2026-02-30T00:00:00Z",
    ] {
        table.refuse(format!("the query {path}"), get(path, &key()), BAD_REQUEST);
    }
    #[rustfmt::skip]
    let replays: [(&str, Value); 3] = [
        ("a bulk replay of REPLAYED letters", json!({"status": "REPLAYED"})),
        ("a bulk replay with an unknown field", json!({"everything": true})),
        ("a bulk replay since yesterday", json!({"since": "yesterday"})),
    ];
    for (name, value) in replays {
        table.refuse(
            name,
            post("/api/dlq/replay", &key(), body(value)),
            BAD_REQUEST,
        );
    }
}
