//! Test files: their format, and reading them with the position of every part, so a failed
//! expectation is reported at its `FILE:LINE:COL`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::route::diagnostic::{Diagnostic, Position};
use crate::route::source_map::SourceMap;

/// One file of tests.
#[derive(Debug)]
pub struct TestFile {
    /// Where it was read from, as shown.
    pub path: PathBuf,
    /// Its tests.
    pub tests: Vec<TestCase>,
    /// Positions of its parts.
    pub source: SourceMap,
}

impl TestFile {
    /// The position of the part at `path` (`tests[0].expect.rows.tasks[1]`).
    pub fn position(&self, path: &str) -> Position {
        self.source.value(path)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tests {
    tests: Vec<TestCase>,
}

/// One test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in the report; unique within its file.
    pub name: String,
    /// Rows present before the events, by table, inserted as given.
    #[serde(default)]
    pub rows: IndexMap<String, Vec<serde_json::Map<String, Json>>>,
    /// Answers to `http` steps: the first whose method and URL match.
    #[serde(default)]
    pub http: Vec<MockedResponse>,
    /// Values of `env_allow` names for this test; names it does not give are unset (the
    /// environment is not read, so a test gives the same result everywhere).
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Events in order (as `POST /api/events` takes them, with `topic`), or `{run: ROUTE}` for
    /// one run of a scheduled route. What routes emit is routed too.
    pub events: Vec<Json>,
    /// What must hold afterwards.
    #[serde(default)]
    pub expect: Expectations,
}

/// An answer to an `http` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockedResponse {
    /// Method (default any).
    #[serde(default)]
    pub method: Option<String>,
    /// The URL, exactly as the step renders it.
    pub url: String,
    /// Status (default 200).
    #[serde(default = "ok")]
    pub status: u16,
    /// JSON body (default null).
    #[serde(default)]
    pub body: Json,
}

fn ok() -> u16 {
    200
}

/// What a test expects. Each section written must match exactly in count, each expected item
/// matching a different actual one by the keys it lists; a section left out is not checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Rows of each table listed.
    #[serde(default)]
    pub rows: IndexMap<String, Vec<Json>>,
    /// Events the routes emitted.
    #[serde(default)]
    pub emitted: Option<Vec<Json>>,
    /// HTTP requests the `http` steps made.
    #[serde(default)]
    pub requests: Option<Vec<Json>>,
    /// Routes that failed for an event (dead-lettered by the daemon), with part of the error.
    #[serde(default)]
    pub dead_letters: Option<Vec<Json>>,
}

/// Reads test files: each `.yaml`/`.yml` file named, and those directly in each directory
/// named, in name order. Problems (unreadable files, unknown keys) come back as diagnostics.
pub fn read_files(paths: &[PathBuf]) -> (Vec<TestFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let is_test_file = |path: &Path| {
        path.extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
    };
    for path in paths {
        let mut found = Vec::new();
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => found.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|entry| entry.path())
                        .filter(|path| path.is_file() && is_test_file(path)),
                ),
                Err(error) => diagnostics.push(whole(path, format!("cannot read: {error}"))),
            }
            found.sort();
        } else {
            found.push(path.clone());
        }
        for file in found {
            match std::fs::read_to_string(&file) {
                Ok(text) => match parse(&file, &text) {
                    Ok(parsed) => files.push(parsed),
                    Err(diagnostic) => diagnostics.push(diagnostic),
                },
                Err(error) => diagnostics.push(whole(&file, format!("cannot read: {error}"))),
            }
        }
    }
    (files, diagnostics)
}

/// The bundled routes' tests (`routes/tests/` of the source tree).
pub fn bundled() -> (Vec<TestFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let Some(directory) = crate::bundled::ROUTES.get_dir("tests") else {
        return (files, diagnostics);
    };
    let mut found: Vec<_> = directory.files().collect();
    found.sort_by_key(|file| file.path());
    for file in found {
        let path = Path::new("<bundled>/routes").join(file.path());
        match file.contents_utf8() {
            Some(text) => match parse(&path, text) {
                Ok(parsed) => files.push(parsed),
                Err(diagnostic) => diagnostics.push(diagnostic),
            },
            None => diagnostics.push(whole(&path, "not UTF-8".into())),
        }
    }
    (files, diagnostics)
}

/// Parses one test file's `text`.
pub fn parse(path: &Path, text: &str) -> Result<TestFile, Diagnostic> {
    let parsed: Tests =
        serde_yaml::from_str(text).map_err(|error| Diagnostic::from_yaml(path, &error))?;
    let source = SourceMap::build(text);
    let mut seen = std::collections::HashSet::new();
    for (index, test) in parsed.tests.iter().enumerate() {
        if !seen.insert(test.name.as_str()) {
            return Err(Diagnostic::at(
                path,
                source.value(&format!("tests[{index}].name")),
                format!("duplicate test name {:?}", test.name),
            ));
        }
    }
    Ok(TestFile {
        path: path.to_owned(),
        tests: parsed.tests,
        source,
    })
}

fn whole(path: &Path, message: String) -> Diagnostic {
    Diagnostic::at(path, Position { line: 0, column: 0 }, message)
}
