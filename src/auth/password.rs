//! Argon2id password hashes in PHC string format, and the bcrypt hashes of users imported from
//! the original CRM, which verify until their first login replaces them ([`is_outdated`]).
//!
//! Hashing is deliberately slow (tens of milliseconds) and takes about 19 MiB; callers run it
//! through [`super::hashing`]. The working memory is kept per thread and reused
//! ([`with_blocks`]): letting the argon2 crate allocate it for every hash left each freed
//! block with the allocator, and 60 hashes on two threads held 322 MiB (49 MiB reused).

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::AuthError;

/// The largest working memory a stored hash may ask for (64 MiB); a hash asking for more is
/// treated as not matching rather than allocated.
const MAX_BLOCKS: usize = 64 * 1024;
/// The most passes a stored hash may ask for (the recommended parameters use 2).
const MAX_PASSES: u32 = 16;
/// The most lanes a stored hash may ask for (the recommended parameters use 1).
const MAX_LANES: u32 = 16;

thread_local! {
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` on this thread's Argon2 working memory of `count` blocks.
fn with_blocks<T>(count: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        work(&mut blocks[..count])
    })
}

/// The raw Argon2 output for `password` and `salt`, as the argon2 crate's `PasswordHasher`
/// computes it, but in this thread's working memory.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: Salt<'_>,
) -> argon2::password_hash::Result<Output> {
    let mut salt_buffer = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    with_blocks(params.block_count(), |blocks| {
        Output::init_with(output_len, |out| {
            Ok(argon.hash_password_into_with_memory(password, salt, out, &mut *blocks)?)
        })
    })
}

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted: hashing cost grows with length, and no one types more.
pub const MAX_LENGTH: usize = 256;

/// Hashes `password` with Argon2id and a random salt (the crate's recommended parameters).
pub fn hash(password: &str) -> Result<String, AuthError> {
    let failed = |error: argon2::password_hash::Error| AuthError::Hash(error.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = compute(&argon, &params, password.as_bytes(), salt.as_salt()).map_err(failed)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// The highest bcrypt cost a stored hash may ask for (2^14 rounds, about a second); the
/// original CRM used 10.
const MAX_BCRYPT_COST: u32 = 14;

/// Whether `stored` is a bcrypt hash (`$2a$`, `$2b$`, `$2y$`), as the original CRM stored.
fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Whether `stored` should be replaced by an Argon2id hash once its password is known: a bcrypt
/// hash of an imported user.
pub fn is_outdated(stored: &str) -> bool {
    is_bcrypt(stored)
}

/// Whether `password` matches `stored`, an Argon2 or a bcrypt hash. A malformed stored hash,
/// or one asking for more than 64 MiB of working memory or a bcrypt cost above 14, never
/// matches. bcrypt reads the first 72 bytes of a password only, as the original CRM's bcryptjs
/// did, so imported users log in with exactly the passwords they had.
pub fn verify(password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        let cost = stored
            .parse::<bcrypt::HashParts>()
            .map(|parts| parts.get_cost());
        return cost.is_ok_and(|cost| cost <= MAX_BCRYPT_COST)
            && bcrypt::verify(password, stored).unwrap_or(false);
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    // A stored hash may not make a login take minutes or gigabytes.
    if params.block_count() > MAX_BLOCKS
        || params.t_cost() > MAX_PASSES
        || params.p_cost() > MAX_LANES
    {
        return false;
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    // `Output`'s equality is constant-time.
    compute(&argon, &params, password.as_bytes(), salt).is_ok_and(|output| output == expected)
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

    #[test]
    fn bcrypt_hashes_of_the_original_crm_verify_and_are_outdated() {
        // As bcryptjs stores them ($2a$ and $2b$ differ in name only for these passwords).
        let stored = bcrypt::hash("password123", 4).unwrap();
        let bcryptjs_style = stored.replacen("$2b$", "$2a$", 1);
        for stored in [&stored, &bcryptjs_style] {
            assert!(verify("password123", stored), "{stored}");
            assert!(!verify("password124", stored));
            assert!(is_outdated(stored));
        }
        assert!(!is_outdated(&hash("password123").unwrap()));
        // Refused before any work: the cost is read from the hash.
        let too_costly = stored.replacen("$04$", "$15$", 1);
        assert!(!verify("password123", &too_costly));
        assert!(!verify("password123", "$2b$10$not-a-hash"));
    }

    #[test]
    fn hashes_stored_by_the_argon2_crate_itself_still_verify() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::generate(&mut OsRng);
        let stored = Argon2::default()
            .hash_password(b"Password123!", &salt)
            .unwrap()
            .to_string();
        assert!(verify("Password123!", &stored));
        assert!(!verify("Password124!", &stored));
        let ours = hash("Password123!").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"Password123!", &parsed)
            .is_ok());
        let greedy = stored.replace("m=19456", "m=4194304");
        assert!(!verify("Password123!", &greedy));
        let slow = stored.replace("t=2", "t=100000");
        assert!(!verify("Password123!", &slow));
    }
}
