//! The same routes on a real Kafka-protocol broker (tansu): the guide's tests with
//! `KAFKA_ENABLED=true`, events visible to an independent consumer, events from an outside
//! producer routed, a broker outage in the middle of a stream, and two instances sharing a group.
//! Each runs on SQLite and on PostgreSQL, except the two-instance test (SQLite only for now).
//!
//! tansu must be installed (`cargo install tansu --features dynostore --locked`; `.ci/run` does
//! it). Under CI a missing broker fails these tests; elsewhere they are skipped with a message.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use test_case::test_case;

use crate::support::{count, eventually, Backend, Daemon, Project, API_KEY};

/// A tansu broker on a free port, in memory.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

fn tansu_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return Some(PathBuf::from(path));
    }
    let candidates = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("tansu"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let home = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu"));
    candidates
        .into_iter()
        .chain(home)
        .find(|path| path.is_file())
}

impl Broker {
    /// Starts a broker, or returns `None` (skip) when tansu is missing outside CI.
    pub fn start() -> Option<Self> {
        let Some(binary) = tansu_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!("tansu is not installed; CI must install it (cargo install tansu --features dynostore --locked)");
            }
            eprintln!("SKIPPED: tansu is not installed (cargo install tansu --features dynostore --locked)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(binary)
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, address })
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Freezes the broker: connections stay open and nothing answers, as in a network outage.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Thaws it.
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment that puts a daemon on `broker` in consumer group `group`.
pub fn kafka_env<'a>(broker: &'a Broker, group: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CRM_ROUTER_API_KEY", API_KEY),
        ("KAFKA_ENABLED", "true"),
        ("KAFKA_BROKERS", broker.address.as_str()),
        ("KAFKA_CREATE_TOPICS", "true"),
        ("KAFKA_GROUP_ID", group),
        ("KAFKA_CLIENT_ID", "crm-router-test"),
    ]
}

/// Reads every message of `topics` from the start, as an independent consumer group would.
fn read_topics(broker: &Broker, topics: &[&str], until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .set("group.id", format!("observer-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(topics).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !until(&seen) {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topics:?}; saw {seen:?}"
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let payload = message.payload().unwrap_or_default();
            let mut envelope: Value = serde_json::from_slice(payload).unwrap();
            envelope["topic"] = json!(message.topic());
            envelope["key"] = json!(String::from_utf8_lossy(message.key().unwrap_or_default()));
            seen.push(envelope);
        }
    }
    seen
}

async fn register_and_login(daemon: &Daemon, email: &str, name: &str) -> String {
    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{}/api/auth/register", daemon.base))
        .json(&json!({"email": email, "password": "Password123!", "name": name, "role": "USER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let login: Value = client
        .post(format!("{}/api/auth/login", daemon.base))
        .json(&json!({"email": email, "password": "Password123!"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_owned()
}

async fn get_list(daemon: &Daemon, token: &str, path: &str) -> Vec<Value> {
    let answer: Value = reqwest::Client::new()
        .get(format!("{}{path}", daemon.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"].as_array().cloned().unwrap_or_default()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_guides_tests_pass_on_kafka_and_the_events_are_on_the_topics(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = Daemon::start(&project, &kafka_env(&broker, "guide"));

    // Test 1: register → login → the customer exists.
    let token = register_and_login(&daemon, "kafka-test@example.com", "Kafka Test User").await;
    let customer = eventually(Duration::from_secs(30), "the user's customer", || async {
        get_list(&daemon, &token, "/api/customers")
            .await
            .into_iter()
            .find(|customer| customer["email"] == "kafka-test@example.com")
    })
    .await;
    assert_eq!(customer["name"], "Kafka Test User");

    // Test 2: a customer → its first-contact task.
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/customers", daemon.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Test Company Inc.", "industry": "Technology", "size": "MEDIUM", "email": "contact@testcompany.com", "phone": "+81-3-1234-5678"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let customer_id = created["id"].as_str().unwrap().to_owned();
    let task = eventually(
        Duration::from_secs(30),
        "the first-contact task",
        || async {
            get_list(&daemon, &token, "/api/tasks")
                .await
                .into_iter()
                .find(|task| task["title"] == "初回コンタクト: Test Company Inc.")
        },
    )
    .await;
    assert_eq!(task["customerId"], customer_id.as_str());

    // An independent consumer sees the events on the guide's topics.
    let seen = read_topics(
        &broker,
        &["user.events", "customer.events", "sales-activity.events"],
        |seen| {
            seen.iter().any(|event| {
                event["eventType"] == "TASK_CREATED"
                    && event["data"]["title"] == "初回コンタクト: Test Company Inc."
            }) && seen
                .iter()
                .any(|event| event["eventType"] == "USER_CREATED")
                && seen.iter().any(|event| {
                    event["eventType"] == "CUSTOMER_CREATED"
                        && event["data"]["customerId"] == customer_id.as_str()
                })
        },
    );
    let user_created = seen
        .iter()
        .find(|event| event["eventType"] == "USER_CREATED")
        .unwrap();
    assert_eq!(user_created["topic"], "user.events");
    assert_eq!(user_created["data"]["email"], "kafka-test@example.com");
    assert!(user_created["eventId"].is_string() && user_created["timestamp"].is_string());
    assert_eq!(user_created["key"], user_created["data"]["userId"]);

    let db = project.database().await;
    eventually(Duration::from_secs(30), "the outbox to drain", || async {
        (count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE published_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    let log = daemon.log();
    assert!(log.contains("✅ Kafka Producer connected"), "{log}");
    assert!(log.contains("✅ Kafka Consumer connected"), "{log}");
    assert!(
        log.contains("📥 Event received: USER_CREATED from topic user.events"),
        "{log}"
    );
    // With Kafka on, a commit queues the event and the relay says when Kafka has it.
    let queued = log
        .find("📮 Event queued for Kafka: USER_CREATED to topic user.events")
        .unwrap_or_else(|| panic!("no queued line: {log}"));
    let published = log
        .find("📤 Event published: USER_CREATED to topic user.events")
        .unwrap_or_else(|| panic!("no published line: {log}"));
    assert!(queued < published, "{log}");
    assert!(
        log.lines()
            .filter(|line| line.contains("📤 Event published"))
            .all(|line| line.contains("crm_router::kafka::relay")),
        "only the relay says published on Kafka: {log}"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);
    // `/metrics` shows the outbox and, from librdkafka's statistics, each partition's lag.
    let metrics = eventually(
        Duration::from_secs(20),
        "the consumer lag in /metrics",
        || async {
            let text = reqwest::get(format!("{}/metrics", daemon.base))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains(r#"crm_router_consumer_lag{stream="user.events",partition=""#)
                .then_some(text)
        },
    )
    .await;
    assert!(metrics.contains("crm_router_outbox_backlog 0"), "{metrics}");
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn events_from_an_outside_producer_are_routed(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let _daemon = Daemon::start(&project, &kafka_env(&broker, "outside"));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.address)
        .create()
        .unwrap();
    // The KafkaJS services' envelope, keyed by user id.
    let envelope = json!({
        "eventId": "5b0f3c7e-1111-4a8e-9c39-0d7a1f2b3c4d",
        "eventType": "USER_CREATED",
        "timestamp": "2026-11-29T00:00:00.000Z",
        "source": "auth-service",
        "data": {"userId": "legacy-user-1", "email": "legacy@example.com", "name": "Legacy User", "role": "USER"}
    })
    .to_string();
    for _ in 0..2 {
        // Sent twice: the second copy must change nothing.
        producer
            .send(
                FutureRecord::to("user.events")
                    .key("legacy-user-1")
                    .payload(&envelope),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let db = project.database().await;
    eventually(
        Duration::from_secs(30),
        "the customer of the outside user",
        || async {
            (count(
                &db,
                "SELECT COUNT(*) FROM tasks WHERE title = '初回コンタクト: Legacy User'",
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM customers WHERE email = 'legacy@example.com'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'USER_CREATED'"
        )
        .await,
        1,
        "the duplicate was claimed, not counted"
    );
}

/// Posts `USER_CREATED` for `users` (numbered from `first`), a few at a time.
async fn post_users(daemon: &Daemon, first: usize, users: usize) {
    let client = reqwest::Client::new();
    let mut posts = tokio::task::JoinSet::new();
    for n in first..first + users {
        let request = client
            .post(format!("{}/api/events/user.events", daemon.base))
            .header("x-api-key", API_KEY)
            .json(&json!({
                "eventId": format!("00000000-0000-4000-a000-{n:012}"),
                "eventType": "USER_CREATED",
                "key": format!("user-{n}"),
                "data": {"userId": format!("user-{n}"), "email": format!("user{n}@example.com"), "name": format!("User {n}"), "role": "USER"}
            }));
        posts.spawn(async move { request.send().await.unwrap().status().as_u16() });
        if posts.len() >= 16 {
            assert_eq!(posts.join_next().await.unwrap().unwrap(), 202);
        }
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), 202);
    }
}

/// Waits until every flow of `users` registrations has run and the outbox is empty, then
/// checks each effect exists exactly once.
async fn assert_exactly_once(project: &Project, users: i64, timeout: Duration) -> String {
    let db = project.database().await;
    let deadline = Instant::now() + timeout;
    // Done when the last event of every flow is counted and the outbox is empty.
    let progress = "SELECT (SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'TASK_CREATED'), \
                           (SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'OPPORTUNITY_CREATED'), \
                           (SELECT COUNT(*) FROM event_log WHERE published_at IS NULL)";
    loop {
        let (tasks, opportunities, backlog): (i64, i64, i64) =
            sqlx::query_as(progress).fetch_one(&db).await.unwrap();
        if tasks >= users && opportunities >= users && backlog == 0 {
            break;
        }
        if Instant::now() > deadline {
            let positions: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT topic, partition, position FROM consumer_positions ORDER BY topic, partition",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            return format!(
                "timed out: TASK_CREATED counted {tasks}, OPPORTUNITY_CREATED {opportunities} of {users}; outbox backlog {backlog}; positions {positions:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let anything in flight land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (table, expected) in [
        ("customers", users),
        ("tasks", users),
        ("opportunities", users),
    ] {
        assert_eq!(
            count(&db, &format!("SELECT COUNT(*) FROM {table}")).await,
            expected,
            "{table}"
        );
    }
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT email) FROM customers").await,
        users
    );
    for event_type in [
        "USER_CREATED",
        "CUSTOMER_CREATED",
        "TASK_CREATED",
        "OPPORTUNITY_CREATED",
    ] {
        assert_eq!(
            count(&db, &format!("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = '{event_type}'")).await,
            users,
            "{event_type} counted once per user"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE published_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);
    String::new()
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn a_broker_outage_mid_stream_loses_nothing_and_doubles_nothing(backend: Backend) {
    const USERS: usize = 5_000;
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = Daemon::start(&project, &kafka_env(&broker, "outage"));
    post_users(&daemon, 0, USERS / 5).await;
    broker.pause();
    let paused_at = Instant::now();
    // The REST side keeps accepting while Kafka is away; events wait in the outbox.
    post_users(&daemon, USERS / 5, USERS / 5).await;
    let (status, ready) = daemon.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let remaining = Duration::from_secs(30).saturating_sub(paused_at.elapsed());
    tokio::time::sleep(remaining).await;
    let (_, ready) = daemon.get("/readyz").await;
    assert!(
        ready["kafka"]["outboxBacklog"].as_i64().unwrap() > 0,
        "{ready}"
    );
    broker.resume();
    post_users(&daemon, 2 * USERS / 5, 3 * USERS / 5).await;
    let problem = assert_exactly_once(&project, USERS as i64, Duration::from_secs(600)).await;
    assert!(problem.is_empty(), "{problem}\n{}", daemon.log());
}

/// Two instances in one group; one is SIGKILLed mid-stream and its partitions move to the other.
///
/// On librdkafka's mock cluster: tansu 0.6 keeps a dead member in its group, so the survivor never
/// receives the dead member's partitions there, while the mock cluster expires the member when its
/// session times out, as Apache Kafka does.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn two_instances_share_the_partitions_and_a_killed_one_loses_nothing(backend: Backend) {
    const USERS: usize = 1_500;
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    for topic in crm_router::kafka::settings::GUIDE_TOPICS {
        cluster.create_topic(topic, 3, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    // Short timeouts so the dead member's partitions move within seconds.
    project.write(
        "crm-router.yaml",
        "kafka:\n  properties:\n    session.timeout.ms: \"6000\"\n    heartbeat.interval.ms: \"1000\"\n",
    );
    let env = vec![
        ("CRM_ROUTER_API_KEY", API_KEY),
        ("KAFKA_ENABLED", "true"),
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_GROUP_ID", "pair"),
    ];
    let survivor = Daemon::start(&project, &env);
    let mut victim = Daemon::start(&project, &env);
    // Kill the victim only once it owns partitions: the group has split the work.
    eventually(
        Duration::from_secs(60),
        "the victim to own partitions",
        || async { owns_partitions(&victim).then_some(()) },
    )
    .await;
    post_users(&survivor, 0, USERS / 3).await;
    post_users(&victim, USERS / 3, USERS / 3).await;
    victim.kill();
    post_users(&survivor, 2 * USERS / 3, USERS / 3).await;
    let problem = assert_exactly_once(&project, USERS as i64, Duration::from_secs(300)).await;
    assert!(problem.is_empty(), "{problem}\n{}", survivor.log());
    // The survivor publishes the outbox, whichever of the two did before.
    assert!(
        survivor
            .log()
            .contains("this instance publishes the outbox to Kafka"),
        "{}",
        survivor.log()
    );
    // The survivor took over all fifteen partitions after the victim died.
    let log = survivor.log();
    let last_assignment = log
        .lines()
        .rfind(|line| line.contains("Kafka partitions assigned"))
        .unwrap_or_default();
    assert!(last_assignment.ends_with("partitions=15"), "{log}");
    drop(cluster);
}

/// The KafkaJS client the old services used, installed by `.ci/run` (`npm ci`), or `None` (skip)
/// when it is missing outside CI.
fn kafkajs_script() -> Option<PathBuf> {
    let directory = crate::support::repo().join("tests/interop/kafkajs");
    let installed = directory.join("node_modules/kafkajs").is_dir();
    let node = Command::new("node").arg("--version").output().is_ok();
    if installed && node {
        return Some(directory.join("interop.js"));
    }
    if std::env::var_os("CI").is_some() {
        panic!("KafkaJS is not installed; CI must run `npm ci --prefix tests/interop/kafkajs`");
    }
    eprintln!("SKIPPED: KafkaJS interop (run `npm ci --prefix tests/interop/kafkajs`)");
    None
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn the_old_services_kafkajs_client_interoperates(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(script) = kafkajs_script() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let daemon = Daemon::start(&project, &kafka_env(&broker, "interop"));
    // USER_CREATED as the guide's services name it, user.created as the old auth service's
    // createUser does; both in the old services' envelope, without `source`.
    let users = [
        ("USER_CREATED", "kafkajs@example.com"),
        ("user.created", "kafkajs-dotted@example.com"),
    ];
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&broker.address)
        .args(
            users
                .iter()
                .flat_map(|(event_type, email)| [event_type, email]),
        )
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    for published in result["published"].as_array().unwrap() {
        let mut fields: Vec<&str> = published
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["data", "eventId", "eventType", "timestamp"]);
    }
    let db = project.database().await;
    for (event_type, email) in users {
        let found = &result["found"][email];
        let event = &found["event"];
        assert_eq!(
            event["data"]["name"],
            format!("KafkaJS User ({event_type})")
        );
        assert_eq!(event["source"], "crm-router");
        assert_eq!(found["key"], event["data"]["customerId"]);
        assert!(event["eventId"].is_string() && event["timestamp"].is_string());
        let customer_id = event["data"]["customerId"].as_str().unwrap().to_owned();
        let customers = format!("SELECT COUNT(*) FROM customers WHERE email = '{email}'");
        assert_eq!(count(&db, &customers).await, 1);
        // The cascade goes on over Kafka: CUSTOMER_CREATED → the first-contact task.
        let tasks = format!(
            "SELECT COUNT(*) FROM tasks WHERE customer_id = '{customer_id}' \
             AND title = '初回コンタクト: KafkaJS User ({event_type})'"
        );
        eventually(
            Duration::from_secs(30),
            "the first-contact task",
            || async { (count(&db, &tasks).await == 1).then_some(()) },
        )
        .await;
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM dead_letters").await, 0);
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_event_over_the_size_limit_is_dead_lettered_and_the_relay_moves_on(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    project.write(
        "crm-router.yaml",
        "kafka:\n  topics:\n    max_message_bytes: 4000\n",
    );
    let daemon = Daemon::start(&project, &kafka_env(&broker, "oversize"));
    let big = json!({"eventType": "BULK_IMPORT", "key": "big", "data": {"blob": "x".repeat(5000)}});
    let small = json!({"eventType": "PING", "key": "small", "data": {}});
    assert_eq!(daemon.post_event("customer.events", big).await.0, 202);
    assert_eq!(daemon.post_event("customer.events", small).await.0, 202);
    let db = project.database().await;
    eventually(
        Duration::from_secs(30),
        "the small event to pass the big one",
        || async {
            (count(
                &db,
                "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'PING'",
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    let (kind, error): (String, String) = sqlx::query_as(
        "SELECT action_kind, error FROM dead_letters WHERE event_type = 'BULK_IMPORT'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(kind, "publish");
    assert!(error.contains("max.message.bytes of 4000"), "{error}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE published_at IS NULL"
        )
        .await,
        0
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn topics_are_created_by_the_cli_and_a_missing_one_stops_the_start(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let run = |args: &[&str]| {
        Command::new(crate::support::binary())
            .args(args)
            .arg("--database-url")
            .arg(project.database_url())
            .current_dir(project.path())
            .env("KAFKA_ENABLED", "true")
            .env("KAFKA_BROKERS", &broker.address)
            .env_remove("KAFKA_CREATE_TOPICS")
            .output()
            .unwrap()
    };
    let refused = run(&["run", "--listen", "127.0.0.1:0"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("user.events") && stderr.contains("crm-router topics create"),
        "{stderr}"
    );

    let created = run(&["topics", "create"]);
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    for topic in crm_router::kafka::settings::GUIDE_TOPICS {
        assert!(stdout.contains(&format!("created {topic}")), "{stdout}");
    }
    let again = run(&["topics", "create"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("exists  user.events"));
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn an_unreachable_broker_is_reported_with_a_hint_and_the_api_keeps_working(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let daemon = Daemon::start(
        &project,
        &[
            ("CRM_ROUTER_API_KEY", API_KEY),
            ("KAFKA_ENABLED", "true"),
            ("KAFKA_BROKERS", closed.as_str()),
            ("KAFKA_PASSWORD", "never-print-this-secret"),
            ("KAFKA_USERNAME", "user"),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ],
    );
    let (status, body) = daemon
        .post_event("user.events", json!({"eventType": "USER_CREATED", "data": {"userId": "u", "email": "u@example.com", "name": "U", "role": "USER"}}))
        .await;
    assert_eq!(status, 202, "{body}");
    let log = eventually(
        Duration::from_secs(20),
        "the connection failure in the log",
        || async {
            let log = daemon.log();
            log.contains("❌ Failed to connect to Kafka").then_some(log)
        },
    )
    .await;
    assert!(log.contains("KAFKA_BROKERS"), "{log}");
    assert!(!log.contains("never-print-this-secret"), "{log}");
    // The relay counts the outbox at the start of each round.
    let ready = eventually(
        Duration::from_secs(10),
        "the backlog in /readyz",
        || async {
            let (status, ready) = daemon.get("/readyz").await;
            assert_eq!(status, 200, "{ready}");
            (ready["kafka"]["outboxBacklog"] == 1).then_some(ready)
        },
    )
    .await;
    assert_eq!(ready["kafka"]["connected"], false, "{ready}");
    let (_, routes) = daemon.get("/api/routes").await;
    assert!(!routes.to_string().contains("never-print-this-secret"));
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn switching_between_the_embedded_bus_and_kafka_applies_nothing_twice(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let user = |n: u32| json!({"eventType": "USER_CREATED", "data": {"userId": format!("u{n}"), "email": format!("u{n}@example.com"), "name": format!("U{n}"), "role": "USER"}});
    // 1. Embedded: one registration, fully handled.
    let mut embedded = project.start();
    assert_eq!(embedded.post_event("user.events", user(1)).await.0, 202);
    crate::support::drained(&project.database().await).await;
    assert_eq!(embedded.terminate(), Some(0));
    // 2. Kafka: the history is not sent again; a new registration flows through Kafka.
    let mut on_kafka = Daemon::start(&project, &kafka_env(&broker, "switch"));
    assert_eq!(on_kafka.post_event("user.events", user(2)).await.0, 202);
    let pool = project.database().await;
    eventually(
        Duration::from_secs(30),
        "the second user's task",
        || async { (count(&pool, "SELECT COUNT(*) FROM tasks").await == 2).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        on_kafka.log().contains("not published to Kafka"),
        "{}",
        on_kafka.log()
    );
    assert_eq!(on_kafka.terminate(), Some(0));
    // 3. Embedded again: what went through Kafka is not replayed from the log.
    let embedded_again = project.start();
    assert_eq!(
        embedded_again.post_event("user.events", user(3)).await.0,
        202
    );
    eventually(Duration::from_secs(30), "the third user's task", || async {
        (count(&pool, "SELECT COUNT(*) FROM tasks").await >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (table, expected) in [("customers", 3), ("tasks", 3), ("opportunities", 3)] {
        assert_eq!(
            count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await,
            expected,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &pool,
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM analytics_daily WHERE event_type = 'USER_CREATED'"
        )
        .await,
        3
    );
}

/// Whether `daemon` has been assigned at least one partition.
fn owns_partitions(daemon: &Daemon) -> bool {
    daemon
        .log()
        .lines()
        .any(|line| line.contains("Kafka partitions assigned") && !line.ends_with("partitions=0"))
}

/// Two instances on one database with Kafka as the bus, on a real broker: the group splits the
/// partitions, one relay publishes while the other stands by, and a stream of 5,000
/// registrations posted to both lands exactly once.
async fn two_instances_share_one_database(project: Project) {
    const USERS: usize = 5_000;
    let Some(broker) = Broker::start() else {
        return;
    };
    let first = Daemon::start(&project, &kafka_env(&broker, "shared"));
    let second = Daemon::start(&project, &kafka_env(&broker, "shared"));
    eventually(
        Duration::from_secs(60),
        "both instances to own partitions",
        || async { (owns_partitions(&first) && owns_partitions(&second)).then_some(()) },
    )
    .await;
    tokio::join!(
        post_users(&first, 0, USERS / 2),
        post_users(&second, USERS / 2, USERS / 2)
    );
    let problem = assert_exactly_once(&project, USERS as i64, Duration::from_secs(600)).await;
    assert!(
        problem.is_empty(),
        "{problem}\n{}\n{}",
        first.log(),
        second.log()
    );
    let logs = [first.log(), second.log()];
    let publishing = logs
        .iter()
        .filter(|log| log.contains("this instance publishes the outbox to Kafka"))
        .count();
    let standing_by = logs
        .iter()
        .filter(|log| log.contains("another instance publishes the outbox to Kafka; standing by"))
        .count();
    assert_eq!(
        (publishing, standing_by),
        (1, 1),
        "{}\n{}",
        logs[0],
        logs[1]
    );
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn two_instances_on_one_database_process_a_stream_exactly_once(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    two_instances_share_one_database(project).await;
}

/// SIGTERM in the middle of a cascade: the daemon stops taking input, the consumer finishes its
/// batch, the relay publishes what it emitted, and the process exits 0 within 10 s with nothing
/// left in the outbox. A restart finishes the cascade exactly once.
async fn flush_on_sigterm(project: Project) {
    const USERS: usize = 300;
    let Some(broker) = Broker::start() else {
        return;
    };
    let mut daemon = Daemon::start(&project, &kafka_env(&broker, "stop"));
    post_users(&daemon, 0, USERS).await;
    let db = project.database().await;
    eventually(
        Duration::from_secs(60),
        "the cascade to be under way",
        || async { (count(&db, "SELECT COUNT(*) FROM customers").await > 0).then_some(()) },
    )
    .await;
    let stopping = Instant::now();
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log());
    assert!(stopping.elapsed() < Duration::from_secs(10));
    let log = daemon.log();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM event_log WHERE published_at IS NULL"
        )
        .await,
        0,
        "{log}"
    );
    assert!(log.contains("outbox flushed to Kafka"), "{log}");
    let restarted = Daemon::start(&project, &kafka_env(&broker, "stop"));
    let problem = assert_exactly_once(&project, USERS as i64, Duration::from_secs(120)).await;
    assert!(problem.is_empty(), "{problem}\n{}", restarted.log());
}

#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn sigterm_flushes_the_outbox(backend: Backend) {
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    flush_on_sigterm(project).await;
}

/// Instances on Kafka and an embedded bus never share a database: both would consume the same
/// events, in different orders.
#[test_case(Backend::Sqlite ; "sqlite")]
#[test_case(Backend::Postgres ; "postgres")]
#[tokio::test]
async fn kafka_instances_and_an_embedded_bus_exclude_each_other(backend: Backend) {
    let Some(broker) = Broker::start() else {
        return;
    };
    let Some(project) = Project::bundled_on(backend) else {
        return;
    };
    let env = kafka_env(&broker, "exclusive");
    let mut on_kafka = Daemon::start(&project, &env);
    let second_on_kafka = Daemon::start(&project, &env);
    let stderr = project.refused_start(&[("CRM_ROUTER_API_KEY", API_KEY)]);
    assert!(
        stderr.contains("instances using Kafka run on it"),
        "{stderr}"
    );
    assert_eq!(on_kafka.terminate(), Some(0));
    drop(second_on_kafka);
    let mut embedded = project.start();
    let stderr = project.refused_start(&env);
    assert!(
        stderr.contains(
            "a crm-router running the embedded event bus (without KAFKA_ENABLED) already uses"
        ),
        "{stderr}"
    );
    assert!(embedded.is_running());
}
