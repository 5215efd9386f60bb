//! TLS to PostgreSQL, with libpq's meaning of `sslmode` and `sslrootcert`.
//!
//! sqlx reads both keys from the URL but means something else by them: `require` never
//! verifies, even with a root certificate given (libpq then verifies as `verify-ca` does);
//! `sslrootcert=system` is taken for a file named `system`; and a missing or unreadable file
//! surfaces only when the first connection fails, as an IO error that does not say which file.
//! [`connect_options`] decides what libpq would and hands sqlx the mode that does it, with the
//! root certificates read once, here, at start.
//!
//! Two differences remain, because sqlx performs the handshake and takes no verifier of ours:
//! the public (webpki) roots are trusted besides the `sslrootcert` file, and `verify-ca`
//! checks the host name as `verify-full` does (sqlx 0.8.6 misses the name-mismatch error of
//! rustls 0.23.24 and later). docs/operations.md, "Run on PostgreSQL", states both.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use thiserror::Error;

/// Why a `postgres://` URL cannot be used, found before connecting. Causes are part of the
/// message rather than `source`s, so that a printed chain does not repeat them.
#[derive(Debug, Error)]
pub enum PostgresUrlError {
    /// sqlx cannot parse the URL.
    #[error("{0}")]
    Unparseable(sqlx::Error),
    /// `sslmode` has a value libpq does not know.
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    UnknownSslMode(String),
    /// `sslmode=allow`, which would need a plaintext attempt retried with TLS.
    #[error("sslmode=allow is not supported (it never retries with TLS): use disable, prefer or require")]
    AllowUnsupported,
    /// `verify-ca` without a root certificate to verify against.
    #[error("sslmode=verify-ca needs sslrootcert=FILE, the certificate of the authority that signed the server's (with the public roots and no host name check, any publicly trusted certificate would pass: use sslmode=verify-full for those)")]
    VerifyCaWithoutRootCertificate,
    /// `sslrootcert=system` with a mode that does not check the host name.
    #[error("sslrootcert=system trusts every public certificate authority, so it needs sslmode=verify-full (this URL has sslmode={mode}), as in libpq")]
    SystemRootsWithoutHostCheck {
        /// The mode given.
        mode: &'static str,
    },
    /// The `sslrootcert` file cannot be read.
    #[error("cannot read sslrootcert file {path}: {error}")]
    RootCertificateUnreadable {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The `sslrootcert` file holds no certificate, or a broken one.
    #[error("sslrootcert file {path} holds no usable PEM certificate: {problem}")]
    RootCertificateInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// libpq's `sslmode` values that crm-router accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, PostgresUrlError> {
        match value.to_ascii_lowercase().as_str() {
            "disable" => Ok(Self::Disable),
            "allow" => Err(PostgresUrlError::AllowUnsupported),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(PostgresUrlError::UnknownSslMode(value.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// What `sslrootcert` names.
enum RootCertificates {
    /// Nothing: the public roots, where a mode verifies.
    Unset,
    /// `system`: the public roots, and only with `verify-full`.
    System,
    /// A PEM file, read at start.
    File { pem: Vec<u8> },
}

/// sqlx's options for `url`, with `sslmode` and `sslrootcert` (from the URL, else libpq's
/// `PGSSLMODE` and `PGSSLROOTCERT`) meaning what they mean to libpq:
///
/// - `disable`: plaintext. `prefer` (the default): TLS when the server offers it, not
///   verified; plaintext otherwise.
/// - `require`: TLS or no connection, not verified; with an `sslrootcert` file, the
///   certificate must be signed by an authority in it, as with `verify-ca`.
/// - `verify-ca`: signed by an authority in the `sslrootcert` file, which it needs.
/// - `verify-full`: also issued for the host of the URL; signed by an authority in the
///   `sslrootcert` file, or with none (or `system`) by a publicly trusted one.
///
/// The `sslrootcert` file is read here, so a missing or broken one is refused by name
/// before any connection.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, PostgresUrlError> {
    let (mode, root_certificate) = ssl_settings(url);
    // Ours first: sqlx refuses an unknown `sslmode` with less to go on.
    let mode = mode.as_deref().map(SslMode::parse).transpose()?;
    let roots = match root_certificate.as_deref() {
        None => RootCertificates::Unset,
        Some("system") => RootCertificates::System,
        Some(path) => RootCertificates::File {
            pem: read_root_certificates(Path::new(path))?,
        },
    };
    let mode = match mode {
        Some(mode) => mode,
        // libpq: "the default sslmode is changed to verify-full" with the system's roots.
        None if matches!(roots, RootCertificates::System) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if matches!(roots, RootCertificates::System) && mode != SslMode::VerifyFull {
        return Err(PostgresUrlError::SystemRootsWithoutHostCheck { mode: mode.name() });
    }
    let sqlx_mode = match (mode, &roots) {
        (SslMode::Disable, _) => PgSslMode::Disable,
        // libpq verifies here when it finds a root certificate, and falls back to plaintext
        // when that fails, which protects nothing more than not verifying.
        (SslMode::Prefer, _) => PgSslMode::Prefer,
        (SslMode::Require, RootCertificates::File { .. }) => PgSslMode::VerifyCa,
        (SslMode::Require, _) => PgSslMode::Require,
        (SslMode::VerifyCa, RootCertificates::File { .. }) => PgSslMode::VerifyCa,
        (SslMode::VerifyCa, _) => return Err(PostgresUrlError::VerifyCaWithoutRootCertificate),
        (SslMode::VerifyFull, _) => PgSslMode::VerifyFull,
    };
    let options = PgConnectOptions::from_str(url)
        .map_err(PostgresUrlError::Unparseable)?
        .ssl_mode(sqlx_mode);
    Ok(match roots {
        RootCertificates::File { pem } => options.ssl_root_cert_from_pem(pem),
        // sqlx took `system` for a file name, and an empty PGSSLROOTCERT for the empty one:
        // no certificate of its own leaves it the public roots.
        RootCertificates::System | RootCertificates::Unset => {
            options.ssl_root_cert_from_pem(Vec::new())
        }
    })
}

/// `sslmode` and `sslrootcert` as sqlx reads them: the URL's query (under libpq's names or
/// sqlx's aliases) first, then libpq's environment variables.
fn ssl_settings(url: &str) -> (Option<String>, Option<String>) {
    let mut mode = None;
    let mut root_certificate = None;
    if let Ok(parsed) = url::Url::parse(url) {
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" | "ssl-mode" => mode = Some(value.into_owned()),
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                    root_certificate = Some(value.into_owned())
                }
                _ => {}
            }
        }
    }
    let from_environment = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
    (
        mode.or_else(|| from_environment("PGSSLMODE")),
        root_certificate.or_else(|| from_environment("PGSSLROOTCERT")),
    )
}

/// The certificates of `path`, checked to be PEM certificates, at least one.
fn read_root_certificates(path: &Path) -> Result<Vec<u8>, PostgresUrlError> {
    let pem = std::fs::read(path).map_err(|error| PostgresUrlError::RootCertificateUnreadable {
        path: path.to_owned(),
        error,
    })?;
    let invalid = |problem: String| PostgresUrlError::RootCertificateInvalid {
        path: path.to_owned(),
        problem,
    };
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|error| invalid(error.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(invalid(
            "no -----BEGIN CERTIFICATE----- block in it".to_owned(),
        ));
    }
    Ok(pem)
}

/// What to do about a connection refused because the server's certificate did not verify,
/// to follow the driver's message; empty for any other failure.
pub fn hint(error: &sqlx::Error) -> &'static str {
    use rustls::CertificateError;
    let sqlx::Error::Io(io) = error else {
        return "";
    };
    let Some(rustls::Error::InvalidCertificate(problem)) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return "";
    };
    match problem {
        CertificateError::UnknownIssuer => {
            " (the server's certificate is not signed by an authority in the sslrootcert file, \
             or without one by a publicly trusted authority: set sslrootcert to the CA \
             certificate your provider publishes)"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            " (sslmode=verify-full and verify-ca accept only a certificate issued for the host \
             of the URL: connect by a name the certificate lists)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(url: &str) -> Result<PgSslMode, PostgresUrlError> {
        connect_options(url).map(|options| options.get_ssl_mode())
    }

    #[test]
    fn modes_mean_what_they_mean_to_libpq() {
        let base = "postgres://u@db.example.com/crm";
        assert!(matches!(
            mode_of(&format!("{base}?sslmode=disable")),
            Ok(PgSslMode::Disable)
        ));
        assert!(matches!(
            mode_of(&format!("{base}?sslmode=require")),
            Ok(PgSslMode::Require)
        ));
        assert!(matches!(
            mode_of(&format!("{base}?sslmode=verify-full")),
            Ok(PgSslMode::VerifyFull)
        ));
        assert!(matches!(
            mode_of(&format!("{base}?sslrootcert=system")),
            Ok(PgSslMode::VerifyFull)
        ));
        assert!(matches!(
            mode_of(&format!("{base}?sslmode=verify-ca")),
            Err(PostgresUrlError::VerifyCaWithoutRootCertificate)
        ));
        assert!(matches!(
            mode_of(&format!("{base}?sslmode=require&sslrootcert=system")),
            Err(PostgresUrlError::SystemRootsWithoutHostCheck { mode: "require" })
        ));
        assert!(matches!(
            mode_of(&format!("{base}?sslmode=allow")),
            Err(PostgresUrlError::AllowUnsupported)
        ));
        let unknown = mode_of(&format!("{base}?sslmode=requre")).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "sslmode=\"requre\" is not one of disable, prefer, require, verify-ca, verify-full"
        );
    }

    #[test]
    fn a_root_certificate_file_is_read_at_start_and_makes_require_verify() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing.crt");
        let error = connect_options(&format!(
            "postgres://u@h/db?sslmode=require&sslrootcert={}",
            missing.display()
        ))
        .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "cannot read sslrootcert file {}:",
                missing.display()
            )),
            "{error}"
        );

        let not_pem = directory.path().join("key.txt");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let error = connect_options(&format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={}",
            not_pem.display()
        ))
        .unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "sslrootcert file {} holds no usable PEM certificate",
                not_pem.display()
            )),
            "{error}"
        );

        let authority = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let root = directory.path().join("root.crt");
        std::fs::write(&root, authority.cert.pem()).unwrap();
        let with_root = format!("postgres://u@h/db?sslrootcert={}", root.display());
        assert!(matches!(
            mode_of(&format!("{with_root}&sslmode=require")),
            Ok(PgSslMode::VerifyCa)
        ));
        assert!(matches!(
            mode_of(&format!("{with_root}&sslmode=verify-ca")),
            Ok(PgSslMode::VerifyCa)
        ));
        assert!(matches!(mode_of(&with_root), Ok(PgSslMode::Prefer)));
    }
}
