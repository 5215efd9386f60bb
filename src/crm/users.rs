//! Users: registration, lookup, and the login event.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{is_unique_violation, CrmError, Paging, Problems, Published, Viewer};
use crate::auth::{password, Role};
use crate::store::sql::StatementBuilder;
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
        "SELECT id, email, name, role, manager_id, created_at, updated_at FROM users \
         WHERE id = $1 AND deleted_at IS NULL",
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
         FROM users WHERE id = $1 AND deleted_at IS NULL",
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
         token_generation FROM users WHERE email = $1 AND deleted_at IS NULL",
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

const COLUMNS: &str = "id, email, name, role, manager_id, created_at, updated_at";

/// How a user appears in a list the database renders (as `User` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("email", "email"),
    super::field("name", "name"),
    super::field("role", "role"),
    super::field("managerId", "manager_id"),
    super::field("createdAt", "created_at"),
    super::field("updatedAt", "updated_at"),
];

/// Which users a viewer may look up: everyone for an ADMIN or COMPLIANCE, themselves and their
/// team for a MANAGER; the others none (refused before this is asked).
fn restrict(viewer: &Viewer, statement: &mut StatementBuilder) {
    if viewer.role.sees_everything() {
        return;
    }
    statement.push(" AND (id = ");
    statement.push_param(viewer.id.to_string());
    statement.push(" OR manager_id = ");
    statement.push_param(viewer.id.to_string());
    statement.push(")");
}

/// Refuses roles that administer no users.
fn require_user_reader(viewer: &Viewer) -> Result<(), CrmError> {
    if viewer.role.sees_everything() || viewer.role.leads_a_team() {
        Ok(())
    } else {
        Err(CrmError::Forbidden(
            "only an ADMIN, a MANAGER (their team) or COMPLIANCE may look users up".into(),
        ))
    }
}

/// Users the viewer may look up, newest first (deleted ones are gone).
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    paging: Paging,
) -> Result<super::JsonPage<User>, CrmError> {
    require_user_reader(viewer)?;
    let build = |select: &str| {
        let mut statement = StatementBuilder::new(format!(
            "SELECT {select} FROM users WHERE deleted_at IS NULL"
        ));
        restrict(viewer, &mut statement);
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

/// A user the viewer may look up.
pub async fn get(connection: &mut Conn<'_>, viewer: &Viewer, id: &str) -> Result<User, CrmError> {
    require_user_reader(viewer)?;
    let mut statement = StatementBuilder::new(format!(
        "SELECT {COLUMNS} FROM users WHERE deleted_at IS NULL AND id = "
    ));
    statement.push_param(id.to_string());
    restrict(viewer, &mut statement);
    super::fetch_visible(connection, statement, "user").await
}

/// What an ADMIN may change of a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// Display name.
    pub name: Option<String>,
    /// Role.
    pub role: Option<Role>,
    /// Manager, whose team the user is in; `Some(None)` takes them out of any team.
    pub manager_id: Option<Option<String>>,
}

fn require_admin(viewer: &Viewer) -> Result<(), CrmError> {
    if viewer.role == Role::Admin {
        Ok(())
    } else {
        Err(CrmError::Forbidden(
            "only an ADMIN may change or delete users".into(),
        ))
    }
}

/// Changes a user (ADMIN only) and announces `USER_UPDATED` with what changed. A role change
/// takes effect at the user's next request, since roles are read on every request.
pub async fn update(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
    changes: &UserChanges,
) -> Result<User, CrmError> {
    require_admin(viewer)?;
    let mut problems = Problems::default();
    let name = changes
        .name
        .as_deref()
        .map(|name| problems.text("name", name, 200));
    if let Some(Some(manager)) = &changes.manager_id {
        if manager == id {
            problems.add("managerId", "a user cannot be their own manager");
        }
    }
    problems.into_result()?;
    let mut user = get(connection, viewer, id).await?;
    if let Some(Some(manager_id)) = &changes.manager_id {
        let manager = get(connection, viewer, manager_id).await.ok();
        if !manager.is_some_and(|manager| manager.role().leads_a_team()) {
            let mut problems = Problems::default();
            problems.add("managerId", "no MANAGER or ADMIN with this id");
            return Err(CrmError::Invalid(problems));
        }
    }
    let mut data = json!({"userId": user.id});
    if let Some(name) = name {
        data["name"] = json!(name);
        user.name = name;
    }
    if let Some(role) = changes.role {
        data["role"] = json!(role);
        user.role = role.as_str().to_owned();
    }
    if let Some(manager_id) = &changes.manager_id {
        data["managerId"] = json!(manager_id);
        user.manager_id = manager_id.clone();
    }
    user.updated_at = now_rfc3339();
    db::query(
        "UPDATE users SET name = $1, role = $2, manager_id = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(user.name.as_str())
    .bind(user.role.as_str())
    .bind(user.manager_id.as_deref())
    .bind(user.updated_at.as_str())
    .bind(user.id.as_str())
    .execute(&mut *connection)
    .await?;
    published
        .append(connection, "user.events", "USER_UPDATED", &user.id, data)
        .await?;
    Ok(user)
}

/// Deletes a user (ADMIN only, never oneself): the row stays for the records that name it,
/// but the user can no longer sign in, their tokens end at once, and `USER_DELETED` lets the
/// bundled cascade remove what belongs to them.
pub async fn delete(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
) -> Result<(), CrmError> {
    require_admin(viewer)?;
    if id == viewer.id {
        return Err(CrmError::Conflict(
            "an ADMIN cannot delete themselves; another ADMIN can".into(),
        ));
    }
    let user = get(connection, viewer, id).await?;
    let now = now_rfc3339();
    db::query(
        "UPDATE users SET deleted_at = $1, updated_at = $1, \
         token_generation = token_generation + 1 WHERE id = $2",
    )
    .bind(now.as_str())
    .bind(user.id.as_str())
    .execute(&mut *connection)
    .await?;
    published
        .append(
            connection,
            "user.events",
            "USER_DELETED",
            &user.id,
            json!({"userId": user.id}),
        )
        .await?;
    Ok(())
}
