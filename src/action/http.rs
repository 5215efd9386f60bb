//! `http:` call an endpoint. At-least-once: a retried event calls again, so every request
//! carries an `Idempotency-Key` derived from event id, route and action position, the same on
//! every attempt, for the receiver to deduplicate.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::json;

use super::trace::shown_header;
use super::{ActionError, HttpMode, HttpTrace, Rendered, Run, Scope};
use crate::route::compile::Compiler;
use crate::route::model::HttpDef;
use crate::template::ValueTemplate;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest timeout a route may set: the call runs inside the event's transaction.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// Response bodies beyond this are cut before they reach `steps`.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A client for `http` actions. Each long-lived runner (the consumer, the scheduler) keeps one,
/// so connections to a route's endpoint are reused across events.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("crm-router/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

/// A compiled HTTP call.
#[derive(Debug, Clone)]
pub struct Http {
    /// HTTP method.
    pub method: Method,
    url: ValueTemplate,
    headers: Vec<(HeaderName, ValueTemplate)>,
    body: Option<ValueTemplate>,
    timeout: Duration,
    success: Option<Vec<u16>>,
    as_name: Option<String>,
}

pub(super) fn compile(compiler: &mut Compiler<'_>, path: &str, def: &HttpDef) -> Option<Http> {
    let method_text = def.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
    let method = match Method::from_bytes(method_text.as_bytes()) {
        Ok(method) => Some(method),
        Err(_) => {
            compiler.error(
                &format!("{path}.method"),
                format!("invalid HTTP method {method_text:?}"),
                None,
            );
            None
        }
    };
    let url = compiler.text(&format!("{path}.url"), &def.url);
    let mut headers = Vec::new();
    for (name, value) in &def.headers {
        let header_path = format!("{path}.headers.{name}");
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(header) => {
                if let Some(template) = compiler.text(&header_path, value) {
                    headers.push((header, template));
                }
            }
            Err(_) => compiler.error(&header_path, format!("invalid header name {name:?}"), None),
        }
    }
    let body = match &def.body {
        Some(body) => Some(compiler.value(&format!("{path}.body"), body)?),
        None => None,
    };
    if let Some(codes) = &def.success {
        if codes.iter().any(|code| !(100..=599).contains(code)) {
            compiler.error(
                &format!("{path}.success"),
                "status codes must be between 100 and 599",
                None,
            );
        }
    }
    if let Some(timeout) = def.timeout {
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            compiler.error(
                &format!("{path}.timeout"),
                format!("timeout must be more than 0 and at most {MAX_TIMEOUT:?}"),
                Some(
                    "the call runs inside the event's transaction, which holds up the stream; \
                     hand slow work to a queue instead"
                        .into(),
                ),
            );
        }
    }
    let as_name = match &def.as_name {
        Some(name) => Some(compiler.step_name(&format!("{path}.as"), name)?),
        None => None,
    };
    Some(Http {
        method: method?,
        url: url?,
        headers,
        body,
        timeout: def.timeout.unwrap_or(DEFAULT_TIMEOUT),
        success: def.success.clone(),
        as_name,
    })
}

/// The idempotency key of one action of one route for one event: stable across retries.
pub fn idempotency_key(event_id: &str, route: &str, step_path: &str) -> String {
    let name = format!("{event_id}/{route}/{step_path}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

impl Http {
    /// Every template of the call: URL, header values and body.
    pub fn templates(&self) -> impl Iterator<Item = &ValueTemplate> {
        std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, value)| value))
            .chain(self.body.as_ref())
    }

    pub(super) async fn execute(
        &self,
        run: &mut Run<'_, '_>,
        scope: &mut Scope,
        step_path: &str,
    ) -> Result<(), ActionError> {
        let context = scope.context();
        let url = run.templates.render_string(&self.url, &context)?;
        let parsed = reqwest::Url::parse(&url).map_err(|error| {
            ActionError::InvalidValue(format!("http url {url:?} is not a URL: {error}"))
        })?;
        let shown_url = format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.path()
        );
        let failure = |message: String, retryable: bool| ActionError::Http {
            method: self.method.to_string(),
            url: shown_url.clone(),
            message,
            retryable,
            retry_after: None,
        };
        let idempotency =
            idempotency_key(&run.event.envelope.event_id, run.route.as_str(), step_path);
        // Only a simulation builds this record.
        let mut traced = run.trace.is_some().then(|| HttpTrace {
            method: self.method.to_string(),
            url: url.clone(),
            headers: [("Idempotency-Key".to_owned(), idempotency.clone().into())]
                .into_iter()
                .collect(),
            body: None,
            sent: matches!(run.http, HttpMode::Send(_)),
            response: serde_json::Value::Null,
            as_name: self.as_name.clone(),
        });
        // `None` in a dry run: everything is rendered and checked the same, and nothing sent.
        let mut request = match run.http {
            HttpMode::Send(client) => Some(
                client
                    .request(self.method.clone(), parsed.clone())
                    .timeout(self.timeout)
                    .header("Idempotency-Key", idempotency),
            ),
            HttpMode::DryRun | HttpMode::Respond(_) => None,
        };
        for (name, value) in &self.headers {
            let value = run.templates.render_string(value, &context)?;
            let header = HeaderValue::from_str(&value).map_err(|_| {
                ActionError::InvalidValue(format!("header {name} rendered an invalid value"))
            })?;
            if let Some(traced) = &mut traced {
                traced
                    .headers
                    .insert(name.to_string(), shown_header(name, &value));
            }
            request = request.map(|request| request.header(name.clone(), header));
        }
        let body = match &self.body {
            Some(body) => Some(run.templates.render(body, &context)?),
            None => None,
        };
        if let (Some(mut traced), Some(trace)) = (traced, run.trace.as_deref_mut()) {
            traced.body.clone_from(&body);
            trace.rendered(Rendered::Http(traced));
        }
        if let HttpMode::Respond(responder) = run.http {
            let (status, body) = responder
                .respond(self.method.as_str(), &url)
                .map_err(|message| failure(message, false))?;
            let succeeded = match &self.success {
                Some(codes) => codes.contains(&status),
                None => (200..300).contains(&status),
            };
            if !succeeded {
                let retryable = status >= 500 || status == 429 || status == 408;
                return Err(failure(format!("status {status}: {body}"), retryable));
            }
            let answer = json!({"status": status, "body": body});
            if let Some(name) = &self.as_name {
                scope.set_step(name, &answer);
            }
            if let Some(trace) = run.trace.as_deref_mut() {
                trace.answered(answer);
            }
            return Ok(());
        }
        let Some(mut request) = request else {
            if let Some(name) = &self.as_name {
                scope.set_step(name, &serde_json::Value::Null);
            }
            return Ok(());
        };
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            let message = if error.is_timeout() {
                format!("timed out after {:?}", self.timeout)
            } else {
                format!("request failed: {error}")
            };
            failure(message, true)
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let succeeded = match &self.success {
            Some(codes) => codes.contains(&status.as_u16()),
            None => status.is_success(),
        };
        // Read at most the limit, so a huge answer cannot fill memory.
        let mut response = response;
        let mut bytes = Vec::new();
        while bytes.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    return Err(failure(format!("reading response failed: {error}"), true))
                }
            }
        }
        let body_bytes = &bytes[..bytes.len().min(MAX_RESPONSE_BYTES)];
        if !succeeded {
            let retryable =
                status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
            let snippet: String = String::from_utf8_lossy(body_bytes)
                .chars()
                .take(200)
                .collect();
            let mut error = failure(format!("status {status}: {snippet}"), retryable);
            if let ActionError::Http {
                retry_after: asked, ..
            } = &mut error
            {
                *asked = retry_after.filter(|_| retryable);
            }
            return Err(error);
        }
        if self.as_name.is_none() && run.trace.is_none() {
            return Ok(());
        }
        let body = serde_json::from_slice::<serde_json::Value>(body_bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(body_bytes).into_owned())
        });
        let answer = json!({"status": status.as_u16(), "body": body});
        if let Some(name) = &self.as_name {
            scope.set_step(name, &answer);
        }
        if let Some(trace) = run.trace.as_deref_mut() {
            trace.answered(answer);
        }
        Ok(())
    }
}

/// The longest `Retry-After` honoured; a server asking for more gets this much.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "999999".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let a = idempotency_key("e1", "notify", "0");
        assert_eq!(a, idempotency_key("e1", "notify", "0"));
        assert_ne!(a, idempotency_key("e1", "notify", "1"));
        assert_ne!(a, idempotency_key("e2", "notify", "0"));
    }
}
