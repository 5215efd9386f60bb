//! `insert:` one row, optionally ignoring or overwriting on a unique conflict.

use super::{ActionError, Run, Scope};
use crate::route::compile::{ColumnValue, Compiler};
use crate::route::model::{ConflictAction, InsertDef};
use crate::route::Ident;
use crate::store::catalog::Column;
use crate::store::db;
use crate::store::sql::{insert_sql, row_columns, Conflict};

/// A compiled insert.
#[derive(Debug, Clone)]
pub struct Insert {
    /// Target table.
    pub table: Ident,
    table_columns: Vec<Column>,
    values: Vec<ColumnValue>,
    sql: String,
    as_name: Option<String>,
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
    let sql = insert_sql(
        &table,
        &column_refs,
        &conflict,
        as_name
            .is_some()
            .then(|| row_columns(&table_columns))
            .as_deref(),
    );
    Some(Insert {
        table_columns,
        table,
        values: columns,
        sql,
        as_name,
    })
}

impl Insert {
    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
    ) -> Result<(), ActionError> {
        let context = scope.context();
        let params = super::typed_params(&self.values, run.templates, &context)?;
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
