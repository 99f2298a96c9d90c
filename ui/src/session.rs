//! Console sessions: sign-in with an API key, a session cookie, CSRF tokens, sign-out.
//!
//! A session lives in memory only, keyed by the SHA-256 of its token: nothing on disk, and a
//! leaked dump of the map gives no usable cookie. It ends after `session_idle` without use or
//! `session_max` after sign-in. Each session has its own CSRF token, which every `POST` must
//! carry (form field `csrf` or header `X-CSRF-Token`). The sign-in form itself is protected by
//! a double-submit token (cookie and form field).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::UiState;
use crate::layout;

pub const SESSION_COOKIE: &str = "fimlake_session";
const SIGNIN_COOKIE: &str = "fimlake_signin";
/// More live sessions than this: the least recently used one is ended.
const MAX_SESSIONS: usize = 10_000;
/// POST bodies of the console are forms; larger ones are refused.
const MAX_FORM_BYTES: usize = 1 << 20;

/// What a console user may do. `query` reads everything and responds to alerts; `admin` also
/// changes rules and other people's saved queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Query,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Query => "query",
            Role::Admin => "admin",
        }
    }
}

/// A key the server knows.
pub struct Verified {
    pub name: String,
    /// `None` for a key whose role cannot use the console (`ingest`).
    pub role: Option<Role>,
}

/// The server's API keys, as the console needs them (implemented by the binary's `Auth`).
pub trait KeyCheck: Send + Sync {
    /// Whether keys are configured; without them there is no sign-in.
    fn enabled(&self) -> bool;
    fn verify(&self, key: &str) -> Option<Verified>;
}

/// Who is using the console, handed to every page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: String,
    pub role: Role,
    pub csrf: String,
    /// False when the server has no keys (no sign-in, no sign-out).
    pub signed_in: bool,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

struct Session {
    viewer: Viewer,
    created: Instant,
    last_used: Instant,
}

pub struct Sessions {
    keys: Arc<dyn KeyCheck>,
    idle: Duration,
    max: Duration,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(keys: Arc<dyn KeyCheck>, idle: Duration, max: Duration) -> Sessions {
        Sessions { keys, idle, max, live: Mutex::default() }
    }

    /// Starts a session; returns its token (the cookie's value).
    fn start(&self, principal: String, role: Role, signed_in: bool) -> String {
        let token = random_token();
        let now = Instant::now();
        let viewer = Viewer { principal, role, csrf: random_token(), signed_in };
        let mut live = self.live.lock().expect("sessions lock");
        live.retain(|_, s| !self.expired(s, now));
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(digest(&token), Session { viewer, created: now, last_used: now });
        token
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) > self.idle || now.duration_since(s.created) > self.max
    }

    /// The session of `token`, if live; using it resets its idle time.
    fn touch(&self, token: &str) -> Option<Viewer> {
        let now = Instant::now();
        let mut live = self.live.lock().expect("sessions lock");
        let key = digest(token);
        let session = live.get_mut(&key)?;
        if self.expired(session, now) {
            live.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.viewer.clone())
    }

    fn end(&self, token: &str) -> Option<Viewer> {
        self.live.lock().expect("sessions lock").remove(&digest(token)).map(|s| s.viewer)
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// The middleware of every page: finds the session (or, without keys, starts an anonymous
/// one), checks the CSRF token of a `POST`, and hands the [`Viewer`] to the page.
pub async fn require(State(st): State<UiState>, req: Request, next: Next) -> Response {
    let token = cookie(req.headers(), SESSION_COOKIE).map(str::to_string);
    let viewer = token.as_deref().and_then(|t| st.sessions.touch(t));
    let (viewer, new_cookie) = match viewer {
        Some(v) => (v, None),
        None if !st.sessions.keys.enabled() => {
            let token = st.sessions.start("anonymous".into(), Role::Admin, false);
            let viewer = st.sessions.touch(&token).expect("just started");
            (viewer, Some(set_cookie(SESSION_COOKIE, &token, st.secure_cookies, None)))
        }
        None if req.method() == Method::GET => {
            let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let target = format!("/signin?next={}", layout::url_encode(next));
            return Redirect::to(&target).into_response();
        }
        None => return refuse(StatusCode::UNAUTHORIZED, "Sign in first: this session has ended or never began."),
    };
    let req = if req.method() == Method::POST {
        match check_csrf(req, &viewer.csrf).await {
            Ok(req) => req,
            Err(resp) => return resp,
        }
    } else {
        req
    };
    let mut req = req;
    req.extensions_mut().insert(viewer);
    let mut resp = next.run(req).await;
    if let Some(c) = new_cookie
        && let Ok(v) = header::HeaderValue::from_str(&c)
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A plain-text refusal (also read by scripts).
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_string()).into_response()
}

/// Reads the form body (bounded) and checks its `csrf` field, or the `X-CSRF-Token` header.
async fn check_csrf(req: Request, expected: &str) -> Result<Request, Response> {
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "The form is larger than 1 MiB."))?;
    let form_token = form_field(&bytes, "csrf");
    let presented = header_token.or(form_token);
    if presented.as_deref() != Some(expected) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or stale: reload the page and try again.",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[derive(Deserialize, Default)]
pub struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    failed: Option<String>,
}

/// `GET /signin`: the form (or, without keys, straight to the overview).
pub async fn sign_in_form(
    State(st): State<UiState>,
    axum::extract::Query(q): axum::extract::Query<SignInQuery>,
) -> Response {
    if !st.sessions.keys.enabled() {
        return Redirect::to("/").into_response();
    }
    let token = random_token();
    let next = safe_next(q.next.as_deref());
    let body = html! {
        main.signin {
            h1 { "fimlake" }
            p.muted { "File integrity monitoring console. Sign in with an API key of the query or admin role." }
            @if let Some(reason) = &q.failed {
                p.error role="alert" { (reason) }
            }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut resp = layout::bare("Sign in", body).into_response();
    let c = set_cookie(SIGNIN_COOKIE, &token, st.secure_cookies, Some(600));
    resp.headers_mut().append(header::SET_COOKIE, header::HeaderValue::from_str(&c).expect("ascii cookie"));
    resp
}

/// Only local paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// `POST /signin`: checks the key, starts a session, records the attempt in `AuditLog`.
pub async fn sign_in(State(st): State<UiState>, req: Request) -> Response {
    let address = client_address(&req);
    let expected = cookie(req.headers(), SIGNIN_COOKIE).map(str::to_string);
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "The form is larger than 1 MiB."),
    };
    if !st.sessions.keys.enabled() {
        return Redirect::to("/").into_response();
    }
    let presented = form_field(&bytes, "csrf");
    if expected.is_none() || presented != expected {
        return refuse(StatusCode::FORBIDDEN, "The sign-in form is stale: reload it and try again.");
    }
    let next = safe_next(form_field(&bytes, "next").as_deref());
    let key = form_field(&bytes, "key").unwrap_or_default();
    let verified = st.sessions.keys.verify(key.trim());
    let (principal, role, outcome) = match &verified {
        None => ("unknown".to_string(), None, Err("That key is not valid.")),
        Some(Verified { name, role: None }) => {
            (name.clone(), None, Err("That key has the ingest role, which cannot use the console."))
        }
        Some(Verified { name, role: Some(r) }) => (name.clone(), Some(*r), Ok(*r)),
    };
    match outcome {
        Ok(role) => {
            let token = st.sessions.start(principal.clone(), role, true);
            audit_access(&st, &principal, Some(role), "/signin", 303, "console sign-in", address).await;
            let mut resp = Redirect::to(&next).into_response();
            let c = set_cookie(SESSION_COOKIE, &token, st.secure_cookies, None);
            resp.headers_mut().append(header::SET_COOKIE, header::HeaderValue::from_str(&c).expect("ascii"));
            resp.headers_mut().append(
                header::SET_COOKIE,
                header::HeaderValue::from_str(&set_cookie(SIGNIN_COOKIE, "", st.secure_cookies, Some(0)))
                    .expect("ascii"),
            );
            resp
        }
        Err(reason) => {
            let detail = format!("console sign-in refused: {reason}");
            audit_access(&st, &principal, role, "/signin", 401, &detail, address).await;
            let target = format!("/signin?next={}&failed={}", layout::url_encode(&next), layout::url_encode(reason));
            Redirect::to(&target).into_response()
        }
    }
}

/// `POST /signout`.
pub async fn sign_out(State(st): State<UiState>, req: Request) -> Response {
    let address = client_address(&req);
    if let Some(viewer) = cookie(req.headers(), SESSION_COOKIE).and_then(|t| st.sessions.end(t)) {
        audit_access(&st, &viewer.principal, Some(viewer.role), "/signout", 303, "console sign-out", address).await;
    }
    let mut resp = Redirect::to(if st.sessions.keys.enabled() { "/signin" } else { "/" }).into_response();
    let c = set_cookie(SESSION_COOKIE, "", st.secure_cookies, Some(0));
    resp.headers_mut().append(header::SET_COOKIE, header::HeaderValue::from_str(&c).expect("ascii"));
    resp
}

fn client_address(req: &Request) -> Option<String> {
    req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.to_string())
}

/// One `AuditLog` row for a sign-in, a refused sign-in or a sign-out.
async fn audit_access(
    st: &UiState,
    principal: &str,
    role: Option<Role>,
    route: &str,
    status: u16,
    detail: &str,
    address: Option<String>,
) {
    let row = serde_json::json!({
        "Principal": principal,
        "Role": role.map(Role::as_str),
        "Method": "POST",
        "Route": route,
        "Url": route,
        "Status": status,
        "DurationMs": 0.0,
        "ClientAddress": address,
        "Detail": detail,
    });
    st.audit.record("AuditLog", vec![row]).await;
}

/// One `AuditLog` row for a console action (a query, an alert's state, a rule change).
pub async fn audit_action(st: &UiState, viewer: &Viewer, route: &str, status: u16, query: Option<&str>, detail: &str) {
    let row = serde_json::json!({
        "Principal": viewer.principal,
        "Role": viewer.role.as_str(),
        "Method": "POST",
        "Route": route,
        "Url": route,
        "Status": status,
        "DurationMs": 0.0,
        "QueryText": query,
        "Detail": detail,
    });
    st.audit.record("AuditLog", vec![row]).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoKeys;
    impl KeyCheck for NoKeys {
        fn enabled(&self) -> bool {
            true
        }
        fn verify(&self, _: &str) -> Option<Verified> {
            None
        }
    }

    #[test]
    fn sessions_end_when_idle_or_old_and_are_keyed_by_hash() {
        let s = Sessions::new(Arc::new(NoKeys), Duration::from_millis(50), Duration::from_secs(60));
        let token = s.start("ana".into(), Role::Query, true);
        assert_eq!(s.touch(&token).unwrap().principal, "ana");
        assert!(!s.live.lock().unwrap().keys().any(|k| hex::encode(k).contains(&token)));
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.touch(&token).is_none(), "idle session ended");
        let s = Sessions::new(Arc::new(NoKeys), Duration::from_secs(60), Duration::from_millis(50));
        let token = s.start("ana".into(), Role::Query, true);
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.touch(&token).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.touch(&token).is_none(), "absolute expiry despite use");
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/changes?x=1")), "/changes?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_and_form_fields_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; fimlake_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(form_field(b"x=1&csrf=a%2Bb+c", "csrf").as_deref(), Some("a+b c"));
        assert!(set_cookie("s", "v", true, None).contains("HttpOnly; SameSite=Strict; Secure"));
    }
}
