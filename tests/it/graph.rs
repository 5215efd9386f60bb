//! `crm-router graph`: the bundled routes' connections, in both formats, and the README's
//! diagram kept equal to what the command draws.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{repo, Project};

/// The edges of a DOT graph, by the labels of their ends.
fn dot_edges(dot: &str) -> BTreeSet<(String, String)> {
    let mut labels = BTreeMap::new();
    let mut edges = BTreeSet::new();
    for line in dot.lines().map(str::trim) {
        if let Some((id, rest)) = line.split_once(" [label=\"") {
            let label = rest.split("\", shape=").next().unwrap();
            labels.insert(id.to_owned(), label.replace("\\n", " "));
        } else if let Some((from, to)) = line.split_once(" -> ") {
            edges.insert((from.to_owned(), to.trim_end_matches(';').to_owned()));
        }
    }
    edges
        .into_iter()
        .map(|(from, to)| (labels[&from].clone(), labels[&to].clone()))
        .collect()
}

#[test]
fn the_bundled_cascade_is_drawn_from_event_to_route_to_event() {
    let project = Project::bundled();
    let dot = project.command(&["graph", "--format", "dot"]);
    assert!(
        dot.status.success(),
        "{}",
        String::from_utf8_lossy(&dot.stderr)
    );
    let text = String::from_utf8(dot.stdout).unwrap();
    assert!(text.starts_with("digraph routes {"), "{text}");
    let edges = dot_edges(&text);
    for (from, to) in [
        ("USER_CREATED user.events", "user-creates-customer"),
        ("user.created user.events", "user-creates-customer"),
        ("user-creates-customer", "CUSTOMER_CREATED customer.events"),
        (
            "CUSTOMER_CREATED customer.events",
            "customer-first-contact-task",
        ),
        ("CUSTOMER_CREATED customer.events", "customer-opportunity"),
        (
            "customer-first-contact-task",
            "TASK_CREATED sales-activity.events",
        ),
        ("schedule 1m", "task-due-soon-alerts"),
        (
            "task-due-soon-alerts",
            "TASK_DUE_SOON sales-activity.events",
        ),
        (
            "TASK_DUE_SOON sales-activity.events",
            "task-due-soon-notifies-assignee",
        ),
        // A glob trigger is drawn as itself and also reached by every event it matches.
        ("* [*]", "analytics-daily-counts"),
        (
            "TASK_CREATED sales-activity.events",
            "analytics-daily-counts",
        ),
    ] {
        assert!(
            edges.contains(&(from.to_owned(), to.to_owned())),
            "no edge {from} → {to} in:\n{text}"
        );
    }
    // Nothing emits USER_CREATED: no route points at it.
    assert!(!edges.iter().any(|(_, to)| to == "USER_CREATED user.events"));

    let mermaid = project.command(&["graph"]);
    let mermaid = String::from_utf8(mermaid.stdout).unwrap();
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(
        mermaid.matches(" --> ").count(),
        text.matches(" -> ").count(),
        "both formats draw the same edges"
    );
}

#[test]
fn the_readmes_diagram_is_what_graph_draws() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a mermaid block in the README");
    let project = Project::bundled();
    let drawn = project.command(&["graph", "--format", "mermaid"]);
    assert_eq!(
        block,
        String::from_utf8(drawn.stdout).unwrap(),
        "regenerate the README's diagram with `crm-router graph`"
    );
}

#[test]
fn routes_that_do_not_load_are_not_drawn() {
    let project = Project::empty();
    project.write(
        "routes/broken.yaml",
        "routes:\n  - name: broken\n    on: {topic: orders}\n    actions:\n      - emit: {topic: orders, eventType: X}\n",
    );
    let drawn = project.command(&["graph"]);
    assert_eq!(drawn.status.code(), Some(1));
    let printed = String::from_utf8(drawn.stdout).unwrap();
    assert!(printed.contains("routes/broken.yaml:"), "{printed}");
}
