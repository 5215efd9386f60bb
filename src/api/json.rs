//! A JSON body extractor whose rejections use our error format.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use super::BODY_LIMIT;

/// Like `axum::Json`, but malformed bodies produce [`ApiError`]s, and text holding the NUL
/// character is refused: PostgreSQL cannot store it, and SQLite must answer the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// The message for text holding U+0000, wherever it was sent.
pub const NUL_REFUSED: &str =
    "text must not contain the NUL character (\\u0000); the database cannot store it";

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(not_json());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(unreadable)?;
        parse(&bytes).map(Self)
    }
}

/// The 415 for a body that does not say it is JSON.
pub fn not_json() -> ApiError {
    ApiError::UnsupportedMediaType(
        "send the body as JSON with `Content-Type: application/json`".into(),
    )
}

/// The answer to a body that could not be read: over [`BODY_LIMIT`] (413), or broken off.
pub fn unreadable(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit: BODY_LIMIT }
    } else {
        ApiError::bad_request(rejection.body_text())
    }
}

/// Reads a JSON body by the rules of [`ApiJson`], for handlers that take the bytes themselves
/// (an optional body): NUL is refused, so is an array, and every failure is in our error format.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_nul_escape(bytes) {
        return Err(ApiError::bad_request(NUL_REFUSED));
    }
    // serde also builds a struct from an array of its fields in order (`["Acme", null, …]`).
    // Our bodies are objects with named fields; that second, undocumented shape is refused.
    let first = bytes
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'[') {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object, not an array",
        ));
    }
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => Err(reject(rejection)),
    }
}

/// `application/json` or any `application/*+json`, as `axum::Json` accepts.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether a JSON text holds a string with U+0000. Raw control characters are invalid JSON, so
/// NUL can only arrive as the escape `\u0000`; it is one when the backslash before `u` is not
/// itself escaped (an odd run of backslashes).
fn has_nul_escape(json: &[u8]) -> bool {
    json.windows(5)
        .enumerate()
        .filter(|(_, window)| window == b"u0000")
        .any(|(at, _)| {
            let backslashes = json[..at]
                .iter()
                .rev()
                .take_while(|byte| **byte == b'\\')
                .count();
            backslashes % 2 == 1
        })
}

fn reject(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ),
        JsonRejection::JsonDataError(error) => {
            // serde's message names the field path; keep it, drop axum's prefix.
            let detail = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| error.body_text());
            let (field, message) = match detail.split_once(": ") {
                Some((field, message)) if !field.contains(' ') => {
                    (field.to_owned(), message.to_owned())
                }
                _ => (String::new(), detail.clone()),
            };
            ApiError::BadRequest {
                message: format!("invalid request body: {detail}"),
                fields: if field.is_empty() {
                    Vec::new()
                } else {
                    vec![FieldError { field, message }]
                },
            }
        }
        JsonRejection::JsonSyntaxError(error) => {
            let detail = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| error.body_text());
            ApiError::bad_request(format!("malformed JSON: {detail}"))
        }
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit: BODY_LIMIT }
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_nul_escapes_count() {
        assert!(has_nul_escape(br#"{"name": "a\u0000b"}"#));
        assert!(has_nul_escape(br#"["\\\u0000"]"#));
        assert!(!has_nul_escape(br#"{"name": "a\\u0000b"}"#));
        assert!(!has_nul_escape(br#"{"name": "u0000"}"#));
        assert!(has_nul_escape(br#"{"name": "\u00000"}"#));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: Option<String>,
    }

    #[test]
    fn bodies_are_objects_never_positional_arrays() {
        let named: Named = parse(br#"{"name": "Acme"}"#).unwrap();
        assert_eq!(named.name.as_deref(), Some("Acme"));
        for array in [&br#"["Acme"]"#[..], b" \r\n\t[\"Acme\"]", b"[]"] {
            let error = parse::<Named>(array).unwrap_err();
            assert!(matches!(error, ApiError::BadRequest { .. }), "{error:?}");
            assert!(error.to_string().contains("not an array"), "{error}");
        }
        let scalar = parse::<Named>(b"42").unwrap_err();
        assert!(matches!(scalar, ApiError::BadRequest { .. }), "{scalar:?}");
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, expected) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/problem+json", true),
            ("text/json", false),
            ("text/plain", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_json(&headers), expected, "{value}");
        }
    }
}
