//! The envelope of one resource in an answer: `{"success": true, "data": {...}}`, the original
//! CRM API's, with the resource's fields repeated at the top level.
//!
//! Both, because both are read: the original frontend reads `data` (`data.user`,
//! `data.token`), while the setup guide's tests and clients of crm-router's first shape read
//! the fields themselves (`.token`, `.id` of a created customer).

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// One resource, in `data` and at the top level.
#[derive(Debug, Serialize, ToSchema)]
pub struct Answer<T> {
    /// Always `true`; a failure answers the error body instead.
    pub success: bool,
    /// The resource.
    pub data: T,
    #[serde(flatten)]
    fields: T,
}

impl<T: Clone> Answer<T> {
    /// `resource` in the envelope.
    pub fn new(resource: T) -> Self {
        Self {
            success: true,
            data: resource.clone(),
            fields: resource,
        }
    }
}

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Customer {
        id: &'static str,
        owner_id: Option<&'static str>,
    }

    #[test]
    fn the_resource_is_in_data_and_at_the_top_level() {
        let answer = Answer::new(Customer {
            id: "c1",
            owner_id: None,
        });
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            serde_json::json!({
                "success": true,
                "data": {"id": "c1", "ownerId": null},
                "id": "c1",
                "ownerId": null,
            })
        );
    }
}
