//! The accept loop: connections with timeouts, a cap, TLS handshakes in
//! their own tasks, and graceful shutdown.
//!
//! `axum::serve` has no timeouts, no connection cap and answers an exhausted
//! file-descriptor table by retrying every second with a log line each time;
//! this loop serves the same router through hyper-util's HTTP/1.1 + HTTP/2
//! connection builder and adds:
//!
//! - **Connection cap.** A slot is taken *before* `accept`: beyond
//!   `max_connections`, new connections wait in the kernel's listen backlog
//!   (and, once that is full, their SYNs are dropped and clients retry)
//!   instead of being accepted and closed. Waiting costs the process no file
//!   descriptor, a burst of clients is served as slots free instead of
//!   failing, and the connections already open keep being answered. The
//!   timeouts below bound how long one connection holds a slot.
//! - **Idle timeout.** A connection with no request in a handler and no
//!   response byte written for `idle_timeout` is closed: an idle keep-alive
//!   connection, or one whose client stopped reading its response. Both
//!   timeouts are checked on a tick shared by all connections (a quarter of
//!   the shorter one), not per request.
//! - **Header-read timeout.** Once a client has sent the first byte of a
//!   request, its headers must be complete (the handler started) within
//!   `header_read_timeout`, however slowly the bytes trickle in (HTTP/1.1
//!   and HTTP/2 alike).
//! - The request *body* is the library's business:
//!   `Limits::body_idle_timeout` ends a request whose body stalls.
//! - **TLS handshake timeout**, in the connection's own task, so a slow
//!   handshake holds up no one else.
//! - **Out of file descriptors** (`EMFILE`, `ENFILE`, ...): stop accepting
//!   until a connection closes (at most a second), log once per episode,
//!   never a hot loop of failing `accept`s.
//!
//! It lives in the example, not in `registry-api`: the library is a
//! `Router` that hosts serve their own way (merged into their app, behind
//! their own server and TLS); listeners, signals, TLS and process limits
//! are the host's concern. What every host needs, the body idle timeout,
//! is in the library.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Connection settings (see the module documentation).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// From a request's first byte until its headers are complete.
    pub header_read_timeout: Duration,
    /// No request in progress and no response byte written for this long.
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// How long requests in flight get to finish at shutdown.
    pub shutdown_timeout: Duration,
}

impl ServeSettings {
    /// How often a connection's watchdog looks at it: a quarter of the
    /// shorter of the header-read and idle timeouts (at least 10 ms).
    fn watchdog_interval(&self) -> Duration {
        (self.header_read_timeout.min(self.idle_timeout) / 4).max(Duration::from_millis(10))
    }
}

/// The first multiple of `every` after `now`, counted from a process-wide
/// origin, so that every connection's watchdog wakes on the same ticks.
fn next_tick(now: Instant, every: Duration) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let every_ns = every.as_nanos().max(1);
    let elapsed_ns = now.saturating_duration_since(origin).as_nanos();
    let ticks = elapsed_ns / every_ns + 1;
    let offset = u64::try_from(ticks * every_ns).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(offset)
}

/// How long accepting pauses after `accept` failed for want of resources,
/// unless a connection closes first.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets requests in flight finish for at most
/// `settings.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let closed = Arc::new(Notify::new());
    let (stop, stopping) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our own header-read timeout covers HTTP/2 too; hyper's would also cut
    // idle keep-alive connections at the header timeout.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    // When `accept` last failed for want of resources, while that episode
    // lasts: it ends once an accept succeeds a full pause after the last
    // failure, so a server hovering at the limit (connections closing one
    // by one, each slot retaken at once) logs one episode, not one per close.
    let mut starved: Option<Instant> = None;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            // The peer gave up before we took it: nothing to wait for.
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                drop(slot);
                if starved.replace(Instant::now()).is_none() {
                    tracing::error!(
                        "cannot accept connections: {e}; pausing until a connection closes \
                         (connections already open are still served)"
                    );
                }
                tokio::select! {
                    () = closed.notified() => {}
                    () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    () = &mut shutdown => break,
                }
                continue;
            }
        };
        if starved.is_some_and(|last| last.elapsed() >= ACCEPT_PAUSE) {
            starved = None;
            tracing::info!("accepting connections again");
        }
        let connection = Connection {
            peer,
            app: app.clone(),
            builder: builder.clone(),
            settings: settings.clone(),
            stopping: stopping.clone(),
        };
        let tls = tls.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            connection.run(tcp, tls).await;
            drop(slot);
            closed.notify_waiters();
        });
    }
    // Closing the listener refuses new connections from here on.
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(settings.shutdown_timeout, slots.acquire_many(all)).await;
    match drained {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            open = settings.max_connections - slots.available_permits(),
            "connections still open after {} s: closing them",
            settings.shutdown_timeout.as_secs()
        ),
    };
}

/// Errors about the one connection being accepted, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

struct Connection {
    peer: SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    settings: Arc<ServeSettings>,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let peer = self.peer;
        // Responses often go out in two writes (headers, then body): without
        // TCP_NODELAY, Nagle holds the second one for the client's delayed
        // ACK (~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let Some(acceptor) = tls else {
            return self.serve(tcp).await;
        };
        let limit = self.settings.tls_handshake_timeout;
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(limit, acceptor.accept(tcp)) => handshake,
            _ = self.stopping.wait_for(|stop| *stop) => return,
        };
        match handshake {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn serve<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: io,
            activity: activity.clone(),
        });
        let app = self.app.clone();
        let handlers = activity.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let busy = Busy::start(handlers.clone());
            // Login rate limits and log lines read the peer address from here.
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(busy);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut stopping = false;
        let check_every = self.settings.watchdog_interval();
        loop {
            // Looked at on a tick shared by all connections rather than
            // woken by every request: re-arming a timer and re-polling the
            // connection twice per request cost ~6,600 instructions of
            // ~78,000 per small GET (benches/callgrind_requests.sh). Ticks
            // are aligned across connections, so connections that went
            // idle together close together. A timeout fires at most one
            // tick (a quarter of the shorter timeout) late.
            let deadline = next_tick(Instant::now(), check_every);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(reason) = activity.expired(&self.settings) {
                        tracing::debug!(%peer, "closing connection: {reason}");
                        return;
                    }
                }
                _ = self.stopping.wait_for(|stop| *stop), if !stopping => {
                    // Idle connections close now, busy ones after their
                    // request; the shutdown timeout bounds the rest.
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection is doing, for its timeouts.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    /// Requests whose handler is running.
    busy: usize,
    /// When the connection last did something: opened, a handler ended, a
    /// response byte went out.
    since: Instant,
    /// The first byte read while no handler ran: a request is arriving.
    request_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: Mutex::new(ActivityState {
                busy: 0,
                since: Instant::now(),
                request_started: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // The state stays consistent even if a holder panicked.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, settings: &ServeSettings) -> Option<&'static str> {
        let state = self.state();
        let now = Instant::now();
        match (state.busy, state.request_started) {
            (0, Some(started)) if now >= started + settings.header_read_timeout => {
                Some("request headers not complete within the header-read timeout")
            }
            (0, None) if now >= state.since + settings.idle_timeout => {
                Some("idle for the idle timeout")
            }
            _ => None,
        }
    }

    fn read(&self) {
        let mut state = self.state();
        if state.busy == 0 && state.request_started.is_none() {
            state.request_started = Some(Instant::now());
        }
    }

    fn wrote(&self) {
        self.state().since = Instant::now();
    }
}

/// A handler running; ends when dropped (also when the request is dropped).
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        {
            let mut state = activity.state();
            state.busy += 1;
            state.request_started = None;
        }
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.busy -= 1;
        state.since = Instant::now();
        state.request_started = None;
    }
}

/// A connection's stream, reporting progress to its [`Activity`].
struct Tracked<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open files to the hard limit (many systems
/// start services at 1024, too few for `max_connections` plus the files
/// requests open) and warns when it is still short of what
/// `max_connections` needs. Returns the soft limit in force.
pub fn raise_open_files_limit(max_connections: usize) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    if let (Some(current), Some(hard)) = (limit.current, limit.maximum) {
        if current < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::info!("raised the open-file limit from {current} to {hard}");
                    soft = Some(hard);
                }
                Err(e) => tracing::debug!("cannot raise the open-file limit to {hard}: {e}"),
            }
        }
    }
    // Besides one descriptor per connection: the listener, the database,
    // blob and upload files of requests in flight.
    let wanted = max_connections as u64 + 256;
    if let Some(soft) = soft.filter(|soft| *soft < wanted) {
        tracing::warn!(
            "the open-file limit ({soft}) is below what {max_connections} connections need \
             (about {wanted}): accepting pauses whenever it is reached; raise it (ulimit -n, \
             LimitNOFILE=) or lower --max-connections"
        );
    }
    soft
}
