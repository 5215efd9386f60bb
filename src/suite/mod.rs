//! Route tests (`crm-router test`): YAML files beside the routes that give events (and rows to
//! start from, and answers for `http` steps) and expect rows, emitted events, HTTP requests and
//! dead letters. They run on a database made for the run ([`crate::store::isolated`]), never
//! the configured one, each test in one transaction that is rolled back.
//!
//! A test file:
//!
//! ```yaml
//! tests:
//!   - name: a new customer gets a first-contact task
//!     rows: {users: [{id: u-1, email: a@example.com, ...}]}
//!     http: [{method: POST, url: "https://hooks.example/x", status: 200, body: {ok: true}}]
//!     env: {BILLING_URL: "https://billing.example"}
//!     events:
//!       - {topic: customer.events, eventType: CUSTOMER_CREATED, data: {...}}
//!       - run: due-soon-alerts
//!     expect:
//!       rows: {tasks: [{title: "初回コンタクト: Acme", status: PENDING}]}
//!       emitted: [{topic: sales-activity.events, eventType: TASK_CREATED}]
//!       requests: [{method: POST, url: "https://hooks.example/x"}]
//!       dead_letters: [{route: some-route, error: undefined value}]
//! ```

pub mod expect;
pub mod file;
pub mod run;

pub use file::{read_files, TestFile};
pub use run::{run_file, CaseOutcome, Failure};
