//! The simulator's listeners: per-site UDP echo with link emulation, HTTP(S) servers, TCP
//! banner servers, and the supervision that closes and rebinds listeners during faults.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::scenario::{Fault, FaultKind};
use super::FaultView;
use crate::config::CheckId;

/// Connections served at once by one listener; more are closed on accept.
const MAX_CONNS: usize = 128;
/// Echo datagrams waiting for their delay, per responder; more are dropped (a full queue).
const MAX_QUEUED: usize = 256;
/// The longest datagram echoed (one unfragmented Ethernet frame of UDP payload).
const MAX_DATAGRAM: usize = 1472;
/// How long a TCP banner connection stays open.
const TCP_HOLD: Duration = Duration::from_secs(5);
/// Upper bound on any HTTP connection's life.
const HTTP_CONN_MAX: Duration = Duration::from_secs(120);
const TLS_HANDSHAKE: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------------------------------
// Link emulation (UDP echo)
// ------------------------------------------------------------------------------------------

/// Normal behaviour of a link class: every echo is held `base + U(0, spread)` (≈ the round-trip
/// time the probe measures) and is lost with probability `loss`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkProfile {
    pub base: Duration,
    pub spread: Duration,
    pub loss: f64,
}

impl LinkProfile {
    /// mainland 1–3 ms; rural 5–15 ms; island 35–70 ms (jitter ≈ 10 ms standard deviation)
    /// with 3 % loss; datacenter 0.2–1 ms. Unknown classes behave as mainland.
    pub fn for_class(class: &str) -> LinkProfile {
        let ms = Duration::from_millis;
        let (base, spread, loss) = match class {
            "island" => (ms(35), ms(35), 0.03),
            "rural" => (ms(5), ms(10), 0.0),
            "datacenter" => (Duration::from_micros(200), Duration::from_micros(800), 0.0),
            _ => (ms(1), ms(2), 0.0),
        };
        LinkProfile { base, spread, loss }
    }
}

/// One responder: the echo socket bound on a link address and whose checks it stands for.
pub(crate) struct EchoSite {
    pub socket: UdpSocket,
    pub profile: LinkProfile,
    pub owners: Vec<CheckId>,
}

/// What the faults do to one echo datagram: `None` = dropped, else the delay.
fn echo_fate(site: &EchoSite, active: &[Fault], rng: &mut SmallRng) -> Option<Duration> {
    let mut loss = site.profile.loss;
    let mut extra = Duration::ZERO;
    for f in active {
        if !site.owners.iter().any(|id| f.targets(id, true)) {
            continue;
        }
        match f.kind {
            FaultKind::LinkDown => return None,
            FaultKind::LinkLoss => loss = f.loss.unwrap_or(loss),
            FaultKind::LinkLatency => extra += f.delay.unwrap_or_default(),
            _ => {}
        }
    }
    if loss > 0.0 && rng.random::<f64>() < loss {
        return None;
    }
    let spread = site.profile.spread.mul_f64(rng.random::<f64>());
    Some(site.profile.base + spread + extra)
}

struct Pending {
    at: Instant,
    seq: u64,
    peer: SocketAddr,
    data: Bytes,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// RFC 862 echo with the site's delay and loss. One task per site; pending echoes wait in a
/// bounded heap ordered by delivery time.
pub(crate) async fn run_echo(site: EchoSite, view: FaultView, cancel: CancellationToken) {
    let mut rng = SmallRng::from_os_rng();
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut seq = 0u64;
    let far = || Instant::now() + Duration::from_secs(3600);
    loop {
        let next = heap.peek().map(|p| p.0.at).unwrap_or_else(far);
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = site.socket.recv_from(&mut buf) => match r {
                Ok((n, peer)) => {
                    // Never send anything outside 127.0.0.0/8.
                    if !super::is_loopback_v4(peer.ip()) || heap.len() >= MAX_QUEUED {
                        continue;
                    }
                    let fate = echo_fate(&site, &view.current(), &mut rng);
                    if let Some(delay) = fate {
                        seq += 1;
                        let data = Bytes::copy_from_slice(&buf[..n.min(MAX_DATAGRAM)]);
                        heap.push(Reverse(Pending { at: Instant::now() + delay, seq, peer, data }));
                    }
                }
                // ICMP errors from earlier sends surface here; nothing to do.
                Err(e) => tracing::trace!("simulator: UDP echo receive: {e}"),
            },
            _ = sleep_until(next), if !heap.is_empty() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|p| p.0.at <= now) {
                    if let Some(Reverse(p)) = heap.pop() {
                        if let Err(e) = site.socket.send_to(&p.data, p.peer).await {
                            tracing::trace!("simulator: UDP echo to {}: {e}", p.peer);
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Listener supervision
// ------------------------------------------------------------------------------------------

/// Binds a TCP listener with SO_REUSEADDR (rebinding right after a fault must not fail on
/// connections in TIME_WAIT).
pub(crate) fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

/// Serves `listener` with `handle` while `down` is false for the active faults; while it is
/// true the listener is closed (connects are refused) and every open connection is dropped.
/// The listener is bound again when the fault ends. `initial` is `None` when start-up found the
/// listener down already (it was bound once to prove the address is free, then closed).
pub(crate) async fn supervise<D, H, Fut>(
    addr: SocketAddr,
    what: &'static str,
    initial: Option<TcpListener>,
    mut view: FaultView,
    cancel: CancellationToken,
    down: D,
    handle: H,
) where
    D: Fn(&[Fault]) -> bool,
    H: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut listener = initial;
    loop {
        // Closed while a fault says so.
        while down(&view.current()) {
            if listener.take().is_some() {
                tracing::info!("simulator: {what} listener {addr} closed (fault)");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = view.changed() => if r.is_err() { return },
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(addr, what, &cancel).await {
                Some(l) => l,
                None => return,
            },
        };
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = view.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if down(&view.current()) {
                        break;
                    }
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                r = l.accept() => match r {
                    Ok((stream, peer)) => {
                        if conns.len() < MAX_CONNS && super::is_loopback_v4(peer.ip()) {
                            conns.spawn(handle(stream));
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("simulator: accept on {addr}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(l);
        drop(conns);
        tracing::info!("simulator: {what} listener {addr} closed (fault)");
    }
}

async fn rebind(addr: SocketAddr, what: &str, cancel: &CancellationToken) -> Option<TcpListener> {
    let mut warned = false;
    loop {
        match bind_tcp(addr) {
            Ok(l) => {
                tracing::info!("simulator: {what} listener {addr} open again");
                return Some(l);
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        "simulator: cannot bind {what} listener {addr} again: {e} (retrying)"
                    );
                    warned = true;
                }
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// HTTP(S)
// ------------------------------------------------------------------------------------------

/// One HTTP(S) listener and the checks it answers.
pub(crate) struct HttpSite {
    pub addr: SocketAddr,
    pub tls: Option<TlsAcceptor>,
    /// Each check served here with the path of its URL.
    pub owners: Vec<(CheckId, String)>,
    /// Human names of the owners, for the HTML page.
    pub title: String,
    /// The administrative-procedures application (log in → look up → log out) when a
    /// transaction check is served here.
    pub app: Option<MotCua>,
}

/// The fake administrative-procedures application a transaction check walks through:
/// `GET /login` (a CSRF-style token in the page, a session cookie), `POST /login` (form
/// `username`, `password`, `csrf`), `GET /api/ho-so/{code}` (JSON, needs the logged-in session),
/// `POST /logout`. A `lookup_error` fault keeps login working while the lookup answers
/// `{"status":"error"}`.
pub(crate) struct MotCua {
    /// Passwords accepted: the secrets the config's transactions read (any non-empty one when
    /// none is known).
    pub passwords: Vec<String>,
    sessions: std::sync::Mutex<std::collections::HashMap<String, (String, bool)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Sessions kept at most; beyond, the oldest are forgotten all at once (a demo, not a server).
const MAX_SESSIONS: usize = 4096;
pub(crate) const SESSION_COOKIE: &str = "MOTCUA_SID";

impl MotCua {
    pub fn new(passwords: Vec<String>) -> MotCua {
        MotCua {
            passwords,
            sessions: Default::default(),
            next: Default::default(),
        }
    }

    fn token(&self, what: &str) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{what}{n:x}{:08x}", rand::random::<u32>())
    }

    fn session(headers: &http::HeaderMap) -> Option<String> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == SESSION_COOKIE)
            .map(|(_, v)| v.to_owned())
    }

    /// Answers the application's paths; `None` for any other path.
    async fn respond(
        &self,
        req: Request<Incoming>,
        lookup_error: bool,
    ) -> Result<Response<Full<Bytes>>, Request<Incoming>> {
        use http_body_util::BodyExt;
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let json = |code: StatusCode, body: serde_json::Value| {
            reply(code, "application/json", body.to_string())
        };
        let sid = Self::session(req.headers());
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match (method.as_str(), path.as_str()) {
            ("GET", "/login") => {
                if sessions.len() >= MAX_SESSIONS {
                    sessions.clear();
                }
                let (sid, csrf) = (self.token("s"), self.token("c"));
                sessions.insert(sid.clone(), (csrf.clone(), false));
                let page = format!(
                    "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Đăng nhập — Một cửa</title></head>\n\
                     <body><form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <input name=\"username\"><input name=\"password\" type=\"password\"></form></body></html>\n"
                );
                let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", page);
                let cookie = format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly");
                if let Ok(v) = http::HeaderValue::try_from(cookie) {
                    r.headers_mut().insert(http::header::SET_COOKIE, v);
                }
                Ok(r)
            }
            ("POST", "/login") => {
                drop(sessions);
                let body = match timeout(Duration::from_secs(5), req.into_body().collect()).await {
                    Ok(Ok(b)) => b.to_bytes(),
                    _ => Bytes::new(),
                };
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(&body[..body.len().min(16 * 1024)])
                        .into_owned()
                        .collect();
                let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                let Some(s) = sid.as_ref().and_then(|sid| sessions.get_mut(sid)) else {
                    let body = serde_json::json!({"status": "error", "reason": "no session"});
                    return Ok(json(StatusCode::UNAUTHORIZED, body));
                };
                if form.get("csrf") != Some(&s.0) {
                    let body = serde_json::json!({"status": "error", "reason": "bad csrf token"});
                    return Ok(json(StatusCode::FORBIDDEN, body));
                }
                let password = form.get("password").map(String::as_str).unwrap_or("");
                let ok = match self.passwords.is_empty() {
                    true => !password.is_empty(),
                    false => self.passwords.iter().any(|p| p == password),
                };
                if !ok || form.get("username").is_none_or(|u| u.is_empty()) {
                    let body = serde_json::json!({"status": "error", "reason": "bad credentials"});
                    return Ok(json(StatusCode::UNAUTHORIZED, body));
                }
                s.1 = true;
                Ok(json(StatusCode::OK, serde_json::json!({"status": "ok"})))
            }
            ("GET", p) if p.starts_with("/api/ho-so/") => {
                let logged_in = sid
                    .and_then(|sid| sessions.get(&sid).map(|s| s.1))
                    .unwrap_or(false);
                if !logged_in {
                    let body = serde_json::json!({"status": "error", "reason": "not logged in"});
                    return Ok(json(StatusCode::UNAUTHORIZED, body));
                }
                if lookup_error {
                    return Ok(json(StatusCode::OK, serde_json::json!({"status": "error"})));
                }
                let code = p.trim_start_matches("/api/ho-so/");
                Ok(json(
                    StatusCode::OK,
                    serde_json::json!({
                        "status": "ok",
                        "ho_so": {
                            "ma": code,
                            "thu_tuc": "Cấp bản sao trích lục hộ tịch",
                            "trang_thai": "dang_xu_ly",
                        }
                    }),
                ))
            }
            ("POST", "/logout") => {
                if let Some(sid) = sid {
                    sessions.remove(&sid);
                }
                let mut r = json(StatusCode::OK, serde_json::json!({"status": "ok"}));
                let cookie = format!("{SESSION_COOKIE}=; Max-Age=0; Path=/");
                if let Ok(v) = http::HeaderValue::try_from(cookie) {
                    r.headers_mut().insert(http::header::SET_COOKIE, v);
                }
                Ok(r)
            }
            _ => {
                drop(sessions);
                Err(req)
            }
        }
    }
}

impl HttpSite {
    /// Link down of any owner closes the listener.
    pub fn is_down(&self, active: &[Fault]) -> bool {
        active.iter().any(|f| {
            f.kind == FaultKind::LinkDown && self.owners.iter().any(|(id, _)| f.targets(id, true))
        })
    }

    /// Status override and delay for a request to `path`. The request is for the checks whose
    /// URL path is `path`, or for every check of the listener when none is.
    fn effects(&self, path: &str, active: &[Fault]) -> (Option<u16>, Duration, bool, bool) {
        let exact = self.owners.iter().any(|(_, p)| p == path);
        let mut status = None;
        let mut delay = Duration::ZERO;
        let mut wrong = false;
        let mut lookup_error = false;
        for (id, _) in self.owners.iter().filter(|(_, p)| !exact || p == path) {
            for f in active.iter().filter(|f| f.targets(id, false)) {
                match f.kind {
                    FaultKind::HttpStatus => status = status.or(f.status),
                    FaultKind::Slow => delay = delay.max(f.delay.unwrap_or_default()),
                    FaultKind::WrongBody => wrong = true,
                    FaultKind::LookupError => lookup_error = true,
                    _ => {}
                }
            }
        }
        (status, delay, wrong, lookup_error)
    }

    async fn respond(&self, req: Request<Incoming>, view: &FaultView) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let (status, delay, wrong, lookup_error) = self.effects(&path, &view.current());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(code) = status {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body = format!(
                "{{\"status\":\"error\",\"code\":{},\"reason\":\"lienthong-sim fault\"}}",
                code.as_u16()
            );
            return reply(code, "application/json", body);
        }
        if wrong {
            // What a reverse proxy shows while the application behind it is gone.
            return reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                "<!doctype html><html><body><h1>Hệ thống đang bảo trì</h1></body></html>\n".into(),
            );
        }
        if let Some(app) = &self.app {
            if let Ok(r) = app.respond(req, lookup_error).await {
                return r;
            }
        }
        match path.as_str() {
            "/healthz" | "/api/health" | "/status" => reply(
                StatusCode::OK,
                "application/json",
                "{\"status\":\"ok\"}".into(),
            ),
            "/" => reply(StatusCode::OK, "text/html; charset=utf-8", self.page()),
            _ => reply(
                StatusCode::NOT_FOUND,
                "application/json",
                "{\"status\":\"not_found\"}".into(),
            ),
        }
    }

    fn page(&self) -> String {
        format!(
            "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\"><title>{t} — dichvucong</title></head>\n\
             <body><h1>{t}</h1><p>Cổng dịch vụ công (dichvucong) — lienthong simulator.</p></body></html>\n",
            t = html_escape(&self.title)
        )
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        http::header::SERVER,
        http::HeaderValue::from_static("lienthong-sim"),
    );
    r
}

/// Serves one accepted HTTP(S) connection.
pub(crate) async fn serve_http(site: Arc<HttpSite>, view: FaultView, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    match site.tls.clone() {
        Some(acceptor) => match timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => serve_http_io(site, view, tls).await,
            Ok(Err(e)) => tracing::debug!("simulator: TLS handshake on {}: {e}", site.addr),
            Err(_) => tracing::debug!("simulator: TLS handshake on {} timed out", site.addr),
        },
        None => serve_http_io(site, view, stream).await,
    }
}

async fn serve_http_io<S>(site: Arc<HttpSite>, view: FaultView, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let site = site.clone();
        let view = view.clone();
        async move { Ok::<_, Infallible>(site.respond(req, &view).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), svc);
    if let Ok(Err(e)) = timeout(HTTP_CONN_MAX, conn).await {
        tracing::debug!("simulator: HTTP connection: {e}");
    }
}

// ------------------------------------------------------------------------------------------
// TCP banner
// ------------------------------------------------------------------------------------------

/// One TCP listener (video point, SMTP, MCU …) and the checks it answers.
pub(crate) struct TcpSite {
    pub addr: SocketAddr,
    pub tls: Option<TlsAcceptor>,
    pub owners: Vec<CheckId>,
}

impl TcpSite {
    /// Link down of any owner, or tcp_down of one of its checks, closes the listener.
    pub fn is_down(&self, active: &[Fault]) -> bool {
        active.iter().any(|f| match f.kind {
            FaultKind::LinkDown => self.owners.iter().any(|id| f.targets(id, true)),
            FaultKind::TcpDown => self.owners.iter().any(|id| f.targets(id, false)),
            _ => false,
        })
    }
}

/// Writes the banner, answers a few SMTP-like lines, and closes after [`TCP_HOLD`].
pub(crate) async fn serve_tcp(site: Arc<TcpSite>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    match site.tls.clone() {
        Some(acceptor) => match timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let _ = timeout(TCP_HOLD, banner_session(tls)).await;
            }
            Ok(Err(e)) => tracing::debug!("simulator: TLS handshake on {}: {e}", site.addr),
            Err(_) => tracing::debug!("simulator: TLS handshake on {} timed out", site.addr),
        },
        None => {
            let _ = timeout(TCP_HOLD, banner_session(stream)).await;
        }
    }
}

async fn banner_session<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> std::io::Result<()> {
    let mut io = BufReader::new(io);
    io.get_mut()
        .write_all(b"220 lienthong-sim ESMTP\r\n")
        .await?;
    io.get_mut().flush().await?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        // Bounded line read: at most 1 KiB per line.
        let n = (&mut io).take(1024).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
        let answer: &[u8] = if cmd.starts_with("QUIT") {
            b"221 lienthong-sim closing\r\n"
        } else if cmd.starts_with("EHLO") || cmd.starts_with("HELO") || cmd.starts_with("NOOP") {
            b"250 lienthong-sim\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        io.get_mut().write_all(answer).await?;
        io.get_mut().flush().await?;
        if cmd.starts_with("QUIT") {
            return Ok(());
        }
    }
}
