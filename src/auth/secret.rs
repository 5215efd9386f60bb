//! The token signing secret: `JWT_SECRET`, or one generated once and kept in the database.

use super::AuthError;
use crate::store::{settings, Store};

/// Shortest `JWT_SECRET` accepted (256 bits, the size of an HS256 key).
pub const MIN_SECRET_BYTES: usize = 32;

const SETTING: &str = "jwt_secret";

/// Where the secret came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    /// `JWT_SECRET`.
    Environment,
    /// The `settings` table (generated on first start).
    Database,
}

/// The secret to sign tokens with. A configured secret must be long enough. Without one, a
/// random secret is generated once and stored, so tokens survive restarts and every daemon on
/// the same database accepts the others' tokens.
pub async fn resolve(
    store: &Store,
    configured: Option<&str>,
) -> Result<(Vec<u8>, SecretOrigin), AuthError> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::WeakSecret {
                min: MIN_SECRET_BYTES,
                actual: secret.len(),
            });
        }
        return Ok((secret.as_bytes().to_vec(), SecretOrigin::Environment));
    }
    let generated = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let value = settings::get_or_insert(store, SETTING, &generated).await?;
    Ok((value.into_bytes(), SecretOrigin::Database))
}
