//! A project on disk for unit tests: route, schema and migration files in a temp directory, a
//! real SQLite file migrated with them, and the route set compiled against its catalog.

use std::collections::BTreeMap;

use crate::engine::retry::RetryPolicy;
use crate::route::load::{load, LoadOptions, Source};
use crate::route::RouteSet;
use crate::store::Store;
use crate::template::{TemplateLimits, TemplateValue};

/// The loaded project; the directory lives as long as it does.
pub struct TestProject {
    /// Keeps the files and the database alive.
    pub dir: tempfile::TempDir,
    /// The migrated database.
    pub store: Store,
    /// The compiled routes.
    pub routes: RouteSet,
}

/// Writes `files` (path relative to the project, contents), then migrates and loads.
pub async fn load_project(files: &[(&str, &str)]) -> TestProject {
    let dir = tempfile::tempdir().unwrap();
    for directory in ["routes", "schemas", "migrations"] {
        std::fs::create_dir_all(dir.path().join(directory)).unwrap();
    }
    for (relative, text) in files {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let store = Store::connect(&dir.path().join("crm.db").display().to_string())
        .await
        .unwrap();
    store
        .migrate(Some(&dir.path().join("migrations")))
        .await
        .unwrap();
    let catalog = store.catalog().await.unwrap();
    let routes = load(&LoadOptions {
        routes: &Source::Directory(dir.path().join("routes")),
        schemas: &Source::Directory(dir.path().join("schemas")),
        catalog: Some(&catalog),
        env: TemplateValue::from(BTreeMap::<String, String>::new()),
        env_allow: Some(&[]),
        default_retry: RetryPolicy::default(),
        limits: TemplateLimits::default(),
    })
    .unwrap();
    TestProject { dir, store, routes }
}
