//! Bearer tokens: JWT, HS256, valid for 24 hours.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Role};

/// How long a token is valid.
pub const TOKEN_LIFETIME_SECONDS: i64 = 24 * 60 * 60;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Email at issue time.
    pub email: String,
    /// Role at issue time.
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// The user's session generation at issue time: a logout moves the user's on, ending every
    /// token issued before it. Tokens from before logouts existed carry none, which reads as 0,
    /// every user's first generation.
    #[serde(rename = "gen", default)]
    pub generation: i64,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys for `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for the user, valid for [`TOKEN_LIFETIME_SECONDS`] from `now` (Unix seconds).
    pub fn issue(
        &self,
        user_id: &str,
        email: &str,
        role: Role,
        generation: i64,
        now: i64,
    ) -> String {
        let claims = Claims {
            sub: user_id.to_owned(),
            email: email.to_owned(),
            role,
            iat: now,
            exp: now + TOKEN_LIFETIME_SECONDS,
            generation,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The claims of a valid, unexpired token signed with our secret.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    // Also the first encode and decode of the process: without a jsonwebtoken crypto backend
    // feature, `issue` panics here.
    #[test]
    fn tokens_round_trip_and_expire() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue("u1", "a@example.com", Role::Manager, 0, now());
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("u1", Role::Manager));
        assert_eq!(claims.exp - claims.iat, TOKEN_LIFETIME_SECONDS);

        let expired = keys.issue(
            "u1",
            "a@example.com",
            Role::User,
            0,
            now() - 2 * TOKEN_LIFETIME_SECONDS,
        );
        assert!(keys.verify(&expired).is_err());

        let other = TokenKeys::new(b"another secret of thirty-two by.");
        assert!(other.verify(&token).is_err(), "signed with another secret");
        assert!(keys.verify("not.a.token").is_err());
    }

    #[test]
    fn a_token_carries_its_session_generation_and_older_ones_read_as_the_first() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue("u1", "a@example.com", Role::User, 3, now());
        assert_eq!(keys.verify(&token).unwrap().generation, 3);
        // A token issued before generations existed: the same claims without `gen`.
        let old = serde_json::json!({
            "sub": "u1", "email": "a@example.com", "role": "USER",
            "iat": now(), "exp": now() + 60,
        });
        let old = encode(&Header::new(Algorithm::HS256), &old, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&old).unwrap().generation, 0);
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.issue("u1", "a@example.com", Role::Admin, 0, now());
        let mut parts = token.split('.');
        let (_, payload) = (parts.next().unwrap(), parts.next().unwrap());
        // {"alg":"none","typ":"JWT"}
        let forged = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(keys.verify(&forged).is_err());
    }
}
