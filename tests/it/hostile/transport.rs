//! Bodies that are not the JSON object the endpoint reads: malformed and truncated JSON, other
//! shapes, other content types, bodies over 1 MiB, nesting past 128 levels.

use serde_json::json;

use super::fixture::Fixture;
use super::table::{event, key, post, put, raw, Table, BAD_REQUEST, EVENTS, NOT_JSON, TOO_LARGE};
use super::{Auth, Body, PASSWORD};

/// `{"name": "aaa…"}` of exactly `size` bytes.
fn name_body_of_size(size: usize) -> Vec<u8> {
    let body = format!(r#"{{"name": "{}"}}"#, "a".repeat(size - 12));
    assert_eq!(body.len(), size);
    body.into_bytes()
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

pub(super) fn cases(f: &Fixture, table: &mut Table) {
    let a = f.a.auth();
    let manager = f.manager.auth();
    let anonymous = Auth::Anonymous;
    let approve = format!("/api/approvals/{}/approve", f.b_approval);
    let customers = |body: Body| post("/api/customers", &a, body);

    #[rustfmt::skip]
    let malformed: [(&str, &[u8]); 19] = [
        ("an empty body", b""),
        ("a body of whitespace", b" \r\n\t "),
        ("JSON cut off after a key", br#"{"name": "#),
        ("an unterminated string", br#"{"name": "Acme"#),
        ("a missing closing brace", br#"{"name": "Acme""#),
        ("a trailing comma", br#"{"name": "Acme",}"#),
        ("single quotes", b"{'name': 'Acme'}"),
        ("an unquoted key", br#"{name: "Acme"}"#),
        ("two documents", br#"{"name": "Acme"} {"name": "Other"}"#),
        ("trailing garbage", br#"{"name": "Acme"}garbage"#),
        ("a comment", b"// the name\n{\"name\": \"Acme\"}"),
        ("a duplicate key", br#"{"name": "Acme", "name": "Other"}"#),
        ("a raw control character in a string", b"{\"name\": \"A\x01cme\"}"),
        // RFC 8259 lets a parser ignore a byte-order mark, but JSON text must not carry one:
        // refusing it is the strict reading.
        ("a byte-order mark before the JSON", b"\xef\xbb\xbf{\"name\": \"Acme\"}"),
        ("null", b"null"),
        ("a string", br#""Acme""#),
        ("a number", b"42"),
        ("an empty array", b"[]"),
        // serde reads a struct from an array of its fields in order. The API's bodies are objects
        // with named fields; this undocumented second shape must not create anything.
        ("the fields as a positional array", br#"["Positional Corp", null, null, null, null, null, null]"#),
    ];
    for (name, bytes) in malformed {
        table.refuse(name, customers(raw(bytes)), BAD_REQUEST);
    }
    for amount in ["NaN", "Infinity", "-Infinity", "1e400"] {
        let body = format!(r#"{{"title": "Discount", "amount": {amount}}}"#);
        table.refuse(
            format!("an approval amount of {amount}"),
            post("/api/approvals", &a, raw(body)),
            BAD_REQUEST,
        );
    }
    let login = format!(r#"["{}", "{PASSWORD}"]"#, f.a.email);
    #[rustfmt::skip]
    let positional = [
        ("a login as a positional array", post("/api/auth/login", &anonymous, raw(login))),
        ("a registration as a positional array", post("/api/auth/register", &anonymous, raw(r#"["positional@example.com", "Password123!", "Positional", null, null]"#))),
        ("a decision as a positional array", post(&approve, &manager, raw(r#"["approved by an array"]"#))),
    ];
    for (name, request) in positional {
        table.refuse(name, request, BAD_REQUEST);
    }

    let acme = br#"{"name": "Acme"}"#.to_vec();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("text/json"),
        Some("application/javascript"),
    ] {
        table.refuse(
            format!("a customer with Content-Type {content_type:?}"),
            customers(Body::Raw(content_type, acme.clone())),
            NOT_JSON,
        );
    }
    let registration = json!({"email": "ct@example.com", "password": PASSWORD, "name": "CT"});
    let credentials = json!({"email": f.a.email, "password": PASSWORD});
    let text_plain =
        |value: serde_json::Value| Body::Raw(Some("text/plain"), value.to_string().into_bytes());
    let untyped = |value: serde_json::Value| Body::Raw(None, value.to_string().into_bytes());
    #[rustfmt::skip]
    let content_types = [
        ("a registration without Content-Type", post("/api/auth/register", &anonymous, untyped(registration))),
        ("a login as text/plain", post("/api/auth/login", &anonymous, text_plain(credentials))),
        ("an event without Content-Type", post(EVENTS, &key(), untyped(event()))),
        // A decision's body is optional, and an empty one needs no Content-Type; a body that is
        // there is JSON like every other, so text/plain gets the 415 it gets everywhere else.
        ("a decision as text/plain", post(&approve, &manager, text_plain(json!({"comment": "fine"})))),
    ];
    for (name, request) in content_types {
        table.refuse(name, request, NOT_JSON);
    }

    let two_mib = || raw(format!(r#"{{"name": "{}"}}"#, "a".repeat(2 << 20)));
    #[rustfmt::skip]
    let too_large = [
        ("2 MiB as a customer", customers(two_mib())),
        ("2 MiB as a registration", post("/api/auth/register", &anonymous, two_mib())),
        ("2 MiB as a login", post("/api/auth/login", &anonymous, two_mib())),
        ("2 MiB as a task update", put(format!("/api/tasks/{}", f.a_task), &a, two_mib())),
        ("2 MiB as an event", post(EVENTS, &key(), two_mib())),
        ("2 MiB as a decision", post(&approve, &manager, two_mib())),
        ("2 MiB as a dead-letter replay", post("/api/dlq/replay", &key(), two_mib())),
        ("a body of 1 MiB and 1 byte", customers(raw(name_body_of_size((1 << 20) + 1)))),
    ];
    for (name, request) in too_large {
        table.refuse(name, request, TOO_LARGE);
    }
    // At the limit the body is read, and validation refuses the 1 MiB name.
    table.refuse(
        "a body of exactly 1 MiB",
        customers(raw(name_body_of_size(1 << 20))),
        BAD_REQUEST,
    );

    let deep = nested_arrays(200);
    let envelope = |data: String| {
        raw(format!(
            r#"{{"eventType": "HOSTILE_PROBE", "data": {data}}}"#
        ))
    };
    #[rustfmt::skip]
    let nested = [
        ("200 nested arrays as a name", customers(raw(format!(r#"{{"name": {deep}}}"#)))),
        ("200 nested objects as a name", customers(raw(format!(r#"{{"name": {}}}"#, nested_objects(200))))),
        ("200 nested arrays in an unknown field", customers(raw(format!(r#"{{"name": "Acme", "extra": {deep}}}"#)))),
        ("100,000 nested arrays as the body", customers(raw(nested_arrays(100_000)))),
        ("100,000 nested objects as the body", customers(raw(nested_objects(100_000)))),
        ("event data nested 200 deep", post(EVENTS, &key(), envelope(nested_objects(200)))),
        ("event data nested 128 deep, 129 with the envelope", post(EVENTS, &key(), envelope(nested_objects(128)))),
        ("a decision comment nested 200 deep", post(&approve, &manager, raw(format!(r#"{{"comment": {deep}}}"#)))),
    ];
    for (name, request) in nested {
        table.refuse(name, request, BAD_REQUEST);
    }
}
