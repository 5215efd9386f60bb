//! Users: registration, lookup, and the login event.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{is_unique_violation, CrmError, Problems, Published};
use crate::auth::{password, Role};
use crate::store::Store;
use crate::template::now_rfc3339;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct User {
    /// Id (UUID).
    pub id: String,
    /// Email address (lower case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    #[schema(value_type = Role)]
    pub role: String,
    /// The user's manager, whose team they are in.
    pub manager_id: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

crate::record_from_row!(User {
    id,
    email,
    name,
    role,
    manager_id,
    created_at,
    updated_at
});

impl User {
    /// The role, parsed (an unknown stored role is treated as the least privileged).
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::User)
    }
}

/// A registration, before validation. Who may ask for which role or manager is the caller's
/// decision; this only checks the values.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Email.
    pub email: String,
    /// Plain-text password (hashed here, never stored).
    pub password: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Manager, whose team the user joins.
    pub manager_id: Option<String>,
}

/// Checks the values and hashes the password: (email, name, hash). Slow (Argon2).
fn validate_and_hash(registration: &Registration) -> Result<(String, String, String), CrmError> {
    let mut problems = Problems::default();
    let email = problems.email("email", &registration.email);
    let name = problems.text("name", &registration.name, 200);
    let length = registration.password.chars().count();
    if length < password::MIN_LENGTH {
        problems.add(
            "password",
            format!("must be at least {} characters", password::MIN_LENGTH),
        );
    } else if length > password::MAX_LENGTH {
        problems.add(
            "password",
            format!("must be at most {} characters", password::MAX_LENGTH),
        );
    }
    problems.into_result()?;
    let hash = password::hash(&registration.password)
        .map_err(|error| CrmError::Internal(error.to_string()))?;
    Ok((email, name, hash))
}

/// Registers a user: validates, hashes the password off the async threads, and commits the
/// row with its `USER_CREATED` event. The events are returned for the caller to announce.
pub async fn register(
    store: &Store,
    registration: Registration,
) -> Result<(User, Published), CrmError> {
    let role = registration.role;
    let manager_id = registration.manager_id.clone();
    let (email, name, hash) =
        crate::auth::hashing::run(move || validate_and_hash(&registration)).await??;
    let mut transaction = store.begin().await?;
    let mut published = Published::default();
    let user = insert(
        &mut transaction,
        &mut published,
        &email,
        &name,
        &hash,
        role,
        manager_id.as_deref(),
    )
    .await?;
    transaction.commit().await?;
    Ok((user, published))
}

/// Inserts a checked user and its `USER_CREATED` event. 409 when the email is taken.
async fn insert(
    connection: &mut Conn<'_>,
    published: &mut Published,
    email: &str,
    name: &str,
    password_hash: &str,
    role: Role,
    manager_id: Option<&str>,
) -> Result<User, CrmError> {
    let now = now_rfc3339();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_owned(),
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        manager_id: manager_id.map(str::to_owned),
        created_at: now.clone(),
        updated_at: now,
    };
    let inserted = db::query(
        "INSERT INTO users (id, email, password_hash, name, role, manager_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(user.id.as_str())
    .bind(user.email.as_str())
    .bind(password_hash)
    .bind(user.name.as_str())
    .bind(user.role.as_str())
    .bind(user.manager_id.as_deref())
    .bind(user.created_at.as_str())
    .bind(user.updated_at.as_str())
    .execute(&mut *connection)
    .await;
    match inserted {
        Ok(_) => {}
        Err(error) if is_unique_violation(&error) => {
            return Err(CrmError::Conflict(format!(
                "a user with email {} already exists",
                user.email
            )))
        }
        Err(error) => return Err(error.into()),
    }
    published
        .append(
            connection,
            "user.events",
            "USER_CREATED",
            &user.id,
            json!({"userId": user.id, "email": user.email, "name": user.name, "role": user.role}),
        )
        .await?;
    Ok(user)
}

/// A user by id.
pub async fn find(pool: &Pool, id: &str) -> Result<Option<User>, CrmError> {
    let row = db::query(
        "SELECT id, email, name, role, manager_id, created_at, updated_at FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional_as(pool)
    .await?;
    Ok(row)
}

/// A user with their current session generation (see [`end_sessions`]), by id.
pub async fn find_session(pool: &Pool, id: &str) -> Result<Option<(User, i64)>, CrmError> {
    let row = db::query(
        "SELECT id, email, name, role, manager_id, created_at, updated_at, token_generation \
         FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => Ok(Some((
            crate::store::db::FromRow::from_row(&row)?,
            row.try_get("token_generation")?,
        ))),
        None => Ok(None),
    }
}

/// A user who may log in: their record, password hash and session generation.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// The user.
    pub user: User,
    /// Their password hash (PHC string).
    pub password_hash: String,
    /// Their current session generation, which a new token carries.
    pub generation: i64,
}

/// A user who may log in, by email (case-insensitive).
pub async fn find_for_login(pool: &Pool, email: &str) -> Result<Option<LoginRecord>, CrmError> {
    let row = db::query(
        "SELECT id, email, name, role, manager_id, created_at, updated_at, password_hash, \
         token_generation FROM users WHERE email = $1",
    )
    .bind(super::validate::normalise_email(email))
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => Ok(Some(LoginRecord {
            user: crate::store::db::FromRow::from_row(&row)?,
            password_hash: row.try_get("password_hash")?,
            generation: row.try_get("token_generation")?,
        })),
        None => Ok(None),
    }
}

/// Ends every session of the user: moves their session generation on, so each token issued
/// before stops working at once. Also what a logout does, since a bearer token cannot be
/// called back on its own.
pub async fn end_sessions(connection: &mut Conn<'_>, id: &str) -> Result<(), CrmError> {
    db::query("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Records a successful login as `USER_LOGGED_IN`.
pub async fn logged_in(
    connection: &mut Conn<'_>,
    published: &mut Published,
    user: &User,
) -> Result<(), CrmError> {
    published
        .append(
            connection,
            "user.events",
            "USER_LOGGED_IN",
            &user.id,
            json!({"userId": user.id, "email": user.email}),
        )
        .await?;
    Ok(())
}
