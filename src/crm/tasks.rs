//! Tasks: sales work items with a due date, an assignee and a status.

use crate::store::db::{self, Conn, Pool};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{Action, Resource};
use super::customers::{check_owner, require_visible};
use super::reference::{self, Reference};
use super::{fetch_visible, CrmError, Paging, Problems, Published, Viewer};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// Allowed `status` values.
pub const STATUSES: &[&str] = &["TODO", "IN_PROGRESS", "COMPLETED", "CANCELLED"];
/// Allowed `priority` values.
pub const PRIORITIES: &[&str] = &["LOW", "MEDIUM", "HIGH", "URGENT"];

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
#[schema(rename_all = "camelCase")]
pub struct Task {
    /// Id (UUID).
    pub id: String,
    /// Title.
    pub title: String,
    /// Details.
    pub description: Option<String>,
    /// The customer it is about.
    pub customer_id: Option<String>,
    /// Who does it.
    pub assignee_id: Option<String>,
    /// Due (RFC 3339).
    pub due_date: Option<String>,
    /// TODO, IN_PROGRESS, COMPLETED or CANCELLED.
    pub status: String,
    /// LOW, MEDIUM, HIGH or URGENT.
    pub priority: String,
    /// When it was completed.
    pub completed_at: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// The customer it is about, nested (the original CRM's `task.customer`).
    #[schema(value_type = Option<super::reference::CustomerReference>)]
    pub customer: Option<serde_json::Value>,
    /// Who does it, nested (the original CRM's `task.user`).
    #[schema(value_type = Option<super::reference::UserReference>)]
    pub user: Option<serde_json::Value>,
}

crate::record_from_row!(Task {
    id,
    title,
    description,
    customer_id,
    assignee_id,
    due_date,
    status,
    priority,
    completed_at,
    created_at,
    updated_at,
    customer,
    user
});

/// Fields of a new or changed task; `None` leaves a field as it is on update.
#[derive(Debug, Clone, Default)]
pub struct TaskFields {
    /// Title.
    pub title: Option<String>,
    /// Description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Customer.
    pub customer_id: Option<Option<String>>,
    /// Assignee.
    pub assignee_id: Option<String>,
    /// Due date (RFC 3339 or YYYY-MM-DD).
    pub due_date: Option<Option<String>>,
    /// Status.
    pub status: Option<String>,
    /// Priority.
    pub priority: Option<String>,
}

/// Filters of a task list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only tasks of this customer.
    pub customer_id: Option<String>,
    /// Only tasks assigned to this user.
    pub assignee_id: Option<String>,
    /// Only tasks in this status.
    pub status: Option<String>,
    /// Only open tasks due in this window, soonest first.
    pub due: Option<DueWindow>,
}

/// Due dates of open tasks (neither COMPLETED nor CANCELLED): at or after `from`, if given,
/// and before `before` (RFC 3339, as stored).
#[derive(Debug, Clone)]
pub struct DueWindow {
    /// Earliest due date listed.
    pub from: Option<String>,
    /// First due date not listed.
    pub before: String,
}

impl DueWindow {
    /// Open tasks whose due date has passed.
    pub fn overdue() -> Self {
        Self {
            from: None,
            before: now_rfc3339(),
        }
    }

    /// Open tasks due from the start of today (UTC) to the end of the third day after it, as
    /// the original CRM's dashboard lists them.
    pub fn upcoming() -> Self {
        let today = chrono::Utc::now().date_naive();
        let midnight = |date: chrono::NaiveDate| {
            date.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        Self {
            from: Some(midnight(today)),
            before: midnight(today + chrono::Days::new(4)),
        }
    }
}

/// The columns a record is read from, in the order of [`FIELDS`].
pub(crate) const COLUMNS: &str = "id, title, description, customer_id, assignee_id, due_date, status, priority, completed_at, created_at, updated_at";

/// How a task appears in a list the database renders (as `Task` serialises).
pub(crate) const FIELDS: &[super::JsonField] = &[
    super::field("id", "id"),
    super::field("title", "title"),
    super::field("description", "description"),
    super::field("customerId", "customer_id"),
    super::field("assigneeId", "assignee_id"),
    super::field("dueDate", "due_date"),
    super::field("status", "status"),
    super::field("priority", "priority"),
    super::field("completedAt", "completed_at"),
    super::field("createdAt", "created_at"),
    super::field("updatedAt", "updated_at"),
    super::json("customer", "customer"),
    super::json("user", "user"),
];

/// The records a task nests.
const REFERENCES: &[Reference] = &[
    Reference {
        alias: "customer",
        table: "customers",
        pointer: "tasks.customer_id",
        keys: reference::CUSTOMER_KEYS,
    },
    Reference {
        alias: "user",
        table: "users",
        pointer: "tasks.assignee_id",
        keys: reference::USER_KEYS,
    },
];

/// A task's `SELECT` list on `dialect`: its columns and what it nests.
pub(crate) fn selected(dialect: crate::store::Dialect) -> String {
    reference::selected(COLUMNS, REFERENCES, dialect)
}

impl super::Record for Task {
    const TABLE: &'static str = "tasks";
    const WHAT: &'static str = "task";

    fn selected(dialect: crate::store::Dialect) -> String {
        selected(dialect)
    }
}

fn check(fields: &TaskFields, creating: bool) -> Result<TaskFields, CrmError> {
    let mut problems = Problems::default();
    let mut checked = TaskFields::default();
    match &fields.title {
        Some(title) => checked.title = Some(problems.text("title", title, 300)),
        None if creating => problems.add("title", "is required"),
        None => {}
    }
    checked.description = fields
        .description
        .as_ref()
        .map(|value| problems.optional_text("description", value.as_deref(), 5000));
    checked.customer_id = fields.customer_id.clone();
    checked.assignee_id = fields.assignee_id.clone();
    checked.due_date = fields.due_date.as_ref().map(|value| {
        value
            .as_deref()
            .map(|value| problems.timestamp("dueDate", value))
    });
    checked.status = fields
        .status
        .as_deref()
        .map(|value| problems.one_of("status", value, STATUSES));
    checked.priority = fields
        .priority
        .as_deref()
        .map(|value| problems.one_of("priority", value, PRIORITIES));
    problems.into_result()?;
    Ok(checked)
}

/// Checks fields before the transaction starts (for 400s).
pub fn validate(fields: &TaskFields, creating: bool) -> Result<(), CrmError> {
    check(fields, creating).map(|_| ())
}

fn event_data(task: &Task) -> serde_json::Value {
    json!({
        "taskId": task.id,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "customerId": task.customer_id,
        "assigneeId": task.assignee_id,
        "dueDate": task.due_date,
        "priority": task.priority,
    })
}

/// Which tasks a viewer sees: assigned to someone in their scope, or about a customer owned by
/// someone in their scope.
pub(crate) fn restrict(viewer: &Viewer, statement: &mut StatementBuilder) {
    if viewer.role.sees_everything() {
        return;
    }
    statement.push(" AND (1 = 1");
    viewer.restrict(statement, "assignee_id");
    statement.push(" OR customer_id IN (SELECT id FROM customers WHERE 1 = 1");
    viewer.restrict(statement, "owner_id");
    statement.push("))");
}

/// Creates a task (assigned to the viewer unless another assignee is allowed) and `TASK_CREATED`.
pub async fn create(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    fields: &TaskFields,
) -> Result<Task, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, true)?;
    if let Some(assignee) = &fields.assignee_id {
        check_owner(connection, viewer, assignee).await?;
    }
    if let Some(Some(customer)) = &fields.customer_id {
        require_visible(connection, viewer, customer, "customerId").await?;
    }
    let now = now_rfc3339();
    let status = fields.status.unwrap_or_else(|| "TODO".to_owned());
    let task = Task {
        id: uuid::Uuid::new_v4().to_string(),
        title: fields.title.unwrap_or_default(),
        description: fields.description.flatten(),
        customer_id: fields.customer_id.flatten(),
        assignee_id: Some(fields.assignee_id.unwrap_or_else(|| viewer.id.clone())),
        due_date: fields.due_date.flatten(),
        completed_at: (status == "COMPLETED").then(|| now.clone()),
        status,
        priority: fields.priority.unwrap_or_else(|| "MEDIUM".to_owned()),
        created_at: now.clone(),
        updated_at: now,
        customer: None,
        user: None,
    };
    write(connection, &task, true).await?;
    let mut data = event_data(&task);
    viewer
        .audit(
            connection,
            Action::Create,
            Resource::Task,
            &task.id,
            Some(json!({"new": data})),
        )
        .await?;
    data.as_object_mut().expect("an object").remove("status");
    published
        .append(
            connection,
            "sales-activity.events",
            "TASK_CREATED",
            &task.id,
            data,
        )
        .await?;
    super::read_back(connection, &task.id).await
}

async fn write(connection: &mut Conn<'_>, task: &Task, insert: bool) -> Result<(), CrmError> {
    let sql = if insert {
        format!(
            "INSERT INTO tasks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
    } else {
        // Every column is rewritten from the row read in the same transaction; `created_at`
        // is bound unchanged so both statements take the same parameters.
        "UPDATE tasks SET title = $2, description = $3, customer_id = $4, assignee_id = $5, \
         due_date = $6, status = $7, priority = $8, completed_at = $9, created_at = $10, \
         updated_at = $11 WHERE id = $1"
            .to_owned()
    };
    db::query(&sql)
        .bind(task.id.as_str())
        .bind(task.title.as_str())
        .bind(task.description.as_deref())
        .bind(task.customer_id.as_deref())
        .bind(task.assignee_id.as_deref())
        .bind(task.due_date.as_deref())
        .bind(task.status.as_str())
        .bind(task.priority.as_str())
        .bind(task.completed_at.as_deref())
        .bind(task.created_at.as_str())
        .bind(task.updated_at.as_str())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// A visible, not deleted task.
pub async fn get(connection: &mut Conn<'_>, viewer: &Viewer, id: &str) -> Result<Task, CrmError> {
    let mut statement = StatementBuilder::new(format!(
        "SELECT {} FROM tasks WHERE deleted_at IS NULL AND id = ",
        selected(connection.dialect())
    ));
    statement.push_param(id.to_string());
    restrict(viewer, &mut statement);
    fetch_visible(connection, statement, "task").await
}

/// Visible tasks matching `filter`, newest first.
pub async fn list(
    pool: &Pool,
    viewer: &Viewer,
    filter: &TaskFilter,
    paging: Paging,
) -> Result<super::JsonPage<Task>, CrmError> {
    if let Some(status) = &filter.status {
        let mut problems = Problems::default();
        problems.one_of("status", status, STATUSES);
        problems.into_result()?;
    }
    let build = |select: &str| {
        let mut statement = StatementBuilder::new(format!(
            "SELECT {select} FROM tasks WHERE deleted_at IS NULL"
        ));
        restrict(viewer, &mut statement);
        statement.push_given([
            (" AND customer_id = ", filter.customer_id.as_ref()),
            (" AND assignee_id = ", filter.assignee_id.as_ref()),
            (" AND status = ", filter.status.as_ref()),
        ]);
        if let Some(window) = &filter.due {
            statement.push(" AND status NOT IN ('COMPLETED', 'CANCELLED') AND due_date < ");
            statement.push_param(window.before.clone());
            if let Some(from) = &window.from {
                statement.push(" AND due_date >= ");
                statement.push_param(from.clone());
            }
        }
        statement
    };
    let order = match filter.due {
        Some(_) => "due_date ASC, id ASC",
        None => "created_at DESC, id DESC",
    };
    super::fetch_json_page(
        pool,
        build,
        &selected(pool.dialect()),
        FIELDS,
        order,
        paging,
    )
    .await
}

/// Changes a visible task; announces `TASK_UPDATED`, and `TASK_COMPLETED` when it becomes
/// COMPLETED.
pub async fn update(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
    fields: &TaskFields,
) -> Result<Task, CrmError> {
    viewer.require_changes()?;
    let fields = check(fields, false)?;
    let mut task = get(connection, viewer, id).await?;
    let before = event_data(&task);
    let was_completed = task.status == "COMPLETED";
    if let Some(assignee) = &fields.assignee_id {
        if task.assignee_id.as_deref() != Some(assignee.as_str()) {
            check_owner(connection, viewer, assignee).await?;
        }
        task.assignee_id = Some(assignee.clone());
    }
    if let Some(title) = fields.title {
        task.title = title;
    }
    if let Some(description) = fields.description {
        task.description = description;
    }
    if let Some(customer) = fields.customer_id {
        if let Some(id) = &customer {
            if task.customer_id.as_deref() != Some(id.as_str()) {
                require_visible(connection, viewer, id, "customerId").await?;
            }
        }
        task.customer_id = customer;
    }
    if let Some(due) = fields.due_date {
        task.due_date = due;
    }
    if let Some(priority) = fields.priority {
        task.priority = priority;
    }
    let now = now_rfc3339();
    if let Some(status) = fields.status {
        task.completed_at = match (status == "COMPLETED", was_completed) {
            (true, true) => task.completed_at.take(),
            (true, false) => Some(now.clone()),
            (false, _) => None,
        };
        task.status = status;
    }
    task.updated_at = now;
    write(connection, &task, false).await?;
    let changes = json!({"before": before, "after": event_data(&task)});
    viewer
        .audit(
            connection,
            Action::Update,
            Resource::Task,
            &task.id,
            Some(changes),
        )
        .await?;
    published
        .append(
            connection,
            "sales-activity.events",
            "TASK_UPDATED",
            &task.id,
            event_data(&task),
        )
        .await?;
    if task.status == "COMPLETED" && !was_completed {
        published
            .append(
                connection,
                "sales-activity.events",
                "TASK_COMPLETED",
                &task.id,
                json!({
                    "taskId": task.id,
                    "customerId": task.customer_id,
                    "assigneeId": task.assignee_id,
                    "title": task.title,
                    "completedAt": task.completed_at,
                }),
            )
            .await?;
    }
    super::read_back(connection, &task.id).await
}

/// Soft-deletes a visible task (announced as `TASK_UPDATED` with status CANCELLED).
pub async fn delete(
    connection: &mut Conn<'_>,
    published: &mut Published,
    viewer: &Viewer,
    id: &str,
) -> Result<(), CrmError> {
    viewer.require_changes()?;
    let mut task = get(connection, viewer, id).await?;
    let now = now_rfc3339();
    let done = db::query(
        "UPDATE tasks SET deleted_at = $1, updated_at = $1, status = 'CANCELLED' \
         WHERE id = $2 AND deleted_at IS NULL",
    )
    .bind(now.as_str())
    .bind(task.id.as_str())
    .execute(&mut *connection)
    .await?;
    // Only a live row: of two deletes at once, the second finds nothing (404) and audits
    // nothing.
    if done.rows_affected() != 1 {
        return Err(CrmError::NotFound("task"));
    }
    task.status = "CANCELLED".into();
    task.updated_at = now;
    viewer
        .audit(connection, Action::Delete, Resource::Task, &task.id, None)
        .await?;
    published
        .append(
            connection,
            "sales-activity.events",
            "TASK_UPDATED",
            &task.id,
            event_data(&task),
        )
        .await?;
    Ok(())
}
