//! Property tests ("fuzzing" on stable Rust) of the route loader: whatever bytes a route file
//! holds, loading never panics, and every refusal names the file and a position inside it.
//!
//! Inputs are arbitrary text, random YAML trees, and the bundled route files with random edits
//! (the realistic case: a valid file half-way through an edit). `PROPTEST_CASES` sets how many
//! cases each property runs (CI uses the default, 256).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::load::{load, LoadOptions, Source};
use crate::engine::retry::RetryPolicy;
use crate::template::{TemplateLimits, TemplateValue};

/// Loads `text` as the only route file; returns the diagnostics (empty when it loaded).
fn load_text(text: &str) -> Vec<super::diagnostic::Diagnostic> {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes");
    std::fs::create_dir_all(&routes).unwrap();
    std::fs::write(routes.join("fuzz.yaml"), text).unwrap();
    let loaded = load(&LoadOptions {
        routes: &Source::Directory(routes),
        schemas: &Source::Bundled,
        catalog: None,
        env: TemplateValue::from(BTreeMap::<String, String>::new()),
        env_allow: Some(&[]),
        default_retry: RetryPolicy::default(),
        limits: TemplateLimits::default(),
    });
    loaded.err().unwrap_or_default()
}

/// Every diagnostic points into the file: its name, and a line that exists (0 = whole file).
fn assert_located(text: &str, diagnostics: &[super::diagnostic::Diagnostic]) {
    let lines = text.lines().count().max(1) + 1;
    for diagnostic in diagnostics {
        assert!(
            diagnostic.file.ends_with("fuzz.yaml"),
            "{diagnostic} names the wrong file"
        );
        assert!(
            diagnostic.line <= lines,
            "{diagnostic} is past the end ({lines} lines)"
        );
        assert!(!diagnostic.message.is_empty());
    }
}

fn bundled_route_text() -> impl Strategy<Value = String> {
    let files: Vec<String> = crate::bundled::ROUTES
        .files()
        .filter_map(|file| file.contents_utf8())
        .map(str::to_owned)
        .collect();
    proptest::sample::select(files)
}

/// One edit of a text: delete, insert or duplicate a span, at byte positions snapped to
/// character boundaries.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), "[ -~\\n\\t:{}\\[\\]&*!|>#'\"-]{0,12}")
            .prop_map(|(at, text)| Edit::Insert(at, text)),
        (any::<usize>(), 0usize..80).prop_map(|(at, len)| Edit::Duplicate(at, len)),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut text: String, edits: &[Edit]) -> String {
    for edit in edits {
        match edit {
            Edit::Delete(at, len) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, start + len);
                if end > start {
                    text.replace_range(start..end, "");
                }
            }
            Edit::Insert(at, inserted) => {
                let at = boundary(&text, *at);
                text.insert_str(at, inserted);
            }
            Edit::Duplicate(at, len) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, start + len).max(start);
                let copy = text[start..end].to_owned();
                text.insert_str(end, &copy);
            }
        }
    }
    text
}

fn yaml_tree() -> impl Strategy<Value = serde_yaml::Value> {
    let leaf = prop_oneof![
        Just(serde_yaml::Value::Null),
        any::<bool>().prop_map(serde_yaml::Value::Bool),
        any::<i64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
        prop_oneof![
            Just("routes".to_owned()),
            Just("name".to_owned()),
            Just("on".to_owned()),
            Just("topic".to_owned()),
            Just("actions".to_owned()),
            Just("insert".to_owned()),
            Just("{{ data.x }}".to_owned()),
            Just("{% for %}".to_owned()),
            ".{0,12}",
        ]
        .prop_map(serde_yaml::Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_yaml::Value::Sequence),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("routes"),
                        Just("name"),
                        Just("on"),
                        Just("topic"),
                        Just("type"),
                        Just("schedule"),
                        Just("when"),
                        Just("retry"),
                        Just("actions"),
                        Just("insert"),
                        Just("emit"),
                        Just("http"),
                        Just("query"),
                        Just("table"),
                        Just("values"),
                        Just("for_each"),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| {
                serde_yaml::Value::Mapping(
                    entries
                        .into_iter()
                        .map(|(key, value)| (serde_yaml::Value::String(key.to_owned()), value))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,400}") {
        let diagnostics = load_text(&text);
        assert_located(&text, &diagnostics);
    }

    #[test]
    fn random_yaml_trees_never_panic_the_loader(tree in yaml_tree()) {
        let text = serde_yaml::to_string(&tree).unwrap();
        let diagnostics = load_text(&text);
        assert_located(&text, &diagnostics);
    }
}

proptest! {
    // Cheap, and the closest to what users do: a valid file half-way through an edit.
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn edited_route_files_never_panic_and_point_into_the_file(
        original in bundled_route_text(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let text = apply(original, &edits);
        let diagnostics = load_text(&text);
        assert_located(&text, &diagnostics);
    }
}
