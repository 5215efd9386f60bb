//! `insert:` one row, optionally ignoring or overwriting on a unique conflict.

use super::{ActionError, Run, Scope};
use crate::route::compile::{ColumnValue, Compiler};
use crate::route::model::{ConflictAction, InsertDef};
use crate::route::Ident;
use crate::store::catalog::Column;
use crate::store::db;
use crate::store::sql::{insert_rows_sql, insert_sql, row_columns, Conflict};

/// A compiled insert.
#[derive(Debug, Clone)]
pub struct Insert {
    /// Target table.
    pub table: Ident,
    table_columns: Vec<Column>,
    values: Vec<ColumnValue>,
    conflict: Conflict,
    returning: Option<String>,
    sql: String,
    as_name: Option<String>,
    /// Set when a batch's rows of this step may go in as one statement ([`super::bulk`]).
    bulk: Option<super::bulk::RowKey>,
}

pub(super) fn compile(compiler: &mut Compiler<'_>, path: &str, def: &InsertDef) -> Option<Insert> {
    let table = compiler.table(&format!("{path}.table"), &def.table);
    let columns = compiler.columns(&format!("{path}.values"), table.as_ref(), &def.values);
    let conflict = match &def.on_conflict {
        None => Conflict::Fail,
        Some(on_conflict) => {
            let keys: Vec<Ident> = on_conflict
                .columns
                .iter()
                .enumerate()
                .filter_map(|(index, column)| {
                    let column_path = format!("{path}.on_conflict.columns[{index}]");
                    table
                        .as_ref()
                        .and_then(|table| compiler.column(&column_path, table, column))
                })
                .collect();
            if on_conflict.columns.is_empty() {
                compiler.error(
                    &format!("{path}.on_conflict.columns"),
                    "on_conflict needs at least one column",
                    None,
                );
            }
            match on_conflict.action {
                ConflictAction::Ignore => Conflict::Ignore(keys),
                ConflictAction::Update => Conflict::Update(keys),
            }
        }
    };
    if def.values.is_empty() {
        compiler.error(
            &format!("{path}.values"),
            "insert needs at least one value",
            None,
        );
    }
    let as_name = match &def.as_name {
        Some(name) => Some(compiler.step_name(&format!("{path}.as"), name)?),
        None => None,
    };
    let table = table?;
    if columns.len() != def.values.len() {
        return None;
    }
    let column_refs: Vec<&Ident> = columns.iter().map(|value| &value.column).collect();
    let table_columns = compiler.table_columns(&table);
    let returning = as_name.is_some().then(|| row_columns(&table_columns));
    let sql = insert_sql(&table, &column_refs, &conflict, returning.as_deref());
    Some(Insert {
        table_columns,
        table,
        values: columns,
        conflict,
        returning,
        sql,
        as_name,
        bulk: None,
    })
}

impl Insert {
    /// The values rendered for one event, in column order.
    pub(super) fn render(
        &self,
        templates: &crate::template::TemplateEnvironment,
        scope: &Scope,
    ) -> Result<Vec<db::Param<'static>>, ActionError> {
        super::typed_params(&self.values, templates, &scope.context())
    }

    /// The statement inserting `rows` rows at once.
    pub(super) fn rows_sql(&self, rows: usize) -> String {
        let columns: Vec<&Ident> = self.values.iter().map(|value| &value.column).collect();
        insert_rows_sql(
            &self.table,
            &columns,
            &self.conflict,
            self.returning.as_deref(),
            rows,
        )
    }

    /// How many values each row binds.
    pub(super) fn width(&self) -> usize {
        self.values.len()
    }

    /// The kept row's name (`as:`).
    pub(super) fn as_name(&self) -> Option<&str> {
        self.as_name.as_deref()
    }

    /// The table's columns, to read a returned row.
    pub(super) fn table_columns(&self) -> &[Column] {
        &self.table_columns
    }

    /// The columns written, in order, with their types.
    pub(super) fn values(&self) -> &[ColumnValue] {
        &self.values
    }

    /// What the statement does on a unique conflict.
    pub(super) fn conflict(&self) -> &Conflict {
        &self.conflict
    }

    /// How this step's rows are matched to their events when inserted in bulk; `None` when
    /// they are inserted one by one.
    pub(super) fn bulk(&self) -> Option<&super::bulk::RowKey> {
        self.bulk.as_ref()
    }

    pub(super) fn set_bulk(&mut self, bulk: Option<super::bulk::RowKey>) {
        self.bulk = bulk;
    }

    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
    ) -> Result<(), ActionError> {
        let context = scope.context();
        let params = super::typed_params(&self.values, run.templates, &context)?;
        super::trace_statement(run, &self.sql, &params, self.as_name.as_deref());
        let statement = db::query(&self.sql).bind_all(params);
        super::run_keeping_row(
            run,
            statement,
            self.as_name.as_deref(),
            &self.table_columns,
            scope,
        )
        .await
    }
}
