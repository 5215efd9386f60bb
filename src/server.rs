//! The HTTP server: accepts connections and serves the API's router on them, with the limits
//! that keep slow, idle or numerous clients from locking everyone else out.
//!
//! `axum::serve` has none of them: a socket that sent half a request line stayed open for
//! minutes, and with enough of those `accept` failed with "Too many open files" and normal
//! requests got no answer. Here:
//!
//! - A request's head must arrive within [`ServerLimits::request_head_timeout`] of the
//!   connection opening or of its previous response, so the same limit closes idle keep-alive
//!   connections (hyper starts the head timer as soon as it waits for a request).
//! - Its body must arrive within [`ServerLimits::request_body_timeout`] of the head, however
//!   it trickles in.
//! - At most [`connection_limit`] connections are open. One more is accepted only when one
//!   closes; while the server is full, it closes the oldest connection that has no request in
//!   flight to make room. Clients waiting to connect wait in the kernel's accept queue, never
//!   costing the daemon a file, so it cannot run out of files because of clients.
//!
//! Only HTTP/1.1 is spoken: hyper-util's protocol detection reads the HTTP/2 preface with no
//! timeout, and a reverse proxy in front of the daemon speaks HTTP/1.1 to it anyway.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Default for [`ServerLimits::request_head_timeout`].
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ServerLimits::request_body_timeout`].
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ServerLimits::max_connections`], lowered to what the open-files limit allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Files kept for everything but client connections: database connections and their files,
/// the route watcher, Kafka's sockets, outgoing HTTP calls, the runtime's own descriptors.
const RESERVED_FILES: u64 = 64;

/// While the server is full and the closed connection was busy after all, how long to wait
/// before closing the next one.
const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// How the server treats its clients. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest wait for a request's head (request line and headers), from the connection's
    /// start or its previous response; also how long an idle keep-alive connection stays.
    pub request_head_timeout: Duration,
    /// Longest time for a request's whole body to arrive, from its head.
    pub request_body_timeout: Duration,
    /// Most open client connections as configured; `None` for the default. Either is lowered
    /// to what the open-files limit allows ([`connection_limit`]).
    pub max_connections: Option<usize>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            request_head_timeout: DEFAULT_REQUEST_HEAD_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            max_connections: None,
        }
    }
}

/// The most client connections to hold open: the configured (or default) number, lowered so
/// that they, the one connection accepted while making room, and [`RESERVED_FILES`] fit in the
/// open-files limit. Raises the soft open-files limit to the hard one first, as Go's runtime
/// does, since the soft default (often 1024) is a leftover of `select(2)`.
pub fn connection_limit(configured: Option<usize>) -> usize {
    let files = open_files_limit();
    let budget = files.saturating_sub(RESERVED_FILES).max(files / 2);
    let budget = usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .saturating_sub(1)
        .max(1);
    let wanted = configured.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if wanted > budget && configured.is_some() {
        tracing::warn!(
            configured = wanted,
            open_files_limit = files,
            max_connections = budget,
            "http.max_connections is more than the open-files limit allows; raise the limit (ulimit -n, LimitNOFILE=) to allow more"
        );
    }
    wanted.min(budget)
}

#[cfg(unix)]
fn open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        // Unknown: assume the common default rather than nothing.
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

#[cfg(not(unix))]
fn open_files_limit() -> u64 {
    u64::MAX
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then stops accepting, closes
/// connections without a request in flight, and returns once the others have answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let max_connections = connection_limit(limits.max_connections);
    tracing::info!(
        max_connections,
        request_head_timeout = ?limits.request_head_timeout,
        request_body_timeout = ?limits.request_body_timeout,
        "HTTP limits"
    );
    let connections = Arc::new(Connections::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.request_head_timeout);
    let mut accept_warning = Warning::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_one_connections_fault(&error) => continue,
            Err(error) => {
                if is_out_of_files(&error) {
                    // Something besides clients holds the files; a client connection is the
                    // one thing the server can give back.
                    connections.evict_one_idle();
                }
                accept_warning.emit(|| {
                    tracing::warn!(%error, "cannot accept a connection");
                });
                // Such an error may repeat at once; a pause keeps the loop from spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(permit) = connections.admit(&shutdown).await else {
            break;
        };
        let connection = OpenConnection {
            close: shutdown.child_token(),
            state: Arc::default(),
        };
        let id = connections.open(&connection);
        let service = ConnectionService {
            router: router.clone(),
            peer,
            body_timeout: limits.request_body_timeout,
            state: connection.state.clone(),
        };
        let served = http.serve_connection(
            Tracked {
                io: TokioIo::new(stream),
                state: connection.state.clone(),
            },
            service,
        );
        let connections = connections.clone();
        tokio::spawn(async move {
            run_connection(served, &connection, peer).await;
            connections.closed(id);
            drop(permit);
        });
    }
    drop(listener);
    connections.all_closed().await;
}

/// Runs one connection until it ends, or until it is asked to close: then at once if nothing is
/// in flight on it, else after its response (hyper's graceful shutdown).
async fn run_connection(
    served: hyper::server::conn::http1::Connection<Tracked, ConnectionService>,
    connection: &OpenConnection,
    peer: SocketAddr,
) {
    let mut served = pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = connection.close.cancelled() => {
            if connection.state.is_idle() {
                return;
            }
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = ended {
        // Clients that hang up or time out are routine; not worth more than a debug line.
        tracing::debug!(%peer, %error, "connection ended");
    }
}

/// The client gave up between connecting and being accepted; nothing is wrong with the server.
fn is_one_connections_fault(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

fn is_out_of_files(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        matches!(
            error.raw_os_error().map(Errno::from_raw),
            Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// At most one warning a second, so a condition that lasts cannot flood the log.
#[derive(Default)]
struct Warning {
    last: Option<tokio::time::Instant>,
}

impl Warning {
    fn emit(&mut self, warn: impl FnOnce()) {
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_none_or(|last| now - last >= Duration::from_secs(1))
        {
            self.last = Some(now);
            warn();
        }
    }
}

/// What the accept loop and the connection's task know about one connection.
#[derive(Default)]
struct ConnectionState {
    /// Requests whose response has not been handed over completely.
    in_flight: AtomicUsize,
    /// The last write to the socket could not complete: hyper still holds response bytes.
    write_blocked: AtomicBool,
}

impl ConnectionState {
    /// Whether closing the connection now would lose nothing: no request is being answered and
    /// no response bytes wait to be sent, so at most a partial request head is dropped, which
    /// the server had not accepted yet.
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.write_blocked.load(Ordering::Acquire)
    }
}

struct OpenConnection {
    /// Cancelled to close the connection: by eviction, or by shutdown (its parent).
    close: CancellationToken,
    state: Arc<ConnectionState>,
}

/// The open connections, oldest first, and the permits that bound them.
struct Connections {
    permits: Arc<Semaphore>,
    max: usize,
    open: Mutex<BTreeMap<u64, (CancellationToken, Arc<ConnectionState>)>>,
    next_id: AtomicU64,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// A permit for one more connection. While the server is full, closes the oldest idle
    /// connection, again every [`EVICTION_RETRY`] until a permit is free. `None` on shutdown.
    async fn admit(&self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        loop {
            self.evict_one_idle();
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => {
                    return Some(permit.expect("the semaphore is never closed"));
                }
                () = tokio::time::sleep(EVICTION_RETRY) => {}
                () = shutdown.cancelled() => return None,
            }
        }
    }

    fn open(&self, connection: &OpenConnection) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .insert(id, (connection.close.clone(), connection.state.clone()));
        id
    }

    fn closed(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks the oldest connection with nothing in flight to close. Old first: a client that
    /// means to send a request sends it at once, and one that has waited longest is likeliest
    /// to be stuck or gone.
    fn evict_one_idle(&self) {
        let mut open = self.lock();
        let oldest_idle = open
            .iter()
            .find(|(_, (_, state))| state.is_idle())
            .map(|(id, _)| *id);
        if let Some((close, _)) = oldest_idle.and_then(|id| open.remove(&id)) {
            close.cancel();
        }
    }

    /// Waits until every connection has closed (each returns its permit).
    async fn all_closed(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<u64, (CancellationToken, Arc<ConnectionState>)>> {
        // The map is always left whole (inserts and removes), so a poisoned lock is still good.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The router as hyper calls it for one connection: adds the client's address (for
/// `ConnectInfo`), the body deadline, and the in-flight count.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    body_timeout: Duration,
    state: Arc<ConnectionState>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(self.state.clone());
        let body_timeout = self.body_timeout;
        let mut request = request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = tower_service::Service::call(&mut router, request).await?;
            Ok(response.map(|body| {
                Body::new(Answering {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// Counts one request as in flight until its response body has been handed to hyper whole
/// (or dropped).
struct InFlight(Arc<ConnectionState>);

impl InFlight {
    fn start(state: Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight while hyper sends it.
struct Answering {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Answering {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that must arrive whole within a time limit, counted from when the handler
/// starts reading it (right after the head, unless the handler first waits on something
/// else: bytes the client sent meanwhile must not count as late). tower-http's
/// `RequestBodyTimeout` restarts its timer at every frame, so a client sending a byte every few
/// seconds could hold the connection for as long as it liked.
struct DeadlineBody {
    body: Incoming,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            deadline: None,
            timeout,
        }
    }
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s of its head", .0.as_secs_f64())]
pub struct BodyTimeout(Duration);

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, noting whether the last write could not complete (see
/// [`ConnectionState::is_idle`]).
struct Tracked {
    io: TokioIo<TcpStream>,
    state: Arc<ConnectionState>,
}

impl Tracked {
    fn note<T>(&self, written: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        self.state
            .write_blocked
            .store(written.is_pending(), Ordering::Release);
        written
    }
}

impl hyper::rt::Read for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buffer)
    }
}

impl hyper::rt::Write for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buffer);
        self.note(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, buffers);
        self.note(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        self.note(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(connections: &Connections, in_flight: usize) -> OpenConnection {
        let connection = OpenConnection {
            close: CancellationToken::new(),
            state: Arc::default(),
        };
        connection
            .state
            .in_flight
            .store(in_flight, Ordering::Release);
        connections.open(&connection);
        connection
    }

    #[test]
    fn eviction_closes_the_oldest_connection_with_nothing_in_flight() {
        let connections = Connections::new(4);
        let busy = open(&connections, 1);
        let sending = open(&connections, 0);
        sending.state.write_blocked.store(true, Ordering::Release);
        let idle = open(&connections, 0);
        let newest_idle = open(&connections, 0);

        connections.evict_one_idle();
        assert!(idle.close.is_cancelled());
        assert!(!busy.close.is_cancelled());
        assert!(!sending.close.is_cancelled());
        assert!(!newest_idle.close.is_cancelled());

        // Each connection is asked once; the next eviction takes the next idle one.
        connections.evict_one_idle();
        assert!(newest_idle.close.is_cancelled());
        connections.evict_one_idle();
        assert!(!busy.close.is_cancelled() && !sending.close.is_cancelled());
    }

    #[test]
    fn the_connection_limit_fits_in_the_open_files_limit() {
        let files = open_files_limit();
        let fits = |limit: usize| (limit as u64) < files;
        assert!(fits(connection_limit(None)));
        assert!(fits(connection_limit(Some(usize::MAX))));
        assert_eq!(connection_limit(Some(3)), 3);
    }
}
