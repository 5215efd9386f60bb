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

/// The highest bcrypt cost a stored hash may ask for (2^12 rounds, a quarter of a second): the
/// original CRM used 10, and a higher cost would let a few login attempts hold the hashing
/// threads.
const MAX_BCRYPT_COST: u32 = 12;

/// Why a stored hash can never verify a password here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredHashProblem {
    /// Neither of the two formats.
    #[error("is neither a bcrypt ($2a$, $2b$, $2y$) nor an Argon2 (PHC) hash")]
    UnknownFormat,
    /// Looks like one of them, but does not parse.
    #[error("is a malformed {0} hash")]
    Malformed(&'static str),
    /// A bcrypt cost above [`MAX_BCRYPT_COST`].
    #[error("has bcrypt cost {0}, above the {MAX_BCRYPT_COST} a login may spend")]
    BcryptCost(u32),
    /// Argon2 parameters above the limits.
    #[error("asks Argon2 for more than 64 MiB, 16 passes or 16 lanes")]
    Argon2Cost,
}

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

/// An Argon2 hash's parts, within the limits a login may spend.
struct Argon2Hash<'a> {
    argon: Argon2<'a>,
    params: Params,
    salt: Salt<'a>,
    expected: Output,
}

fn parse_argon2(stored: &str) -> Result<Argon2Hash<'_>, StoredHashProblem> {
    fn malformed<E>(_: E) -> StoredHashProblem {
        StoredHashProblem::Malformed("Argon2")
    }
    let parsed = PasswordHash::new(stored).map_err(|_| StoredHashProblem::UnknownFormat)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(StoredHashProblem::Malformed("Argon2"));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(malformed)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(malformed)?;
    // A stored hash may not make a login take minutes or gigabytes.
    if params.block_count() > MAX_BLOCKS
        || params.t_cost() > MAX_PASSES
        || params.p_cost() > MAX_LANES
    {
        return Err(StoredHashProblem::Argon2Cost);
    }
    Ok(Argon2Hash {
        argon: Argon2::new(algorithm, version, params.clone()),
        params,
        salt,
        expected,
    })
}

/// Checks that `stored` can verify a password here (what an import checks before it stores a
/// hash, so that no imported user is locked out unseen).
pub fn check_stored(stored: &str) -> Result<(), StoredHashProblem> {
    if is_bcrypt(stored) {
        let parts = stored
            .parse::<bcrypt::HashParts>()
            .map_err(|_| StoredHashProblem::Malformed("bcrypt"))?;
        if parts.get_cost() > MAX_BCRYPT_COST {
            return Err(StoredHashProblem::BcryptCost(parts.get_cost()));
        }
        return Ok(());
    }
    parse_argon2(stored).map(|_| ())
}

/// Whether `password` matches `stored`, an Argon2 or a bcrypt hash. A hash that
/// [`check_stored`] refuses never matches. bcrypt reads the first 72 bytes of a password only,
/// as the original CRM's bcryptjs did, so imported users log in with exactly the passwords
/// they had.
pub fn verify(password: &str, stored: &str) -> bool {
    if check_stored(stored).is_err() {
        return false;
    }
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    let Ok(hash) = parse_argon2(stored) else {
        return false;
    };
    // `Output`'s equality is constant-time.
    compute(&hash.argon, &hash.params, password.as_bytes(), hash.salt)
        .is_ok_and(|output| output == hash.expected)
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
        let too_costly = stored.replacen("$04$", "$13$", 1);
        assert!(!verify("password123", &too_costly));
        assert_eq!(
            check_stored(&too_costly),
            Err(StoredHashProblem::BcryptCost(13))
        );
        assert_eq!(check_stored(&stored), Ok(()));
        assert_eq!(check_stored("plain"), Err(StoredHashProblem::UnknownFormat));
        assert_eq!(
            check_stored("$2b$10$short"),
            Err(StoredHashProblem::Malformed("bcrypt"))
        );
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
