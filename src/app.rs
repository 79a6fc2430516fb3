//! The HTTP server: accepts connections (TCP_NODELAY on each), serves
//! HTTP/1.1 with hyper, stamps every response with a request id, writes one
//! access-log line per request, runs the background tasks, and shuts down
//! gracefully on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::error::{Code, S3Error};
use crate::server::admission::{Activity, Hold};
use crate::server::body::ResponseBody;
use crate::server::health::{self, Probe};
use crate::server::io::WriteTimeout;
use crate::server::state::{AppState, Outcome};
use crate::store::model::new_id;
use crate::{s3, server, uploads};

/// A response whose client takes no bytes for this long is abandoned.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open now, in all and per client address. A connection past
/// the per-address cap is closed as it arrives, so one client cannot take
/// the descriptors every other client needs. At the total cap, a connection
/// that is not serving an authenticated request is shed to make room
/// ([`crate::server::admission`]); only when every connection is serving
/// one is the newcomer closed.
struct Connections {
    /// Descriptors left for connections under the open-file limit.
    fd_room: usize,
    metrics: Arc<crate::server::metrics::Metrics>,
    open: std::sync::Mutex<Open>,
}

#[derive(Default)]
struct Open {
    per_ip: std::collections::HashMap<IpAddr, usize>,
    /// Every admitted connection, by admission order (oldest first).
    live: std::collections::BTreeMap<u64, Arc<Activity>>,
    next: u64,
}

/// One admitted connection; dropping it gives its place back.
struct Admitted {
    connections: Arc<Connections>,
    ip: IpAddr,
    id: u64,
    activity: Arc<Activity>,
}

impl Connections {
    fn new(
        limits: &crate::config::Limits,
        metrics: Arc<crate::server::metrics::Metrics>,
    ) -> Connections {
        let fd_room = raise_fd_limit();
        if limits.max_connections > fd_room {
            tracing::warn!(
                max_connections = limits.max_connections,
                fd_room,
                "the open-file limit allows fewer connections than configured; serving at most fd_room"
            );
        }
        Connections {
            fd_room,
            metrics,
            open: Default::default(),
        }
    }

    /// The caps the limits set, within what the open-file limit allows:
    /// in all, and for one address at most a quarter of that.
    fn caps(&self, limits: &crate::config::Limits) -> (usize, usize) {
        let max = limits.max_connections.min(self.fd_room).max(1);
        (max, limits.max_connections_per_ip.min((max / 4).max(1)))
    }

    /// A place for a connection from `ip`, shedding an idle one at the
    /// total cap; `None` when there is none.
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &crate::config::Limits) -> Option<Admitted> {
        use std::sync::atomic::Ordering::Relaxed;
        let (max, max_per_ip) = self.caps(limits);
        let mut open = self.open.lock().expect("connection counts");
        let mine = open.per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= max_per_ip {
            self.metrics.connections_refused.fetch_add(1, Relaxed);
            return None;
        }
        // Connections already told to close make room as they go: only
        // a newcomer beyond them needs another shed.
        if open.live.len() >= max
            && open.live.len() - open.live.values().filter(|a| a.is_shed()).count() >= max
        {
            // A connection not serving a request goes: the oldest of those
            // that never served one (half-sent heads, forms ahead of their
            // signature), else the oldest idle one. It closes (and leaves
            // the table) as soon as its task sees the signal.
            let sheddable = |a: &&Arc<Activity>| a.idle() && !a.is_shed();
            let victim = (open.live.values())
                .filter(sheddable)
                .find(|a| !a.served())
                .or_else(|| open.live.values().find(sheddable));
            let Some(victim) = victim else {
                self.metrics.connections_refused.fetch_add(1, Relaxed);
                return None;
            };
            victim.shed();
            self.metrics.connections_shed.fetch_add(1, Relaxed);
        }
        let id = open.next;
        open.next += 1;
        let activity = Arc::new(Activity::default());
        open.live.insert(id, Arc::clone(&activity));
        *open.per_ip.entry(ip).or_default() += 1;
        self.metrics.connections_open.fetch_add(1, Relaxed);
        Some(Admitted {
            connections: Arc::clone(self),
            ip,
            id,
            activity,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().expect("connection counts");
        open.live.remove(&self.id);
        (self.connections.metrics.connections_open)
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Raises this process's open-file limit to its hard limit, and returns
/// how many connections fit under it with room for blobs, the metadata
/// engine and the listeners.
pub fn raise_fd_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    const RESERVED: u64 = 256;
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise the open-file limit: {e}");
        }
        limit = getrlimit(Resource::Nofile);
    }
    let soft = limit.current.unwrap_or(u64::MAX);
    soft.saturating_sub(RESERVED).clamp(64, usize::MAX as u64) as usize
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish
/// for at most the configured grace period. With `tls`, every connection
/// is HTTPS.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<crate::server::tls::Tls>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let background = spawn_background(Arc::clone(&state));
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Connections::new(
        &state.config().limits,
        Arc::clone(&state.metrics),
    ));
    let mut refused_logged: Option<Instant> = None;
    // Every connection's task, so a stop can cut those the grace leaves.
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // The limits in force now: a reload changes them for the
                // connections that come after it.
                let config = state.config();
                let Some(admitted) = connections.admit(peer.ip(), &config.limits) else {
                    // Closed at once; said once a minute at most.
                    if refused_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        refused_logged = Some(Instant::now());
                        tracing::warn!(%peer, "connection limit reached: closing new connections (limits.max_connections, limits.max_connections_per_ip)");
                    }
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = tls.as_ref().map(|tls| tls.acceptor());
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(config.limits.header_timeout_secs))
                    .keep_alive(true);
                let connection = Connection {
                    peer,
                    admitted,
                    builder,
                    watcher: graceful.watcher(),
                    acceptor,
                };
                tasks.spawn(connection.serve(stream, Arc::clone(&state)));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let grace = Duration::from_secs(state.config().limits.shutdown_grace_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    background.abort();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tasks.len(),
            "grace period over; cutting the remaining connections"
        );
        // Each request cut logs its line as it goes; its unfinished body
        // is discarded and settled below, not left for the next start.
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
    // Bodies whose clients left during the stop, and those cut above.
    if let Err(e) = state.store.tidy_after_stop().await {
        tracing::warn!(error = %e, "cannot settle temporary files: the next start will");
    }
}

/// One admitted connection, served until it ends or the grace period does.
struct Connection {
    peer: std::net::SocketAddr,
    admitted: Admitted,
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Connection {
    async fn serve(self, stream: tokio::net::TcpStream, state: Arc<AppState>) {
        let Connection {
            peer,
            admitted,
            builder,
            watcher,
            acceptor,
        } = self;
        let activity = Arc::clone(&admitted.activity);
        let service = service_fn(move |mut req: Request<Incoming>| {
            let state = Arc::clone(&state);
            // Serving from authentication until the response body ends.
            let hold = Hold::new(Arc::clone(&activity));
            req.extensions_mut().insert(Arc::clone(&hold));
            async move {
                let response = handle(state, req).await;
                Ok::<_, Infallible>(response.map(|body| Guarded { body, _hold: hold }))
            }
        });
        let watched = async move {
            let stream = match acceptor {
                None => Secured::Plain(WriteTimeout::new(stream, WRITE_STALL_TIMEOUT)),
                Some(acceptor) => {
                    // The peek and the handshake share one deadline.
                    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                        if sends_plain_http(&stream).await {
                            tracing::debug!(%peer, "plain HTTP on the HTTPS port");
                            say_https(WriteTimeout::new(stream, WRITE_STALL_TIMEOUT)).await;
                            return None;
                        }
                        let stream = WriteTimeout::new(stream, WRITE_STALL_TIMEOUT);
                        match acceptor.accept(stream).await {
                            Ok(stream) => Some(stream),
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                None
                            }
                        }
                    });
                    match tls.await {
                        Ok(Some(stream)) => Secured::Tls(Box::new(stream)),
                        Ok(None) => return Ok(()),
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return Ok(());
                        }
                    }
                }
            };
            match stream {
                Secured::Plain(stream) => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Secured::Tls(stream) => {
                    let conn = builder.serve_connection(TokioIo::new(*stream), service);
                    watcher.watch(conn).await
                }
            }
        };
        // From its first byte: a connection still handshaking has served
        // nothing, so it may be shed like any other that has not.
        let served = until_shed(&admitted.activity, watched).await;
        match served {
            Some(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            None => tracing::debug!(%peer, "connection shed to make room for a new one"),
            Some(Ok(())) => {}
        }
    }
}

/// A connection's stream, once its TLS handshake (if any) is done.
enum Secured {
    Plain(WriteTimeout<tokio::net::TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<WriteTimeout<tokio::net::TcpStream>>>),
}

/// Whether a client on the HTTPS port began with plain HTTP: a TLS
/// connection opens with a handshake record (0x16), a request with a
/// method name.
async fn sends_plain_http(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1)) && first[0].is_ascii_uppercase()
}

/// A readable answer to plain HTTP on the HTTPS port (a client without
/// `https://` in its endpoint), rather than a TLS alert it shows as noise.
/// Closing lingers, so the answer arrives though the request is unread.
async fn say_https(mut stream: WriteTimeout<tokio::net::TcpStream>) {
    use tokio::io::AsyncWriteExt;
    let text = "This port speaks HTTPS: use an https:// endpoint.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nServer: Stowage\r\n\r\n{text}",
        text.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Runs a connection until it ends, or until it is shed while no request
/// is in flight (`None`).
async fn until_shed<F: std::future::Future>(activity: &Activity, conn: F) -> Option<F::Output> {
    tokio::pin!(conn);
    loop {
        tokio::select! {
            out = &mut conn => return Some(out),
            () = activity.shed_signal() => {
                if activity.idle() {
                    return None;
                }
                // A request began in between: it finishes.
            }
        }
    }
}

/// A response body that keeps its request's hold until it ends.
struct Guarded {
    body: ResponseBody,
    _hold: Arc<Hold>,
}

impl hyper::body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = format!("{:016X}", new_id() as u64);
    let method = req.method().clone();
    let bytes_in = req
        .headers()
        .get("x-amz-decoded-content-length")
        .or_else(|| req.headers().get("content-length"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut cut = Unfinished {
        armed: state.config().access_log,
        request_id: &request_id,
        method: &method,
        // A shared handle on the request's bytes, not a copy.
        target: req.uri().clone(),
        started,
        bytes_in,
    };
    let outcome = dispatch(Arc::clone(&state), req, &request_id).await;
    cut.armed = false;
    let mut response = outcome.response;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amz-request-id", v.clone());
        headers.insert("x-amz-id-2", v);
    }
    headers.insert("server", HeaderValue::from_static("Stowage"));
    let bytes_out = hyper::body::Body::size_hint(response.body())
        .exact()
        .unwrap_or(0);
    let status = response.status().as_u16();
    // A declared length counts once the body was taken: a refused request
    // may claim any length it likes.
    let bytes_in = if status < 300 { bytes_in } else { 0 };
    state.metrics.record(
        &outcome.op,
        status,
        bytes_in,
        bytes_out,
        started.elapsed().as_secs_f64(),
    );
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let bucket = outcome.bucket.as_deref().unwrap_or("");
    let key = outcome.key.as_deref().unwrap_or("");
    let (access_key, auth) = outcome
        .auth
        .as_ref()
        // Refused before it was authenticated: no one.
        .map_or(("anonymous", "none"), |(k, mode)| (k.as_str(), *mode));
    // Server faults are errors; what a client got wrong, and the operations
    // Stowage documents as not implemented, are not.
    let fault = status >= 500 && status != 501;
    if !fault && !state.config().access_log {
        return response;
    }
    // An orchestrator's probes come every few seconds: they say nothing
    // unless they fail.
    if !fault && outcome.op.starts_with("Health") && status < 400 {
        tracing::debug!(request_id, op = %outcome.op, %method, status, ms = format_args!("{ms:.1}"), "request");
        return response;
    }
    match &outcome.error {
        Some(e) if fault => tracing::error!(
            request_id, op = %outcome.op, %method, bucket, key, access_key, auth, status, bytes_in, bytes_out,
            ms = format_args!("{ms:.1}"), error = %e, "request"
        ),
        // A client's failure with a cause (a connection cut mid-body).
        Some(e) if e.cause.is_some() => tracing::info!(
            request_id, op = %outcome.op, %method, bucket, key, access_key, auth, status, bytes_in, bytes_out,
            ms = format_args!("{ms:.1}"), code = ?e.code, error = %e, "request"
        ),
        Some(e) => tracing::info!(
            request_id, op = %outcome.op, %method, bucket, key, access_key, auth, status, bytes_in, bytes_out,
            ms = format_args!("{ms:.1}"), code = ?e.code, "request"
        ),
        None => tracing::info!(
            request_id, op = %outcome.op, %method, bucket, key, access_key, auth, status, bytes_in, bytes_out,
            ms = format_args!("{ms:.1}"), "request"
        ),
    }
    response
}

/// A request being handled: dropped before its response (its client
/// left, or the stop cut it after the grace), it still gets an access-log
/// line.
struct Unfinished<'a> {
    armed: bool,
    request_id: &'a str,
    method: &'a http::Method,
    target: http::Uri,
    started: Instant,
    bytes_in: u64,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            request_id = self.request_id, method = %self.method, target = self.target.path(),
            bytes_in = self.bytes_in, ms = format_args!("{ms:.1}"),
            "request cut before its response: its client left, or the server stopped"
        );
    }
}

/// Hands a request to the front-end its path names: the extensions below
/// `/_stowage/` of the server itself (health, the upload routes), else S3.
/// On a virtual-hosted bucket's name `/_stowage/` is a key, so S3's own
/// addressing decides.
async fn dispatch(state: Arc<AppState>, req: Request<Incoming>, request_id: &str) -> Outcome {
    let config = state.config();
    let host = req.headers().get("host").and_then(|v| v.to_str().ok());
    if let Some(host) = refused_host(&config, &req) {
        let e = S3Error::with_message(
            Code::AccessDenied,
            format!(
                "This server listens on a loopback address and answers only loopback host names (localhost, 127.0.0.1, [::1]) and its configured domain, not {host:?}: a page that rebinds its name to this machine gets nothing."
            ),
        );
        return refusal(e, "RefusedHost", &req, request_id);
    }
    // The development secret is public, and a form POST needs no
    // preflight: a page elsewhere could sign one and store through it.
    if config.uses_dev_credential()
        && req.method() == http::Method::POST
        && foreign_page(&config, req.headers())
    {
        let e = S3Error::with_message(
            Code::AccessDenied,
            "A development server takes POSTs from browser pages only on the origins its CORS rules allow (by default loopback origins such as http://localhost:5173): its credential is public.",
        );
        return refusal(e, "RefusedOrigin", &req, request_id);
    }
    let domain = config.domain.as_deref();
    let target = s3::router::split_target(req.uri().path(), host, domain);
    if !matches!(&target, Ok((Some(b), _)) if b == server::EXTENSIONS_BUCKET) {
        return s3::handle(state, req, request_id).await;
    }
    let probe = Probe::of_path(req.uri().path())
        .filter(|_| matches!(*req.method(), http::Method::GET | http::Method::HEAD));
    let Some(probe) = probe else {
        let (parts, incoming) = req.into_parts();
        return uploads::handle(state, parts, incoming, request_id).await;
    };
    let mut response = health::answer(&state.store, probe).await;
    if let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) {
        server::cors::decorate_with(&config.cors, origin, req.method(), &mut response);
    }
    Outcome {
        response,
        op: probe.name().to_owned(),
        bucket: None,
        key: None,
        error: None,
        auth: Some(("anonymous".into(), "anonymous")),
    }
}

/// A request refused before any front-end sees it, as an S3 error.
fn refusal(e: S3Error, op: &str, req: &Request<Incoming>, request_id: &str) -> Outcome {
    let is_head = req.method() == http::Method::HEAD;
    Outcome {
        response: s3::error_response(&e, req.uri().path(), request_id, is_head),
        op: op.to_owned(),
        bucket: None,
        key: None,
        error: Some(e),
        auth: Some(("anonymous".into(), "anonymous")),
    }
}

/// The host name a request names that this server does not answer, if
/// any: every Host header and the request target's authority are checked,
/// and one that is not text is refused.
fn refused_host(config: &crate::config::Config, req: &Request<Incoming>) -> Option<String> {
    if !config.listens_on_loopback() {
        return None;
    }
    let headers = req.headers().get_all("host").iter().map(|v| v.to_str());
    let authority = req.uri().authority().map(|a| Ok(a.as_str()));
    for host in headers.chain(authority) {
        match host {
            Ok(host) if config.answers_host(host) => {}
            Ok(host) => return Some(host.to_owned()),
            Err(_) => return Some("(not text)".to_owned()),
        }
    }
    None
}

/// Whether a request comes from a browser page on an origin the CORS
/// rules do not let POST: its `Origin` says so, or (a browser that sends
/// none) its `Sec-Fetch-Site` is `cross-site`.
fn foreign_page(config: &crate::config::Config, headers: &http::HeaderMap) -> bool {
    match headers.get("origin") {
        Some(origin) => !origin
            .to_str()
            .is_ok_and(|o| crate::cors::allows(&config.cors, o, "POST")),
        None => headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")),
    }
}

/// The collector, the lifecycle sweep and the scrub, each at the pace the
/// settings in force give.
fn spawn_background(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(collect_and_sweep(Arc::clone(&state)), scrub(state));
    })
}

async fn collect_and_sweep(state: Arc<AppState>) {
    use tokio::time::{Instant, sleep_until};
    {
        let mut next_gc = Instant::now();
        // The first sweep waits one interval: start-up stays quick.
        let mut next_sweep = Instant::now() + state.config().limits.sweep_interval();
        loop {
            tokio::select! {
                () = sleep_until(next_gc) => {
                    collect(&state).await;
                    next_gc = Instant::now() + state.config().limits.gc_interval();
                }
                () = sleep_until(next_sweep) => {
                    sweep(&state).await;
                    next_sweep = Instant::now() + state.config().limits.sweep_interval();
                }
            }
        }
    }
}

/// The online scrub: batch after batch while a pass is under way, then a
/// look now and then for the next one.
async fn scrub(state: Arc<AppState>) {
    // Start-up first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    loop {
        let limits = state.config().limits.clone();
        let look_again = Duration::from_secs(limits.lifecycle_day_secs.clamp(1, 60));
        // A while, or until a reload may have changed the pace.
        let pause = async {
            tokio::select! {
                () = tokio::time::sleep(look_again) => {}
                () = state.reloaded.notified() => {}
            }
        };
        let Some(policy) = limits.scrub_policy() else {
            pause.await;
            continue;
        };
        let now = crate::time::now_ms();
        match crate::store::scrub::run_batch(&state.store, policy, now).await {
            Ok(Some(_)) => {}
            Ok(None) => pause.await,
            Err(e) => {
                tracing::warn!(error = %e, "scrub: a batch failed; trying again shortly");
                pause.await;
            }
        }
    }
}

/// Unlinks freed blobs whose grace has passed, a batch at a time, and
/// lets the metadata engine tidy up.
async fn collect(state: &AppState) {
    if let Err(e) = state.store.meta.tidy().await {
        tracing::warn!(error = %e, "metadata housekeeping failed");
    }
    loop {
        match state.store.collect_garbage().await {
            Ok((n, more)) => {
                if n > 0 {
                    tracing::debug!(blobs = n, "collected freed blobs");
                }
                if !more {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "garbage collection failed");
                return;
            }
        }
    }
}

/// Applies lifecycle rules and the default upload age, and logs what
/// incomplete uploads still hold.
async fn sweep(state: &AppState) {
    let policy = state.config().limits.sweep_policy();
    let report = match state.store.sweep(crate::time::now_ms(), policy).await {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, "the lifecycle sweep failed");
            return;
        }
    };
    let held = state
        .store
        .meta
        .stats()
        .await
        .map_or(0, |s| s.incomplete_upload_bytes);
    tracing::info!(
        aborted_uploads = report.aborted_uploads,
        freed_bytes = report.freed_upload_bytes,
        expired_objects = report.expired_objects,
        incomplete_upload_bytes = held,
        "lifecycle sweep"
    );
}
