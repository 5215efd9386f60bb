//! Does what happened match what a test expects? Each expected item must match a different
//! actual item, by the keys it lists (recursively); the counts must be equal.

use serde_json::Value as Json;

/// Whether `actual` has everything `expected` lists: objects by the keys expected lists,
/// lists element by element (same length), numbers numerically (a number also matches a
/// decimal string, which is how PostgreSQL's NUMERIC columns read back), the rest by equality.
pub fn matches(expected: &Json, actual: &Json) -> bool {
    match (expected, actual) {
        (Json::Object(expected), Json::Object(actual)) => expected
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|found| matches(value, found))),
        (Json::Array(expected), Json::Array(actual)) => {
            expected.len() == actual.len()
                && expected
                    .iter()
                    .zip(actual)
                    .all(|(expected, actual)| matches(expected, actual))
        }
        (Json::Number(expected), Json::Number(actual)) => expected.as_f64() == actual.as_f64(),
        (Json::Number(expected), Json::String(actual)) => {
            actual.parse::<f64>().ok() == expected.as_f64()
        }
        (expected, actual) => expected == actual,
    }
}

/// How a list of expected items compares with what happened.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same count, and each expected item matched a different actual one.
    Matched,
    /// The counts differ.
    CountDiffers,
    /// The expected item at this index matched no actual item left.
    Unmatched(usize),
}

/// Compares `expected` with `actual`; `matches_one` decides one pair. Expected items list
/// only some keys, so one may match several actual items: the pairing is a maximum bipartite
/// matching (augmenting paths), not first come first served.
pub fn unmatched(
    expected: &[Json],
    actual: &[Json],
    matches_one: impl Fn(&Json, &Json) -> bool,
) -> Verdict {
    if expected.len() != actual.len() {
        return Verdict::CountDiffers;
    }
    let candidates: Vec<Vec<usize>> = expected
        .iter()
        .map(|item| {
            actual
                .iter()
                .enumerate()
                .filter(|(_, candidate)| matches_one(item, candidate))
                .map(|(at, _)| at)
                .collect()
        })
        .collect();
    let mut taken_by: Vec<Option<usize>> = vec![None; actual.len()];
    for item in 0..expected.len() {
        let mut visited = vec![false; actual.len()];
        if !assign(item, &candidates, &mut taken_by, &mut visited) {
            return Verdict::Unmatched(item);
        }
    }
    Verdict::Matched
}

/// Gives expected `item` an actual item, moving earlier assignments along if need be.
fn assign(
    item: usize,
    candidates: &[Vec<usize>],
    taken_by: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for &at in &candidates[item] {
        if visited[at] {
            continue;
        }
        visited[at] = true;
        let free = match taken_by[at] {
            None => true,
            Some(other) => assign(other, candidates, taken_by, visited),
        };
        if free {
            taken_by[at] = Some(item);
            return true;
        }
    }
    false
}

/// What differs between `expected` and `actual`, key by key (`data.title: expected "a",
/// actual "b"`), for the closest actual item of a failed expectation.
pub fn differences(expected: &Json, actual: &Json) -> Vec<String> {
    let mut found = Vec::new();
    collect_differences("", expected, actual, &mut found);
    found
}

fn collect_differences(path: &str, expected: &Json, actual: &Json, found: &mut Vec<String>) {
    match (expected, actual) {
        (Json::Object(expected), Json::Object(actual)) => {
            for (key, value) in expected {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match actual.get(key) {
                    None => found.push(format!("{at}: expected {value}, missing")),
                    Some(present) => collect_differences(&at, value, present, found),
                }
            }
        }
        _ if matches(expected, actual) => {}
        _ => found.push(format!("{path}: expected {expected}, actual {actual}")),
    }
}

/// A dead letter matches by route, and by `error` as a part of the error text.
pub fn matches_dead_letter(expected: &Json, actual: &Json) -> bool {
    let Json::Object(fields) = expected else {
        return false;
    };
    fields
        .iter()
        .all(|(key, value)| match (key.as_str(), value) {
            ("error", Json::String(part)) => actual["error"]
                .as_str()
                .is_some_and(|error| error.contains(part.as_str())),
            _ => actual.get(key).is_some_and(|found| matches(value, found)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_match_by_the_keys_they_list() {
        let actual = json!({"id": "t1", "title": "x", "amount": "12.50", "meta": {"a": 1, "b": 2}, "tags": [1, 2]});
        assert!(matches(&json!({"title": "x"}), &actual));
        assert!(matches(&json!({"amount": 12.5, "meta": {"a": 1}}), &actual));
        assert!(!matches(&json!({"title": "y"}), &actual));
        assert!(!matches(&json!({"missing": null}), &actual));
        assert!(!matches(&json!({"tags": [1]}), &actual));
    }

    #[test]
    fn every_expected_item_needs_its_own_actual_item() {
        let actual = [json!({"a": 1}), json!({"a": 2})];
        assert_eq!(
            unmatched(&[json!({"a": 2}), json!({"a": 1})], &actual, matches),
            Verdict::Matched
        );
        assert_eq!(
            unmatched(&[json!({"a": 1}), json!({"a": 1})], &actual, matches),
            Verdict::Unmatched(1)
        );
        assert_eq!(
            unmatched(&[json!({"a": 1})], &actual, matches),
            Verdict::CountDiffers
        );
        // The first expectation fits both rows; only one pairing fits the second.
        let rows = [json!({"u": 1, "t": "X"}), json!({"u": 1, "t": "Y"})];
        assert_eq!(
            unmatched(
                &[json!({"u": 1}), json!({"u": 1, "t": "X"})],
                &rows,
                matches
            ),
            Verdict::Matched
        );
        assert_eq!(
            differences(
                &json!({"a": 1, "b": {"c": "x"}, "d": 0}),
                &json!({"a": 1, "b": {"c": "y"}})
            ),
            [
                "b.c: expected \"x\", actual \"y\"",
                "d: expected 0, missing"
            ]
        );
        assert!(matches_dead_letter(
            &json!({"route": "r", "error": "undefined"}),
            &json!({"route": "r", "error": "template error: undefined value"})
        ));
    }
}
