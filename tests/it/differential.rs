//! The batched engine against a reference that handles one event per transaction: random
//! route sets × random event streams must leave identical tables, emitted events, dead letters,
//! claims and positions, on SQLite and on PostgreSQL.
//!
//! The reference is the same engine given one record per transaction, so it never folds more
//! than one event's increments, never abandons a pass for another event's failure and commits
//! each event's emits before the next event runs: the one-by-one semantics that batching
//! (claims and appends per batch, folded increments, an unguarded pass abandoned for a guarded
//! one) must not change.
//!
//! PostgreSQL hands out sequence values outside transactions, so a pass that is rolled back
//! leaves gaps: `journal.seq` is compared by order, not value. Everything else is compared as
//! stored, with generated event ids replaced by their place in the log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arc_swap::ArcSwap;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio_util::sync::CancellationToken;

use crm_router::engine::retry::RetryPolicy;
use crm_router::engine::{BatchOutcome, Engine, EngineOptions, Stream};
use crm_router::event::{Envelope, Event, TopicName};
use crm_router::route::load::{load, LoadOptions, Source};
use crm_router::store::db;
use crm_router::store::log::{self, EMBEDDED_STREAM};
use crm_router::store::Store;
use crm_router::template::{TemplateLimits, TemplateValue};

use crate::support::{Backend, PostgresDatabase};

const TOPIC: &str = "t.events";
const CONSUMER: &str = "differential";

fn migration(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE TABLE items (id TEXT PRIMARY KEY, grp TEXT NOT NULL, n INTEGER NOT NULL);
CREATE TABLE codes (code TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE TABLE tallies (grp TEXT NOT NULL, kind TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0,
  hits INTEGER NOT NULL DEFAULT 0, last TEXT, PRIMARY KEY (grp, kind));
CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT NOT NULL, val TEXT NOT NULL);
"
        }
        Backend::Postgres => {
            "CREATE TABLE items (id TEXT PRIMARY KEY, grp TEXT NOT NULL, n BIGINT NOT NULL);
CREATE TABLE codes (code TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE TABLE tallies (grp TEXT NOT NULL, kind TEXT NOT NULL, total BIGINT NOT NULL DEFAULT 0,
  hits BIGINT NOT NULL DEFAULT 0, last TEXT, PRIMARY KEY (grp, kind));
CREATE TABLE journal (seq BIGSERIAL PRIMARY KEY, src TEXT NOT NULL, val TEXT NOT NULL);
"
        }
    }
}

/// What an unique insert does on a conflict.
#[derive(Debug, Clone, Copy)]
enum OnConflict {
    Fail,
    Ignore,
    Update,
}

/// One generated step; `when` guards it.
#[derive(Debug, Clone)]
struct StepSpec {
    kind: StepKind,
    when: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum StepKind {
    /// `items` keyed by the event's `id` (shared across routes unless `own` adds the step's tag).
    InsertItem {
        own: bool,
        conflict: OnConflict,
        keep: bool,
    },
    /// `codes` keyed by the event's `code`: frequent conflicts.
    InsertCode { conflict: OnConflict },
    /// An increment on (grp, event type): foldable unless some step also sets `tallies`.
    Tally,
    /// An upsert that overwrites `last`, which makes `tallies` unfoldable.
    TallySet,
    /// Increments every item of the group.
    UpdateItems,
    /// Up to three items of the group, each journalled by a nested insert.
    QueryForEach,
    /// Reads the code's owner and journals it.
    ReadCode,
    /// Journals a row kept by an earlier step of the route, if any.
    ReadEarlier,
    /// Emits an event of a later type.
    Emit { to: usize },
    /// Fails for flagged events: an undefined variable, or text for an integer column.
    Fail { refused: bool },
    /// Journals the step's tag: the order of journal rows is the order steps ran.
    Journal,
}

#[derive(Debug, Clone)]
struct RouteSpec {
    /// Index into `TYPES`, or every type of the topic.
    on: Option<usize>,
    when: Option<&'static str>,
    steps: Vec<StepSpec>,
}

/// Event types in cascade order: a route may emit only types after its own, so cascades end.
const TYPES: [&str; 3] = ["A", "B", "C"];

#[derive(Debug, Clone)]
struct EventSpec {
    event_type: usize,
    id: u8,
    grp: u8,
    code: u8,
    n: i64,
    flag: bool,
    /// Delivered again right after (the same event id and envelope).
    repeat: bool,
}

#[derive(Debug, Clone)]
struct Case {
    routes: Vec<RouteSpec>,
    events: Vec<EventSpec>,
    batch: usize,
}

fn conflict() -> impl Strategy<Value = OnConflict> {
    prop_oneof![
        Just(OnConflict::Fail),
        Just(OnConflict::Ignore),
        Just(OnConflict::Update)
    ]
}

fn when() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some("data.n > 1")),
        1 => Just(Some("not data.flag")),
    ]
}

fn step_kind() -> impl Strategy<Value = StepKind> {
    prop_oneof![
        3 => (any::<bool>(), conflict(), any::<bool>())
            .prop_map(|(own, conflict, keep)| StepKind::InsertItem { own, conflict, keep }),
        2 => conflict().prop_map(|conflict| StepKind::InsertCode { conflict }),
        3 => Just(StepKind::Tally),
        1 => Just(StepKind::TallySet),
        1 => Just(StepKind::UpdateItems),
        1 => Just(StepKind::QueryForEach),
        1 => Just(StepKind::ReadCode),
        2 => Just(StepKind::ReadEarlier),
        3 => (1..TYPES.len()).prop_map(|to| StepKind::Emit { to }),
        1 => any::<bool>().prop_map(|refused| StepKind::Fail { refused }),
        2 => Just(StepKind::Journal),
    ]
}

/// Steps a run of events may take in lockstep (`engine::lockstep`): inserts, emits and
/// increments, nothing that reads.
fn lockstep_step_kind() -> impl Strategy<Value = StepKind> {
    prop_oneof![
        3 => (any::<bool>(), prop_oneof![Just(OnConflict::Fail), Just(OnConflict::Ignore)], any::<bool>())
            .prop_map(|(own, conflict, keep)| StepKind::InsertItem { own, conflict, keep }),
        2 => prop_oneof![Just(OnConflict::Fail), Just(OnConflict::Ignore)]
            .prop_map(|conflict| StepKind::InsertCode { conflict }),
        3 => Just(StepKind::Tally),
        3 => (1..TYPES.len()).prop_map(|to| StepKind::Emit { to }),
        1 => Just(StepKind::Journal),
        1 => Just(StepKind::ReadEarlier),
    ]
}

fn route_of(
    kinds: impl Strategy<Value = StepKind>,
    steps: std::ops::Range<usize>,
) -> impl Strategy<Value = RouteSpec> {
    (
        prop_oneof![4 => (0..TYPES.len()).prop_map(Some), 1 => Just(None)],
        prop_oneof![5 => Just(None), 1 => Just(Some("data.grp != 'g2'"))],
        prop::collection::vec(
            (kinds, when()).prop_map(|(kind, when)| StepSpec { kind, when }),
            steps,
        ),
    )
        .prop_map(|(on, when, steps)| RouteSpec { on, when, steps })
}

/// Any route, or (half the time) routes of steps that may run in lockstep.
fn routes() -> impl Strategy<Value = Vec<RouteSpec>> {
    prop_oneof![
        prop::collection::vec(route_of(step_kind(), 1..5), 1..6),
        prop::collection::vec(route_of(lockstep_step_kind(), 1..4), 1..4),
    ]
}

/// A run of 1 to 5 events of one type (so that batches hold runs to handle in lockstep), with
/// ids from a small pool (so that unique keys meet within a run and across runs).
fn events_of_a_type() -> impl Strategy<Value = Vec<EventSpec>> {
    (
        prop_oneof![3 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)],
        prop::collection::vec(
            (
                0..8u8,
                0..3u8,
                0..4u8,
                -1..5i64,
                prop::bool::weighted(0.15),
                prop::bool::weighted(0.1),
            ),
            1..6,
        ),
    )
        .prop_map(|(event_type, events)| {
            events
                .into_iter()
                .map(|(id, grp, code, n, flag, repeat)| EventSpec {
                    event_type,
                    id,
                    grp,
                    code,
                    n,
                    flag,
                    repeat,
                })
                .collect()
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        routes(),
        prop::collection::vec(events_of_a_type(), 1..12)
            .prop_map(|runs| runs.into_iter().flatten().collect::<Vec<_>>()),
        prop_oneof![Just(3usize), Just(8), Just(500)],
    )
        .prop_map(|(routes, events, batch)| Case {
            routes,
            events,
            batch,
        })
}

fn conflict_yaml(conflict: OnConflict, column: &str) -> String {
    match conflict {
        OnConflict::Fail => String::new(),
        OnConflict::Ignore => {
            format!("\n          on_conflict: {{columns: [{column}], do: ignore}}")
        }
        OnConflict::Update => {
            format!("\n          on_conflict: {{columns: [{column}], do: update}}")
        }
    }
}

fn journal(value: &str) -> String {
    format!(
        "      - insert:\n          table: journal\n          values: {{src: \"{{{{ data.id }}}}\", val: \"{value}\"}}"
    )
}

/// The route file for `routes`.
fn routes_yaml(routes: &[RouteSpec]) -> String {
    let mut yaml = String::from("routes:\n");
    for (r, route) in routes.iter().enumerate() {
        let mut on = match route.on {
            Some(index) => format!("{{topic: {TOPIC}, type: {}", TYPES[index]),
            None => format!("{{topic: {TOPIC}"),
        };
        if let Some(when) = route.when {
            write!(on, ", when: \"{when}\"").unwrap();
        }
        writeln!(
            yaml,
            "  - name: r{r}\n    on: {on}}}\n    retry: {{attempts: 1}}"
        )
        .unwrap();
        yaml.push_str("    actions:\n");
        let mut kept: Option<String> = None;
        for (s, step) in route.steps.iter().enumerate() {
            let tag = format!("r{r}s{s}");
            let mut text = match &step.kind {
                StepKind::InsertItem {
                    own,
                    conflict,
                    keep,
                } => {
                    let id = if *own {
                        format!("{{{{ data.id }}}}-{tag}")
                    } else {
                        "{{ data.id }}".to_owned()
                    };
                    let keep = if *keep {
                        kept = Some(format!("x{s}"));
                        format!("\n          as: x{s}")
                    } else {
                        String::new()
                    };
                    format!(
                        "      - insert:\n          table: items\n          values: {{id: \"{id}\", grp: \"{{{{ data.grp }}}}\", n: \"{{{{ data.n }}}}\"}}{}{keep}",
                        conflict_yaml(*conflict, "id")
                    )
                }
                StepKind::InsertCode { conflict } => format!(
                    "      - insert:\n          table: codes\n          values: {{code: \"{{{{ data.code }}}}\", owner: \"{{{{ data.id }}}}\"}}{}",
                    conflict_yaml(*conflict, "code")
                ),
                StepKind::Tally => "      - upsert:\n          table: tallies\n          where: {grp: \"{{ data.grp }}\", kind: \"{{ event.eventType }}\"}\n          increment: {total: \"{{ data.n }}\", hits: 1}".to_owned(),
                StepKind::TallySet => "      - upsert:\n          table: tallies\n          where: {grp: \"{{ data.grp }}\", kind: \"{{ event.eventType }}\"}\n          set: {last: \"{{ data.id }}\"}\n          increment: {hits: 1}".to_owned(),
                StepKind::UpdateItems => "      - update:\n          table: items\n          where: {grp: \"{{ data.grp }}\"}\n          increment: {n: 1}".to_owned(),
                StepKind::QueryForEach => format!(
                    "      - query:\n          table: items\n          where: {{grp: \"{{{{ data.grp }}}}\"}}\n          order_by: [id]\n          limit: 3\n          as: q{s}\n          for_each:\n      {}",
                    journal("{{ row.id }}:{{ row.n }}").replace('\n', "\n      ")
                ),
                StepKind::ReadCode => format!(
                    "      - query:\n          table: codes\n          where: {{code: \"{{{{ data.code }}}}\"}}\n          limit: 1\n          as: c{s}\n{}",
                    journal(&format!("{{{{ steps.c{s}[0].owner if steps.c{s} is defined and steps.c{s} else 'none' }}}}"))
                ),
                StepKind::ReadEarlier => match &kept {
                    Some(name) => journal(&format!(
                        "{tag} {{{{ steps.{name}.id ~ ':' ~ steps.{name}.n if steps.{name} is defined and steps.{name} else 'none' }}}}"
                    )),
                    None => journal(&tag),
                },
                StepKind::Emit { to } => {
                    let own = route.on.unwrap_or(TYPES.len());
                    if *to <= own {
                        // Only later types, so that every cascade ends.
                        journal(&tag)
                    } else {
                        // What an earlier step kept, so that a row given to the wrong
                        // event shows in the log.
                        let from = match &kept {
                            Some(name) => format!(
                                "{{{{ steps.{name}.id ~ ':' ~ steps.{name}.n if steps.{name} is defined and steps.{name} else 'none' }}}}"
                            ),
                            None => "none".to_owned(),
                        };
                        format!(
                            "      - emit:\n          topic: {TOPIC}\n          eventType: {}\n          key: \"{{{{ data.grp }}}}\"\n          data: {{id: \"{{{{ data.id }}}}.{tag}\", grp: \"{{{{ data.grp }}}}\", code: \"{{{{ data.code }}}}\", n: \"{{{{ data.n + 1 }}}}\", flag: \"{{{{ data.flag }}}}\", from: \"{from}\"}}",
                            TYPES[*to]
                        )
                    }
                }
                StepKind::Fail { refused: false } => "      - insert:\n          when: \"data.flag\"\n          table: journal\n          values: {src: \"{{ data.id }}\", val: \"{{ data.missing.field }}\"}".to_owned(),
                StepKind::Fail { refused: true } => "      - insert:\n          when: \"data.flag\"\n          table: items\n          values: {id: \"{{ data.id }}-bad\", grp: g, n: \"{{ 'x' ~ data.grp }}\"}".to_owned(),
                StepKind::Journal => journal(&tag),
            };
            let guarded_already = matches!(step.kind, StepKind::Fail { .. });
            if let (Some(when), false) = (step.when, guarded_already) {
                // Right after the action's name: `- insert:\n          when: ...`.
                let at = text.find(":\n").expect("an action line") + 2;
                text.insert_str(at, &format!("          when: \"{when}\"\n"));
            }
            yaml.push_str(&text);
            yaml.push('\n');
        }
    }
    yaml
}

fn root_events(specs: &[EventSpec]) -> Vec<Event> {
    let mut events = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let event = Event {
            topic: TopicName::parse(TOPIC).unwrap(),
            key: format!("g{}", spec.grp),
            envelope: Envelope {
                event_id: format!("root-{index:03}"),
                event_type: TYPES[spec.event_type].to_owned(),
                timestamp: "2026-12-04T00:00:00.000Z".to_owned(),
                source: "differential".to_owned(),
                data: serde_json::json!({
                    "id": format!("e{}", spec.id),
                    "grp": format!("g{}", spec.grp),
                    "code": format!("c{}", spec.code),
                    "n": spec.n,
                    "flag": spec.flag,
                }),
            },
        };
        events.push(event.clone());
        if spec.repeat {
            events.push(event);
        }
    }
    events
}

/// A database for one run: a SQLite file in `dir`, or a PostgreSQL database of its own.
struct Database {
    url: String,
    _postgres: Option<PostgresDatabase>,
}

fn database(backend: Backend, dir: &std::path::Path, name: &str) -> Database {
    match backend {
        Backend::Sqlite => Database {
            url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
            _postgres: None,
        },
        Backend::Postgres => {
            let postgres =
                PostgresDatabase::create().expect("PostgreSQL for the differential test");
            Database {
                url: postgres.url(),
                _postgres: Some(postgres),
            }
        }
    }
}

/// Everything the run left that the comparison covers.
type Outcome = BTreeMap<&'static str, Vec<String>>;

/// An engine over a fresh database named `name`, with the migrations and routes in `dir`,
/// taking up to `batch` records per transaction.
async fn engine(
    backend: Backend,
    dir: &std::path::Path,
    name: &str,
    batch: usize,
) -> (Database, Store, Engine) {
    let database = database(backend, dir, name);
    let store = Store::connect(&database.url).await.unwrap();
    store.migrate(Some(&dir.join("migrations"))).await.unwrap();
    let catalog = store.catalog().await.unwrap();
    let routes = load(&LoadOptions {
        routes: &Source::Directory(dir.join("routes")),
        schemas: &Source::Directory(dir.join("schemas")),
        catalog: Some(&catalog),
        env: TemplateValue::from(BTreeMap::<String, String>::new()),
        env_allow: Some(&[]),
        default_retry: RetryPolicy::default(),
        limits: TemplateLimits::default(),
    })
    .unwrap_or_else(|diagnostics| panic!("generated routes do not load: {diagnostics:?}"));
    let engine = Engine::new(
        store.clone(),
        Arc::new(ArcSwap::from_pointee(routes)),
        Arc::default(),
        EngineOptions {
            consumer: CONSUMER.to_owned(),
            batch_size: batch,
        },
    );
    (database, store, engine)
}

/// Runs the events through an engine that takes `batch` records per transaction, until the log
/// (with everything the routes emitted) is consumed; returns what it left.
async fn run(
    backend: Backend,
    dir: &std::path::Path,
    name: &str,
    events: &[Event],
    batch: usize,
) -> Outcome {
    let (_database, store, engine) = engine(backend, dir, name, batch).await;
    let mut transaction = store.begin().await.unwrap();
    for event in events {
        // A repeated event id is a second delivery: the log keeps one row per id, so the copy
        // goes in under its own row the way Kafka would deliver it.
        if !log::append(&mut transaction, event).await.unwrap() {
            let mut copy = event.clone();
            copy.envelope.event_id = format!("{}-copy", event.envelope.event_id);
            log::append(&mut transaction, &copy).await.unwrap();
            db::query("UPDATE event_log SET envelope = $1 WHERE event_id = $2")
                .bind(serde_json::to_string(&event.envelope).unwrap())
                .bind(copy.envelope.event_id.clone())
                .execute(&mut transaction)
                .await
                .unwrap();
        }
    }
    transaction.commit().await.unwrap();
    let stream = Stream::embedded();
    let shutdown = CancellationToken::new();
    let mut position = 0;
    loop {
        let records = log::read_after(store.reader(), position, batch as i64)
            .await
            .unwrap();
        if records.is_empty() {
            break;
        }
        position = match engine.run_batch(&stream, position, &records).await.unwrap() {
            BatchOutcome::Done(done) => done,
            BatchOutcome::Retry(done, record, retry) => engine
                .retry_alone(&stream, done, &record, retry, &shutdown)
                .await
                .expect("a retry that ends"),
        };
    }
    let outcome = snapshot(&store, position).await;
    store.close().await;
    outcome
}

async fn rows(store: &Store, sql: &str) -> Vec<Vec<String>> {
    let rows = db::query(sql).fetch_all(store.reader()).await.unwrap();
    rows.iter()
        .map(|row| {
            row.to_json(None)
                .unwrap()
                .into_iter()
                .map(|(_, value)| match value {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

async fn snapshot(store: &Store, position: i64) -> Outcome {
    let log = rows(
        store,
        "SELECT seq, event_id, topic, event_key, event_type, envelope FROM event_log ORDER BY seq",
    )
    .await;
    // Emitted events get fresh ids: each id stands for its place in the log instead.
    let mut ids: Vec<(String, String)> = log
        .iter()
        .enumerate()
        .map(|(index, row)| (row[1].clone(), format!("#{index}")))
        .collect();
    // Longest first: `root-001` is a prefix of its copy's `root-001-copy`.
    ids.sort_by_key(|(id, _)| std::cmp::Reverse(id.len()));
    let normal = |text: &str| {
        let mut text = text.to_owned();
        for (id, place) in &ids {
            if text.contains(id.as_str()) {
                text = text.replace(id.as_str(), place);
            }
        }
        text
    };
    let mut outcome = Outcome::new();
    outcome.insert(
        "event_log",
        log.iter()
            .map(|row| {
                let mut envelope: serde_json::Value = serde_json::from_str(&row[5]).unwrap();
                envelope.as_object_mut().unwrap().remove("timestamp");
                normal(&format!(
                    "{} {} {} {} {}",
                    row[0], row[2], row[3], row[4], envelope
                ))
            })
            .collect(),
    );
    for (name, sql) in [
        ("items", "SELECT id, grp, n FROM items ORDER BY id"),
        ("codes", "SELECT code, owner FROM codes ORDER BY code"),
        (
            "tallies",
            "SELECT grp, kind, total, hits, last FROM tallies ORDER BY grp, kind",
        ),
        ("journal", "SELECT src, val FROM journal ORDER BY seq"),
        (
            "dead_letters",
            "SELECT event_id, topic, event_type, event_key, route, action_index, action_kind, \
             error, attempts FROM dead_letters",
        ),
        (
            "consumed_events",
            "SELECT consumer, event_id FROM consumed_events",
        ),
        (
            "consumer_positions",
            "SELECT consumer, topic, partition, position FROM consumer_positions",
        ),
    ] {
        let mut lines: Vec<String> = rows(store, sql)
            .await
            .iter()
            .map(|row| normal(&row.join(" | ")))
            .collect();
        if matches!(name, "dead_letters" | "consumed_events") {
            lines.sort();
        }
        outcome.insert(name, lines);
    }
    let head = log::head(store.reader()).await.unwrap();
    outcome.insert("position", vec![format!("{position} of {head}")]);
    let stored = log::position(store.reader(), CONSUMER, EMBEDDED_STREAM, 0)
        .await
        .unwrap();
    outcome.insert("stored position", vec![stored.to_string()]);
    outcome
}

/// A project directory with the tables' migration for `backend`, `routes` as its one route
/// file and no schemas.
fn project(backend: Backend, routes: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["routes", "schemas", "migrations"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
    }
    std::fs::write(dir.path().join("routes/generated.yaml"), routes).unwrap();
    std::fs::write(
        dir.path().join("migrations/20270101000000_tables.sql"),
        migration(backend),
    )
    .unwrap();
    dir
}

fn check(
    backend: Backend,
    runtime: &tokio::runtime::Runtime,
    case: &Case,
) -> Result<(), TestCaseError> {
    let yaml = routes_yaml(&case.routes);
    let dir = project(backend, &yaml);
    let events = root_events(&case.events);
    let (batched, reference) = runtime.block_on(async {
        let batched = run(backend, dir.path(), "batched", &events, case.batch).await;
        let reference = run(backend, dir.path(), "reference", &events, 1).await;
        (batched, reference)
    });
    for (part, expected) in &reference {
        let actual = &batched[part];
        prop_assert_eq!(
            actual,
            expected,
            "{} differs (batched left, one by one right), batch {}, routes:\n{}",
            part,
            case.batch,
            yaml
        );
    }
    Ok(())
}

fn differential(backend: Backend, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| check(backend, &runtime, &case));
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn batches_leave_what_one_event_per_transaction_leaves_on_sqlite() {
    differential(Backend::Sqlite, 48);
}

#[test]
fn batches_leave_what_one_event_per_transaction_leaves_on_postgres() {
    if PostgresDatabase::create().is_none() {
        return;
    }
    differential(Backend::Postgres, 24);
}

/// What lockstep runs rest on, read from each database's catalog: unique keys (primary keys,
/// unique constraints and indexes, not partial ones) and the tables that take bulk inserts
/// (no foreign key, no trigger).
#[test_case::test_case(Backend::Sqlite; "sqlite")]
#[test_case::test_case(Backend::Postgres; "postgres")]
#[tokio::test]
async fn the_catalog_knows_unique_keys_and_bulk_tables(backend: Backend) {
    if backend == Backend::Postgres && PostgresDatabase::create().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    let trigger = match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER watched_audit AFTER INSERT ON watched BEGIN INSERT INTO audit VALUES (new.id); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION audit_watched() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER watched_audit AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION audit_watched();"
        }
    };
    // PostgreSQL: a default drawing on another table's sequence sees the order of the inserts
    // in between, and a deferred unique constraint lets a key in twice until the commit.
    let sequences = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => {
            "CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, ref TEXT);
CREATE TABLE order_notes (order_id BIGINT DEFAULT currval('orders_id_seq'), body TEXT);
CREATE TABLE later (k TEXT, CONSTRAINT later_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED);"
        }
    };
    std::fs::write(
        dir.path().join("migrations/20270101000000_tables.sql"),
        format!(
            "CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT UNIQUE, a TEXT, b TEXT, c TEXT);
CREATE UNIQUE INDEX people_ab ON people (a, b);
CREATE UNIQUE INDEX people_c ON people (c) WHERE c IS NOT NULL;
CREATE TABLE owned (id TEXT PRIMARY KEY, person TEXT REFERENCES people (id));
CREATE TABLE watched (id TEXT PRIMARY KEY);
CREATE TABLE audit (id TEXT);
{trigger}
{sequences}
"
        ),
    )
    .unwrap();
    let database = database(backend, dir.path(), "catalog");
    let store = Store::connect(&database.url).await.unwrap();
    store
        .migrate(Some(&dir.path().join("migrations")))
        .await
        .unwrap();
    let catalog = store.catalog().await.unwrap();
    let key = |columns: &[&str]| catalog.covers_unique_key("people", columns);
    assert_eq!(key(&["id", "a"]), Some(vec!["id".to_owned()]));
    assert_eq!(key(&["email"]), Some(vec!["email".to_owned()]));
    let mut pair = key(&["a", "b"]).unwrap();
    pair.sort();
    assert_eq!(pair, ["a", "b"]);
    assert_eq!(key(&["a"]), None, "half a key is no key");
    assert_eq!(key(&["c"]), None, "a partial index is no key");
    assert!(catalog.takes_bulk_inserts("people"));
    assert!(
        !catalog.takes_bulk_inserts("audit"),
        "a trigger's function mentions it"
    );
    assert!(!catalog.takes_bulk_inserts("owned"), "a foreign key");
    assert!(!catalog.takes_bulk_inserts("watched"), "a trigger");
    if backend == Backend::Postgres {
        assert!(catalog.takes_bulk_inserts("orders"), "its own serial");
        assert!(
            !catalog.takes_bulk_inserts("order_notes"),
            "another table's sequence"
        );
        assert_eq!(
            catalog.covers_unique_key("later", &["k"]),
            None,
            "a deferred key"
        );
    }
    store.close().await;
}

/// On SQLite's embedded log, a pass that has handled the log to its end goes on with the events
/// its routes emitted, up to the batch size: a three-hop cascade is one commit when the batch has
/// room for it, and the rest waits in the log for the next batch when it has not. On PostgreSQL
/// each hop is a batch of its own (the cascade is off there), with the same effects.
#[test_case::test_case(Backend::Sqlite; "sqlite")]
#[test_case::test_case(Backend::Postgres; "postgres")]
#[tokio::test]
async fn a_pass_at_the_log_end_takes_up_what_it_emitted(backend: Backend) {
    if backend == Backend::Postgres && PostgresDatabase::create().is_none() {
        return;
    }
    let hop = |from: &str, to: &str| {
        format!(
            "  - name: {from}-to-{to}\n    on: {{topic: {TOPIC}, type: {from}}}\n    actions:\n{}\n      - emit:\n          topic: {TOPIC}\n          eventType: {to}\n          key: k\n          data: {{id: \"{{{{ data.id }}}}.{to}\"}}\n",
            journal(from)
        )
    };
    let last = format!(
        "  - name: C-journal\n    on: {{topic: {TOPIC}, type: C}}\n    actions:\n{}\n",
        journal("C")
    );
    let dir = project(
        backend,
        &format!("routes:\n{}{}{last}", hop("A", "B"), hop("B", "C")),
    );
    let root = Event {
        topic: TopicName::parse(TOPIC).unwrap(),
        key: "k".to_owned(),
        envelope: Envelope {
            event_id: "root".to_owned(),
            event_type: "A".to_owned(),
            timestamp: "2026-12-06T00:00:00.000Z".to_owned(),
            source: "differential".to_owned(),
            data: serde_json::json!({"id": "e"}),
        },
    };
    let stream = Stream::embedded();
    // (batch size, the position after each batch)
    let runs = match backend {
        Backend::Sqlite => [(10, vec![3]), (2, vec![2, 3])],
        Backend::Postgres => [(10, vec![1, 2, 3]), (2, vec![1, 2, 3])],
    };
    for (batch, positions) in runs {
        let (_database, store, engine) =
            engine(backend, dir.path(), &format!("b{batch}"), batch).await;
        let mut transaction = store.begin().await.unwrap();
        log::append(&mut transaction, &root).await.unwrap();
        transaction.commit().await.unwrap();
        let mut position = 0;
        let mut after_each = Vec::new();
        loop {
            let records = log::read_after(store.reader(), position, batch as i64)
                .await
                .unwrap();
            if records.is_empty() {
                break;
            }
            let BatchOutcome::Done(done) =
                engine.run_batch(&stream, position, &records).await.unwrap()
            else {
                panic!("nothing in the chain fails");
            };
            position = done;
            after_each.push(done);
        }
        assert_eq!(after_each, positions, "batch size {batch}");
        let journal = rows(&store, "SELECT src, val FROM journal ORDER BY seq").await;
        assert_eq!(
            journal,
            [["e", "A"], ["e.B", "B"], ["e.B.C", "C"]].map(|row| row.map(str::to_owned).to_vec()),
            "batch size {batch}"
        );
        assert_eq!(
            log::head(store.reader()).await.unwrap(),
            3,
            "batch size {batch}"
        );
        store.close().await;
    }
}
