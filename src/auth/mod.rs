//! Who a caller is: password hashing, signed tokens, the signing secret, and login and sign-up
//! throttling.
//!
//! Nothing here knows HTTP: `api` turns headers into a [`token::Claims`] through
//! [`token::TokenKeys`] and maps [`AuthError`] to status codes.

pub mod hashing;
pub mod login_limit;
pub mod password;
pub mod role;
pub mod secret;
pub mod signup_limit;
pub mod token;

pub use login_limit::LoginLimiter;
pub use role::Role;
pub use signup_limit::SignupLimiter;
pub use token::{Claims, TokenKeys};

use thiserror::Error;

/// Why authentication failed.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The token is missing parts, badly signed, or expired.
    #[error("invalid or expired token: {0}")]
    InvalidToken(String),
    /// `JWT_SECRET` is set but too weak to sign with.
    #[error("JWT_SECRET must be at least {min} bytes long (it has {actual}); generate one with `openssl rand -hex 32`")]
    WeakSecret {
        /// Required length.
        min: usize,
        /// Given length.
        actual: usize,
    },
    /// Reading or storing the generated secret failed.
    #[error("cannot read or store the token signing secret: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Hashing failed (bad parameters; not a user error).
    #[error("password hashing failed: {0}")]
    Hash(String),
}
