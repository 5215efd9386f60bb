//! The `settings` table: values the daemon creates once and keeps (the token signing secret).

use super::db;
use super::{Store, StoreError};

/// The value stored under `name`, storing `value` first when there is none. Insert-if-absent
/// then read in one transaction, so daemons starting together agree on one value.
pub async fn get_or_insert(store: &Store, name: &str, value: &str) -> Result<String, StoreError> {
    let mut transaction = store.begin().await?;
    db::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(&mut *transaction)
        .await?;
    let row = db::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *transaction)
        .await?;
    let stored: String = row.try_get("value")?;
    transaction.commit().await?;
    Ok(stored)
}
