//! `query:` rows into `steps.<as>`; `for_each:` runs nested actions once per row (as `row`).

use super::filter::{self, Filter};
use super::{ActionError, Run, Scope, Step};
use crate::route::compile::Compiler;
use crate::route::model::QueryDef;
use crate::route::reads::StepShape;
use crate::route::Ident;
use crate::store::catalog::Column;
use crate::store::sql::{row_columns, StatementBuilder};

/// Rows returned when `limit` is not given; bounds the work one event can cause.
const DEFAULT_LIMIT: u32 = 1000;

/// A compiled query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Table read.
    pub table: Ident,
    table_columns: Vec<Column>,
    /// What the select reads ([`row_columns`]).
    select: String,
    filters: Vec<Filter>,
    order_by: Vec<(Ident, bool)>,
    limit: u32,
    as_name: String,
    /// Actions run per row.
    pub for_each: Vec<Step>,
}

pub(super) fn compile(
    compiler: &mut Compiler<'_>,
    path: &str,
    step_path: &str,
    def: &QueryDef,
) -> Option<Query> {
    let table = compiler.table(&format!("{path}.table"), &def.table);
    let filters = filter::compile(
        compiler,
        &format!("{path}.where"),
        table.as_ref(),
        &def.where_,
    );
    let mut order_by = Vec::new();
    for (index, key) in def.order_by.iter().enumerate() {
        let key_path = format!("{path}.order_by[{index}]");
        let mut words = key.split_whitespace();
        let column = words.next().unwrap_or_default();
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                compiler.error(
                    &key_path,
                    format!("unknown sort direction {other:?}"),
                    Some("write `column` or `column desc`".into()),
                );
                continue;
            }
        };
        if let Some(column) = table
            .as_ref()
            .and_then(|table| compiler.column(&key_path, table, column))
        {
            order_by.push((column, descending));
        }
    }
    let as_name = compiler.step_name(&format!("{path}.as"), &def.as_name);
    // The rows are kept under `as:` before the loop runs, so its actions may read them too.
    if let Some(name) = &as_name {
        compiler.bind_step(name, StepShape::Rows("a query"));
    }
    let for_each = match &def.for_each {
        Some(actions) => {
            let rows = compiler.described(&def.table);
            compiler.enter_rows(rows);
            let steps = compiler.steps(
                &format!("{path}.for_each"),
                &format!("{step_path}.for_each"),
                actions,
            );
            compiler.leave_rows();
            steps
        }
        None => Vec::new(),
    };
    let limit = def.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        compiler.error(&format!("{path}.limit"), "limit must be at least 1", None);
    }
    let table = table?;
    let table_columns = compiler.table_columns(&table);
    Some(Query {
        select: row_columns(&table_columns),
        table_columns,
        table,
        filters,
        order_by,
        limit,
        as_name: as_name?,
        for_each,
    })
}

impl Query {
    /// Runs the select, records the rows under `steps.<as>` and returns them for `for_each`.
    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
    ) -> Result<Vec<serde_json::Value>, ActionError> {
        let context = scope.context();
        let mut builder = StatementBuilder::new(format!(
            "SELECT {} FROM {}",
            self.select,
            self.table.quoted()
        ));
        filter::push_where(&mut builder, &self.filters, run.templates, &context)?;
        for (index, (column, descending)) in self.order_by.iter().enumerate() {
            builder.push(if index == 0 { " ORDER BY " } else { ", " });
            builder.push(&column.quoted());
            if *descending {
                builder.push(" DESC");
            }
        }
        builder.push(" LIMIT ");
        builder.push_param(self.limit);
        let statement = builder.finish();
        super::trace_statement(run, &statement.sql, &statement.params, Some(&self.as_name));
        let rows = statement
            .into_query()
            .fetch_all(&mut *run.connection)
            .await?;
        let rows = rows
            .iter()
            .map(|row| {
                row.to_json(Some(&self.table_columns))
                    .map(serde_json::Value::Object)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let returned = serde_json::Value::Array(rows.clone());
        if let Some(trace) = run.trace.as_deref_mut() {
            trace.returned(returned.clone());
        }
        scope.set_step(&self.as_name, &returned);
        Ok(rows)
    }
}
