//! Test harness: the real `crm-router` binary on a random port, in a temp directory, on a
//! database of its own (a SQLite file in that directory, or a fresh PostgreSQL database),
//! talked to over HTTP and inspected through that database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

/// The API key every test daemon is started with.
pub const API_KEY: &str = "test-api-key-0123456789";

/// Path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_crm-router")
}

/// The repository root (for the bundled routes and schemas).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The database a test's daemon runs on. Database-touching tests run once per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `crm.db` in the project directory.
    Sqlite,
    /// A database of its own on the local PostgreSQL server (see [`PostgresDatabase`]).
    Postgres,
}

/// A project directory: routes/, schemas/, migrations/ and the database file.
pub struct Project {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// When set, the daemon runs on this PostgreSQL database instead of the SQLite file.
    pub postgres: Option<PostgresDatabase>,
}

/// A PostgreSQL database of its own for one test, on the local server (127.0.0.1:5432, user
/// postgres), dropped when the test ends.
pub struct PostgresDatabase {
    name: String,
}

fn psql(sql: &str) -> Result<(), String> {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .map_err(|error| format!("psql: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl PostgresDatabase {
    /// Creates the database, or returns `None` (skip) when PostgreSQL is not reachable outside
    /// CI. Under CI an unreachable server fails the test.
    pub fn create() -> Option<Self> {
        let name = format!("crm_router_test_{}", uuid::Uuid::new_v4().simple());
        match psql(&format!("CREATE DATABASE {name}")) {
            Ok(()) => Some(Self { name }),
            Err(error) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL at 127.0.0.1:5432 is not usable: {error}")
            }
            Err(error) => {
                eprintln!("SKIPPED: PostgreSQL at 127.0.0.1:5432 is not usable: {error}");
                None
            }
        }
    }

    /// `postgres://postgres@127.0.0.1:5432/NAME`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let _ = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Project {
    /// An empty project (no routes, no schemas) on SQLite.
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("routes")).unwrap();
        std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
        Self {
            dir,
            postgres: None,
        }
    }

    /// A project with the repository's bundled routes and schemas, on SQLite.
    pub fn bundled() -> Self {
        let project = Self::empty();
        copy_dir(&repo().join("routes"), &project.path().join("routes"));
        copy_dir(&repo().join("schemas"), &project.path().join("schemas"));
        project
    }

    /// An empty project on `backend`, or `None` (skip) when PostgreSQL is not reachable outside
    /// CI.
    pub fn empty_on(backend: Backend) -> Option<Self> {
        Self::empty().on(backend)
    }

    /// A project with the bundled routes on `backend`, or `None` (skip) when PostgreSQL is not
    /// reachable outside CI.
    pub fn bundled_on(backend: Backend) -> Option<Self> {
        Self::bundled().on(backend)
    }

    fn on(mut self, backend: Backend) -> Option<Self> {
        if backend == Backend::Postgres {
            self.postgres = Some(PostgresDatabase::create()?);
        }
        Some(self)
    }

    /// The database the project's daemon runs on.
    pub fn backend(&self) -> Backend {
        match self.postgres {
            Some(_) => Backend::Postgres,
            None => Backend::Sqlite,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the project (creating directories).
    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// The URL of the project's database: its PostgreSQL database, or its SQLite file.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(database) => database.url(),
            None => format!("sqlite://{}", self.path().join("crm.db").display()),
        }
    }

    /// Opens the project's database for assertions (after a daemon created it).
    pub async fn database(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        let is_sqlite = self.backend() == Backend::Sqlite;
        AnyPoolOptions::new()
            .max_connections(2)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    // The daemon writes while the test reads: wait for its locks, don't fail.
                    if is_sqlite {
                        connection.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&self.database_url())
            .await
            .unwrap()
    }

    /// Runs a `crm-router` subcommand to completion in the project directory, on the project's
    /// database.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .args(args)
            .current_dir(self.path())
            .env("DATABASE_URL", self.database_url())
            .env_remove("PORT")
            .output()
            .unwrap()
    }

    /// Runs `crm-router run` with `env` where it must refuse to start (within 30 s, non-zero);
    /// returns what it printed.
    pub fn refused_start(&self, env: &[(&str, &str)]) -> String {
        self.refused_start_on(&self.database_url(), env)
    }

    /// [`Project::refused_start`] on another database URL. libpq's `PGSSLMODE` and
    /// `PGSSLROOTCERT` of the test's own environment are left out, so the URL alone decides.
    pub fn refused_start_on(&self, database_url: &str, env: &[(&str, &str)]) -> String {
        let mut command = Command::new(binary());
        command
            .args([
                "run",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .current_dir(self.path())
            .env_remove("DATABASE_URL")
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the daemon started on {database_url} instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{stderr}");
        stderr
    }

    /// Starts the daemon with the API key set.
    pub fn start(&self) -> Daemon {
        Daemon::start(self, &[("CRM_ROUTER_API_KEY", API_KEY)])
    }
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<String>>,
    client: reqwest::Client,
}

impl Daemon {
    /// Starts `crm-router run` on port 0 and waits until it listens.
    pub fn start(project: &Project, env: &[(&str, &str)]) -> Self {
        Self::start_at(project, &project.database_url(), env)
    }

    /// Starts `crm-router run` in `project` but on `database_url` (the project's database
    /// reached another way, such as through a proxy), and waits until it listens.
    pub fn start_at(project: &Project, database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_adjusted(project, database_url, env, |_| {})
    }

    /// Like [`Daemon::start`], with the process's open-files limit (soft and hard) set to
    /// `limit`, as a service manager would (`LimitNOFILE=`).
    pub fn start_with_open_files_limit(
        project: &Project,
        env: &[(&str, &str)],
        limit: u64,
    ) -> Self {
        Self::start_adjusted(project, &project.database_url(), env, |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        limit,
                        limit,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        })
    }

    fn start_adjusted(
        project: &Project,
        database_url: &str,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Self {
        let mut command = Command::new(binary());
        command
            .args(["run", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(database_url)
            .current_dir(project.path())
            .env_remove("DATABASE_URL")
            .env_remove("PORT")
            .env_remove("CRM_ROUTER_API_KEY")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        adjust(&mut command);
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    // Plain or JSON logs: the address ends at the first character it cannot hold.
                    let address: String = rest
                        .chars()
                        .take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')
                        })
                        .collect();
                    let _ = address_sender.send(address);
                }
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = match address_receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("daemon did not start:\n{}", log.lock().unwrap());
            }
        };
        Self {
            child,
            base: format!("http://{address}"),
            log,
            client: reqwest::Client::new(),
        }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A request builder with the API key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", API_KEY)
    }

    /// POSTs an event; returns status and JSON body.
    pub async fn post_event(&self, topic: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/api/events/{topic}"), body).await
    }

    /// POSTs JSON to a path with the API key; returns status and JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs a path with the API key; returns status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap().code()
    }

    /// Sends SIGHUP (reload routes).
    pub fn hangup(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The one integer a query returns, such as `SELECT COUNT(*)`. On PostgreSQL `SUM()` of integers
/// is NUMERIC, which sqlx's `Any` driver cannot read: write `CAST(SUM(...) AS BIGINT)`.
pub async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the consumer position reaches the end of the log and stays there for two
/// consecutive polls (head and position read in one query, so they describe one moment).
pub async fn drained(pool: &AnyPool) {
    let caught_up = std::cell::Cell::new(0);
    eventually(
        Duration::from_secs(60),
        "the consumer to reach the end of the log",
        || async {
            let (head, position): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM event_log), \
                        (SELECT COALESCE(MAX(position), 0) FROM consumer_positions)",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            let settled = head > 0 && head == position;
            caught_up.set(if settled { caught_up.get() + 1 } else { 0 });
            (caught_up.get() >= 2).then_some(())
        },
    )
    .await;
}

/// Every row of `table` (ordered by `id`) as a JSON array of objects, column by column: text,
/// integer, real or null, the column types of the CRM tables on both databases. For "nothing
/// changed" comparisons.
pub async fn table_rows(pool: &AnyPool, table: &str) -> Value {
    use sqlx::{Column, Row};
    let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY id"))
        .fetch_all(pool)
        .await
        .unwrap();
    let rows = rows.iter().map(|row| {
        let mut object = serde_json::Map::new();
        for column in row.columns() {
            let index = column.ordinal();
            let value = if let Ok(text) = row.try_get::<Option<String>, _>(index) {
                serde_json::json!(text)
            } else if let Ok(integer) = row.try_get::<Option<i64>, _>(index) {
                serde_json::json!(integer)
            } else {
                serde_json::json!(row.try_get::<Option<f64>, _>(index).unwrap())
            };
            object.insert(column.name().to_owned(), value);
        }
        Value::Object(object)
    });
    Value::Array(rows.collect())
}
