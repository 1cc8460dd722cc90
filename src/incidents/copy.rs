//! `lienthong migrate --from sqlite:old.db --to postgres://…`: copies a whole store, ids
//! included (outbox idempotency keys and SSE event ids keep their meaning), table by table in
//! foreign-key order, then moves the destination's id sequences past the copied ids. The
//! destination must hold no incidents yet.

use super::db::{Conn, Row, Value};
use super::store::{Store, StoreError};

/// Tables copied, parents first. The cluster tables describe live instances: not copied.
const TABLES: &[&str] = &[
    "incidents",
    "incident_sites",
    "incident_teams",
    "events",
    "notes",
    "outbox",
    "maintenance",
    "escalations",
    "history_checks",
    "history_minute",
    "history_hour",
    "history_meta",
    "agent_seq",
];

/// Tables whose `id` is generated (PostgreSQL identity columns).
const IDENTITY: &[&str] = &[
    "incidents",
    "events",
    "notes",
    "outbox",
    "maintenance",
    "history_checks",
];

/// Rows read per page.
const PAGE: i64 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] super::db::DbError),
    #[error("the destination already holds {0} incidents: copy into an empty store")]
    NotEmpty(i64),
}

/// Columns of `table` in the destination's order (both have the same schema version).
fn columns(conn: &Conn, table: &str) -> Result<Vec<String>, StoreError> {
    let sql = match conn {
        Conn::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
        Conn::Pg(_) => format!(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' \
             ORDER BY ordinal_position"
        ),
    };
    let cols = conn
        .prepare(&sql)?
        .query_map(Vec::<Value>::new(), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cols)
}

/// Copies every table of `from` into `to`. Returns (table, rows) in copy order.
pub fn copy_store(from: &Store, to: &Store) -> Result<Vec<(&'static str, u64)>, CopyError> {
    let have: i64 =
        to.reader()
            .query_row("SELECT count(*) FROM incidents", Vec::<Value>::new(), |r| {
                r.get(0)
            })?;
    if have > 0 {
        return Err(CopyError::NotEmpty(have));
    }
    let src = from.reader();
    let dst = to.writer();
    let tx = dst.write_tx().map_err(StoreError::from)?;
    let mut report = Vec::new();
    for &table in TABLES {
        let cols = columns(&src, table)?;
        let list = cols.join(", ");
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", marks.join(", "));
        let mut n = 0u64;
        let mut offset = 0i64;
        loop {
            let rows: Vec<Row> = src
                .prepare(&format!(
                    "SELECT {list} FROM {table} ORDER BY 1 LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(vec![Value::Integer(PAGE), Value::Integer(offset)], |r| {
                    Ok(r.clone())
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = tx.prepare_cached(&insert)?;
            for r in &rows {
                let vals: Vec<Value> = (0..cols.len())
                    .map(|i| r.value(i).cloned().unwrap_or(Value::Null))
                    .collect();
                stmt.execute(vals)?;
            }
            n += rows.len() as u64;
            if (rows.len() as i64) < PAGE {
                break;
            }
            offset += PAGE;
        }
        report.push((table, n));
    }
    if tx.is_postgres() {
        for table in IDENTITY {
            tx.execute_batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 GREATEST((SELECT max(id) FROM {table}), 1))"
            ))
            .map_err(StoreError::from)?;
        }
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(report)
}
