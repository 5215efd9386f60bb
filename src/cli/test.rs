//! `crm-router test [PATH…]`: route tests, on a database made for the run.

use std::path::PathBuf;
use std::process::ExitCode;

use crm_router::config::Settings;
use crm_router::route::load::{self, Source};
use crm_router::store::isolated::{Backend, IsolatedDatabase};
use crm_router::store::{self, Dialect, Store};
use crm_router::suite::{self, CaseOutcome, TestFile};

use super::{init_tracing_quiet, Global, SourceArgs};

/// Runs the tests in `paths` (default: `tests/` in the route directory, or the bundled
/// routes' tests); exit 1 when one fails or cannot run.
pub async fn run(
    global: &Global,
    paths: Vec<PathBuf>,
    args: SourceArgs,
) -> anyhow::Result<ExitCode> {
    init_tracing_quiet();
    let settings = global.settings(args)?;
    let (files, problems) = match (&settings.routes, paths.is_empty()) {
        (_, false) => suite::read_files(&paths),
        (Source::Directory(routes), true) => {
            let tests = routes.join("tests");
            if !tests.is_dir() {
                anyhow::bail!(
                    "no route tests: {} does not exist (write them there, or name files or directories to run)",
                    tests.display()
                );
            }
            suite::read_files(&[tests])
        }
        (Source::Bundled, true) => suite::file::bundled(),
    };
    if !problems.is_empty() {
        for problem in &problems {
            println!("{problem}");
        }
        eprintln!("{} test file(s) could not be read", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    // The configured database says only which kind to make; it is never opened.
    let backend = match store::dialect_of(&settings.database_url)? {
        Dialect::Postgres => Backend::Postgres,
        Dialect::Sqlite => Backend::Sqlite,
    };
    let directory = tempfile::tempdir()?;
    let database = IsolatedDatabase::create(
        backend,
        directory.path(),
        &settings.database_url,
        "crm_router_test",
    )
    .await?;
    let result = run_files(&settings, &database.url, backend, &files).await;
    database.remove().await;
    result
}

async fn run_files(
    settings: &Settings,
    url: &str,
    backend: Backend,
    files: &[TestFile],
) -> anyhow::Result<ExitCode> {
    let store = Store::connect(url).await?;
    store.migrate(settings.migrations.as_deref()).await?;
    let catalog = store.catalog().await?;
    let loaded = load::load(&settings.load_options(Some(&catalog)));
    let routes = match loaded {
        Ok(routes) => routes,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                println!("{diagnostic}");
            }
            eprintln!("the routes do not load: {} problem(s)", diagnostics.len());
            store.close().await;
            return Ok(ExitCode::FAILURE);
        }
    };
    let (mut passed, mut failed) = (0, 0);
    let mut ran = std::collections::BTreeSet::new();
    for file in files {
        let outcomes = suite::run_file(
            &store,
            &routes,
            &catalog,
            &settings.env_allow,
            file,
            &mut ran,
        )
        .await?;
        for (name, outcome) in outcomes {
            match outcome {
                CaseOutcome::Passed => {
                    passed += 1;
                    println!("ok     {}: {name}", file.path.display());
                }
                CaseOutcome::Failed(failures) => {
                    failed += 1;
                    println!("FAILED {}: {name}", file.path.display());
                    for failure in failures {
                        println!(
                            "  {}:{}:{}: {}",
                            file.path.display(),
                            failure.at.line,
                            failure.at.column,
                            failure.message.trim_end()
                        );
                    }
                }
            }
        }
    }
    store.close().await;
    let untested: Vec<&str> = routes
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .filter(|name| !ran.contains(*name))
        .collect();
    if !untested.is_empty() {
        println!("no test ran these routes: {}", untested.join(", "));
    }
    println!(
        "{passed} passed, {failed} failed ({} on an isolated database)",
        match backend {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    );
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        if passed + failed == 0 {
            eprintln!("no tests found");
        }
        ExitCode::FAILURE
    })
}
