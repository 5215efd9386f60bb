//! TLS to PostgreSQL: the daemon's connections (its pool and the session holding the embedded
//! bus's lock) are encrypted, verified or refused as `sslmode` and `sslrootcert` say, with
//! libpq's meanings, against the local server serving a certificate this test makes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::support::{eventually, Backend, Daemon, Project, API_KEY};

/// The server as the tests reach it, in plaintext: a plaintext client must keep working while
/// the server offers TLS, for the other tests' sake as much as for this one's.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// A certificate authority: its certificate (PEM) and what signs with it.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn certificate_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names`, and its private key (PEM).
    fn server_certificate(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let issuer: &Issuer<'_, KeyPair> = &self.issuer;
        let certificate = params.signed_by(&key, issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// The local server serving a certificate signed by a fresh authority, for one test; the
/// server's own TLS settings come back when it is dropped.
///
/// Restored rather than left on: the server is shared with every other test and engineer, and
/// should be as it was found. The files stay in the data directory, so a run killed before the
/// restore leaves a configuration the server can still start with (PostgreSQL refuses to start
/// with `ssl = on` and a missing certificate), and the next run replaces them.
///
/// Two runs at once (two test processes, or two tests of one) would each install their own
/// authority and break the other's verification, so a lock file serialises them: `flock` locks
/// belong to an open file, so they exclude threads of one process as well as processes.
struct ServerTls {
    authority: Authority,
    /// Where the client side's files go (root certificates to trust).
    client_files: tempfile::TempDir,
    _turn: std::fs::File,
}

impl ServerTls {
    async fn install() -> Self {
        let lock_path = std::env::temp_dir().join("crm-router-postgres-tls.lock");
        let turn = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .unwrap();
            file.lock().unwrap();
            file
        })
        .await
        .unwrap();

        let mut admin = PgConnection::connect(ADMIN_URL).await.unwrap();
        let data_directory: String = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let server_files = Path::new(&data_directory).join("crm-router-test-tls");
        let owner = std::fs::metadata(&data_directory).unwrap();
        std::fs::create_dir_all(&server_files).unwrap();

        let authority = Authority::new("crm-router test authority");
        // Only `localhost`: 127.0.0.1 then reaches the same server by a name the certificate
        // does not list.
        let (certificate, key) = authority.server_certificate(&["localhost"]);
        let certificate_path = server_files.join("server.crt");
        let key_path = server_files.join("server.key");
        // The server reads them as its own user, and refuses a key others may read.
        for (path, contents) in [(&certificate_path, &certificate), (&key_path, &key)] {
            let staged = path.with_extension("new");
            std::fs::write(&staged, contents).unwrap();
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&staged, Some(owner.uid()), Some(owner.gid())).unwrap_or_else(
                |error| {
                    panic!(
                        "cannot give {} to the server's user (run as root): {error}",
                        staged.display()
                    )
                },
            );
            std::fs::rename(&staged, path).unwrap();
        }
        for statement in [
            "ALTER SYSTEM SET ssl = on".to_owned(),
            format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                certificate_path.display()
            ),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", key_path.display()),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            sqlx::raw_sql(&statement).execute(&mut admin).await.unwrap();
        }
        let _ = admin.close().await;

        let tls = Self {
            authority,
            client_files: tempfile::tempdir().unwrap(),
            _turn: turn,
        };
        // The reload is asynchronous: wait until new sessions see the new certificate.
        let root = tls.root_certificate(&tls.authority);
        let url = format!(
            "postgres://postgres@localhost:5432/postgres?sslmode=verify-full&sslrootcert={}",
            root.display()
        );
        eventually(
            Duration::from_secs(10),
            "the server to serve the test's certificate",
            || async {
                let options = crm_router::store::postgres_tls::connect_options(&url).unwrap();
                PgConnection::connect_with(&options).await.ok()
            },
        )
        .await;
        tls
    }

    /// `authority`'s certificate in a file, for `sslrootcert`.
    fn root_certificate(&self, authority: &Authority) -> PathBuf {
        let path = self
            .client_files
            .path()
            .join(format!("{}.crt", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, authority.certificate_pem()).unwrap();
        path
    }
}

impl Drop for ServerTls {
    fn drop(&mut self) {
        let restored = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", "ALTER SYSTEM RESET ssl_cert_file"])
            .args(["-c", "ALTER SYSTEM RESET ssl_key_file"])
            .args(["-c", "ALTER SYSTEM RESET ssl"])
            .args(["-c", "SELECT pg_reload_conf()"])
            .env("PGSSLMODE", "disable")
            .output();
        if !matches!(&restored, Ok(output) if output.status.success()) {
            eprintln!("cannot restore the server's TLS settings: {restored:?}");
        }
    }
}

/// The project's database URL reached at `host`, with `query` (if any) appended.
fn url_at(project: &Project, host: &str, query: &str) -> String {
    let url = project.database_url().replacen("127.0.0.1", host, 1);
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

/// Whether each session the daemon holds on `database` is encrypted, by `application_name`,
/// once the session holding the embedded bus's lock is among them.
async fn daemon_sessions(database: &str) -> Vec<(String, bool)> {
    let mut admin = PgConnection::connect(ADMIN_URL).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sessions: Vec<(String, bool)> = sqlx::query_as(
            "SELECT activity.application_name, ssl.ssl \
             FROM pg_stat_activity AS activity JOIN pg_stat_ssl AS ssl USING (pid) \
             WHERE activity.datname = $1 AND activity.pid <> pg_backend_pid()",
        )
        .bind(database)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let has_bus = sessions
            .iter()
            .any(|(name, _)| name.starts_with("crm-router bus "));
        let has_pool = sessions
            .iter()
            .any(|(name, _)| !name.starts_with("crm-router "));
        if has_bus && has_pool {
            let _ = admin.close().await;
            return sessions;
        }
        assert!(
            Instant::now() < deadline,
            "no bus lock session and pool session on {database} after 10 s: {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database name in a project's URL.
fn database_name(project: &Project) -> String {
    project
        .database_url()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Starts the daemon on `database_url`, returns how its sessions were secured, and stops it.
async fn sessions_of_daemon_on(project: &Project, database_url: &str) -> Vec<(String, bool)> {
    let database = database_name(project);
    let daemon = Daemon::start_at(project, database_url, &[("CRM_ROUTER_API_KEY", API_KEY)]);
    let sessions = daemon_sessions(&database).await;
    drop(daemon);
    // The server ends a killed client's sessions a moment later; the next daemon must find
    // the bus lock free, and the next look at the sessions see only its own.
    let mut admin = PgConnection::connect(ADMIN_URL).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if left == 0 {
            let _ = admin.close().await;
            return sessions;
        }
        assert!(
            Instant::now() < deadline,
            "{left} sessions of a stopped daemon still on {database} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sessions_are_encrypted_or_not_as_sslmode_says() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    let tls = ServerTls::install().await;
    let root = tls.root_certificate(&tls.authority);

    for (query, encrypted) in [
        ("sslmode=require".to_owned(), true),
        // libpq's default, `prefer`, encrypts when the server offers TLS.
        (String::new(), true),
        ("sslmode=disable".to_owned(), false),
        (
            format!("sslmode=verify-ca&sslrootcert={}", root.display()),
            true,
        ),
    ] {
        let url = url_at(&project, "localhost", &query);
        let sessions = sessions_of_daemon_on(&project, &url).await;
        assert!(
            sessions.iter().all(|(_, ssl)| *ssl == encrypted),
            "{query}: every session, the bus lock's included, should have ssl = {encrypted}: \
             {sessions:?}"
        );
    }
}

#[tokio::test]
async fn verify_full_checks_the_authority_and_the_host_name() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    let tls = ServerTls::install().await;
    let root = tls.root_certificate(&tls.authority);
    let query = format!("sslmode=verify-full&sslrootcert={}", root.display());

    let sessions = sessions_of_daemon_on(&project, &url_at(&project, "localhost", &query)).await;
    assert!(sessions.iter().all(|(_, ssl)| *ssl), "{sessions:?}");

    // The certificate names `localhost` only.
    let refusal = project.refused_start_on(
        &url_at(&project, "127.0.0.1", &query),
        &[("CRM_ROUTER_API_KEY", API_KEY)],
    );
    assert!(
        refusal.contains("certificate not valid for name \"127.0.0.1\"")
            && refusal.contains("connect by a name the certificate lists"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_certificate_from_another_authority_is_refused() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    let tls = ServerTls::install().await;
    let stranger = tls.root_certificate(&Authority::new("another authority"));

    // libpq's `require` verifies the authority as soon as a root certificate is given.
    for mode in ["verify-ca", "require", "verify-full"] {
        let query = format!("sslmode={mode}&sslrootcert={}", stranger.display());
        let refusal = project.refused_start_on(
            &url_at(&project, "localhost", &query),
            &[("CRM_ROUTER_API_KEY", API_KEY)],
        );
        assert!(
            refusal.contains("invalid peer certificate: UnknownIssuer")
                && refusal.contains("not signed by an authority in the sslrootcert file"),
            "{mode}: {refusal}"
        );
        assert!(
            !refusal.contains("panicked"),
            "{mode}: a refusal, not a crash: {refusal}"
        );
    }
}

#[tokio::test]
async fn a_missing_root_certificate_file_is_refused_by_name() {
    let Some(project) = Project::empty_on(Backend::Postgres) else {
        return;
    };
    let missing = project.path().join("no-such-ca.crt");
    let query = format!("sslmode=verify-ca&sslrootcert={}", missing.display());
    let refusal = project.refused_start_on(
        &url_at(&project, "localhost", &query),
        &[("CRM_ROUTER_API_KEY", API_KEY)],
    );
    assert!(
        refusal.contains(&format!(
            "cannot read sslrootcert file {}: No such file or directory",
            missing.display()
        )),
        "{refusal}"
    );
}
