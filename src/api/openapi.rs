//! The OpenAPI 3 document, assembled from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Document-level information; paths are added by the router as handlers are registered.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "crm-router",
        description = "The bundled CRM's REST API and the daemon's operator endpoints. Errors are `{\"error\": {\"code\", \"message\", \"fields\"?}}`."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Registration, login, the current user"),
        (name = "customers"), (name = "tasks"), (name = "opportunities"),
        (name = "approvals"), (name = "notifications"), (name = "analytics"),
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
