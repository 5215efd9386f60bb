//! `/api/reports`: the original CRM's reports page, computed from the tables for what the
//! caller may see.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiQuery;
use crate::api::answer::Answer;
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::path::ApiPath;
use crate::api::AppState;
use crate::crm::reports::{self, Dashboard, DateRange, Export, SalesMetric, TaskTrend};
use crate::crm::{CrmError, Problems};

/// A report over a period: `{success, data, dateRange}`, as the original answered it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report<T> {
    /// Always `true`.
    pub success: bool,
    /// The report's rows.
    pub data: T,
    /// The period it covers.
    pub date_range: DateRange,
}

impl<T: Serialize> IntoResponse for Report<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// The dashboard's totals: customers, meetings, tasks and approval requests.
#[utoipa::path(get, path = "/api/reports/dashboard", tag = "reports", security(("bearer" = [])),
    responses((status = 200, body = Answer<Dashboard>), (status = 401)))]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Answer<Dashboard>, ApiError> {
    Ok(Answer::new(
        reports::dashboard(state.store.reader(), &caller.viewer).await?,
    ))
}

/// The period of `GET /api/reports/sales-metrics`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SalesMetricsParams {
    /// First instant counted (RFC 3339 or YYYY-MM-DD; default: a month ago).
    pub start_date: Option<String>,
    /// Last instant counted (RFC 3339, or YYYY-MM-DD for the whole day; default: now).
    pub end_date: Option<String>,
}

/// Meetings per salesperson in a period, most first.
#[utoipa::path(get, path = "/api/reports/sales-metrics", tag = "reports", security(("bearer" = [])),
    params(SalesMetricsParams),
    responses((status = 200, body = Report<Vec<SalesMetric>>), (status = 400), (status = 401)))]
pub async fn sales_metrics(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(params): ApiQuery<SalesMetricsParams>,
) -> Result<Report<Vec<SalesMetric>>, ApiError> {
    let (data, date_range) = reports::sales_metrics(
        state.store.reader(),
        &caller.viewer,
        params.start_date.as_deref(),
        params.end_date.as_deref(),
    )
    .await?;
    Ok(Report {
        success: true,
        data,
        date_range,
    })
}

/// The period of `GET /api/reports/task-trends`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskTrendParams {
    /// Days before today to cover, 1–366 (default 30).
    pub days: Option<String>,
}

/// Tasks created and completed per day, oldest first, every day listed.
#[utoipa::path(get, path = "/api/reports/task-trends", tag = "reports", security(("bearer" = [])),
    params(TaskTrendParams),
    responses((status = 200, body = Report<Vec<TaskTrend>>), (status = 400), (status = 401)))]
pub async fn task_trends(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiQuery(params): ApiQuery<TaskTrendParams>,
) -> Result<Report<Vec<TaskTrend>>, ApiError> {
    // Parsed here rather than by serde, so a bad value is refused on its field.
    let days = match params.days.as_deref() {
        None => 30,
        Some(days) => days.parse().map_err(|_| {
            let mut problems = Problems::default();
            problems.add(
                "days",
                format!(
                    "must be a whole number from 1 to {}",
                    reports::MAX_TREND_DAYS
                ),
            );
            CrmError::Invalid(problems)
        })?,
    };
    let (data, date_range) =
        reports::task_trends(state.store.reader(), &caller.viewer, days).await?;
    Ok(Report {
        success: true,
        data,
        date_range,
    })
}

/// The caller's customers, meetings, tasks or approval requests as CSV (UTF-8 with a
/// byte-order mark, the original CRM's Japanese headers), as a download.
#[utoipa::path(get, path = "/api/reports/export/{type}", tag = "reports", security(("bearer" = [])),
    params(("type" = String, Path, description = "customers, meetings, tasks or approvals")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400), (status = 401)))]
pub async fn export(
    State(state): State<AppState>,
    caller: CurrentUser,
    ApiPath(kind): ApiPath<String>,
) -> Result<Response, ApiError> {
    let Some(export) = Export::named(&kind) else {
        let mut problems = Problems::default();
        problems.add(
            "type",
            format!("must be one of {}", Export::NAMES.join(", ")),
        );
        return Err(CrmError::Invalid(problems).into());
    };
    let csv = reports::export_csv(state.store.reader(), &caller.viewer, export).await?;
    let day = chrono::Utc::now().format("%Y-%m-%d");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{kind}_{day}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}
