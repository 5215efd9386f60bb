//! Lists: the page a request asks for and the envelope every list answers in.
//!
//! The envelope is the original CRM API's, `{"success": true, "data": [...], "pagination":
//! {...}}`, because its frontend reads `data` and `pagination.total`/`totalPages`; the total
//! stays in `X-Total-Count` too.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::crm::{JsonPage, Paging};

/// `limit` with `offset` or `page`, shared by every list.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page (default 50; above 500 is served as 500).
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    pub offset: Option<i64>,
    /// 1-based page number, instead of `offset`.
    pub page: Option<i64>,
}

impl PageParams {
    /// Checked paging.
    pub fn paging(self) -> Result<Paging, ApiError> {
        match (self.page, self.offset) {
            (Some(_), Some(_)) => Err(ApiError::BadRequest {
                message: "invalid request: give page or offset, not both".into(),
                fields: vec![super::error::FieldError {
                    field: "page".into(),
                    message: "cannot be combined with offset".into(),
                }],
            }),
            (Some(page), None) => Ok(Paging::by_page(self.limit, page)?),
            (None, offset) => Ok(Paging::new(self.limit, offset)?),
        }
    }
}

/// Where a page lies in the whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// 1-based number of the page that starts at `offset` (the page `offset` falls in).
    pub page: i64,
    /// Rows per page, as served.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
    /// Rows in the whole list.
    pub total: i64,
    /// Pages of `limit` rows the whole list fills (0 when it is empty).
    pub total_pages: i64,
}

impl Pagination {
    fn of(paging: Paging, total: i64) -> Self {
        Self {
            page: paging.offset / paging.limit + 1,
            limit: paging.limit,
            offset: paging.offset,
            total,
            total_pages: (total + paging.limit - 1) / paging.limit,
        }
    }
}

/// The shape of every list answer, for the OpenAPI document; [`Listed`] writes it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ListBody<T> {
    /// Always `true`.
    success: bool,
    /// The page's rows.
    data: Vec<T>,
    /// Where the page lies.
    pagination: Pagination,
}

/// A list answer: one page of rows (rendered by the database) in the list envelope.
pub struct Listed<T> {
    page: JsonPage<T>,
    paging: Paging,
}

impl<T> Listed<T> {
    /// `page`, which was selected with `paging`.
    pub fn new(page: JsonPage<T>, paging: Paging) -> Self {
        Self { page, paging }
    }
}

impl<T> IntoResponse for Listed<T> {
    fn into_response(self) -> Response {
        let pagination = Pagination::of(self.paging, self.page.total);
        let pagination = match serde_json::to_string(&pagination) {
            Ok(pagination) => pagination,
            Err(error) => {
                return ApiError::Internal(format!("cannot serialise pagination: {error}"))
                    .into_response()
            }
        };
        // The rows are already JSON; splicing them in spares parsing and re-serialising them.
        let body = format!(
            r#"{{"success":true,"data":{},"pagination":{pagination}}}"#,
            self.page.json
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-total-count", HeaderValue::from(self.page.total));
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (headers, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(listed: Listed<serde_json::Value>) -> serde_json::Value {
        let response = listed.into_response();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_list_answers_its_rows_and_where_the_page_lies() {
        let rows = vec![
            serde_json::json!({"id": "a"}),
            serde_json::json!({"id": "b"}),
        ];
        let page = JsonPage::serialized(&rows, 7).unwrap();
        let paging = Paging::by_page(Some(2), 2).unwrap();
        let body = body_of(Listed::new(page, paging)).await;
        assert_eq!(
            body,
            serde_json::json!({
                "success": true,
                "data": [{"id": "a"}, {"id": "b"}],
                "pagination": {"page": 2, "limit": 2, "offset": 2, "total": 7, "totalPages": 4},
            })
        );
    }

    #[tokio::test]
    async fn an_empty_list_fills_no_pages() {
        let page = JsonPage::<serde_json::Value>::serialized(&[], 0).unwrap();
        let body = body_of(Listed::new(page, Paging::new(None, None).unwrap())).await;
        assert_eq!(body["data"], serde_json::json!([]));
        assert_eq!(body["pagination"]["totalPages"], 0);
        assert_eq!(body["pagination"]["page"], 1);
    }

    #[test]
    fn a_page_and_an_offset_together_are_refused_naming_page() {
        let params = PageParams {
            limit: None,
            offset: Some(10),
            page: Some(2),
        };
        match params.paging() {
            Err(ApiError::BadRequest { fields, .. }) => assert_eq!(fields[0].field, "page"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_limit_over_the_largest_page_is_served_as_the_largest() {
        let paging = PageParams {
            limit: Some(1000),
            offset: None,
            page: None,
        }
        .paging()
        .unwrap();
        assert_eq!(paging.limit, Paging::MAX_LIMIT);
    }

    #[test]
    fn pages_count_from_one() {
        assert!(PageParams {
            limit: None,
            offset: None,
            page: Some(0),
        }
        .paging()
        .is_err());
        assert!(PageParams {
            limit: Some(0),
            offset: None,
            page: None,
        }
        .paging()
        .is_err());
        let huge = PageParams {
            limit: Some(500),
            offset: None,
            page: Some(i64::MAX),
        };
        assert!(huge.paging().is_err());
    }
}
