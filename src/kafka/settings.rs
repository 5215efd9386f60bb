//! Kafka connection settings: the guide's environment variables, the config file's `kafka:`
//! section, and the librdkafka configuration they become. Secrets never reach `Debug` output,
//! logs or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

/// The five topics of the CRM.
pub const GUIDE_TOPICS: [&str; 5] = [
    "user.events",
    "customer.events",
    "sales-activity.events",
    "opportunity.events",
    "notification.events",
];

/// A Kafka setting that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{variable}: {message}")]
pub struct KafkaSettingsError {
    /// The environment variable or config key to fix.
    pub variable: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// The `kafka:` section of `crm-router.yaml`. Environment variables override each key.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaFileConfig {
    /// `KAFKA_ENABLED`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `KAFKA_BROKERS`: `host:port`, comma-separated.
    #[serde(default)]
    pub brokers: Option<String>,
    /// `KAFKA_CLIENT_ID`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `KAFKA_GROUP_ID`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `KAFKA_USERNAME`.
    #[serde(default)]
    pub username: Option<String>,
    /// `KAFKA_SASL_MECHANISM`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// `KAFKA_SECURITY_PROTOCOL`.
    #[serde(default)]
    pub security_protocol: Option<String>,
    /// `KAFKA_SSL_CA_LOCATION`.
    #[serde(default)]
    pub ssl_ca_location: Option<PathBuf>,
    /// Create missing topics at start.
    #[serde(default)]
    pub create_topics: bool,
    /// Topics to create and consume, with their settings.
    #[serde(default)]
    pub topics: Option<TopicsConfig>,
    /// Passed to librdkafka as they are (`linger.ms`, `socket.keepalive.enable`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// How topics are created.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// Topic names (default: the five guide topics).
    #[serde(default = "default_topic_names")]
    pub names: Vec<String>,
    /// Partitions per topic (default 3).
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replicas per partition (default 1; managed clusters usually need 3).
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// `retention.ms` (default 604800000, seven days).
    #[serde(default = "default_retention")]
    pub retention_ms: i64,
    /// `max.message.bytes` (default 1048576).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: i64,
}

fn default_topic_names() -> Vec<String> {
    GUIDE_TOPICS
        .iter()
        .map(|topic| (*topic).to_owned())
        .collect()
}
fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i32 {
    1
}
fn default_retention() -> i64 {
    604_800_000
}
fn default_max_message_bytes() -> i64 {
    1_048_576
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            names: default_topic_names(),
            partitions: default_partitions(),
            replication_factor: default_replication(),
            retention_ms: default_retention(),
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

/// SASL mechanisms managed Kafka services use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN` (Confluent Cloud, Upstash; the guide's default).
    Plain,
    /// `SCRAM-SHA-256` (Redpanda Cloud, Aiven).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    fn parse(text: &str) -> Result<Self, KafkaSettingsError> {
        match text.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(KafkaSettingsError {
                variable: "KAFKA_SASL_MECHANISM",
                message: format!("{text:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            }),
        }
    }

    /// As librdkafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// How the connection to the brokers is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication (a local broker).
    Plaintext,
    /// TLS without SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS (managed services).
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(text: &str) -> Result<Self, KafkaSettingsError> {
        match text.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(KafkaSettingsError {
                variable: "KAFKA_SECURITY_PROTOCOL",
                message: format!("{text:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
            }),
        }
    }

    /// As librdkafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it (the client configuration).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// SASL credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// Mechanism.
    pub mechanism: SaslMechanism,
    /// `KAFKA_USERNAME`.
    pub username: String,
    /// `KAFKA_PASSWORD`.
    pub password: Secret,
}

/// Everything needed to talk to the cluster.
#[derive(Clone, PartialEq)]
pub struct KafkaSettings {
    /// `host:port,...`.
    pub brokers: String,
    /// Client id shown in broker logs.
    pub client_id: String,
    /// Consumer group; also the name under which positions are stored in the database.
    pub group_id: String,
    /// Transport security.
    pub security_protocol: SecurityProtocol,
    /// SASL credentials, when the protocol uses SASL.
    pub sasl: Option<SaslCredentials>,
    /// CA bundle for TLS.
    pub ssl_ca_location: Option<PathBuf>,
    /// Create missing topics at start.
    pub create_topics: bool,
    /// Topics and their creation settings.
    pub topics: TopicsConfig,
    /// Passed through to librdkafka.
    pub properties: BTreeMap<String, String>,
}

/// Keys whose values are secret, in `properties` as in librdkafka's own settings.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || key.contains("sasl.jaas")
        || key.ends_with(".key.pem")
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_key(key) {
                    "***"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("group_id", &self.group_id)
            .field("security_protocol", &self.security_protocol)
            .field("sasl", &self.sasl)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("create_topics", &self.create_topics)
            .field("topics", &self.topics)
            .field("properties", &properties)
            .finish()
    }
}

fn truthy(variable: &'static str, text: &str) -> Result<bool, KafkaSettingsError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(KafkaSettingsError {
            variable,
            message: format!("{text:?} is not true or false"),
        }),
    }
}

impl KafkaSettings {
    /// Kafka settings when Kafka is enabled, from the environment (`lookup`) over the config
    /// file. `None` when `KAFKA_ENABLED` is not true: the embedded bus is used.
    pub fn resolve(
        lookup: impl Fn(&str) -> Option<String>,
        file: &KafkaFileConfig,
    ) -> Result<Option<Self>, KafkaSettingsError> {
        let enabled = match lookup("KAFKA_ENABLED") {
            Some(text) => truthy("KAFKA_ENABLED", &text)?,
            None => file.enabled.unwrap_or(false),
        };
        if !enabled {
            return Ok(None);
        }
        let brokers = lookup("KAFKA_BROKERS")
            .or_else(|| file.brokers.clone())
            .map(|brokers| {
                brokers
                    .split(',')
                    .map(str::trim)
                    .filter(|broker| !broker.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|brokers| !brokers.is_empty())
            .ok_or(KafkaSettingsError {
                variable: "KAFKA_BROKERS",
                message: "is required when KAFKA_ENABLED=true (host:port, comma-separated)".into(),
            })?;
        for broker in brokers.split(',') {
            let port = broker.rsplit_once(':').map(|(_, port)| port);
            if port.is_none_or(|port| port.parse::<u16>().is_err()) {
                return Err(KafkaSettingsError {
                    variable: "KAFKA_BROKERS",
                    message: format!("{broker:?} is not host:port"),
                });
            }
        }
        let username = lookup("KAFKA_USERNAME")
            .or_else(|| file.username.clone())
            .filter(|name| !name.is_empty());
        let password = lookup("KAFKA_PASSWORD").filter(|password| !password.is_empty());
        let security_protocol =
            match lookup("KAFKA_SECURITY_PROTOCOL").or_else(|| file.security_protocol.clone()) {
                Some(text) => SecurityProtocol::parse(&text)?,
                None if username.is_some() => SecurityProtocol::SaslSsl,
                None => SecurityProtocol::Plaintext,
            };
        let sasl = if security_protocol.uses_sasl() {
            let mechanism =
                match lookup("KAFKA_SASL_MECHANISM").or_else(|| file.sasl_mechanism.clone()) {
                    Some(text) => SaslMechanism::parse(&text)?,
                    None => SaslMechanism::Plain,
                };
            let username = username.ok_or(KafkaSettingsError {
                variable: "KAFKA_USERNAME",
                message: format!(
                    "is required with KAFKA_SECURITY_PROTOCOL={}",
                    security_protocol.as_str()
                ),
            })?;
            let password = password.ok_or(KafkaSettingsError {
                variable: "KAFKA_PASSWORD",
                message: format!(
                    "is required with KAFKA_SECURITY_PROTOCOL={}",
                    security_protocol.as_str()
                ),
            })?;
            Some(SaslCredentials {
                mechanism,
                username,
                password: Secret(password),
            })
        } else {
            None
        };
        for key in file.properties.keys() {
            if matches!(
                key.as_str(),
                "enable.auto.commit"
                    | "enable.auto.offset.store"
                    | "enable.idempotence"
                    | "group.id"
            ) {
                return Err(KafkaSettingsError {
                    variable: "kafka.properties",
                    message: format!("{key} is managed by crm-router (exactly-once depends on it) and cannot be overridden"),
                });
            }
        }
        let topics = file.topics.clone().unwrap_or_default();
        if topics.partitions < 1 || topics.replication_factor < 1 {
            return Err(KafkaSettingsError {
                variable: "kafka.topics",
                message: "partitions and replication_factor must be at least 1".into(),
            });
        }
        Ok(Some(Self {
            brokers,
            client_id: lookup("KAFKA_CLIENT_ID")
                .or_else(|| file.client_id.clone())
                .unwrap_or_else(|| "crm-router".into()),
            group_id: lookup("KAFKA_GROUP_ID")
                .or_else(|| file.group_id.clone())
                .unwrap_or_else(|| "crm-router".into()),
            security_protocol,
            sasl,
            ssl_ca_location: lookup("KAFKA_SSL_CA_LOCATION")
                .map(PathBuf::from)
                .or_else(|| file.ssl_ca_location.clone()),
            create_topics: match lookup("KAFKA_CREATE_TOPICS") {
                Some(text) => truthy("KAFKA_CREATE_TOPICS", &text)?,
                None => file.create_topics,
            },
            topics,
            properties: file.properties.clone(),
        }))
    }

    /// The librdkafka settings shared by the producer, the consumer and the admin client.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("security.protocol", self.security_protocol.as_str());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanisms", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        if let Some(ca) = &self.ssl_ca_location {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(
        env: &[(&str, &str)],
        file: &KafkaFileConfig,
    ) -> Result<Option<KafkaSettings>, KafkaSettingsError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        KafkaSettings::resolve(|name| env.get(name).cloned(), file)
    }

    #[test]
    fn disabled_unless_kafka_enabled_is_true() {
        assert_eq!(resolve(&[], &KafkaFileConfig::default()), Ok(None));
        assert_eq!(
            resolve(
                &[("KAFKA_ENABLED", "false"), ("KAFKA_BROKERS", "h:9092")],
                &KafkaFileConfig::default()
            ),
            Ok(None)
        );
        assert!(resolve(&[("KAFKA_ENABLED", "maybe")], &KafkaFileConfig::default()).is_err());
    }

    #[test]
    fn the_guides_variables_map_to_sasl_ssl_plain() {
        let settings = resolve(
            &[
                ("KAFKA_ENABLED", "true"),
                ("KAFKA_BROKERS", "a.example.com:9092, b.example.com:9092"),
                ("KAFKA_USERNAME", "user"),
                ("KAFKA_PASSWORD", "hunter2-secret"),
                ("KAFKA_CLIENT_ID", "crm-api"),
            ],
            &KafkaFileConfig::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.brokers, "a.example.com:9092,b.example.com:9092");
        assert_eq!(settings.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(
            settings.sasl.as_ref().unwrap().mechanism,
            SaslMechanism::Plain
        );
        assert_eq!(
            (settings.client_id.as_str(), settings.group_id.as_str()),
            ("crm-api", "crm-router")
        );
        let config = settings.client_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanisms"), Some("PLAIN"));
        assert_eq!(config.get("sasl.password"), Some("hunter2-secret"));
        assert_eq!(settings.topics.partitions, 3);
        assert_eq!(settings.topics.names.len(), 5);
    }

    #[test]
    fn scram_and_local_brokers() {
        let scram = resolve(
            &[
                ("KAFKA_ENABLED", "1"),
                ("KAFKA_BROKERS", "h:9093"),
                ("KAFKA_USERNAME", "u"),
                ("KAFKA_PASSWORD", "p"),
                ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
            ],
            &KafkaFileConfig::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(scram.sasl.unwrap().mechanism, SaslMechanism::ScramSha512);
        let local = resolve(
            &[
                ("KAFKA_ENABLED", "true"),
                ("KAFKA_BROKERS", "127.0.0.1:9092"),
            ],
            &KafkaFileConfig::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (local.security_protocol, local.sasl),
            (SecurityProtocol::Plaintext, None)
        );
    }

    #[test]
    fn problems_name_the_variable_to_fix() {
        let enabled = [("KAFKA_ENABLED", "true")];
        assert_eq!(
            resolve(&enabled, &KafkaFileConfig::default())
                .unwrap_err()
                .variable,
            "KAFKA_BROKERS"
        );
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("KAFKA_BROKERS", "no-port")], "KAFKA_BROKERS"),
            (
                &[("KAFKA_BROKERS", "h:1"), ("KAFKA_USERNAME", "u")],
                "KAFKA_PASSWORD",
            ),
            (
                &[("KAFKA_BROKERS", "h:1"), ("KAFKA_SECURITY_PROTOCOL", "TLS")],
                "KAFKA_SECURITY_PROTOCOL",
            ),
            (
                &[
                    ("KAFKA_BROKERS", "h:1"),
                    ("KAFKA_USERNAME", "u"),
                    ("KAFKA_PASSWORD", "p"),
                    ("KAFKA_SASL_MECHANISM", "GSSAPI"),
                ],
                "KAFKA_SASL_MECHANISM",
            ),
        ];
        for (env, variable) in cases {
            let mut all = enabled.to_vec();
            all.extend_from_slice(env);
            assert_eq!(
                resolve(&all, &KafkaFileConfig::default())
                    .unwrap_err()
                    .variable,
                variable,
                "{env:?}"
            );
        }
        let managed = KafkaFileConfig {
            properties: BTreeMap::from([("enable.auto.commit".to_owned(), "true".to_owned())]),
            ..KafkaFileConfig::default()
        };
        assert_eq!(
            resolve(
                &[("KAFKA_ENABLED", "true"), ("KAFKA_BROKERS", "h:1")],
                &managed
            )
            .unwrap_err()
            .variable,
            "kafka.properties"
        );
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let file = KafkaFileConfig {
            properties: BTreeMap::from([
                ("ssl.key.password".to_owned(), "key-secret-value".to_owned()),
                ("linger.ms".to_owned(), "5".to_owned()),
            ]),
            ..KafkaFileConfig::default()
        };
        let settings = resolve(
            &[
                ("KAFKA_ENABLED", "true"),
                ("KAFKA_BROKERS", "h:9092"),
                ("KAFKA_USERNAME", "u"),
                ("KAFKA_PASSWORD", "hunter2-secret"),
            ],
            &file,
        )
        .unwrap()
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("key-secret-value"), "{shown}");
        assert!(
            shown.contains("linger.ms") && shown.contains("\"u\""),
            "{shown}"
        );
    }
}
