//! Where each node of a YAML file starts, so problems found after deserialisation (an unknown
//! column, a template syntax error, a duplicate name) can still be reported as file:line:col.
//!
//! serde_yaml reports positions only for its own errors; this walks the same text once with
//! yaml-rust2's event parser and records the position of every key and value under a path such
//! as `routes[0].actions[2].insert.values.email`. Aliases are not expanded here.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::diagnostic::Position;

/// Positions of keys and values by path.
#[derive(Debug, Default)]
pub struct SourceMap {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
}

impl SourceMap {
    /// Indexes `text`. Text that does not parse yields an empty map: serde_yaml reports the
    /// syntax error with its own position.
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        builder.map
    }

    /// Position of the key that names `path` (falls back to its value, then to its parents).
    pub fn key(&self, path: &str) -> Position {
        self.lookup(path, true)
    }

    /// Position of the value at `path` (falls back to its key, then to its parents).
    pub fn value(&self, path: &str) -> Position {
        self.lookup(path, false)
    }

    fn lookup(&self, path: &str, prefer_key: bool) -> Position {
        let mut current = path;
        loop {
            let (first, second) = if prefer_key {
                (&self.keys, &self.values)
            } else {
                (&self.values, &self.keys)
            };
            if let Some(position) = first.get(current).or_else(|| second.get(current)) {
                return *position;
            }
            match current.rfind(['.', '[']) {
                Some(cut) => current = &current[..cut],
                None => return Position { line: 1, column: 1 },
            }
        }
    }
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    map: SourceMap,
}

fn position(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// Called for each node start; returns the node's path when it is a value (not a key).
    fn place_node(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        let here = position(mark);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { path, key }) => match key.take() {
                None => {
                    // This node is a key; complex (non-scalar) keys get a placeholder name.
                    let name = scalar.unwrap_or("?").to_owned();
                    let key_path = child(path, &name);
                    self.map.keys.insert(key_path, here);
                    *key = Some(name);
                    None
                }
                Some(name) => {
                    let value_path = child(path, &name);
                    self.map.values.insert(value_path.clone(), here);
                    Some(value_path)
                }
            },
            Some(Frame::Sequence { path, index }) => {
                let item_path = format!("{path}[{index}]");
                *index += 1;
                self.map.values.insert(item_path.clone(), here);
                Some(item_path)
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => {
                self.place_node(mark, Some(&text));
            }
            Event::Alias(_) => {
                self.place_node(mark, None);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key gets no path of its own; its children are unreachable.
                let path = self.place_node(mark, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.place_node(mark, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Sequence { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "routes:\n  - name: a\n    actions:\n      - insert:\n          table: t\n          values: {emial: x}\n";

    #[test]
    fn finds_keys_and_values_by_path() {
        let map = SourceMap::build(TEXT);
        assert_eq!(map.key("routes[0].name"), Position { line: 2, column: 5 });
        assert_eq!(
            map.value("routes[0].name"),
            Position {
                line: 2,
                column: 11
            }
        );
        assert_eq!(
            map.key("routes[0].actions[0].insert.table"),
            Position {
                line: 5,
                column: 11
            }
        );
        assert_eq!(
            map.key("routes[0].actions[0].insert.values.emial"),
            Position {
                line: 6,
                column: 20
            }
        );
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_parent() {
        let map = SourceMap::build(TEXT);
        assert_eq!(
            map.key("routes[0].actions[0].insert.values.missing"),
            map.key("routes[0].actions[0].insert.values")
        );
    }
}
