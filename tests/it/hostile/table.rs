//! Building blocks of the table: outcomes, request builders, and [`Table`], which files cases
//! under their category.
//!
//! Limits the cases are built around (from `src/crm` and `src/api`): bodies 1 MiB, JSON nesting
//! 128, customer name 200 characters, phone 50, industry 100, address 500, email 254; task title
//! 300, description 5000; opportunity name and approval title 300; password 8–256; event type and
//! id 200, key 1024, topic 249.
//!
//! The lists of rows are kept one case per line (`#[rustfmt::skip]`): a table reads down a
//! column, and rustfmt would spread each row over four lines.

use reqwest::Method;
use serde_json::{json, Value};

use super::{Auth, Body, Case, Category, Expect, ReadBack, Request};
use crate::support::API_KEY;

pub(super) type Outcome = (u16, &'static str);
pub(super) const BAD_REQUEST: Outcome = (400, "bad_request");
pub(super) const UNAUTHORIZED: Outcome = (401, "unauthorized");
pub(super) const FORBIDDEN: Outcome = (403, "forbidden");
pub(super) const NOT_FOUND: Outcome = (404, "not_found");
pub(super) const TOO_LARGE: Outcome = (413, "payload_too_large");
pub(super) const NOT_JSON: Outcome = (415, "unsupported_media_type");

/// A topic without routes or schemas, for event submissions.
pub(super) const EVENTS: &str = "/api/events/hostile.events";

/// The cases of one category.
pub(super) struct Table<'a> {
    pub(super) category: Category,
    pub(super) cases: &'a mut Vec<Case>,
}

impl Table<'_> {
    /// A request that must get `outcome` and change nothing.
    pub(super) fn refuse(&mut self, name: impl Into<String>, request: Request, outcome: Outcome) {
        self.cases.push(Case {
            category: self.category,
            name: name.into(),
            request,
            expect: Expect::Refused(outcome.0, outcome.1),
        });
    }

    /// A request whose JSON `field` must be stored as sent: 201 for a POST, 200 for a PUT.
    pub(super) fn store(
        &mut self,
        name: impl Into<String>,
        request: Request,
        field: &'static str,
        read_back: ReadBack,
    ) {
        let name = name.into();
        let value = match &request.body {
            Body::Json(body) => body[field].as_str().expect("a text field").to_owned(),
            _ => panic!("{name}: a stored case sends JSON"),
        };
        let status = if request.method == Method::POST {
            201
        } else {
            200
        };
        self.cases.push(Case {
            category: self.category,
            name,
            request,
            expect: Expect::Stored {
                status,
                field,
                value,
                read_back,
            },
        });
    }
}

pub(super) fn request(method: Method, path: impl Into<String>, auth: &Auth, body: Body) -> Request {
    Request {
        method,
        path: path.into(),
        auth: auth.clone(),
        body,
    }
}

pub(super) fn get(path: impl Into<String>, auth: &Auth) -> Request {
    request(Method::GET, path, auth, Body::Empty)
}

pub(super) fn post(path: impl Into<String>, auth: &Auth, body: Body) -> Request {
    request(Method::POST, path, auth, body)
}

pub(super) fn put(path: impl Into<String>, auth: &Auth, body: Body) -> Request {
    request(Method::PUT, path, auth, body)
}

pub(super) fn delete(path: impl Into<String>, auth: &Auth) -> Request {
    request(Method::DELETE, path, auth, Body::Empty)
}

pub(super) fn json(value: Value) -> Body {
    Body::Json(value)
}

/// Bytes sent as `application/json`.
pub(super) fn raw(bytes: impl Into<Vec<u8>>) -> Body {
    Body::Raw(Some("application/json"), bytes.into())
}

/// The daemon's API key.
pub(super) fn key() -> Auth {
    Auth::ApiKey(API_KEY.into())
}

/// An `Authorization` header with exactly these bytes.
pub(super) fn authorization(value: impl Into<Vec<u8>>) -> Auth {
    Auth::Headers(vec![("authorization", value.into())])
}

/// `length` x's.
pub(super) fn text(length: usize) -> String {
    "x".repeat(length)
}

/// A valid event envelope.
pub(super) fn event() -> Value {
    json!({"eventType": "HOSTILE_PROBE", "data": {}})
}
