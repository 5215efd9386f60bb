//! What tables and columns exist, for `check` and for reload-time validation of routes.

use std::collections::{BTreeMap, BTreeSet};

use super::column_type::ColumnType;
use super::db::{self, Conn};
use super::{Dialect, StoreError};

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Declared SQL type, lower case (PostgreSQL: the type's own name, `int4`, `_text`).
    pub sql_type: String,
    /// What the daemon writes and reads for it.
    pub column_type: ColumnType,
}

impl Column {
    /// A column declared as `sql_type` in `dialect`.
    pub fn new(dialect: Dialect, name: impl Into<String>, sql_type: impl Into<String>) -> Self {
        let sql_type = sql_type.into().to_ascii_lowercase();
        Self {
            name: name.into(),
            column_type: ColumnType::from_declared(dialect, &sql_type),
            sql_type,
        }
    }
}

/// Tables and their columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    tables: BTreeMap<String, Vec<Column>>,
    /// Tables where nothing but their rows' final values can be observed: no CHECK, foreign
    /// key or exclusion constraint, no trigger on them or mentioning them, no view or rule
    /// reading them, no computed column default. Only there may a batch's increments be
    /// summed into one statement (`action::fold`).
    plain: BTreeSet<String>,
    /// Tables no trigger or rule watches, whose rows reference no other row (no foreign key)
    /// and whose defaults and checks read nothing another insert changes (no user function,
    /// no sequence but a column's own, no `currval`/`lastval`; on SQLite, no `ON CONFLICT
    /// REPLACE`): only there may a batch's inserts of one step go in as one statement
    /// (`action::bulk`), since nothing can see the order of the rows in between.
    bulk: BTreeSet<String>,
    /// The column sets of each table's unique constraints and indexes (checked at once, valid,
    /// not partial, not on expressions), the primary key and SQLite's `INTEGER PRIMARY KEY`
    /// included.
    unique: BTreeMap<String, Vec<BTreeSet<String>>>,
}

impl Catalog {
    /// Builds a catalog from (table, columns) pairs.
    pub fn from_tables(tables: impl IntoIterator<Item = (String, Vec<Column>)>) -> Self {
        Self {
            tables: tables.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Whether nothing but the final values of `table`'s rows can be observed (see
    /// [`Catalog`]'s `plain`).
    pub fn is_plain(&self, table: &str) -> bool {
        self.plain.contains(table)
    }

    /// Whether a batch's inserts into `table` may go in as one statement (see [`Catalog`]'s
    /// `bulk`).
    pub fn takes_bulk_inserts(&self, table: &str) -> bool {
        self.bulk.contains(table)
    }

    /// The columns of one of `table`'s unique keys that `columns` include all of, if any: rows
    /// inserted with different values there are different rows.
    pub fn covers_unique_key(&self, table: &str, columns: &[&str]) -> Option<Vec<String>> {
        let given: BTreeSet<&str> = columns.iter().copied().collect();
        self.unique.get(table)?.iter().find_map(|key| {
            key.iter()
                .all(|column| given.contains(column.as_str()))
                .then(|| key.iter().cloned().collect())
        })
    }

    /// Columns of `table`, if the table exists.
    pub fn columns(&self, table: &str) -> Option<&[Column]> {
        self.tables.get(table).map(Vec::as_slice)
    }

    /// All table names.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

/// Reads the catalog of the current database (SQLite) or schema (PostgreSQL).
pub(super) async fn read(
    connection: &mut Conn<'_>,
    dialect: Dialect,
) -> Result<Catalog, StoreError> {
    let rows = match dialect {
        Dialect::Sqlite => {
            db::query(
                "SELECT m.name AS table_name, p.name AS column_name, lower(p.type) AS column_type \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx_%' \
                 ORDER BY m.name, p.cid",
            )
            .fetch_all(&mut *connection)
            .await?
        }
        Dialect::Postgres => {
            db::query(
                "SELECT table_name::text AS table_name, column_name::text AS column_name, lower(udt_name::text) AS column_type \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx\\_%' \
                 ORDER BY table_name, ordinal_position",
            )
            .fetch_all(&mut *connection)
            .await?
        }
    };
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for row in rows {
        let table: String = row.try_get("table_name")?;
        tables.entry(table).or_default().push(Column::new(
            dialect,
            row.try_get::<String, _>("column_name")?,
            row.try_get::<String, _>("column_type")?,
        ));
    }
    let plain_sql = match dialect {
        // Conservative by text: any mention of CHECK or REFERENCES in the table's definition,
        // of the table in a trigger or view, or a default that calls something, disqualifies.
        Dialect::Sqlite => {
            "SELECT m.name AS table_name FROM sqlite_master m \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
             AND instr(lower(m.sql), 'check') = 0 AND instr(lower(m.sql), 'references') = 0 \
             AND NOT EXISTS (SELECT 1 FROM sqlite_master o WHERE o.type IN ('trigger', 'view') \
                 AND (o.tbl_name = m.name OR instr(lower(o.sql), lower(m.name)) > 0)) \
             AND NOT EXISTS (SELECT 1 FROM pragma_table_info(m.name) p \
                 WHERE p.dflt_value IS NOT NULL AND (instr(p.dflt_value, '(') > 0 \
                     OR upper(p.dflt_value) LIKE 'CURRENT%'))"
        }
        Dialect::Postgres => {
            "SELECT c.relname::text AS table_name FROM pg_class c \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid \
                 AND k.contype IN ('c', 'f', 'x', 't')) \
             AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE NOT t.tgisinternal \
                 AND (t.tgrelid = c.oid OR EXISTS (SELECT 1 FROM pg_proc f \
                     WHERE f.oid = t.tgfoid AND position(c.relname IN f.prosrc) > 0))) \
             AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid) \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
                 WHERE d.refobjid = c.oid) \
             AND NOT EXISTS (SELECT 1 FROM pg_attrdef a WHERE a.adrelid = c.oid \
                 AND position('(' IN pg_get_expr(a.adbin, a.adrelid)) > 0)"
        }
    };
    let mut plain = BTreeSet::new();
    for row in db::query(plain_sql).fetch_all(&mut *connection).await? {
        plain.insert(row.try_get::<String, _>("table_name")?);
    }
    let bulk_sql = match dialect {
        Dialect::Sqlite => {
            "SELECT m.name AS table_name FROM sqlite_master m \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
             AND instr(lower(m.sql), 'references') = 0 AND instr(lower(m.sql), 'replace') = 0 \
             AND NOT EXISTS (SELECT 1 FROM sqlite_master o WHERE o.type = 'trigger' \
                 AND (o.tbl_name = m.name OR instr(lower(o.sql), lower(m.name)) > 0))"
        }
        Dialect::Postgres => {
            "SELECT c.relname::text AS table_name FROM pg_class c \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid \
                 AND k.contype = 'f') \
             AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE NOT t.tgisinternal \
                 AND (t.tgrelid = c.oid OR EXISTS (SELECT 1 FROM pg_proc f \
                     WHERE f.oid = t.tgfoid AND position(c.relname IN f.prosrc) > 0))) \
             AND NOT EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid) \
             AND NOT EXISTS (SELECT 1 FROM pg_attrdef a WHERE a.adrelid = c.oid AND ( \
                 pg_get_expr(a.adbin, a.adrelid) ~* '(currval|lastval|setval)\\s*\\(' \
                 OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_attrdef'::regclass \
                     AND d.objid = a.oid AND d.refclassid = 'pg_proc'::regclass) \
                 OR EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class q ON q.oid = d.refobjid \
                     AND q.relkind = 'S' WHERE d.classid = 'pg_attrdef'::regclass \
                     AND d.objid = a.oid AND d.refclassid = 'pg_class'::regclass \
                     AND NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = 'pg_class'::regclass \
                         AND o.objid = q.oid AND o.refobjid = c.oid AND o.refobjsubid = a.adnum \
                         AND o.deptype IN ('a', 'i'))))) \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_depend d \
                 ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid \
                 AND d.refclassid = 'pg_proc'::regclass WHERE k.conrelid = c.oid)"
        }
    };
    let mut bulk = BTreeSet::new();
    for row in db::query(bulk_sql).fetch_all(&mut *connection).await? {
        bulk.insert(row.try_get::<String, _>("table_name")?);
    }
    Ok(Catalog {
        tables,
        plain,
        bulk,
        unique: unique_keys(connection, dialect).await?,
    })
}

/// Each table's unique column sets. An index with a column that is an expression (no name)
/// is left out.
async fn unique_keys(
    connection: &mut Conn<'_>,
    dialect: Dialect,
) -> Result<BTreeMap<String, Vec<BTreeSet<String>>>, StoreError> {
    let sql = match dialect {
        Dialect::Sqlite => {
            "SELECT m.name AS table_name, l.name AS index_name, i.name AS column_name \
             FROM sqlite_master m JOIN pragma_index_list(m.name) l JOIN pragma_index_info(l.name) i \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND l.\"unique\" = 1 AND l.partial = 0 \
             UNION ALL \
             SELECT m.name, '', p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND p.pk = 1 \
             AND lower(p.type) = 'integer' \
             AND (SELECT count(*) FROM pragma_table_info(m.name) q WHERE q.pk > 0) = 1"
        }
        Dialect::Postgres => {
            "SELECT c.relname::text AS table_name, i.indexrelid::regclass::text AS index_name, \
             a.attname::text AS column_name \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) AND a.attnum > 0 \
             WHERE c.relnamespace = current_schema()::regnamespace AND i.indisunique \
             AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL"
        }
    };
    let mut indexes: BTreeMap<(String, String), Option<BTreeSet<String>>> = BTreeMap::new();
    for row in db::query(sql).fetch_all(&mut *connection).await? {
        let table: String = row.try_get("table_name")?;
        let index: String = row.try_get("index_name")?;
        let column: Option<String> = row.try_get("column_name")?;
        let entry = indexes
            .entry((table, index))
            .or_insert_with(|| Some(BTreeSet::new()));
        match (entry.as_mut(), column) {
            (Some(columns), Some(column)) => {
                columns.insert(column);
            }
            _ => *entry = None,
        }
    }
    let mut unique: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for ((table, _), columns) in indexes {
        if let Some(columns) = columns.filter(|columns| !columns.is_empty()) {
            unique.entry(table).or_default().push(columns);
        }
    }
    Ok(unique)
}
