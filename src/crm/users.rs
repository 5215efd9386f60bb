//! Users: registration, lookup, and the login event.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{audit, is_unique_violation, CrmError, Paging, Problems, Published, Viewer};
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
    /// Whether they may sign in (an ADMIN deactivates a user without deleting them).
    pub active: bool,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl crate::store::db::FromRow for User {
    fn from_row(row: &crate::store::db::Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            manager_id: row.try_get("manager_id")?,
            // An integer on both databases (PostgreSQL decodes no boolean from one).
            active: row.try_get::<i64, _>("active")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

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
/// row with its `USER_CREATED` event and audit entry. `by` is the ADMIN adding the user, or
/// `None` for a sign-up (the new user is then the entry's actor) or the operator's CLI;
/// `address` is where the request came from. The events are returned for the caller to
/// announce.
pub async fn register(
    store: &Store,
    registration: Registration,
    by: Option<&Viewer>,
    address: Option<std::net::IpAddr>,
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
    audit::record(
        &mut transaction,
        audit::Change {
            actor: audit::Actor {
                user_id: by.map_or(user.id.as_str(), |admin| admin.id.as_str()),
                address,
            },
            action: audit::Action::Create,
            resource: audit::Resource::User,
            resource_id: &user.id,
            changes: Some(json!({"new": {"email": user.email, "name": user.name,
                "role": user.role, "managerId": user.manager_id}})),
        },
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
        active: true,
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
    let row = db::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional_as(pool)
    .await?;
    Ok(row)
}

/// A user with their current session generation (see [`end_sessions`]), by id.
pub async fn find_session(pool: &Pool, id: &str) -> Result<Option<(User, i64)>, CrmError> {
    let row = db::query(&format!(
        "SELECT {COLUMNS}, token_generation FROM users WHERE id = $1 AND deleted_at IS NULL"
    ))
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
    let row = db::query(&format!(
        "SELECT {COLUMNS}, password_hash, token_generation FROM users \
         WHERE email = $1 AND deleted_at IS NULL"
    ))
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

/// Replaces a user's `outdated` password hash by `rehashed` (an imported bcrypt hash by Argon2id
/// at login). Nothing happens if the hash changed meanwhile, so a concurrent password change
/// wins.
pub async fn replace_password_hash(
    connection: &mut Conn<'_>,
    id: &str,
    outdated: &str,
    rehashed: &str,
) -> Result<(), CrmError> {
    db::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
        .bind(rehashed)
        .bind(id)
        .bind(outdated)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Logs the viewer out: ends every session of theirs by moving their session generation on,
/// so each token issued before stops working at once (a bearer token cannot be called back
/// on its own), and audits it.
pub async fn log_out(connection: &mut Conn<'_>, viewer: &Viewer) -> Result<(), CrmError> {
    db::query("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1")
        .bind(viewer.id.as_str())
        .execute(&mut *connection)
        .await?;
    audit::record(
        connection,
        audit::Change {
            actor: viewer.actor(),
            action: audit::Action::Logout,
            resource: audit::Resource::User,
            resource_id: &viewer.id,
            changes: None,
        },
    )
    .await?;
    Ok(())
}

/// Records a successful login from `address` as `USER_LOGGED_IN` and in the audit log.
pub async fn logged_in(
    connection: &mut Conn<'_>,
    published: &mut Published,
    user: &User,
    address: Option<std::net::IpAddr>,
) -> Result<(), CrmError> {
    audit::record(
        connection,
        audit::Change {
            actor: audit::Actor {
                user_id: &user.id,
                address,
            },
            action: audit::Action::Login,
            resource: audit::Resource::User,
            resource_id: &user.id,
            changes: None,
        },
    )
    .await?;
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

const COLUMNS: &str = "id, email, name, role, manager_id, active, created_at, updated_at";

/// How a user appears in a list the database renders (as `User` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("email", "email"),
    super::field("name", "name"),
    super::field("role", "role"),
    super::field("managerId", "manager_id"),
    super::flag("active", "active"),
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
    /// Whether they may sign in; deactivating ends their sessions at once.
    pub active: Option<bool>,
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
/// takes effect at the user's next request, since roles are read on every request; a
/// deactivation ends the user's sessions at once. An ADMIN may neither deactivate themselves
/// nor give up the role while no other ADMIN is left, so there is always one to undo it.
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
    if user.id == viewer.id && changes.active == Some(false) {
        return Err(CrmError::Conflict(
            "an ADMIN cannot deactivate themselves; another ADMIN can".into(),
        ));
    }
    if changes.role.is_some_and(|role| role != Role::Admin) || changes.active == Some(false) {
        keep_an_admin(connection, &user).await?;
    }
    if let Some(Some(manager_id)) = &changes.manager_id {
        let manager = get(connection, viewer, manager_id).await.ok();
        if !manager.is_some_and(|manager| manager.role().leads_a_team()) {
            let mut problems = Problems::default();
            problems.add("managerId", "no MANAGER or ADMIN with this id");
            return Err(CrmError::Invalid(problems));
        }
    }
    let before = json!({"name": user.name, "role": user.role, "managerId": user.manager_id,
        "active": user.active});
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
    let deactivated = user.active && changes.active == Some(false);
    if let Some(active) = changes.active {
        data["active"] = json!(active);
        user.active = active;
    }
    user.updated_at = now_rfc3339();
    db::query(
        "UPDATE users SET name = $1, role = $2, manager_id = $3, updated_at = $4, active = $5, \
         token_generation = token_generation + $6 WHERE id = $7",
    )
    .bind(user.name.as_str())
    .bind(user.role.as_str())
    .bind(user.manager_id.as_deref())
    .bind(user.updated_at.as_str())
    .bind(i64::from(user.active))
    .bind(i64::from(deactivated))
    .bind(user.id.as_str())
    .execute(&mut *connection)
    .await?;
    let after = json!({"name": user.name, "role": user.role, "managerId": user.manager_id,
        "active": user.active});
    audit::record(
        connection,
        audit::Change {
            actor: viewer.actor(),
            action: audit::Action::Update,
            resource: audit::Resource::User,
            resource_id: &user.id,
            changes: Some(json!({"before": before, "after": after})),
        },
    )
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
    keep_an_admin(connection, &user).await?;
    let now = now_rfc3339();
    db::query(
        "UPDATE users SET deleted_at = $1, updated_at = $1, \
         token_generation = token_generation + 1 WHERE id = $2",
    )
    .bind(now.as_str())
    .bind(user.id.as_str())
    .execute(&mut *connection)
    .await?;
    audit::record(
        connection,
        audit::Change {
            actor: viewer.actor(),
            action: audit::Action::Delete,
            resource: audit::Resource::User,
            resource_id: &user.id,
            changes: None,
        },
    )
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

/// Refuses a change that stops `target` being an active ADMIN when no other active ADMIN
/// would be left, so there is always one to undo things. On PostgreSQL, whose transactions
/// here are READ COMMITTED, the active ADMINs' rows are locked first, in id order: two such
/// changes at once (A demoting B while B demotes A) then wait for each other, and the second
/// counts what the first left. SQLite's write transaction is exclusive already.
async fn keep_an_admin(connection: &mut Conn<'_>, target: &User) -> Result<(), CrmError> {
    if target.role() != Role::Admin || !target.active {
        return Ok(());
    }
    let lock = match connection.dialect() {
        crate::store::Dialect::Postgres => " ORDER BY id FOR UPDATE",
        crate::store::Dialect::Sqlite => "",
    };
    let admins: Vec<(String,)> = db::query(&format!(
        "SELECT id FROM users WHERE role = 'ADMIN' AND deleted_at IS NULL AND active <> 0{lock}"
    ))
    .fetch_all_as(&mut *connection)
    .await?;
    if admins.iter().any(|(id,)| *id != target.id) {
        Ok(())
    } else {
        Err(CrmError::Conflict(
            "this would leave no active ADMIN: make another user ADMIN first".into(),
        ))
    }
}
