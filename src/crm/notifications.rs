//! Notifications: messages for one user, created by routes. A user only ever sees their own,
//! whatever their role.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::AnyPool;

use super::{fetch_page, from_row, CrmError, Page, Paging, Viewer};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
pub struct Notification {
    /// Id (UUID).
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// APPROVAL_REQUEST, APPROVAL_APPROVED, APPROVAL_REJECTED, TASK_DUE_SOON...
    #[serde(rename(serialize = "type"))]
    pub r#type: String,
    /// Title.
    pub title: String,
    /// Message.
    pub message: String,
    /// Where it points in the UI.
    pub link: Option<String>,
    /// Whether it was read.
    #[serde(deserialize_with = "integer_flag")]
    pub read: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// When it was read.
    pub read_at: Option<String>,
}

/// `read` is an integer column (0/1) on both databases.
fn integer_flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Bool(flag) => flag,
        serde_json::Value::Number(number) => number.as_i64() != Some(0),
        _ => false,
    })
}

const COLUMNS: &str = "id, user_id, type, title, message, link, read, created_at, read_at";

/// The viewer's notifications, newest first; only unread ones when `unread_only`.
pub async fn list(
    pool: &AnyPool,
    viewer: &Viewer,
    unread_only: bool,
    paging: Paging,
) -> Result<Page<Notification>, CrmError> {
    let build = |select: &str| {
        let mut statement = StatementBuilder::new(format!(
            "SELECT {select} FROM notifications WHERE user_id = "
        ));
        statement.push_param(json!(viewer.id));
        if unread_only {
            statement.push(" AND read = 0");
        }
        statement
    };
    fetch_page(pool, build, COLUMNS, "created_at DESC, id DESC", paging).await
}

/// Marks one of the viewer's notifications read (idempotent); 404 for anyone else's.
pub async fn mark_read(
    connection: &mut sqlx::AnyConnection,
    viewer: &Viewer,
    id: &str,
) -> Result<Notification, CrmError> {
    sqlx::query(
        "UPDATE notifications SET read = 1, read_at = $1 WHERE id = $2 AND user_id = $3 AND read = 0",
    )
    .bind(now_rfc3339())
    .bind(id)
    .bind(viewer.id.as_str())
    .execute(&mut *connection)
    .await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(viewer.id.as_str())
    .fetch_optional(&mut *connection)
    .await?
    .ok_or(CrmError::NotFound("notification"))?;
    from_row(&row)
}

/// Marks all of the viewer's notifications read; returns how many changed.
pub async fn mark_all_read(
    connection: &mut sqlx::AnyConnection,
    viewer: &Viewer,
) -> Result<u64, CrmError> {
    let changed = sqlx::query(
        "UPDATE notifications SET read = 1, read_at = $1 WHERE user_id = $2 AND read = 0",
    )
    .bind(now_rfc3339())
    .bind(viewer.id.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(changed.rows_affected())
}
