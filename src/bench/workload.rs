//! What a variant sends and which routes handle it.

use serde_json::json;

use crate::event::{Event, SubmittedEvent};

/// The routes and events of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `USER_CREATED` through the bundled routes: a customer, then its first-contact task, its
    /// opportunity and the analytics counts of all four events.
    Cascade,
    /// `USER_CREATED` into one insert route (a customer row, nothing emitted).
    InsertRoute,
    /// `PING` on `bench.in` into one emit route (`PONG` on `bench.out`).
    EmitOnly,
}

/// The topic the emit-only route consumes.
pub const EMIT_INPUT: &str = "bench.in";
/// The topic the emit-only route produces to.
pub const EMIT_OUTPUT: &str = "bench.out";

const INSERT_ROUTE: &str = r#"routes:
  - name: bench-insert-customer
    description: USER_CREATED → a customer row (the bundled route without its emit).
    on:
      topic: user.events
      type: USER_CREATED
    actions:
      - insert:
          table: customers
          values:
            id: "{{ uuid() }}"
            name: "{{ data.name }}"
            email: "{{ data.email }}"
            owner_id: "{{ data.userId }}"
            created_at: "{{ now() }}"
            updated_at: "{{ now() }}"
          on_conflict: {columns: [email], do: ignore}
"#;

const EMIT_ROUTE: &str = r#"routes:
  - name: bench-emit
    description: PING on bench.in → PONG on bench.out (consume, template, produce).
    on:
      topic: bench.in
      type: PING
    actions:
      - emit:
          topic: bench.out
          eventType: PONG
          key: "{{ data.n }}"
          data:
            n: "{{ data.n }}"
            echo: "{{ data.note | upper }}"
"#;

impl Workload {
    /// Route file contents, or `None` for the bundled routes.
    pub fn routes_yaml(self) -> Option<&'static str> {
        match self {
            Self::Cascade => None,
            Self::InsertRoute => Some(INSERT_ROUTE),
            Self::EmitOnly => Some(EMIT_ROUTE),
        }
    }

    /// Whether a cascade goes on through the events the routes emit.
    pub fn follows_emitted(self) -> bool {
        self == Self::Cascade
    }

    /// The `n`th event; `run` keeps emails unique across runs into one database.
    pub fn event(self, run: &str, n: usize) -> Event {
        let (topic, submitted) = match self {
            Self::Cascade | Self::InsertRoute => (
                "user.events",
                json!({
                    "eventType": "USER_CREATED",
                    "source": "crm-router-bench",
                    "key": format!("{run}-{n}"),
                    "data": {
                        "userId": format!("{run}-{n}"),
                        "email": format!("user{n}-{run}@bench.example.com"),
                        "name": format!("ベンチ 利用者 {n}"),
                        "role": "USER",
                    },
                }),
            ),
            Self::EmitOnly => (
                EMIT_INPUT,
                json!({
                    "eventType": "PING",
                    "source": "crm-router-bench",
                    "key": n.to_string(),
                    "data": {"n": n, "note": "ping from crm-router bench"},
                }),
            ),
        };
        serde_json::from_value::<SubmittedEvent>(submitted)
            .expect("bench events are valid submissions")
            .into_event(topic)
            .expect("bench events are valid")
    }

    /// Rows a run of `cascades` writes, counted from the database: `(what, SQL)`; the SQL
    /// returns one integer.
    pub fn row_counts(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Cascade => &[
                ("customers", "SELECT COUNT(*) FROM customers"),
                ("tasks", "SELECT COUNT(*) FROM tasks"),
                ("opportunities", "SELECT COUNT(*) FROM opportunities"),
                // Every increment is one row write.
                (
                    "analytics increments",
                    "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily",
                ),
                (
                    "emitted events",
                    "SELECT COUNT(*) FROM event_log WHERE event_type <> 'USER_CREATED'",
                ),
            ],
            Self::InsertRoute => &[("customers", "SELECT COUNT(*) FROM customers")],
            Self::EmitOnly => &[(
                "emitted events",
                "SELECT COUNT(*) FROM event_log WHERE event_type = 'PONG'",
            )],
        }
    }

    /// What `cascades` complete cascades leave in each of [`Workload::row_counts`].
    pub fn expected_rows(self, cascades: i64) -> Vec<i64> {
        match self {
            // USER_CREATED, CUSTOMER_CREATED, TASK_CREATED and OPPORTUNITY_CREATED are counted;
            // the last three are emitted.
            Self::Cascade => vec![cascades, cascades, cascades, 4 * cascades, 3 * cascades],
            Self::InsertRoute => vec![cascades],
            Self::EmitOnly => vec![cascades],
        }
    }
}
