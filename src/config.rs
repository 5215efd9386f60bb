//! Daemon settings: command-line flags > environment > `crm-router.yaml` > defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::engine::retry::RetryPolicy;
use crate::kafka::{KafkaFileConfig, KafkaSettings, KafkaSettingsError};
use crate::route::load::Source;
use crate::route::model::RetryDef;
use crate::server::ServerLimits;

/// Default SQLite file, in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://crm-router.db";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Why settings could not be resolved.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A Kafka setting is not usable.
    #[error("invalid Kafka setting {0}")]
    Kafka(#[from] KafkaSettingsError),
    /// A value is not usable.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Setting name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `crm-router.yaml`. Every field is optional; flags and environment variables win.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `sqlite://FILE` (default `sqlite://crm-router.db`) or `postgres://...`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Directory of route files (default `./routes` when it exists, else the bundled routes).
    #[serde(default)]
    pub routes: Option<PathBuf>,
    /// Directory of event schemas (default `./schemas` when it exists, else the bundled ones).
    #[serde(default)]
    pub schemas: Option<PathBuf>,
    /// Directory of your own SQL migrations (default `./migrations` when it exists).
    #[serde(default)]
    pub migrations: Option<PathBuf>,
    /// HTTP listen address (default `127.0.0.1:8080`).
    #[serde(default)]
    pub listen: Option<String>,
    /// `text` or `json`.
    #[serde(default)]
    pub log_format: Option<LogFormat>,
    /// Environment variables templates may read as `env.NAME`; all others are invisible.
    #[serde(default)]
    pub env_allow: Vec<String>,
    /// Consumer name under which positions are stored (default `crm-router`).
    #[serde(default)]
    pub consumer: Option<String>,
    /// Most events per transaction (default 500).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Default retry policy of routes.
    #[serde(default)]
    pub retry: Option<RetryDef>,
    /// Kafka as the bus (the `KAFKA_*` environment variables override these keys).
    #[serde(default)]
    pub kafka: KafkaFileConfig,
    /// Browser origins allowed to call the API (`https://crm.example.com`, or `*`); none by
    /// default, so browsers refuse cross-origin calls.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// What `POST /api/events` does with an event no route reads: `accept` (the default:
    /// counted and warned about) or `refuse` (422, naming a route's topic it may have meant).
    #[serde(default)]
    pub unrouted: Option<Unrouted>,
    /// Whether the CRM's REST resources (`/api/auth`, `/api/customers`, …) are
    /// served (default `true`). `false` leaves the operator endpoints only, for a project of
    /// your own events and tables.
    #[serde(default)]
    pub crm_api: Option<bool>,
    /// Timeouts and the connection limit of the HTTP server.
    #[serde(default)]
    pub http: HttpFileConfig,
}

/// `http:` in `crm-router.yaml`: what keeps slow, idle or numerous clients from locking others
/// out. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFileConfig {
    /// Longest wait for a request's head (request line and headers), counted from when the
    /// connection opened or its previous response was sent, so it is also how long an idle
    /// keep-alive connection stays open (default `10s`).
    #[serde(default, with = "humantime_serde")]
    pub request_head_timeout: Option<Duration>,
    /// Longest time for a request's whole body to arrive once the server reads it (default
    /// `30s`).
    #[serde(default, with = "humantime_serde")]
    pub request_body_timeout: Option<Duration>,
    /// Most open client connections (default 4096). Lowered, with a warning, to what the
    /// process's open-files limit leaves room for. When they are all open, the oldest connection
    /// with no request in flight is closed for a new one.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// Timeouts must be long enough for a real client and short enough to matter.
const HTTP_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);

impl HttpFileConfig {
    fn resolve(&self) -> Result<ServerLimits, ConfigError> {
        let timeout = |field: &'static str, value: Option<Duration>, default: Duration| {
            let value = value.unwrap_or(default);
            if HTTP_TIMEOUT_RANGE.contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::Invalid {
                    field,
                    message: format!(
                        "{} is outside 100ms..=1h",
                        humantime::format_duration(value)
                    ),
                })
            }
        };
        if self.max_connections == Some(0) {
            return Err(ConfigError::Invalid {
                field: "http.max_connections",
                message: "must be at least 1".into(),
            });
        }
        Ok(ServerLimits {
            request_head_timeout: timeout(
                "http.request_head_timeout",
                self.request_head_timeout,
                crate::server::DEFAULT_REQUEST_HEAD_TIMEOUT,
            )?,
            request_body_timeout: timeout(
                "http.request_body_timeout",
                self.request_body_timeout,
                crate::server::DEFAULT_REQUEST_BODY_TIMEOUT,
            )?,
            max_connections: self.max_connections,
        })
    }
}

impl ConfigFile {
    /// Reads and parses a config file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        if matches!(
            serde_yaml::from_str::<serde_yaml::Value>(&text),
            Ok(serde_yaml::Value::Null)
        ) {
            return Ok(Self::default());
        }
        let mut file: Self = serde_yaml::from_str(&text).map_err(|error| {
            let (line, column) = error
                .location()
                .map(|location| (location.line(), location.column()))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: error.to_string(),
            }
        })?;
        // Relative directories in the file mean "next to the file", wherever it is run from.
        let base = path.parent().unwrap_or(Path::new(""));
        for directory in [
            &mut file.routes,
            &mut file.schemas,
            &mut file.migrations,
            &mut file.kafka.ssl_ca_location,
        ]
        .into_iter()
        .flatten()
        {
            if directory.is_relative() {
                *directory = base.join(&*directory);
            }
        }
        Ok(file)
    }
}

/// What flags and environment variables said (already merged by clap: flag > env).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url` / `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--routes` / `CRM_ROUTER_ROUTES`.
    pub routes: Option<PathBuf>,
    /// `--schemas` / `CRM_ROUTER_SCHEMAS`.
    pub schemas: Option<PathBuf>,
    /// `--migrations` / `CRM_ROUTER_MIGRATIONS`.
    pub migrations: Option<PathBuf>,
    /// `--listen` / `CRM_ROUTER_LISTEN`.
    pub listen: Option<String>,
    /// `PORT` (Render, Heroku): listen on `0.0.0.0:$PORT` unless `--listen` is given.
    pub port: Option<u16>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `CRM_ROUTER_API_KEY`.
    pub api_key: Option<String>,
    /// `JWT_SECRET`.
    pub jwt_secret: Option<String>,
    /// `CRM_ROUTER_CORS_ORIGINS`, comma-separated.
    pub cors_origins: Option<String>,
    /// `CRM_ROUTER_UNROUTED`: `accept` or `refuse`.
    pub unrouted: Option<String>,
    /// `CRM_ROUTER_CRM_API`: `true` or `false`.
    pub crm_api: Option<String>,
    /// The `KAFKA_*` environment variables that are set.
    pub kafka_environment: std::collections::BTreeMap<String, String>,
}

/// Where the daemon's settings come from: flags and environment variables, fixed for the
/// process, and the config file, which each reload reads again.
#[derive(Clone)]
pub struct SettingsSource {
    overrides: Overrides,
    file: Option<PathBuf>,
}

impl SettingsSource {
    /// Settings from `overrides` and, when given, the config file at `file`.
    pub fn new(overrides: Overrides, file: Option<PathBuf>) -> Self {
        Self { overrides, file }
    }

    /// The config file, when there is one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the config file (if any) and resolves the settings.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let file = match &self.file {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        Settings::resolve(self.overrides.clone(), file)
    }
}

/// Resolved settings.
#[derive(Clone)]
pub struct Settings {
    /// Database URL.
    pub database_url: String,
    /// Route files.
    pub routes: Source,
    /// Schema files.
    pub schemas: Source,
    /// User migrations directory.
    pub migrations: Option<PathBuf>,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Environment variables visible to templates.
    pub env_allow: Vec<String>,
    /// Consumer name.
    pub consumer: String,
    /// Most events per transaction.
    pub batch_size: usize,
    /// Default retry policy.
    pub retry: RetryPolicy,
    /// Key for `X-API-Key` on `/api/events` and `/api/routes`; `None` leaves them to ADMIN tokens.
    pub api_key: Option<String>,
    /// `JWT_SECRET`; `None` means a secret generated once and kept in the database.
    pub jwt_secret: Option<String>,
    /// Kafka as the bus; `None` for the embedded bus.
    pub kafka: Option<KafkaSettings>,
    /// Origins allowed by CORS: each `scheme://host[:port]`, or the one entry `*`. Empty: CORS
    /// is off.
    pub cors_origins: Vec<String>,
    /// HTTP server timeouts and connection limit.
    pub http: ServerLimits,
    /// What `POST /api/events` does with an event no route reads.
    pub unrouted: Unrouted,
    /// Whether the CRM's REST resources are served.
    pub crm_api: bool,
}

/// What `POST /api/events` does with an event whose topic and type no route's trigger matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unrouted {
    /// Accept it (recorded, counted as unrouted, warned about).
    #[default]
    Accept,
    /// Refuse it with 422, so a producer's misspelt topic fails at once.
    Refuse,
}

// By hand, so the API key, the JWT secret and a database password never reach a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "***");
        formatter
            .debug_struct("Settings")
            .field(
                "database_url",
                &crate::store::redact_url(&self.database_url),
            )
            .field("routes", &self.routes)
            .field("schemas", &self.schemas)
            .field("migrations", &self.migrations)
            .field("listen", &self.listen)
            .field("log_format", &self.log_format)
            .field("env_allow", &self.env_allow)
            .field("consumer", &self.consumer)
            .field("batch_size", &self.batch_size)
            .field("retry", &self.retry)
            .field("api_key", &hidden(&self.api_key))
            .field("jwt_secret", &hidden(&self.jwt_secret))
            .field("kafka", &self.kafka)
            .field("cors_origins", &self.cors_origins)
            .field("unrouted", &self.unrouted)
            .field("crm_api", &self.crm_api)
            .field("http", &self.http)
            .finish()
    }
}

/// Checks CORS origins: `*` alone, or `http(s)://host[:port]` each (what browsers send in
/// `Origin`, so anything else could never match).
fn check_cors_origins(origins: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = origins
        .into_iter()
        .map(|origin| origin.trim().trim_end_matches('/').to_owned())
        .filter(|origin| !origin.is_empty())
        .collect();
    if origins.iter().any(|origin| origin == "*") {
        if origins.len() > 1 {
            return Err(ConfigError::Invalid {
                field: "cors_origins",
                message: "\"*\" allows every origin and cannot be combined with others".into(),
            });
        }
        return Ok(origins);
    }
    let mut normalised = Vec::with_capacity(origins.len());
    for origin in &origins {
        let parsed = url::Url::parse(origin).ok().filter(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty()
        });
        let Some(parsed) = parsed else {
            return Err(ConfigError::Invalid {
                field: "cors_origins",
                message: format!("{origin:?} is not an origin like https://crm.example.com"),
            });
        };
        // As browsers send it: lower-case host, no default port.
        normalised.push(parsed.origin().ascii_serialization());
    }
    Ok(normalised)
}

fn directory_or_default(explicit: Option<PathBuf>, default: &str) -> Source {
    match explicit {
        Some(path) => Source::Directory(path),
        None if Path::new(default).is_dir() => Source::Directory(PathBuf::from(default)),
        None => Source::Bundled,
    }
}

impl Settings {
    /// Merges overrides, the config file and defaults.
    pub fn resolve(overrides: Overrides, file: ConfigFile) -> Result<Self, ConfigError> {
        let listen = match (overrides.listen, overrides.port, file.listen) {
            (Some(listen), _, _) => listen,
            (None, Some(port), _) => format!("0.0.0.0:{port}"),
            (None, None, Some(listen)) => listen,
            (None, None, None) => DEFAULT_LISTEN.to_owned(),
        };
        let listen = listen.parse().map_err(|error| ConfigError::Invalid {
            field: "listen",
            message: format!("{listen:?} is not an address like 127.0.0.1:8080 ({error})"),
        })?;
        let retry = match &file.retry {
            Some(def) => RetryPolicy::from_def(def, RetryPolicy::default()).map_err(|message| {
                ConfigError::Invalid {
                    field: "retry",
                    message,
                }
            })?,
            None => RetryPolicy::default(),
        };
        let batch_size = file.batch_size.unwrap_or(500);
        if !(1..=10_000).contains(&batch_size) {
            return Err(ConfigError::Invalid {
                field: "batch_size",
                message: "must be between 1 and 10000".into(),
            });
        }
        let migrations = overrides.migrations.or(file.migrations).or_else(|| {
            Path::new("migrations")
                .is_dir()
                .then(|| PathBuf::from("migrations"))
        });
        let api_key = overrides.api_key.filter(|key| !key.is_empty());
        if api_key.as_ref().is_some_and(|key| key.len() < 16) {
            return Err(ConfigError::Invalid {
                field: "CRM_ROUTER_API_KEY",
                message: "use at least 16 characters".into(),
            });
        }
        let kafka = KafkaSettings::resolve(
            |name| overrides.kafka_environment.get(name).cloned(),
            &file.kafka,
        )?;
        let cors_origins = match overrides.cors_origins {
            Some(list) => list.split(',').map(str::to_owned).collect(),
            None => file.cors_origins,
        };
        let cors_origins = check_cors_origins(cors_origins)?;
        let http = file.http.resolve()?;
        let unrouted = match overrides.unrouted.as_deref() {
            None => file.unrouted.unwrap_or_default(),
            Some("accept") => Unrouted::Accept,
            Some("refuse") => Unrouted::Refuse,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    field: "CRM_ROUTER_UNROUTED",
                    message: format!("must be accept or refuse, not {other:?}"),
                })
            }
        };
        let crm_api = match overrides.crm_api.as_deref() {
            None => file.crm_api.unwrap_or(true),
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    field: "CRM_ROUTER_CRM_API",
                    message: format!("must be true or false, not {other:?}"),
                })
            }
        };
        Ok(Self {
            http,
            unrouted,
            crm_api,
            cors_origins,
            kafka,
            database_url: overrides
                .database_url
                .or(file.database_url)
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            routes: directory_or_default(overrides.routes.or(file.routes), "routes"),
            schemas: directory_or_default(overrides.schemas.or(file.schemas), "schemas"),
            migrations,
            listen,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            env_allow: file.env_allow,
            consumer: file.consumer.unwrap_or_else(|| "crm-router".to_owned()),
            batch_size,
            retry,
            api_key,
            jwt_secret: overrides.jwt_secret.filter(|secret| !secret.is_empty()),
        })
    }

    /// The settings that differ in `newer` and take a restart to apply: everything but
    /// `env_allow` and `retry`, which a reload applies with the routes. The route and schema
    /// directories are among them, since the file watcher is attached to the running ones.
    pub fn needing_restart(&self, newer: &Settings) -> Vec<&'static str> {
        let compared = [
            ("database_url", self.database_url != newer.database_url),
            ("routes", self.routes != newer.routes),
            ("schemas", self.schemas != newer.schemas),
            ("migrations", self.migrations != newer.migrations),
            ("listen", self.listen != newer.listen),
            ("log_format", self.log_format != newer.log_format),
            ("consumer", self.consumer != newer.consumer),
            ("batch_size", self.batch_size != newer.batch_size),
            ("kafka", self.kafka != newer.kafka),
            ("cors_origins", self.cors_origins != newer.cors_origins),
            ("http", self.http != newer.http),
            ("unrouted", self.unrouted != newer.unrouted),
            ("crm_api", self.crm_api != newer.crm_api),
        ];
        compared
            .into_iter()
            .filter_map(|(name, differs)| differs.then_some(name))
            .collect()
    }

    /// What loading the routes these settings name takes, checked against `catalog` when
    /// given.
    pub fn load_options<'a>(
        &'a self,
        catalog: Option<&'a crate::store::Catalog>,
    ) -> crate::route::load::LoadOptions<'a> {
        crate::route::load::LoadOptions {
            routes: &self.routes,
            schemas: &self.schemas,
            catalog,
            env: self.template_env(),
            env_allow: Some(&self.env_allow),
            default_retry: self.retry,
            limits: crate::template::TemplateLimits::default(),
        }
    }

    /// The `env` template variable: allow-listed variables that are set.
    pub fn template_env(&self) -> minijinja::Value {
        let visible: std::collections::BTreeMap<String, String> = self
            .env_allow
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
            .collect();
        minijinja::Value::from_serialize(visible)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn cors_origins_are_checked_and_normalised() {
        assert_eq!(
            check_cors_origins(vec![
                "HTTPS://CRM.Example.com:443/".into(),
                " http://localhost:5173 ".into()
            ])
            .unwrap(),
            ["https://crm.example.com", "http://localhost:5173"]
        );
        assert_eq!(check_cors_origins(vec!["*".into()]).unwrap(), ["*"]);
        assert!(check_cors_origins(vec!["*".into(), "https://a.example".into()]).is_err());
        assert!(check_cors_origins(vec!["crm.example.com/app".into()]).is_err());
        assert!(check_cors_origins(vec!["https://a.example/path".into()]).is_err());
    }
    use super::*;

    #[test]
    fn every_example_config_parses_and_resolves() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut files = vec![examples.join("crm-router.yaml")];
        for entry in std::fs::read_dir(examples.join("kafka")).unwrap() {
            files.push(entry.unwrap().path());
        }
        for path in files {
            let file = ConfigFile::read(&path).unwrap_or_else(|error| panic!("{error}"));
            if path.parent().unwrap().ends_with("kafka") {
                let secrets = std::collections::BTreeMap::from([
                    ("KAFKA_USERNAME".to_owned(), "user".to_owned()),
                    ("KAFKA_PASSWORD".to_owned(), "secret".to_owned()),
                ]);
                let lookup = |name: &str| secrets.get(name).cloned();
                let kafka = KafkaSettings::resolve(lookup, &file.kafka)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
                    .expect("the Kafka examples enable Kafka");
                assert!(!kafka.brokers.is_empty(), "{}", path.display());
            }
        }
    }

    #[test]
    fn flags_beat_port_beat_file_beat_defaults() {
        let file = ConfigFile {
            listen: Some("127.0.0.1:9000".into()),
            database_url: Some("sqlite://file.db".into()),
            ..ConfigFile::default()
        };
        let settings = Settings::resolve(Overrides::default(), file.clone()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(settings.database_url, "sqlite://file.db");

        let port = Overrides {
            port: Some(10000),
            ..Overrides::default()
        };
        assert_eq!(
            Settings::resolve(port, file.clone())
                .unwrap()
                .listen
                .to_string(),
            "0.0.0.0:10000"
        );

        let flag = Overrides {
            listen: Some("127.0.0.1:1".into()),
            port: Some(10000),
            database_url: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        let settings = Settings::resolve(flag, file).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:1");
        assert_eq!(settings.database_url, "sqlite://flag.db");

        let defaults = Settings::resolve(Overrides::default(), ConfigFile::default()).unwrap();
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(defaults.database_url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let bad = Overrides {
            listen: Some("localhost".into()),
            ..Overrides::default()
        };
        let error = Settings::resolve(bad, ConfigFile::default())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid listen:"), "{error}");
        let short_key = Overrides {
            api_key: Some("short".into()),
            ..Overrides::default()
        };
        assert!(Settings::resolve(short_key, ConfigFile::default()).is_err());
    }

    #[test]
    fn config_files_refuse_unknown_keys_with_a_position() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("crm-router.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:1\nlisten_adress: x\n").unwrap();
        let error = ConfigFile::read(&path).unwrap_err().to_string();
        assert!(
            error.contains(":2:1: unknown field `listen_adress`"),
            "{error}"
        );
    }

    fn http_settings(yaml: &str) -> Result<ServerLimits, String> {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("crm-router.yaml");
        std::fs::write(&path, yaml).unwrap();
        let file = ConfigFile::read(&path).map_err(|error| error.to_string())?;
        Settings::resolve(Overrides::default(), file)
            .map(|settings| settings.http)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn http_limits_have_defaults_and_refuse_nonsense_by_name() {
        assert_eq!(http_settings("{}").unwrap(), ServerLimits::default());
        assert_eq!(
            http_settings(
                "http:\n  request_head_timeout: 2s\n  request_body_timeout: 1m\n  max_connections: 50\n"
            )
            .unwrap(),
            ServerLimits {
                request_head_timeout: Duration::from_secs(2),
                request_body_timeout: Duration::from_secs(60),
                max_connections: Some(50),
            }
        );
        for (yaml, expected) in [
            (
                "http:\n  request_head_timeout: 0s\n",
                "invalid http.request_head_timeout: 0s is outside 100ms..=1h",
            ),
            (
                "http:\n  request_body_timeout: 2h\n",
                "invalid http.request_body_timeout: 2h is outside 100ms..=1h",
            ),
            (
                "http:\n  max_connections: 0\n",
                "invalid http.max_connections: must be at least 1",
            ),
            (
                "http:\n  idle_timeout: 5s\n",
                ":2:3: http: unknown field `idle_timeout`",
            ),
            (
                "http:\n  request_head_timeout: soon\n",
                ":2:25: http.request_head_timeout: invalid value: string \"soon\", expected a duration",
            ),
        ] {
            let error = http_settings(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml:?}: {error}");
        }
    }
}
