//! `upsert:` insert a row keyed by `where`, or update the existing one (set + increment).

use super::{ActionError, Run, Scope};
use crate::route::compile::{ColumnValue, Compiler};
use crate::route::model::UpsertDef;
use crate::route::Ident;
use crate::store::catalog::Column;
use crate::store::db;
use crate::store::sql::{row_columns, upsert_sql};

/// A compiled upsert.
#[derive(Debug, Clone)]
pub struct Upsert {
    /// Target table.
    pub table: Ident,
    table_columns: Vec<Column>,
    values: Vec<ColumnValue>,
    /// How many of `values` are the `where:` keys, then the `set:` columns (the rest are the
    /// increments).
    keys: usize,
    sets: usize,
    sql: String,
    as_name: Option<String>,
    /// Whether its increments may be summed across a batch ([`super::fold`]).
    foldable: bool,
}

pub(super) fn compile(compiler: &mut Compiler<'_>, path: &str, def: &UpsertDef) -> Option<Upsert> {
    let table = compiler.table(&format!("{path}.table"), &def.table);
    let keys = compiler.columns(&format!("{path}.where"), table.as_ref(), &def.where_);
    let set = compiler.columns(&format!("{path}.set"), table.as_ref(), &def.set);
    let increment = compiler.columns(&format!("{path}.increment"), table.as_ref(), &def.increment);
    if def.where_.is_empty() {
        compiler.error(
            &format!("{path}.where"),
            "upsert needs `where` key columns (a unique constraint)",
            None,
        );
    }
    let as_name = match &def.as_name {
        Some(name) => Some(compiler.step_name(&format!("{path}.as"), name)?),
        None => None,
    };
    let table = table?;
    if keys.len() != def.where_.len()
        || set.len() != def.set.len()
        || increment.len() != def.increment.len()
        || keys.is_empty()
    {
        return None;
    }
    let refs = |values: &[ColumnValue]| {
        values
            .iter()
            .map(|value| value.column.clone())
            .collect::<Vec<_>>()
    };
    let (key_columns, set_columns, increment_columns) = (refs(&keys), refs(&set), refs(&increment));
    let table_columns = compiler.table_columns(&table);
    let sql = upsert_sql(
        &table,
        &key_columns.iter().collect::<Vec<_>>(),
        &set_columns.iter().collect::<Vec<_>>(),
        &increment_columns.iter().collect::<Vec<_>>(),
        as_name
            .is_some()
            .then(|| row_columns(&table_columns))
            .as_deref(),
    );
    let (key_count, set_count) = (keys.len(), set.len());
    let values = keys.into_iter().chain(set).chain(increment).collect();
    Some(Upsert {
        table_columns,
        table,
        values,
        keys: key_count,
        sets: set_count,
        sql,
        as_name,
        foldable: false,
    })
}

impl Upsert {
    /// Whether it only adds to counters: no `set:` and no `as:`.
    pub(super) fn only_increments(&self) -> bool {
        self.as_name.is_none() && self.sets == 0 && self.values.len() > self.keys
    }

    /// Its statement.
    pub(super) fn sql(&self) -> &str {
        &self.sql
    }

    pub(super) fn set_foldable(&mut self, foldable: bool) {
        self.foldable = foldable;
    }

    /// Whether its increments are summed across a batch.
    pub fn foldable(&self) -> bool {
        self.foldable
    }

    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
    ) -> Result<(), ActionError> {
        let context = scope.context();
        let params = super::typed_params(&self.values, run.templates, &context)?;
        super::trace_statement(run, &self.sql, &params, self.as_name.as_deref());
        if let (true, Some(folds)) = (self.foldable, run.folds.as_deref_mut()) {
            let (key, increments) = params.split_at(self.keys);
            if folds.add(&self.sql, key, increments).is_ok() {
                return Ok(());
            }
            // Not summable: what is pending goes first, so the rows change in event order.
            folds.write(&mut *run.connection).await?;
        }
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
