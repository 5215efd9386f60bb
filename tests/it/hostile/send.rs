//! Sending the table's requests, byte for byte as written, and reading the answers.

use serde_json::Value;

use super::{Auth, Body, Request};

/// An answer: status, content type and body (as text, and as JSON or `Null`).
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) text: String,
    pub(super) body: Value,
}

impl Answer {
    /// The first 300 characters of the body, for failure messages.
    pub(super) fn excerpt(&self) -> String {
        let excerpt: String = self.text.chars().take(300).collect();
        if excerpt.len() < self.text.len() {
            format!("{excerpt}…")
        } else {
            excerpt
        }
    }
}

/// The header lines of a request: its credentials and its content type.
fn header_lines(request: &Request) -> Vec<(&'static str, Vec<u8>)> {
    let mut lines = match &request.auth {
        Auth::Anonymous => Vec::new(),
        Auth::Bearer(token) => vec![("authorization", format!("Bearer {token}").into_bytes())],
        Auth::ApiKey(key) => vec![("x-api-key", key.clone().into_bytes())],
        Auth::Headers(lines) => lines.clone(),
    };
    match &request.body {
        Body::Empty | Body::Raw(None, _) => {}
        Body::Json(_) => lines.push(("content-type", b"application/json".to_vec())),
        Body::Raw(Some(content_type), _) => {
            lines.push(("content-type", content_type.as_bytes().to_vec()))
        }
    }
    lines
}

fn body_bytes(request: &Request) -> Option<Vec<u8>> {
    match &request.body {
        Body::Empty => None,
        Body::Json(value) => Some(serde_json::to_vec(value).unwrap()),
        Body::Raw(_, bytes) => Some(bytes.clone()),
    }
}

/// Sends a request. A transport failure is an answer with status 0, so it is reported with the
/// other mismatches instead of stopping the table.
pub(super) async fn send(http: &reqwest::Client, base: &str, request: &Request) -> Answer {
    let body = body_bytes(request);
    if body
        .as_ref()
        .is_some_and(|body| body.len() > crm_router::api::BODY_LIMIT)
    {
        return send_while_reading(base, request, body.unwrap_or_default()).await;
    }
    let mut builder = http.request(request.method.clone(), format!("{base}{}", request.path));
    for (name, value) in header_lines(request) {
        let value = reqwest::header::HeaderValue::from_bytes(&value)
            .expect("a header value without CR, LF or NUL");
        builder = builder.header(name, value);
    }
    if let Some(body) = body {
        builder = builder.body(body);
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(error) => return failed(error),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        text,
        body,
    }
}

fn failed(error: impl std::fmt::Display) -> Answer {
    Answer {
        status: 0,
        content_type: String::new(),
        text: format!("request failed: {error}"),
        body: Value::Null,
    }
}

/// Sends a request with a body over the limit on a socket of its own, reading the answer while
/// the body is still being written. The daemon answers 413 and closes once it has read 1 MiB;
/// reqwest can then fail on the broken write and drop the answer, where curl (and this) reads
/// it.
async fn send_while_reading(base: &str, request: &Request, body: Vec<u8>) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = match tokio::net::TcpStream::connect(address).await {
        Ok(stream) => stream,
        Err(error) => return failed(error),
    };
    // Borrowed halves: an owned write half would half-close the socket when the body is
    // written, and hyper drops a connection its client half-closed, answer and all.
    let (mut reader, mut writer) = stream.split();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method,
        request.path,
        body.len()
    )
    .into_bytes();
    for (name, value) in header_lines(request) {
        head.extend_from_slice(format!("{name}: ").as_bytes());
        head.extend_from_slice(&value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let writing = async {
        // Fails once the daemon has answered and closed: expected.
        let _ = writer.write_all(&head).await;
        let _ = writer.write_all(&body).await;
    };
    let reading = async {
        let mut response = Vec::new();
        // A reset after the answer is expected too; what was read is kept.
        let _ = reader.read_to_end(&mut response).await;
        response
    };
    let ((), response) = tokio::join!(writing, reading);
    let response = String::from_utf8_lossy(&response).into_owned();
    let Some((head, text)) = response.split_once("\r\n\r\n") else {
        return failed(format!("no HTTP answer: {response:?}"));
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        text: text.to_owned(),
        body: serde_json::from_str(text).unwrap_or(Value::Null),
    }
}
