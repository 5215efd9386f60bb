//! Forged and broken bearer tokens, built by hand: header and claims are base64url JSON, so a
//! test can write any `alg` and any claims, and sign them (or not) with any key.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

/// base64url without padding, as JWTs use it.
pub(super) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut encoded = String::new();
    for chunk in bytes.chunks(3) {
        let bits = chunk.iter().enumerate().fold(0u32, |bits, (index, byte)| {
            bits | u32::from(*byte) << (16 - 8 * index)
        });
        // n bytes carry n + 1 six-bit digits.
        for digit in 0..=chunk.len() {
            encoded.push(char::from(
                ALPHABET[(bits >> (18 - 6 * digit) & 63) as usize],
            ));
        }
    }
    encoded
}

/// `header.claims.` with an empty signature.
pub(super) fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// `header.claims.signature`, the signature made with `algorithm` and `secret` whatever the
/// header claims the algorithm is.
pub(super) fn signed(
    header: &Value,
    claims: &Value,
    secret: &[u8],
    algorithm: Algorithm,
) -> String {
    let input = signing_input(header, claims);
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret),
        algorithm,
    )
    .expect("HMAC signing cannot fail");
    format!("{input}.{signature}")
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    )
}

/// The header our tokens carry.
pub(super) fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// Claims like the daemon's own, valid for an hour from now.
pub(super) fn claims(user_id: &str, email: &str, role: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": user_id, "email": email, "role": role, "iat": now, "exp": now + 3600})
}

#[test]
fn base64url_matches_the_jwt_headers_everyone_knows() {
    assert_eq!(
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"
    );
    assert_eq!(base64url(b"a"), "YQ");
    assert_eq!(base64url(b"ab"), "YWI");
    assert_eq!(base64url(b"abc"), "YWJj");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}
