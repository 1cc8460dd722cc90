//! Backend-neutral SQL access for the incident store: one connection type ([`Conn`]) over
//! SQLite (rusqlite) or PostgreSQL (tokio-postgres), so every query of the store is written
//! once, in SQLite's dialect with `?N` placeholders, and rewritten for PostgreSQL by
//! [`pg_sql`] (placeholders, `json_group_array`, two-argument `min`/`max`, index hints).
//!
//! The API mirrors the subset of rusqlite the store used (`prepare_cached`, `execute`,
//! `query_row`, `query_map`, `optional`), with owned rows of neutral [`Value`]s.
//!
//! Every call is blocking. The PostgreSQL client's futures are polled with
//! `futures::executor::block_on` while the sockets are driven by a private runtime thread
//! (`pg-io`): unlike the sync `postgres` crate this never panics when called on a tokio worker
//! thread (it only blocks it, as SQLite does).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use super::location::PgConfig;

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {}", pg_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgresql: no answer within {0:?}")]
    Timeout(Duration),
    #[error("postgresql: cannot connect: {0}")]
    Connect(String),
    #[error("query returned no rows")]
    NoRows,
    /// A leader-only write (engine, outbox) after this instance lost the leader lease: the
    /// transaction was rolled back.
    #[error("not the leader: this instance no longer holds the leader lease")]
    NotLeader,
    #[error("column {idx}: {msg}")]
    Decode { idx: usize, msg: String },
}

pub type Result<T> = std::result::Result<T, DbError>;

/// `.optional()` on a single-row query, as in rusqlite.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// --- Parameters ---------------------------------------------------------------------------

pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(*self as i64)
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u64, usize, u8, i16, u16);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// What `execute`/`query*` accept: `params![…]`, `[x]`, or a `Vec<Value>`.
pub trait Params {
    fn into_values(self) -> Vec<Value>;
}
impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// `params![a, b]` → `Vec<Value>`.
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::incidents::db::Value>::new() };
    ($($x:expr),+ $(,)?) => {
        ::std::vec![$($crate::incidents::db::ToValue::to_value(&$x)),+]
    };
}
pub(crate) use params;

// --- Rows ---------------------------------------------------------------------------------

/// One result row, owned.
#[derive(Debug, Clone)]
pub struct Row {
    vals: Vec<Value>,
}

/// Column index (only `usize`: integer literals infer to it).
pub trait RowIndex {
    fn idx(self) -> usize;
}
impl RowIndex for usize {
    fn idx(self) -> usize {
        self
    }
}

pub trait FromValue: Sized {
    fn from_value(v: &Value, idx: usize) -> Result<Self>;
}

fn decode_err(idx: usize, want: &str, v: &Value) -> DbError {
    DbError::Decode {
        idx,
        msg: format!("expected {want}, found {v:?}"),
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value, idx: usize) -> Result<Self> {
                match v {
                    Value::Integer(i) => <$t>::try_from(*i).map_err(|_| decode_err(idx, stringify!($t), v)),
                    _ => Err(decode_err(idx, stringify!($t), v)),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u32, u64, usize, u8, i16, u16);

impl FromValue for bool {
    fn from_value(v: &Value, idx: usize) -> Result<Self> {
        match v {
            Value::Integer(i) => Ok(*i != 0),
            _ => Err(decode_err(idx, "bool", v)),
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value, idx: usize) -> Result<Self> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            _ => Err(decode_err(idx, "f64", v)),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value, idx: usize) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(decode_err(idx, "text", v)),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value, idx: usize) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(decode_err(idx, "blob", v)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value, idx: usize) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v, idx).map(Some),
        }
    }
}

impl Row {
    pub fn get<I: RowIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let idx = idx.idx();
        let v = self.vals.get(idx).ok_or_else(|| DbError::Decode {
            idx,
            msg: format!("no such column (row has {})", self.vals.len()),
        })?;
        T::from_value(v, idx)
    }

    /// The raw value (a blob without copying it).
    pub fn value(&self, idx: usize) -> Option<&Value> {
        self.vals.get(idx)
    }
}

/// Rows of `Stmt::query`, read with `while let Some(r) = rows.next()?`.
pub struct Rows {
    rows: std::vec::IntoIter<Row>,
    cur: Option<Row>,
}

impl Rows {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<&Row>> {
        self.cur = self.rows.next();
        Ok(self.cur.as_ref())
    }
}

// --- Connections --------------------------------------------------------------------------

/// Longest a PostgreSQL round trip may take before the call fails (and the connection is
/// dropped, to be opened again by the next call).
pub const PG_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to either backend.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Pg(Box<PgConn>),
}

/// A PostgreSQL connection that reconnects on the next call once it broke.
pub struct PgConn {
    config: PgConfig,
    /// This instance's name once it takes part in leader election (shared by the store's
    /// connections): leader-only commits check the lease.
    fence: std::sync::Arc<OnceLock<String>>,
    client: RefCell<Option<tokio_postgres::Client>>,
    stmts: RefCell<HashMap<String, tokio_postgres::Statement>>,
}

/// A prepared statement.
pub struct Stmt<'c> {
    inner: StmtInner<'c>,
}

enum StmtInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    SqliteOnce(rusqlite::Statement<'c>),
    Pg {
        conn: &'c PgConn,
        stmt: tokio_postgres::Statement,
    },
}

/// A transaction: rolled back on drop unless committed.
pub struct Tx<'c> {
    conn: &'c Conn,
    done: bool,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        if let Conn::Pg(p) = self.conn {
            if FENCED.get() {
                if let Some(me) = p.fence.get() {
                    // FOR SHARE: a takeover (an UPDATE of the row) waits for this commit, so
                    // a deposed leader's write either lands before it or not at all.
                    let held = self
                        .conn
                        .query_row(
                            &format!(
                                "SELECT 1 FROM leader_lease WHERE id = 1 AND holder = ?1 \
                                 AND expires_at > {PG_NOW_MS} FOR SHARE"
                            ),
                            [me.as_str()],
                            |_| Ok(()),
                        )
                        .optional()?;
                    if held.is_none() {
                        return Err(DbError::NotLeader); // rolled back by drop
                    }
                }
            }
        }
        self.done = true;
        self.conn.execute_batch("COMMIT")
    }
}

/// The database clock in Unix milliseconds (PostgreSQL): leases compare times of one clock.
pub const PG_NOW_MS: &str = "CAST(extract(epoch from clock_timestamp()) * 1000 AS BIGINT)";

thread_local! {
    /// Set while a leader-only operation runs on this thread (see [`fenced`]).
    static FENCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` as a leader-only operation: on a fenced PostgreSQL store its transactions commit
/// only while this instance holds the leader lease.
pub fn fenced<T>(on: bool, f: impl FnOnce() -> T) -> T {
    let prev = FENCED.replace(on);
    let r = f();
    FENCED.set(prev);
    r
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Conn {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    /// A write transaction (`BEGIN IMMEDIATE` on SQLite: takes the write lock at once).
    pub fn write_tx(&self) -> Result<Tx<'_>> {
        self.execute_batch(match self {
            Conn::Sqlite(_) => "BEGIN IMMEDIATE",
            Conn::Pg(_) => "BEGIN",
        })?;
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    /// A read transaction: every statement in it sees one snapshot.
    pub fn read_tx(&self) -> Result<Tx<'_>> {
        self.execute_batch(match self {
            Conn::Sqlite(_) => "BEGIN",
            Conn::Pg(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(p) => p.batch(sql),
        }
    }

    /// A statement kept in the connection's cache.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt {
            inner: match self {
                Conn::Sqlite(c) => StmtInner::Sqlite(c.prepare_cached(sql)?),
                Conn::Pg(p) => StmtInner::Pg {
                    conn: p,
                    stmt: p.prepare(sql, true)?,
                },
            },
        })
    }

    /// A statement used once (shapes too many to cache).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(Stmt {
            inner: match self {
                Conn::Sqlite(c) => StmtInner::SqliteOnce(c.prepare(sql)?),
                Conn::Pg(p) => StmtInner::Pg {
                    conn: p,
                    stmt: p.prepare(sql, false)?,
                },
            },
        })
    }

    pub fn execute<P: Params>(&self, sql: &str, p: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    pub fn query_row<P: Params, T>(
        &self,
        sql: &str,
        p: P,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }
}

fn sqlite_params(vals: Vec<Value>) -> Vec<rusqlite::types::Value> {
    vals.into_iter()
        .map(|v| match v {
            Value::Null => rusqlite::types::Value::Null,
            Value::Integer(i) => rusqlite::types::Value::Integer(i),
            Value::Real(f) => rusqlite::types::Value::Real(f),
            Value::Text(s) => rusqlite::types::Value::Text(s),
            Value::Blob(b) => rusqlite::types::Value::Blob(b),
        })
        .collect()
}

fn sqlite_rows(stmt: &mut rusqlite::Statement<'_>, vals: Vec<Value>) -> Result<Vec<Row>> {
    use rusqlite::types::ValueRef;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(sqlite_params(vals)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(Row { vals });
    }
    Ok(out)
}

impl Stmt<'_> {
    fn rows(&mut self, vals: Vec<Value>) -> Result<Vec<Row>> {
        match &mut self.inner {
            StmtInner::Sqlite(s) => sqlite_rows(s, vals),
            StmtInner::SqliteOnce(s) => sqlite_rows(s, vals),
            StmtInner::Pg { conn, stmt } => conn.query(stmt, &vals),
        }
    }

    /// Rows changed.
    pub fn execute<P: Params>(&mut self, p: P) -> Result<usize> {
        let vals = p.into_values();
        match &mut self.inner {
            StmtInner::Sqlite(s) => Ok(s.execute(rusqlite::params_from_iter(sqlite_params(vals)))?),
            StmtInner::SqliteOnce(s) => {
                Ok(s.execute(rusqlite::params_from_iter(sqlite_params(vals)))?)
            }
            StmtInner::Pg { conn, stmt } => conn.execute(stmt, &vals).map(|n| n as usize),
        }
    }

    /// The first row mapped by `f`; [`DbError::NoRows`] without one.
    pub fn query_row<P: Params, T>(
        &mut self,
        p: P,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let rows = self.rows(p.into_values())?;
        match rows.first() {
            Some(r) => f(r),
            None => Err(DbError::NoRows),
        }
    }

    pub fn query_map<P: Params, T>(
        &mut self,
        p: P,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.rows(p.into_values())?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    pub fn query<P: Params>(&mut self, p: P) -> Result<Rows> {
        Ok(Rows {
            rows: self.rows(p.into_values())?.into_iter(),
            cur: None,
        })
    }
}

// --- PostgreSQL ---------------------------------------------------------------------------

/// Drives the PostgreSQL sockets (and timers) whatever thread calls the store.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pg-io")
            .enable_all()
            .build()
            .expect("a tokio runtime for PostgreSQL I/O")
    })
}

/// Polls `f` on this thread with a deadline, timers on the I/O runtime.
fn block<F: std::future::Future>(f: F) -> Result<F::Output> {
    let _enter = io_runtime().enter();
    let timed = tokio::time::timeout(PG_TIMEOUT, f);
    futures::executor::block_on(timed).map_err(|_| DbError::Timeout(PG_TIMEOUT))
}

/// A PostgreSQL error with its cause (`tokio_postgres::Error` alone says only "db error" or
/// "error performing TLS handshake"): "FATAL: no pg_hba.conf entry for … (28000)", "error
/// performing TLS handshake: invalid peer certificate: UnknownIssuer".
fn pg_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{db} ({})", db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Connects with `tls` (plain or rustls), hands the client to `tx`, then drives the
/// connection until it closes.
async fn connect_and_drive<T>(
    config: tokio_postgres::Config,
    tls: T,
    tx: std::sync::mpsc::Sender<Result<tokio_postgres::Client>>,
) where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
{
    match tokio::time::timeout(PG_TIMEOUT, config.connect(tls)).await {
        Ok(Ok((client, connection))) => {
            let _ = tx.send(Ok(client));
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        }
        Ok(Err(e)) => {
            let _ = tx.send(Err(DbError::Postgres(e)));
        }
        Err(_) => {
            let _ = tx.send(Err(DbError::Timeout(PG_TIMEOUT)));
        }
    }
}

impl PgConn {
    /// Connects (blocking, bounded by [`PG_TIMEOUT`]).
    pub fn connect(config: &PgConfig, fence: std::sync::Arc<OnceLock<String>>) -> Result<PgConn> {
        let conn = PgConn {
            config: config.clone(),
            fence,
            client: RefCell::new(None),
            stmts: RefCell::new(HashMap::new()),
        };
        conn.ensure()?;
        Ok(conn)
    }

    /// A connection that connects at its first use (the database may be down now).
    pub fn lazy(config: &PgConfig, fence: std::sync::Arc<OnceLock<String>>) -> PgConn {
        PgConn {
            config: config.clone(),
            fence,
            client: RefCell::new(None),
            stmts: RefCell::new(HashMap::new()),
        }
    }

    fn open(config: &PgConfig) -> Result<tokio_postgres::Client> {
        let (tx, rx) = std::sync::mpsc::channel();
        let PgConfig { pg, tls } = config.clone();
        io_runtime().spawn(async move {
            match tls {
                Some(tls) => connect_and_drive(pg, tls, tx).await,
                None => connect_and_drive(pg, tokio_postgres::NoTls, tx).await,
            }
        });
        rx.recv()
            .map_err(|_| DbError::Connect("I/O runtime stopped".into()))?
    }

    /// Reconnects when the connection is gone; statements are then prepared again.
    fn ensure(&self) -> Result<()> {
        let broken = match &*self.client.borrow() {
            Some(c) => c.is_closed(),
            None => true,
        };
        if broken {
            self.stmts.borrow_mut().clear();
            *self.client.borrow_mut() = None;
            *self.client.borrow_mut() = Some(Self::open(&self.config)?);
        }
        Ok(())
    }

    /// Runs `f` on the client; a timeout drops the connection (its state is unknown).
    fn with<T>(
        &self,
        f: impl FnOnce(&tokio_postgres::Client) -> Result<std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        self.ensure()?;
        let r = {
            let guard = self.client.borrow();
            let client = guard.as_ref().expect("ensured");
            f(client)
        };
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_closed() {
                    *self.client.borrow_mut() = None;
                }
                Err(e.into())
            }
            Err(e) => {
                *self.client.borrow_mut() = None;
                Err(e)
            }
        }
    }

    fn batch(&self, sql: &str) -> Result<()> {
        // ROLLBACK on a dropped connection: nothing to roll back.
        if sql == "ROLLBACK" && self.client.borrow().as_ref().is_none_or(|c| c.is_closed()) {
            return Ok(());
        }
        self.with(|c| block(c.batch_execute(sql)))
    }

    fn prepare(&self, sql: &str, cache: bool) -> Result<tokio_postgres::Statement> {
        self.ensure()?;
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let pg = pg_sql(sql);
        let stmt = self.with(|c| block(c.prepare(&pg)))?;
        if cache {
            let mut stmts = self.stmts.borrow_mut();
            if stmts.len() >= 256 {
                stmts.clear();
            }
            stmts.insert(sql.to_string(), stmt.clone());
        }
        Ok(stmt)
    }

    fn params(vals: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
        vals.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
    }

    fn query(&self, stmt: &tokio_postgres::Statement, vals: &[Value]) -> Result<Vec<Row>> {
        let params = Self::params(vals);
        let rows = self.with(|c| block(c.query(stmt, &params)))?;
        rows.iter()
            .map(|r| {
                let vals = (0..r.len())
                    .map(|i| r.try_get::<_, PgVal>(i).map(|v| v.0))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(Row { vals })
            })
            .collect()
    }

    fn execute(&self, stmt: &tokio_postgres::Statement, vals: &[Value]) -> Result<u64> {
        let params = Self::params(vals);
        self.with(|c| block(c.execute(stmt, &params)))
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("integer parameter for a {ty} column").into()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(format!("real parameter for a {ty} column").into()),
            },
            Value::Text(s) => match *ty {
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::INT8 | Type::INT4 | Type::INT2 | Type::FLOAT8 | Type::BYTEA => {
                    Err(format!("text parameter for a {ty} column").into())
                }
                _ => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(format!("blob parameter for a {ty} column").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Any column, decoded to a [`Value`].
struct PgVal(Value);

impl<'a> FromSql<'a> for PgVal {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgVal(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => Value::Text(String::from_utf8(raw.get(1..).unwrap_or(&[]).to_vec())?),
            Type::NUMERIC => numeric(raw)?,
            // text, varchar, name, json, unknown
            _ => Value::Text(String::from_utf8(raw.to_vec())?),
        }))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgVal(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// NUMERIC (what `sum(bigint)` returns) in binary form: an integer when it has no fraction.
fn numeric(raw: &[u8]) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<u16, Box<dyn std::error::Error + Sync + Send>> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "short numeric".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let dscale = word(6)?;
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut int: i128 = 0;
    let mut f = 0f64;
    let mut exact = dscale == 0;
    for k in 0..ndigits {
        let d = word(8 + 2 * k)? as i128;
        let pow = weight - k as i32;
        f += d as f64 * 10000f64.powi(pow);
        if pow >= 0 {
            int = int
                .checked_add(
                    d.checked_mul(10000i128.checked_pow(pow as u32).ok_or("overflow")?)
                        .ok_or("overflow")?,
                )
                .ok_or("overflow")?;
        } else if d != 0 {
            exact = false;
        }
    }
    let neg = sign == 0x4000;
    if exact {
        if let Ok(i) = i64::try_from(if neg { -int } else { int }) {
            return Ok(Value::Integer(i));
        }
    }
    Ok(Value::Real(if neg { -f } else { f }))
}

// --- Dialect ------------------------------------------------------------------------------

/// Replaces every call `name(args)` (matching parentheses) by `f(args)`; None from `f` keeps it.
fn replace_calls(sql: &str, name: &str, f: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    let lower_name = name.to_ascii_lowercase();
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(pos) = find_call(&lower, &lower_name) else {
            out.push_str(rest);
            return out;
        };
        let open = pos + name.len();
        let bytes = rest.as_bytes();
        let mut depth = 0usize;
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            out.push_str(rest);
            return out;
        };
        let inner = &rest[open + 1..close];
        out.push_str(&rest[..pos]);
        // Rewrite nested calls first.
        let inner = replace_calls(inner, name, f);
        match f(&inner) {
            Some(r) => out.push_str(&r),
            None => {
                out.push_str(&rest[pos..open + 1]);
                out.push_str(&inner);
                out.push(')');
            }
        }
        rest = &rest[close + 1..];
    }
}

/// Position of `name(` as a whole word in `lower`.
fn find_call(lower: &str, name: &str) -> Option<usize> {
    let pat = format!("{name}(");
    let mut from = 0;
    while let Some(p) = lower[from..].find(&pat) {
        let at = from + p;
        let before = lower[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Some(at);
        }
        from = at + pat.len();
    }
    None
}

/// Splits at top-level commas.
fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A query in the store's (SQLite) dialect rewritten for PostgreSQL.
pub fn pg_sql(sql: &str) -> String {
    static HINTS: OnceLock<regex::Regex> = OnceLock::new();
    static PARAMS: OnceLock<regex::Regex> = OnceLock::new();
    let hints = HINTS.get_or_init(|| {
        regex::Regex::new(r"(?i)\s+(INDEXED\s+BY\s+\w+|NOT\s+INDEXED)").expect("valid regex")
    });
    let params = PARAMS.get_or_init(|| regex::Regex::new(r"\?(\d+)").expect("valid regex"));
    let s = hints.replace_all(sql, "");
    let s = s.replace("CROSS JOIN", "JOIN");
    let s = replace_calls(&s, "json_array", &|a| {
        Some(format!("json_build_array({a})"))
    });
    let s = replace_calls(&s, "json_group_array", &|a| {
        Some(format!("COALESCE(json_agg({a})::text, '[]')"))
    });
    let s = replace_calls(&s, "min", &|a| {
        (split_args(a).len() > 1).then(|| format!("LEAST({a})"))
    });
    let s = replace_calls(&s, "max", &|a| {
        (split_args(a).len() > 1).then(|| format!("GREATEST({a})"))
    });
    params.replace_all(&s, "$$$1").into_owned()
}

/// A migration in SQLite's DDL rewritten for PostgreSQL: 64-bit integers, identity keys,
/// `BYTEA`, `DOUBLE PRECISION`, no `WITHOUT ROWID`.
pub fn pg_ddl(sql: &str) -> String {
    static RULES: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (
                r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            ),
            (r"\bINTEGER\b", "BIGINT"),
            (r"\bREAL\b", "DOUBLE PRECISION"),
            (r"\bBLOB\b", "BYTEA"),
            (r"\)\s*WITHOUT\s+ROWID", ")"),
        ]
        .into_iter()
        .map(|(p, r)| (regex::Regex::new(p).expect("valid regex"), r))
        .collect()
    });
    let mut s = sql.to_string();
    for (re, rep) in rules {
        s = re.replace_all(&s, *rep).into_owned();
    }
    pg_sql(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_rewrites() {
        assert_eq!(
            pg_sql("SELECT json_group_array(site ORDER BY pos) FROM t WHERE a = ?1 AND b < ?12"),
            "SELECT COALESCE(json_agg(site ORDER BY pos)::text, '[]') FROM t WHERE a = $1 AND b < $12"
        );
        assert_eq!(
            pg_sql("SELECT json_group_array(json_array(team, step)) FROM e"),
            "SELECT COALESCE(json_agg(json_build_array(team, step))::text, '[]') FROM e"
        );
        assert_eq!(
            pg_sql("UPDATE m SET s = min(s, ?2), t = max(t, x) WHERE y = (SELECT min(z) FROM q)"),
            "UPDATE m SET s = LEAST(s, $2), t = GREATEST(t, x) WHERE y = (SELECT min(z) FROM q)"
        );
        assert_eq!(
            pg_sql("SELECT id FROM incidents i INDEXED BY incidents_resolved_at WHERE x"),
            "SELECT id FROM incidents i WHERE x"
        );
        assert_eq!(
            pg_sql("FROM incidents i NOT INDEXED WHERE a CROSS JOIN b"),
            "FROM incidents i WHERE a JOIN b"
        );
        let ddl = pg_ddl(
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, h BLOB, f REAL) WITHOUT ROWID;",
        );
        assert_eq!(
            ddl,
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, h BYTEA, f DOUBLE PRECISION);"
        );
    }

    #[test]
    fn numeric_decodes() {
        // 12345678 = digits [1234, 5678], weight 1
        let raw = [0u8, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(numeric(&raw).unwrap(), Value::Integer(12_345_678));
        // -5 = digits [5], weight 0, negative
        let raw = [0u8, 1, 0, 0, 0x40, 0, 0, 0, 0, 5];
        assert_eq!(numeric(&raw).unwrap(), Value::Integer(-5));
        // 0 = no digits
        assert_eq!(
            numeric(&[0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Value::Integer(0)
        );
    }

    #[test]
    fn sqlite_round_trip() {
        let c = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d REAL)")
            .unwrap();
        let tx = c.write_tx().unwrap();
        tx.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![7i64, "x", vec![1u8, 2], 1.5f64],
        )
        .unwrap();
        tx.commit().unwrap();
        let (a, b, cc, d, none): (i64, String, Vec<u8>, f64, Option<i64>) = c
            .query_row("SELECT a, b, c, d, NULL FROM t", params![], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap();
        assert_eq!(
            (a, b.as_str(), cc, d, none),
            (7, "x", vec![1, 2], 1.5, None)
        );
        let missing = c
            .query_row("SELECT a FROM t WHERE a = ?1", [8i64], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .unwrap();
        assert_eq!(missing, None);
        // A dropped transaction rolls back.
        {
            let tx = c.write_tx().unwrap();
            tx.execute("DELETE FROM t", params![]).unwrap();
        }
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
