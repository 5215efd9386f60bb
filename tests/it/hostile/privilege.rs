//! Doing more than one's role or ownership allows: registering above oneself, the operator
//! endpoints without being an ADMIN, deciding approvals, handing records around, and touching
//! another user's records by id (404, as if they did not exist). Then ids that exist nowhere.

use serde_json::json;

use super::fixture::Fixture;
use super::table::json as body;
use super::table::{
    delete, event, get, key, post, put, text, Table, BAD_REQUEST, EVENTS, FORBIDDEN, NOT_FOUND,
};
use super::{Auth, Body, PASSWORD};

pub(super) fn cases(f: &Fixture, table: &mut Table) {
    let anonymous = Auth::Anonymous;
    let a = f.a.auth();
    let manager = f.manager.auth();
    let admin = f.admin.auth();

    let climber = |role: &str| json!({"email": "climber@example.com", "password": PASSWORD, "name": "Climber", "role": role});
    let team = json!({"email": "climber@example.com", "password": PASSWORD, "name": "Climber", "managerId": f.manager.id});
    #[rustfmt::skip]
    let registrations = [
        ("registering an ADMIN anonymously", &anonymous, climber("ADMIN")),
        ("registering a MANAGER anonymously", &anonymous, climber("MANAGER")),
        ("a USER registering an ADMIN", &a, climber("ADMIN")),
        ("a USER registering a MANAGER", &a, climber("MANAGER")),
        ("a MANAGER registering an ADMIN", &manager, climber("ADMIN")),
        ("joining a manager's team anonymously", &anonymous, team.clone()),
        ("a USER putting someone in a manager's team", &a, team),
    ];
    for (name, auth, registration) in registrations {
        table.refuse(
            name,
            post("/api/auth/register", auth, body(registration)),
            FORBIDDEN,
        );
    }

    for (who, auth) in [("a USER", &a), ("a MANAGER", &manager)] {
        #[rustfmt::skip]
        let operator = [
            ("submitting an event", post(EVENTS, auth, body(event()))),
            ("listing routes", get("/api/routes", auth)),
            ("reloading routes", post("/api/routes/reload", auth, Body::Empty)),
            ("triggering a scheduled route", post("/api/routes/task-due-soon-alerts/trigger", auth, Body::Empty)),
            ("listing dead letters", get("/api/dlq", auth)),
            ("replaying all dead letters", post("/api/dlq/replay", auth, body(json!({})))),
            ("discarding a dead letter", post("/api/dlq/1/discard", auth, Body::Empty)),
        ];
        for (what, request) in operator {
            table.refuse(format!("{who} {what}"), request, FORBIDDEN);
        }
    }

    let b_approval = &f.b_approval;
    let a_customer = format!("/api/customers/{}", f.a_customer);
    let a_task = format!("/api/tasks/{}", f.a_task);
    #[rustfmt::skip]
    let forbidden = [
        ("a USER approving", post(format!("/api/approvals/{b_approval}/approve"), &a, body(json!({})))),
        ("a USER rejecting", post(format!("/api/approvals/{b_approval}/reject"), &a, Body::Empty)),
        ("a USER approving their own request", post(format!("/api/approvals/{b_approval}/approve"), &f.b.auth(), Body::Empty)),
        ("an ADMIN approving their own request", post(format!("/api/approvals/{}/approve", f.admin_approval), &admin, Body::Empty)),
        ("a USER creating a customer for the admin", post("/api/customers", &a, body(json!({"name": "Gift", "ownerId": f.admin.id})))),
        ("a USER giving their customer away", put(&a_customer, &a, body(json!({"ownerId": f.b.id})))),
        ("a USER assigning a new task to another user", post("/api/tasks", &a, body(json!({"title": "For B", "assigneeId": f.b.id})))),
        ("a USER reassigning their task", put(&a_task, &a, body(json!({"assigneeId": f.b.id})))),
        ("a MANAGER creating a customer outside their team", post("/api/customers", &manager, body(json!({"name": "Gift", "ownerId": f.a.id})))),
    ];
    for (name, request) in forbidden {
        table.refuse(name, request, FORBIDDEN);
    }

    let b_customer = format!("/api/customers/{}", f.b_customer);
    let b_task = format!("/api/tasks/{}", f.b_task);
    let b_opportunity = format!("/api/opportunities/{}", f.b_opportunity);
    let notification = format!("/api/notifications/{}/read", f.manager_notification);
    #[rustfmt::skip]
    let someone_elses = [
        ("reading another user's customer", get(&b_customer, &a)),
        ("renaming another user's customer", put(&b_customer, &a, body(json!({"name": "Mine now"})))),
        ("deleting another user's customer", delete(&b_customer, &a)),
        ("reading another user's task", get(&b_task, &a)),
        ("completing another user's task", put(&b_task, &a, body(json!({"status": "COMPLETED"})))),
        ("deleting another user's task", delete(&b_task, &a)),
        ("reading another user's opportunity", get(&b_opportunity, &a)),
        ("winning another user's opportunity", put(&b_opportunity, &a, body(json!({"stage": "WON"})))),
        ("recalling another user's request", post(format!("/api/approvals/{b_approval}/recall"), &a, Body::Empty)),
        ("reading another user's notification", post(notification, &a, Body::Empty)),
        ("a MANAGER reading a customer outside their team", get(&b_customer, &manager)),
    ];
    for (name, request) in someone_elses {
        table.refuse(name, request, NOT_FOUND);
    }
    // A record a request names must be visible: the 400 of a record that does not exist.
    #[rustfmt::skip]
    let references = [
        ("an opportunity on another user's customer", post("/api/opportunities", &a, body(json!({"customerId": f.b_customer, "name": "Poached"})))),
        ("a task on another user's customer", post("/api/tasks", &a, body(json!({"title": "Poached", "customerId": f.b_customer})))),
        ("an approval on another user's opportunity", post("/api/approvals", &a, body(json!({"title": "Poached", "opportunityId": f.b_opportunity})))),
        ("an approval on another user's customer", post("/api/approvals", &a, body(json!({"title": "Poached", "customerId": f.b_customer})))),
    ];
    for (name, request) in references {
        table.refuse(name, request, BAD_REQUEST);
    }

    // Ids that exist nowhere, of every shape, even for an ADMIN.
    let unknown = uuid::Uuid::new_v4();
    #[rustfmt::skip]
    let unknown_ids = [
        ("an unknown UUID", get(format!("/api/customers/{unknown}"), &admin)),
        ("the id 1", get("/api/customers/1", &admin)),
        ("the id -1", get("/api/tasks/-1", &admin)),
        ("the id 0x41", get("/api/opportunities/0x41", &admin)),
        ("SQL as an id", get("/api/customers/x'%20OR%20'1'%3D'1", &admin)),
        ("a path traversal as an id", get("/api/customers/%2E%2E%2Fusers", &admin)),
        ("an encoded slash in an id", get("/api/tasks/a%2Fb", &admin)),
        ("a 60 KB id", get(format!("/api/customers/{}", text(60_000)), &admin)),
        ("an emoji as an id", get("/api/customers/%F0%9F%99%82", &admin)),
        ("the id null", get("/api/customers/null", &admin)),
        ("a braced UUID", get(format!("/api/customers/%7B{unknown}%7D"), &admin)),
        ("updating an unknown task", put(format!("/api/tasks/{unknown}"), &admin, body(json!({"title": "x"})))),
        ("deleting an unknown customer", delete(format!("/api/customers/{unknown}"), &admin)),
        ("approving an unknown request", post(format!("/api/approvals/{unknown}/approve"), &admin, Body::Empty)),
        ("reading an unknown notification", post(format!("/api/notifications/{unknown}/read"), &admin, Body::Empty)),
        ("an unknown dead letter", get(format!("/api/dlq/{unknown}"), &key())),
        ("replaying an unknown dead letter", post(format!("/api/dlq/{unknown}/replay"), &key(), Body::Empty)),
        ("triggering an unknown route", post("/api/routes/no-such-route/trigger", &key(), Body::Empty)),
        ("a path below a customer", get(format!("/api/customers/{}/owner", f.a_customer), &a)),
    ];
    for (name, request) in unknown_ids {
        table.refuse(name, request, NOT_FOUND);
    }
}
