//! Argon2id password hashes in PHC string format.
//!
//! Hashing is deliberately slow (tens of milliseconds); callers run it on a blocking thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::AuthError;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted: hashing cost grows with length, and no one types more.
pub const MAX_LENGTH: usize = 256;

/// Hashes `password` with Argon2id and a random salt (the crate's recommended parameters).
pub fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| AuthError::Hash(error.to_string()))
}

/// Whether `password` matches `stored`. A malformed stored hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of nothing anyone knows, verified against when the email is unknown, so a login for
/// an unknown email takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&uuid::Uuid::new_v4().to_string()).expect("hashing a uuid works"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let first = hash("Password123!").unwrap();
        let second = hash("Password123!").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "salted");
        assert!(verify("Password123!", &first));
        assert!(!verify("Password123", &first));
        assert!(!verify("Password123!", "not a hash"));
        assert!(!verify("anything", decoy_hash()));
    }
}
