//! `update:` rows matching `where`: overwrite `set` columns, add to `increment` counters.

use super::filter::{self, Filter};
use super::{ActionError, Run, Scope};
use crate::route::compile::{ColumnValue, Compiler};
use crate::route::model::UpdateDef;
use crate::route::Ident;
use crate::store::catalog::Column;
use crate::store::sql::{row_columns, typed_param, StatementBuilder};

/// A compiled update.
#[derive(Debug, Clone)]
pub struct Update {
    /// Target table.
    pub table: Ident,
    table_columns: Vec<Column>,
    /// What `RETURNING` reads back ([`row_columns`]).
    returning: String,
    set: Vec<ColumnValue>,
    increment: Vec<ColumnValue>,
    filters: Vec<Filter>,
    as_name: Option<String>,
}

pub(super) fn compile(compiler: &mut Compiler<'_>, path: &str, def: &UpdateDef) -> Option<Update> {
    let table = compiler.table(&format!("{path}.table"), &def.table);
    let set = compiler.columns(&format!("{path}.set"), table.as_ref(), &def.set);
    let increment = compiler.columns(&format!("{path}.increment"), table.as_ref(), &def.increment);
    let filters = filter::compile(
        compiler,
        &format!("{path}.where"),
        table.as_ref(),
        &def.where_,
    );
    if def.set.is_empty() && def.increment.is_empty() {
        compiler.error(path, "update needs `set` or `increment`", None);
    }
    if def.where_.is_empty() {
        compiler.error(
            &format!("{path}.where"),
            "update needs a non-empty `where`",
            Some("an update of every row is almost always a mistake".into()),
        );
    }
    let as_name = match &def.as_name {
        Some(name) => Some(compiler.step_name(&format!("{path}.as"), name)?),
        None => None,
    };
    let table = table?;
    if set.len() != def.set.len() || increment.len() != def.increment.len() || def.where_.is_empty()
    {
        return None;
    }
    let table_columns = compiler.table_columns(&table);
    Some(Update {
        returning: row_columns(&table_columns),
        table_columns,
        table,
        set,
        increment,
        filters,
        as_name,
    })
}

impl Update {
    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
    ) -> Result<(), ActionError> {
        let context = scope.context();
        let mut builder = StatementBuilder::new(format!("UPDATE {} SET ", self.table.quoted()));
        let mut first = true;
        for (value, increments) in self
            .set
            .iter()
            .map(|value| (value, false))
            .chain(self.increment.iter().map(|value| (value, true)))
        {
            if !first {
                builder.push(", ");
            }
            first = false;
            let column = value.column.quoted();
            builder.push(&if increments {
                format!("{column} = COALESCE({column}, 0) + ")
            } else {
                format!("{column} = ")
            });
            let rendered = run.templates.render(&value.value, &context)?;
            builder.push_typed(
                typed_param(&value.column, &value.column_type, rendered)
                    .map_err(|refused| refused.at(&value.at))?,
            );
        }
        filter::push_where(&mut builder, &self.filters, run.templates, &context)?;
        builder.push(" RETURNING ");
        builder.push(&self.returning);
        let statement = builder.finish();
        super::trace_statement(
            run,
            &statement.sql,
            &statement.params,
            self.as_name.as_deref(),
        );
        let rows = statement
            .into_query()
            .fetch_all(&mut *run.connection)
            .await?;
        if self.as_name.is_none() && run.trace.is_none() {
            return Ok(());
        }
        let rows = rows
            .iter()
            .map(|row| {
                row.to_json(Some(&self.table_columns))
                    .map(serde_json::Value::Object)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = serde_json::Value::Array(rows);
        if let Some(name) = &self.as_name {
            scope.set_step(name, &rows);
        }
        if let Some(trace) = run.trace.as_deref_mut() {
            trace.returned(rows);
        }
        Ok(())
    }
}
