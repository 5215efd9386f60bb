//! Reports as the original CRM's reports page reads them: the dashboard's totals, meetings per
//! salesperson, tasks created and completed per day, and CSV exports, computed from the tables
//! at the time of asking and limited to what the viewer may see (a SALES user their own, a
//! MANAGER their team's, ADMIN and COMPLIANCE everything). Deleted records count nowhere.

use serde::Serialize;

use super::{approvals, meetings, tasks, CrmError, Problems, Viewer};
use crate::store::db::{Pool, Row};
use crate::store::sql::StatementBuilder;
use crate::template::now_rfc3339;

/// A count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Total {
    /// How many.
    pub total: i64,
}

/// The viewer's tasks, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskTotals {
    /// All tasks.
    pub total: i64,
    /// COMPLETED.
    pub completed: i64,
    /// Not COMPLETED (CANCELLED included, as the original counted them).
    pub pending: i64,
    /// Open (neither COMPLETED nor CANCELLED) and past their due date.
    pub overdue: i64,
    /// completed / total, in whole percent (0 without tasks).
    pub completion_rate: i64,
}

/// The viewer's approval requests, by decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalTotals {
    /// PENDING, APPROVED and REJECTED (RECALLED ones are not counted).
    pub total: i64,
    /// PENDING.
    pub pending: i64,
    /// APPROVED.
    pub approved: i64,
    /// REJECTED.
    pub rejected: i64,
    /// approved / (approved + rejected), in whole percent (0 before any decision).
    pub approval_rate: i64,
}

/// `GET /api/reports/dashboard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// Customers.
    pub customers: Total,
    /// Meetings.
    pub meetings: Total,
    /// Tasks.
    pub tasks: TaskTotals,
    /// Approval requests.
    pub approvals: ApprovalTotals,
}

/// A whole percent of `part` in `whole`, rounded half up as JavaScript's `Math.round` does
/// for positive numbers (0 when `whole` is 0).
fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        return 0;
    }
    (part * 200 + whole) / (whole * 2)
}

/// The counts `sql` selects: one row of integers (`COUNT`s and `SUM`s of them).
async fn counts<const N: usize>(
    pool: &Pool,
    statement: StatementBuilder,
) -> Result<[i64; N], CrmError> {
    let row = statement.finish().into_query().fetch_one(pool).await?;
    let mut counts = [0; N];
    for (index, count) in counts.iter_mut().enumerate() {
        *count = row.try_get::<Option<i64>, _>(index)?.unwrap_or(0);
    }
    Ok(counts)
}

/// The dashboard's totals for `viewer`.
pub async fn dashboard(pool: &Pool, viewer: &Viewer) -> Result<Dashboard, CrmError> {
    let mut customers =
        StatementBuilder::new("SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL");
    viewer.restrict(&mut customers, "owner_id");
    let [customers] = counts(pool, customers).await?;

    let mut meetings_count =
        StatementBuilder::new("SELECT COUNT(*) FROM meetings WHERE deleted_at IS NULL");
    meetings::restrict(viewer, &mut meetings_count);
    let [meetings] = counts(pool, meetings_count).await?;

    let mut task_counts = StatementBuilder::new(
        "SELECT COUNT(*), SUM(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status NOT IN ('COMPLETED', 'CANCELLED') AND due_date < ",
    );
    task_counts.push_param(now_rfc3339());
    task_counts.push(" THEN 1 ELSE 0 END) FROM tasks WHERE deleted_at IS NULL");
    tasks::restrict(viewer, &mut task_counts);
    let [task_total, completed, overdue] = counts(pool, task_counts).await?;

    let mut approval_counts = StatementBuilder::new(
        "SELECT SUM(CASE WHEN status = 'PENDING' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status = 'APPROVED' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN status = 'REJECTED' THEN 1 ELSE 0 END) FROM approvals WHERE 1 = 1",
    );
    approvals::restrict(viewer, &mut approval_counts);
    let [pending, approved, rejected] = counts(pool, approval_counts).await?;

    Ok(Dashboard {
        customers: Total { total: customers },
        meetings: Total { total: meetings },
        tasks: TaskTotals {
            total: task_total,
            completed,
            pending: task_total - completed,
            overdue,
            completion_rate: percent(completed, task_total),
        },
        approvals: ApprovalTotals {
            total: pending + approved + rejected,
            pending,
            approved,
            rejected,
            approval_rate: percent(approved, approved + rejected),
        },
    })
}

/// The period a report covers (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateRange {
    /// First instant counted.
    pub start_date: String,
    /// Last instant counted.
    pub end_date: String,
    /// Its length in days, when it was asked for that way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
}

/// One salesperson's meetings in a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SalesMetric {
    /// The salesperson.
    pub sales_id: String,
    /// Their name (`Unknown` if the user is gone).
    pub sales_name: String,
    /// Their email.
    pub sales_email: String,
    /// Meetings they held in the period.
    pub meeting_count: i64,
}

fn millis(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Meetings per salesperson from `start` to `end` (RFC 3339 or dates; by default the month
/// up to now), most first.
pub async fn sales_metrics(
    pool: &Pool,
    viewer: &Viewer,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<(Vec<SalesMetric>, DateRange), CrmError> {
    let now = chrono::Utc::now();
    let mut problems = Problems::default();
    let start = match start {
        Some(start) => problems.timestamp("startDate", start),
        None => millis(
            now.checked_sub_months(chrono::Months::new(1))
                .unwrap_or(now),
        ),
    };
    let end = match end {
        Some(end) => problems.timestamp_until("endDate", end),
        None => millis(now),
    };
    problems.into_result()?;
    let mut statement = StatementBuilder::new(
        "SELECT grouped.sales_id, \
         COALESCE((SELECT name FROM users WHERE users.id = grouped.sales_id), 'Unknown'), \
         COALESCE((SELECT email FROM users WHERE users.id = grouped.sales_id), ''), \
         grouped.meeting_count FROM (SELECT sales_id, COUNT(*) AS meeting_count FROM meetings \
         WHERE deleted_at IS NULL AND date >= ",
    );
    statement.push_param(start.clone());
    statement.push(" AND date <= ");
    statement.push_param(end.clone());
    meetings::restrict(viewer, &mut statement);
    statement.push(
        " GROUP BY sales_id) AS grouped ORDER BY grouped.meeting_count DESC, grouped.sales_id",
    );
    let rows: Vec<(String, String, String, i64)> =
        statement.finish().into_query().fetch_all_as(pool).await?;
    let metrics = rows
        .into_iter()
        .map(
            |(sales_id, sales_name, sales_email, meeting_count)| SalesMetric {
                sales_id,
                sales_name,
                sales_email,
                meeting_count,
            },
        )
        .collect();
    let range = DateRange {
        start_date: start,
        end_date: end,
        days: None,
    };
    Ok((metrics, range))
}

/// Tasks created and completed on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TaskTrend {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Tasks created that day.
    pub created: i64,
    /// Tasks completed that day.
    pub completed: i64,
}

/// Longest period of a task trend, in days.
pub const MAX_TREND_DAYS: i64 = 366;

/// Tasks created and completed per day over the last `days` days and today, oldest first,
/// every day listed.
pub async fn task_trends(
    pool: &Pool,
    viewer: &Viewer,
    days: i64,
) -> Result<(Vec<TaskTrend>, DateRange), CrmError> {
    if !(1..=MAX_TREND_DAYS).contains(&days) {
        let mut problems = Problems::default();
        problems.add("days", format!("must be from 1 to {MAX_TREND_DAYS}"));
        return Err(CrmError::Invalid(problems));
    }
    let now = chrono::Utc::now();
    let first_day = now.date_naive() - chrono::Days::new(days.unsigned_abs());
    let start = millis(first_day.and_time(chrono::NaiveTime::MIN).and_utc());
    let mut trends: Vec<TaskTrend> = first_day
        .iter_days()
        .take_while(|day| *day <= now.date_naive())
        .map(|day| TaskTrend {
            date: day.format("%Y-%m-%d").to_string(),
            created: 0,
            completed: 0,
        })
        .collect();
    for column in ["created_at", "completed_at"] {
        // Both timestamps are stored as RFC 3339 in UTC, so their first ten characters are
        // the day.
        let mut statement = StatementBuilder::new(format!(
            "SELECT SUBSTR({column}, 1, 10) AS day, COUNT(*) FROM tasks \
             WHERE deleted_at IS NULL AND {column} >= "
        ));
        statement.push_param(start.clone());
        tasks::restrict(viewer, &mut statement);
        statement.push(" GROUP BY SUBSTR(");
        statement.push(column);
        statement.push(", 1, 10)");
        let rows: Vec<(String, i64)> = statement.finish().into_query().fetch_all_as(pool).await?;
        for (day, count) in rows {
            if let Ok(index) = trends.binary_search_by(|trend| trend.date.as_str().cmp(&day)) {
                match column {
                    "created_at" => trends[index].created = count,
                    _ => trends[index].completed = count,
                }
            }
        }
    }
    let range = DateRange {
        start_date: start,
        end_date: millis(now),
        days: Some(days),
    };
    Ok((trends, range))
}

/// What `GET /api/reports/export/{type}` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Customers.
    Customers,
    /// Meetings.
    Meetings,
    /// Tasks.
    Tasks,
    /// Approval requests.
    Approvals,
}

impl Export {
    /// The names `type` may take.
    pub const NAMES: &'static [&'static str] = &["customers", "meetings", "tasks", "approvals"];

    /// The export called `name`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "customers" => Some(Self::Customers),
            "meetings" => Some(Self::Meetings),
            "tasks" => Some(Self::Tasks),
            "approvals" => Some(Self::Approvals),
            _ => None,
        }
    }

    /// The original CRM's column headers and the statement selecting the viewer's rows, its
    /// columns in the headers' order.
    fn statement(
        self,
        viewer: &Viewer,
    ) -> (&'static [&'static str], &'static [Cell], StatementBuilder) {
        let name_of = |table: &str, pointer: &str| {
            format!("(SELECT name FROM {table} AS named WHERE named.id = {pointer})")
        };
        match self {
            Self::Customers => {
                let mut statement = StatementBuilder::new(format!(
                    "SELECT id, name, email, phone, address, investment_profile, risk_tolerance, \
                     investment_experience, {}, created_at FROM customers \
                     WHERE deleted_at IS NULL",
                    name_of("users", "customers.owner_id")
                ));
                viewer.restrict(&mut statement, "owner_id");
                statement.push(" ORDER BY created_at, id");
                (
                    &[
                        "ID",
                        "名前",
                        "メール",
                        "電話",
                        "住所",
                        "投資プロファイル",
                        "リスク許容度",
                        "投資経験",
                        "担当営業",
                        "作成日",
                    ],
                    &[
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Integer,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                    ],
                    statement,
                )
            }
            Self::Meetings => {
                let mut statement = StatementBuilder::new(format!(
                    "SELECT id, {}, {}, date, summary, next_action, next_action_date, created_at \
                     FROM meetings WHERE deleted_at IS NULL",
                    name_of("customers", "meetings.customer_id"),
                    name_of("users", "meetings.sales_id")
                ));
                meetings::restrict(viewer, &mut statement);
                statement.push(" ORDER BY date, id");
                (
                    &[
                        "ID",
                        "顧客名",
                        "担当営業",
                        "日付",
                        "要約",
                        "次回アクション",
                        "次回アクション日",
                        "作成日",
                    ],
                    &[Cell::Text; 8],
                    statement,
                )
            }
            Self::Tasks => {
                let mut statement = StatementBuilder::new(format!(
                    "SELECT id, title, description, status, priority, due_date, {}, {}, \
                     completed_at, created_at FROM tasks WHERE deleted_at IS NULL",
                    name_of("users", "tasks.assignee_id"),
                    name_of("customers", "tasks.customer_id")
                ));
                tasks::restrict(viewer, &mut statement);
                statement.push(" ORDER BY created_at, id");
                (
                    &[
                        "ID",
                        "タイトル",
                        "説明",
                        "ステータス",
                        "優先度",
                        "期限",
                        "担当者",
                        "顧客名",
                        "完了日",
                        "作成日",
                    ],
                    &[Cell::Text; 10],
                    statement,
                )
            }
            Self::Approvals => {
                let mut statement = StatementBuilder::new(format!(
                    "SELECT id, {}, title, amount, status, {}, {}, comment, requested_at, \
                     decided_at FROM approvals WHERE 1 = 1",
                    name_of("customers", "approvals.customer_id"),
                    name_of("users", "approvals.requester_id"),
                    name_of("users", "approvals.approver_id")
                ));
                approvals::restrict(viewer, &mut statement);
                statement.push(" ORDER BY requested_at, id");
                (
                    &[
                        "ID",
                        "顧客名",
                        "商品名",
                        "金額",
                        "ステータス",
                        "申請者",
                        "承認者",
                        "コメント",
                        "申請日",
                        "処理日",
                    ],
                    &[
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Float,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                        Cell::Text,
                    ],
                    statement,
                )
            }
        }
    }
}

/// How an exported column is read.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Text,
    Integer,
    Float,
}

impl Cell {
    /// The column's value as CSV text (empty for NULL). Text that a spreadsheet would run as a
    /// formula (starting `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`,
    /// as OWASP advises: an export is opened by people, and a customer's name is anyone's input.
    fn read(self, row: &Row, index: usize) -> Result<String, sqlx::Error> {
        Ok(match self {
            Self::Text => match row.try_get::<Option<String>, _>(index)? {
                Some(text) if text.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                    format!("'{text}")
                }
                text => text.unwrap_or_default(),
            },
            Self::Integer => row
                .try_get::<Option<i64>, _>(index)?
                .map(|value| value.to_string())
                .unwrap_or_default(),
            Self::Float => row
                .try_get::<Option<f64>, _>(index)?
                .map(|value| value.to_string())
                .unwrap_or_default(),
        })
    }
}

/// The viewer's records of `export` as CSV: UTF-8 with a byte-order mark (so Excel reads the
/// Japanese headers), the original CRM's headers, oldest first.
pub async fn export_csv(pool: &Pool, viewer: &Viewer, export: Export) -> Result<Vec<u8>, CrmError> {
    let (headers, cells, statement) = export.statement(viewer);
    let rows = statement.finish().into_query().fetch_all(pool).await?;
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = csv::Writer::from_writer(&mut bytes);
        writer.write_record(headers).map_err(csv_failed)?;
        for row in &rows {
            let mut record = Vec::with_capacity(cells.len());
            for (index, cell) in cells.iter().enumerate() {
                record.push(cell.read(row, index)?);
            }
            writer.write_record(&record).map_err(csv_failed)?;
        }
        writer
            .flush()
            .map_err(|error| CrmError::Internal(error.to_string()))?;
    }
    Ok(bytes)
}

fn csv_failed(error: csv::Error) -> CrmError {
    CrmError::Internal(format!("cannot write CSV: {error}"))
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_round_half_up_like_the_original() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(2, 3), 67);
        assert_eq!(percent(1, 8), 13);
        assert_eq!(percent(5, 5), 100);
    }
}
