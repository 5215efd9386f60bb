//! `where:` clauses shared by `update` and `query`: column → value (equality, or `IN` for a
//! list, `IS NULL` for null) or column → `{operator: value}`.

use crate::route::compile::Compiler;
use crate::route::model::ValueMap;
use crate::route::Ident;
use crate::store::sql::{FilterError, FilterOp, StatementBuilder};
use crate::store::ColumnType;
use crate::template::{TemplateEnvironment, TemplateValue, ValueTemplate};

use super::ActionError;

/// One compiled condition of a `where:`.
#[derive(Debug, Clone)]
pub struct Filter {
    column: Ident,
    column_type: ColumnType,
    op: FilterOp,
    value: ValueTemplate,
    /// `FILE:LINE:COL` of the value, for run-time errors.
    at: String,
}

/// Compiles a `where:` map.
pub fn compile(
    compiler: &mut Compiler<'_>,
    path: &str,
    table: Option<&Ident>,
    map: &ValueMap,
) -> Vec<Filter> {
    let mut filters = Vec::new();
    for (column, value) in map {
        let column_path = format!("{path}.{column}");
        let ident = match table {
            Some(table) => compiler.column(&column_path, table, column),
            None => None,
        };
        let operators = match value {
            serde_yaml::Value::Mapping(entries) => Some(entries),
            _ => None,
        };
        let mut compiled = Vec::new();
        match operators {
            Some(entries) => {
                for (operator, operand) in entries {
                    let name = operator.as_str().unwrap_or_default();
                    let operator_path = format!("{column_path}.{name}");
                    let Some(op) = FilterOp::parse(name) else {
                        compiler.error(
                            &operator_path,
                            format!("unknown operator {name:?} for column {column}"),
                            Some(format!("use one of {}", FilterOp::NAMES.join(", "))),
                        );
                        continue;
                    };
                    if let Some(template) = compiler.value(&operator_path, operand) {
                        compiled.push((op, template, operator_path));
                    }
                }
            }
            None => {
                if let Some(template) = compiler.value(&column_path, value) {
                    compiled.push((FilterOp::Eq, template, column_path.clone()));
                }
            }
        }
        if let (Some(ident), Some(table)) = (ident, table) {
            let column_type = compiler.column_type(&column_path, table, &ident);
            for (op, value, value_path) in compiled {
                compiler.check_operand(&value_path, &ident, &column_type, op, &value);
                filters.push(Filter {
                    column: ident.clone(),
                    column_type: column_type.clone(),
                    op,
                    value,
                    at: compiler.location(&value_path),
                });
            }
        }
    }
    filters
}

/// Renders the filters and appends them as a `WHERE` clause.
pub fn push_where(
    builder: &mut StatementBuilder,
    filters: &[Filter],
    templates: &TemplateEnvironment,
    context: &TemplateValue,
) -> Result<(), ActionError> {
    for (index, filter) in filters.iter().enumerate() {
        let value = templates.render(&filter.value, context)?;
        builder
            .push_condition(
                index == 0,
                &filter.column,
                &filter.column_type,
                filter.op,
                value,
            )
            .map_err(|error| match error {
                FilterError::Invalid(message) => {
                    ActionError::InvalidValue(format!("{message} (at {})", filter.at))
                }
                FilterError::Refused(refused) => ActionError::Refused(refused.at(&filter.at)),
            })?;
    }
    Ok(())
}
