//! API keys and roles: who may call which endpoint.
//!
//! Keys are random (`flk_` + 64 hex digits) and stored only as their SHA-256: in the
//! configuration (`hash = "sha256:<hex>"`, read at start) or in the data directory's
//! `fleet.json` (made, rotated and revoked at runtime through `/v1/keys`, or by enrollment;
//! see `fimlake_fleet`). A leaked configuration or data directory gives no key. A request
//! presents `Authorization: Bearer <key>`; its hash is compared with every key's hash in
//! constant time, the configuration's first. Roles:
//!
//! | role     | may                                                                        |
//! |----------|----------------------------------------------------------------------------|
//! | `ingest` | post records (optionally only for one `computer`, only to some `tables`)   |
//! | `query`  | run queries, read rules, alerts, notifications and metrics                 |
//! | `admin`  | what `query` may, manage alert rules, keys and enrollment tokens           |
//!
//! Any key may list the tables' schemas; `/healthz` and `/readyz` are open; `/v1/enroll` takes
//! an enrollment token instead of a key (and is logged). No role may do what another is for: an
//! `admin` key cannot post records, an `ingest` key cannot read them.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use fimlake_fleet::Role;
use fimlake_fleet::keys::{KeySource, KeyState, KeyView};

/// `[[auth.keys]]` in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Who holds the key (shown in logs and the audit trail).
    pub name: String,
    /// `sha256:<64 hex digits>`, as `fimlake keys create` prints it.
    pub hash: String,
    pub role: Role,
    /// `ingest` only: every record posted with this key must have this `Computer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<String>,
    /// `ingest` only: the tables this key may post to (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    /// Requests per second this key may make on average (default: no limit); past it, `429`
    /// with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Requests allowed at once above that rate (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub keys: Vec<KeyConfig>,
}

type Limiter = governor::DefaultDirectRateLimiter;

struct Key {
    config: KeyConfig,
    hash: [u8; 32],
    limiter: Option<Limiter>,
}

/// The configured keys, checked, and the fleet's keys made at runtime.
#[derive(Default)]
pub struct Auth {
    keys: Vec<Key>,
    fleet: Option<std::sync::Arc<fimlake_fleet::Fleet>>,
}

/// The caller a presented key names.
struct Caller<'a> {
    name: String,
    role: Role,
    computer: Option<String>,
    tables: Option<Vec<String>>,
    /// The configuration's rate limit of the key, if it has one.
    limiter: Option<(&'a Limiter, u32)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| &k.config.name)).finish()
    }
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Open,
    AnyKey,
    /// No key: an enrollment token in the body; logged.
    Enroll,
    Ingest,
    Read,
    Admin,
}

fn need(method: &Method, route: &str) -> Need {
    match route {
        "/healthz" | "/readyz" => Need::Open,
        "/v1/tables" | "/v1/tables/{table}" | "/v1/workspace" => Need::AnyKey,
        "/v1/tables/{table}/records" | "/dataCollectionRules/{rule}/streams/{stream}" => Need::Ingest,
        "/v1/enroll" => Need::Enroll,
        "/v1/alert-rules/{name}" if method == Method::PUT || method == Method::DELETE => Need::Admin,
        "/v1/keys"
        | "/v1/keys/{name}"
        | "/v1/keys/{name}/rotate"
        | "/v1/machines/{computer}/reenrollment"
        | "/v1/enroll-tokens"
        | "/v1/enroll-tokens/{id}"
        | "/v1/agent-config/{group}"
        | "/v1/action-groups"
        | "/v1/action-groups/{name}" => Need::Admin,
        // An agent fetches its group's configuration with its ingest key.
        "/v1/agent-config" => Need::Ingest,
        "/v1/alerts/{id}/{action}" | "/v1/notifications/{id}/retry" => Need::Read,
        "/metrics"
        | "/v1/workspaces/{workspace}/query"
        | "/workspaces/{workspace}/query"
        | "/v1/workspaces/{workspace}/explain"
        | "/v1/alert-rules"
        | "/v1/alert-rules/{name}"
        | "/v1/alerts"
        | "/v1/cluster"
        | "/v1/machines"
        | "/v1/notifications" => Need::Read,
        // Unknown routes answer 404, but only to a caller with a key.
        _ => Need::AnyKey,
    }
}

fn allows(role: Role, need: Need) -> bool {
    match need {
        Need::Open | Need::AnyKey | Need::Enroll => true,
        Need::Ingest => role == Role::Ingest,
        Need::Read => matches!(role, Role::Query | Role::Admin),
        Need::Admin => role == Role::Admin,
    }
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key and its configuration entry.
pub fn create(name: &str, role: Role, computer: Option<String>, tables: Option<Vec<String>>) -> (String, KeyConfig) {
    let key = format!("flk_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let hash = format!("sha256:{}", hex::encode(hash_key(&key)));
    let config =
        KeyConfig { name: name.to_string(), hash, role, computer, tables, requests_per_second: None, burst: None };
    (key, config)
}

impl Auth {
    /// Checks the configured keys: hash format, unique names and hashes, bindings only on
    /// ingest keys, tables that exist.
    pub fn new(cfg: &AuthConfig, tables: &[&str]) -> anyhow::Result<Auth> {
        let mut keys: Vec<Key> = Vec::new();
        for k in &cfg.keys {
            let hex_part = k.hash.strip_prefix("sha256:").unwrap_or("");
            let bytes = hex::decode(hex_part).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                anyhow::anyhow!(
                    "[[auth.keys]] '{}': hash must be 'sha256:' and 64 hex digits (from `fimlake keys create`)",
                    k.name
                )
            })?;
            let hash: [u8; 32] = bytes.try_into().expect("checked length");
            if keys.iter().any(|o| o.config.name == k.name) {
                anyhow::bail!("[[auth.keys]]: two keys are named '{}'", k.name);
            }
            if keys.iter().any(|o| o.hash == hash) {
                anyhow::bail!("[[auth.keys]] '{}': the same key is configured twice", k.name);
            }
            fimlake_fleet::keys::check_scope(k.role, k.computer.as_deref(), k.tables.as_deref(), tables)
                .map_err(|e| anyhow::anyhow!("[[auth.keys]] '{}': {e}", k.name))?;
            let limiter = match (k.requests_per_second, k.burst) {
                (None, None) => None,
                (rate, burst) => {
                    let rate = rate.and_then(std::num::NonZeroU32::new).ok_or_else(|| {
                        anyhow::anyhow!("[[auth.keys]] '{}': requests_per_second must be at least 1", k.name)
                    })?;
                    let burst = std::num::NonZeroU32::new(burst.unwrap_or(rate.get()))
                        .ok_or_else(|| anyhow::anyhow!("[[auth.keys]] '{}': burst must be at least 1", k.name))?;
                    Some(governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst)))
                }
            };
            keys.push(Key { config: k.clone(), hash, limiter });
        }
        Ok(Auth { keys, fleet: None })
    }

    /// Also accepts the keys of `fleet` (made at runtime).
    pub fn with_fleet(self, fleet: std::sync::Arc<fimlake_fleet::Fleet>) -> Auth {
        Auth { fleet: Some(fleet), ..self }
    }

    /// The configuration's keys as the fleet API lists them (read-only there).
    pub fn configured_views(cfg: &AuthConfig) -> Vec<KeyView> {
        cfg.keys
            .iter()
            .map(|k| KeyView {
                name: k.name.clone(),
                role: k.role,
                computer: k.computer.clone(),
                tables: k.tables.clone(),
                group: None,
                created: None,
                last_used: None,
                state: KeyState::Active,
                source: KeySource::Configuration,
            })
            .collect()
    }

    /// Whether requests need a key: once any key exists, in the configuration or made at runtime.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty() || self.fleet.as_ref().is_some_and(|f| f.has_active_keys())
    }

    /// The configured key whose hash matches `presented`; every configured hash is compared,
    /// in constant time.
    fn find_configured(&self, presented: &str) -> Option<&Key> {
        let h = hash_key(presented);
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.hash.ct_eq(&h)) {
                found = Some(k);
            }
        }
        found
    }

    /// The caller `presented` names: a configured key, else an active key of the fleet.
    fn find(&self, presented: &str) -> Option<Caller<'_>> {
        if let Some(k) = self.find_configured(presented) {
            return Some(Caller {
                name: k.config.name.clone(),
                role: k.config.role,
                computer: k.config.computer.clone(),
                tables: k.config.tables.clone(),
                limiter: k.limiter.as_ref().map(|l| (l, k.config.requests_per_second.unwrap_or_default())),
            });
        }
        let grant = self.fleet.as_ref()?.find(presented)?;
        Some(Caller {
            name: grant.name,
            role: grant.role,
            computer: grant.computer,
            tables: grant.tables,
            limiter: None,
        })
    }
}

/// The console signs in with the same keys: `query` and `admin` keys may, `ingest` keys may not.
impl fimlake_ui::KeyCheck for Auth {
    fn enabled(&self) -> bool {
        Auth::enabled(self)
    }

    fn verify(&self, key: &str) -> Option<fimlake_ui::Verified> {
        self.find(key).map(|k| fimlake_ui::Verified {
            name: k.name,
            role: match k.role {
                Role::Ingest => None,
                Role::Query => Some(fimlake_ui::Role::Query),
                Role::Admin => Some(fimlake_ui::Role::Admin),
            },
        })
    }
}

/// Azure's error shape.
fn deny(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp =
        (status, axum::Json(serde_json::json!({"error": {"code": code, "message": message}}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    resp
}

/// What the middleware needs: the keys and the audit trail's writer.
#[derive(Clone)]
pub struct Guard {
    pub auth: std::sync::Arc<Auth>,
    pub audit: fimlake_alerting::audit::Audit,
    /// Every request body must have arrived within this time.
    pub body_read_timeout: std::time::Duration,
}

/// Bodies read for the audit log (queries, rule changes) are capped at this size.
pub const MAX_LOGGED_BODY: usize = 1 << 20;

/// The middleware: authenticates the caller, checks its role against the route, hands ingest
/// keys' bindings to the ingestion API, and records the call in `AuditLog`.
pub async fn check(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("", |p| p.as_str()).to_string();
    let need = need(req.method(), &route);
    if need == Need::Open {
        return next.run(req).await;
    }
    let mut entry = serde_json::json!({
        "Method": req.method().as_str(),
        "Route": route,
        "Url": req.uri().path_and_query().map_or("", |p| p.as_str()),
        "ClientAddress": req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string()),
        "Principal": "anonymous",
    });
    let (parts, body) = req.into_parts();
    let mut req = Request::from_parts(parts, fimlake_ingest::with_deadline(body, guard.body_read_timeout));
    if let Some(denied) = admit(&guard, &mut req, need, &mut entry) {
        log(&guard, entry, denied.status(), started).await;
        return denied;
    }
    // The text of queries and rule changes goes into the log: read the body (bounded) and put it
    // back.
    let req = match capture_body(req, &route, &mut entry).await {
        Ok(req) => req,
        Err(denied) => {
            log(&guard, entry, denied.status(), started).await;
            return denied;
        }
    };
    let resp = next.run(req).await;
    if let Some(note) = resp.extensions().get::<fimlake_fleet::api::AuditNote>() {
        entry["Detail"] = note.detail.clone().into();
        if let Some(principal) = &note.principal {
            entry["Principal"] = principal.clone().into();
        }
    }
    // What ingest keys do unrefused (record posts, an agent's configuration polls, answered
    // 2xx or 304) has its own trail (the records) or none worth a row each; refusals are logged.
    let routine_ingest = need == Need::Ingest && resp.status().as_u16() < 400;
    // Scrapes of /metrics are not worth a row each.
    if !routine_ingest && route != "/metrics" {
        if let Some(rows) = resp.headers().get(fimlake_query::api::ROWS_HEADER).and_then(|v| v.to_str().ok()) {
            entry["Rows"] = rows.parse::<u64>().ok().into();
        }
        log(&guard, entry, resp.status(), started).await;
    }
    resp
}

/// Authenticates the caller (when keys are configured) and checks its role and rate limit;
/// hands the principal, and an ingest key's bindings, to the handlers. `Some` is the refusal.
fn admit(guard: &Guard, req: &mut Request, need: Need, entry: &mut serde_json::Value) -> Option<Response> {
    if !guard.auth.enabled() || need == Need::Enroll {
        req.extensions_mut().insert(fimlake_alerting::api::Principal("anonymous".into()));
        return None;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(key) = presented.and_then(|p| guard.auth.find(p)) else {
        let resp =
            deny(StatusCode::UNAUTHORIZED, "AuthorizationRequiredError", "Valid authentication was not provided");
        entry["Principal"] = "unknown".into();
        entry["Detail"] = if presented.is_some() { "unknown key" } else { "no key" }.into();
        return Some(resp);
    };
    entry["Principal"] = key.name.clone().into();
    entry["Role"] = serde_json::to_value(key.role).expect("a role serialises");
    if !allows(key.role, need) {
        let resp = deny(
            StatusCode::FORBIDDEN,
            "InsufficientAccessError",
            &format!(
                "The provided credentials have insufficient access to perform the requested operation (key '{}' has role {:?})",
                key.name, key.role
            ),
        );
        entry["Detail"] = "role does not allow this".into();
        return Some(resp);
    }
    if let Some((limiter, per_second)) = key.limiter
        && let Err(not_until) = limiter.check()
    {
        use governor::clock::Clock;
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut resp = deny(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!("key '{}' is limited to {} requests per second; retry after {secs}s", key.name, per_second),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        entry["Detail"] = "rate limit".into();
        return Some(resp);
    }
    req.extensions_mut().insert(fimlake_alerting::api::Principal(key.name.clone()));
    req.extensions_mut().insert(fimlake_fleet::api::CallerKey(key.name.clone()));
    if key.role == Role::Ingest {
        req.extensions_mut().insert(fimlake_ingest::IngestGrant {
            key: key.name,
            computer: key.computer,
            tables: key.tables,
        });
    }
    None
}

/// The text of queries and rule changes goes into the log: reads the body (bounded) into
/// `entry` and puts it back. `Err` is the refusal of a body too large or too slow.
async fn capture_body(req: Request, route: &str, entry: &mut serde_json::Value) -> Result<Request, Response> {
    let wants_body = matches!(
        route,
        "/v1/workspaces/{workspace}/query" | "/workspaces/{workspace}/query" | "/v1/workspaces/{workspace}/explain"
    ) && req.method() == Method::POST
        || route == "/v1/alert-rules/{name}" && req.method() == Method::PUT
        || route == "/v1/alerts/{id}/{action}";
    if wants_body {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_LOGGED_BODY).await {
            Ok(b) => b,
            Err(e) => {
                let resp = if fimlake_ingest::is_body_timeout(&e) {
                    deny(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", &e.to_string())
                } else {
                    deny(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestTooLarge",
                        &format!("the request body is over {MAX_LOGGED_BODY} bytes"),
                    )
                };
                return Err(resp);
            }
        };
        if route.contains("alert-rules") || route.starts_with("/v1/alerts/") {
            entry["Detail"] = String::from_utf8_lossy(&bytes).into_owned().into();
        } else if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            entry["QueryText"] = v["query"].clone();
        }
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    } else if route.ends_with("/query") {
        let q = req.uri().query().unwrap_or("");
        let text = url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "query").map(|(_, v)| v.into_owned());
        entry["QueryText"] = text.into();
    }
    Ok(req)
}

/// Appends one `AuditLog` row, off the request's path.
async fn log(guard: &Guard, mut entry: serde_json::Value, status: StatusCode, started: Instant) {
    entry["Status"] = status.as_u16().into();
    entry["DurationMs"] = (started.elapsed().as_secs_f64() * 1000.0).into();
    let audit = guard.audit.clone();
    tokio::spawn(async move { audit.record("AuditLog", vec![entry]).await });
}

/// Whether the server may listen on `listen`: a non-loopback address needs API keys and TLS
/// (keys sent in clear text are keys given away), unless `insecure`.
pub fn check_exposure(listen: std::net::SocketAddr, auth: &Auth, tls: bool, insecure: bool) -> anyhow::Result<()> {
    if listen.ip().is_loopback() || insecure || auth.enabled() && tls {
        return Ok(());
    }
    let missing = match (auth.enabled(), tls) {
        (false, false) => "API keys and TLS",
        (false, true) => "API keys",
        _ => "TLS",
    };
    anyhow::bail!(
        "refusing to listen on {listen} without {missing}: anyone who reaches it could post records and read every \
         change. Create keys with `fimlake keys create --role ingest|query|admin` (under [[auth.keys]]) and a \
         certificate ([tls] cert_file, key_file; `fimlake certs self-signed` for a test), listen on a loopback \
         address, or pass --insecure to accept the risk"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_exactly_its_part() {
        let routes = [
            (Method::POST, "/v1/tables/{table}/records", [true, false, false]),
            (Method::POST, "/dataCollectionRules/{rule}/streams/{stream}", [true, false, false]),
            (Method::POST, "/v1/workspaces/{workspace}/query", [false, true, true]),
            (Method::GET, "/v1/alert-rules", [false, true, true]),
            (Method::PUT, "/v1/alert-rules/{name}", [false, false, true]),
            (Method::DELETE, "/v1/alert-rules/{name}", [false, false, true]),
            (Method::GET, "/metrics", [false, true, true]),
            (Method::GET, "/v1/tables", [true, true, true]),
            (Method::POST, "/v1/alerts/{id}/{action}", [false, true, true]),
            (Method::POST, "/v1/notifications/{id}/retry", [false, true, true]),
            (Method::GET, "/v1/keys", [false, false, true]),
            (Method::POST, "/v1/keys", [false, false, true]),
            (Method::DELETE, "/v1/keys/{name}", [false, false, true]),
            (Method::POST, "/v1/keys/{name}/rotate", [false, false, true]),
            (Method::POST, "/v1/enroll-tokens", [false, false, true]),
            (Method::DELETE, "/v1/enroll-tokens/{id}", [false, false, true]),
            (Method::POST, "/v1/machines/{computer}/reenrollment", [false, false, true]),
            (Method::PUT, "/v1/agent-config/{group}", [false, false, true]),
            (Method::GET, "/v1/agent-config/{group}", [false, false, true]),
            (Method::GET, "/v1/agent-config", [true, false, false]),
            (Method::GET, "/v1/machines", [false, true, true]),
            (Method::PUT, "/v1/action-groups/{name}", [false, false, true]),
            (Method::GET, "/v1/action-groups", [false, false, true]),
        ];
        for (method, route, expected) in routes {
            let got = [Role::Ingest, Role::Query, Role::Admin].map(|r| allows(r, need(&method, route)));
            assert_eq!(got, expected, "{method} {route}");
        }
        assert_eq!(need(&Method::GET, "/healthz"), Need::Open);
        assert_eq!(need(&Method::POST, "/v1/enroll"), Need::Enroll);
    }

    #[test]
    fn keys_are_stored_hashed_and_checked() {
        let (key, cfg) = create("web1", Role::Ingest, Some("web1".into()), None);
        assert!(key.starts_with("flk_") && key.len() == 68);
        assert!(!cfg.hash.contains(&key[4..]));
        let auth = Auth::new(&AuthConfig { keys: vec![cfg.clone()] }, &["Heartbeat"]).unwrap();
        assert_eq!(auth.find(&key).unwrap().name, "web1");
        assert!(auth.find("flk_wrong").is_none());
        let bad = KeyConfig { hash: "md5:00".into(), ..cfg.clone() };
        assert!(Auth::new(&AuthConfig { keys: vec![bad] }, &[]).unwrap_err().to_string().contains("sha256"));
        let bound_query = KeyConfig { role: Role::Query, ..cfg.clone() };
        assert!(Auth::new(&AuthConfig { keys: vec![bound_query] }, &[]).is_err());
        let unknown_table = KeyConfig { tables: Some(vec!["Nope".into()]), ..cfg };
        assert!(Auth::new(&AuthConfig { keys: vec![unknown_table] }, &["Heartbeat"]).is_err());
    }

    #[test]
    fn without_keys_only_loopback_unless_insecure() {
        let none = Auth::default();
        let public = "0.0.0.0:8080".parse().unwrap();
        assert!(check_exposure("127.0.0.1:8080".parse().unwrap(), &none, false, false).is_ok());
        assert!(check_exposure("[::1]:8080".parse().unwrap(), &none, false, false).is_ok());
        let e = check_exposure(public, &none, false, false).unwrap_err();
        assert!(e.to_string().contains("without API keys and TLS") && e.to_string().contains("--insecure"), "{e}");
        assert!(check_exposure(public, &none, false, true).is_ok());
        let (_, k) = create("q", Role::Query, None, None);
        let with_keys = Auth::new(&AuthConfig { keys: vec![k] }, &[]).unwrap();
        assert!(check_exposure(public, &with_keys, false, false).unwrap_err().to_string().contains("without TLS"));
        assert!(check_exposure(public, &none, true, false).unwrap_err().to_string().contains("without API keys:"));
        assert!(check_exposure("10.0.0.5:8080".parse().unwrap(), &with_keys, true, false).is_ok());
    }
}
