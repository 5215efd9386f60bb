//! Notifications: messages for one user, created by routes. A user only ever sees their own,
//! whatever their role.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};

use super::{CrmError, Paging, Viewer};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
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
    pub read: bool,
    /// Whether it was read, under the original CRM's name.
    #[serde(rename = "isRead")]
    pub is_read: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// When it was read.
    pub read_at: Option<String>,
}

impl crate::store::db::FromRow for Notification {
    fn from_row(row: &crate::store::db::Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            r#type: row.try_get("type")?,
            title: row.try_get("title")?,
            message: row.try_get("message")?,
            link: row.try_get("link")?,
            // An integer column (0/1) on both databases.
            read: row.try_get::<i64, _>("read")? != 0,
            is_read: row.try_get::<i64, _>("read")? != 0,
            created_at: row.try_get("created_at")?,
            read_at: row.try_get("read_at")?,
        })
    }
}

/// The columns a record is read from, in the order of [`FIELDS`]; `read` twice, since a
/// rendered list shows it under both its names.
pub(crate) const COLUMNS: &str =
    "id, user_id, type, title, message, link, read, read AS is_read, created_at, read_at";

/// How a notification appears in a list the database renders (as `Notification` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("userId", "user_id"),
    super::field("type", "type"),
    super::field("title", "title"),
    super::field("message", "message"),
    super::field("link", "link"),
    super::flag("read", "read"),
    super::flag("isRead", "is_read"),
    super::field("createdAt", "created_at"),
    super::field("readAt", "read_at"),
];

/// The viewer's notifications, newest first; only those read (or unread) when `read` says.
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    read: Option<bool>,
    paging: Paging,
) -> Result<super::JsonPage<Notification>, CrmError> {
    let build = |select: &str| {
        let mut statement = StatementBuilder::new(format!(
            "SELECT {select} FROM notifications WHERE user_id = "
        ));
        statement.push_param(viewer.id.to_string());
        match read {
            Some(true) => statement.push(" AND read = 1"),
            Some(false) => statement.push(" AND read = 0"),
            None => {}
        }
        statement
    };
    super::fetch_json_page(
        pool,
        build,
        COLUMNS,
        FIELDS,
        "created_at DESC, id DESC",
        paging,
    )
    .await
}

/// Marks one of the viewer's notifications read (idempotent); 404 for anyone else's.
pub async fn mark_read(
    connection: &mut Conn<'_>,
    viewer: &Viewer,
    id: &str,
) -> Result<Notification, CrmError> {
    db::query(
        "UPDATE notifications SET read = 1, read_at = $1 WHERE id = $2 AND user_id = $3 AND read = 0",
    )
    .bind(now_rfc3339())
    .bind(id)
    .bind(viewer.id.as_str())
    .execute(&mut *connection)
    .await?;
    db::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(viewer.id.as_str())
    .fetch_optional_as(&mut *connection)
    .await?
    .ok_or(CrmError::NotFound("notification"))
}

/// Marks all of the viewer's notifications read; returns how many changed.
pub async fn mark_all_read(connection: &mut Conn<'_>, viewer: &Viewer) -> Result<u64, CrmError> {
    let changed = db::query(
        "UPDATE notifications SET read = 1, read_at = $1 WHERE user_id = $2 AND read = 0",
    )
    .bind(now_rfc3339())
    .bind(viewer.id.as_str())
    .execute(&mut *connection)
    .await?;
    Ok(changed.rows_affected())
}

/// How many of the viewer's notifications are unread.
pub async fn unread_count(pool: &Pool, viewer: &Viewer) -> Result<i64, CrmError> {
    let count: i64 =
        db::query("SELECT COUNT(*) AS count FROM notifications WHERE user_id = $1 AND read = 0")
            .bind(viewer.id.as_str())
            .fetch_one(pool)
            .await?
            .try_get("count")?;
    Ok(count)
}

/// Deletes one of the viewer's notifications; 404 for anyone else's.
pub async fn delete(connection: &mut Conn<'_>, viewer: &Viewer, id: &str) -> Result<(), CrmError> {
    let deleted = db::query("DELETE FROM notifications WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(viewer.id.as_str())
        .execute(&mut *connection)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(CrmError::NotFound("notification"));
    }
    Ok(())
}
