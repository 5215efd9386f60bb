//! The OpenAPI 3 document, assembled from the handlers' annotations.
//!
//! The answers the edge gives the same way everywhere are added here by rule rather than
//! repeated on every handler: the error body of every 4xx and 5xx (one `ApiError`), and the
//! statuses that follow from what an operation declares (a path parameter can be malformed or
//! name nothing, a body can be too large or not JSON, credentials can be missing). Handlers
//! declare the statuses only their own logic gives (403, 404, 409, 422, 429, 503 busy).

use axum::http::Method;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

/// Document-level information; paths are added by the router as handlers are registered.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "crm-router",
        description = "The bundled CRM's REST API and the daemon's operator endpoints. Errors are `{\"success\": false, \"error\", \"message\", \"code\", \"fields\"?}`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Registration, login, the current user"),
        (name = "customers"), (name = "meetings"), (name = "tasks"), (name = "opportunities"),
        (name = "approvals"), (name = "notifications"), (name = "analytics"),
        (name = "reports", description = "The original CRM's reports, for what the caller may see"),
        (name = "audit", description = "Who did what, for ADMIN and COMPLIANCE users"),
        (name = "operations", description = "Health, routes and raw events (API key or ADMIN token)")
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::from(Http::new(HttpAuthScheme::Bearer))
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Completes the document once every handler is registered: see the module comment. Runs on
/// the finished document because utoipa's modifiers run before `OpenApiRouter` adds paths.
pub fn add_edge_responses(document: &mut utoipa::openapi::OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        for (_, operation) in operations_mut(item) {
            add_operation_responses(path, operation);
        }
    }
}

/// An item's operations with their methods.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::PATCH, &mut item.patch),
        (Method::HEAD, &mut item.head),
        (Method::OPTIONS, &mut item.options),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

/// An item's operations with their methods, read-only.
pub(super) fn operations(item: &PathItem) -> impl Iterator<Item = (Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::PATCH, &item.patch),
        (Method::HEAD, &item.head),
        (Method::OPTIONS, &item.options),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
}

/// The security schemes an operation accepts (`bearer`, `api_key`).
fn security_schemes(operation: &Operation) -> Vec<String> {
    operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|requirement| requirement.as_object().cloned())
        .flat_map(|requirement| requirement.into_iter().map(|(scheme, _)| scheme))
        .collect()
}

fn add_operation_responses(path: &str, operation: &mut Operation) {
    let mut statuses: Vec<(u16, &str)> = Vec::new();
    if operation.request_body.is_some() {
        statuses.extend([
            (
                400,
                "the body is malformed or a field is invalid (`fields` says which)",
            ),
            (413, "the body is larger than 1 MiB"),
            (415, "the body is not sent as `application/json`"),
        ]);
    }
    let in_path = operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| parameter.parameter_in == ParameterIn::Path);
    if in_path {
        statuses.extend([
            (400, "a path segment is malformed"),
            (404, "nothing by this name, or nothing the caller may see"),
        ]);
    }
    if path.starts_with("/api/") {
        statuses.extend([
            (
                400,
                "the query string is malformed or names a parameter the endpoint does not take",
            ),
            (
                500,
                "an internal failure; the body says no more, the log does",
            ),
            (503, "the database is not reachable; try again"),
        ]);
    }
    let schemes = security_schemes(operation);
    if schemes.iter().any(|scheme| scheme == "bearer") {
        statuses.push((401, "no bearer token, or one that is invalid or expired"));
    }
    if schemes.iter().any(|scheme| scheme == "api_key") {
        statuses.extend([
            (401, "no API key, or a wrong one"),
            (403, "a bearer token that is not an ADMIN's"),
        ]);
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in statuses {
        let response = responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
        if let RefOr::T(response) = response {
            if response.description.is_empty() {
                response.description = description.into();
            }
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with(['4', '5']) || !response.content.is_empty() {
            continue;
        }
        response.content.insert(
            "application/json".into(),
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        );
        if matches!(status.as_str(), "429" | "503") {
            response.headers.insert(
                "Retry-After".into(),
                HeaderBuilder::new()
                    .schema(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(1)),
                    )
                    .description(Some(
                        "seconds to wait before trying again, when waiting will help",
                    ))
                    .build(),
            );
        }
    }
}
