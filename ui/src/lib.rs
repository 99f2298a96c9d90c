//! fimlake's console: server-rendered HTML (maud) served by `fimlake serve` at `/`, for
//! analysts (overview, machines, changes, hunting), responders (alerts, their states) and
//! auditors (audit log, the PCI DSS 11.5 evidence report).
//!
//! Every page's data comes from the engine crates in-process: KQL through
//! [`fimlake_query::QueryEngine`] with bounded results, alerts and rules through
//! [`fimlake_alerting::Alerting`]. Every page is a whole document and every action a plain form
//! post, so there is no client framework: the only script is the console's own (charts with
//! the vendored uPlot, query history, small conveniences). The assets are embedded in the
//! binary; pages that are tables and links work without JavaScript.
//!
//! Sign-in ([`session`]) takes an API key of the `query` or `admin` role and gives a session
//! cookie; without keys configured (loopback development) everyone is `anonymous` with the admin
//! role. Every state-changing request carries the session's CSRF token.

// Page helpers return `Result<_, Response>`: the error is the page to answer (axum's idiom).
#![allow(clippy::result_large_err)]

mod assets;
mod data;
mod headers;
mod layout;
mod pages;
mod range;
mod saved;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use fimlake_alerting::Alerting;
use fimlake_alerting::audit::Audit;
use fimlake_query::QueryEngine;
use serde::{Deserialize, Serialize};

pub use session::{KeyCheck, Role, Verified};

/// `[ui]` in the server's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the console at `/` (default true).
    pub enabled: bool,
    /// A session not used for this long is signed out.
    #[serde(with = "fimlake_settings::duration")]
    pub session_idle: Duration,
    /// A session ends this long after its sign-in, used or not.
    #[serde(with = "fimlake_settings::duration")]
    pub session_max: Duration,
    /// A machine whose last heartbeat is older than this is shown as silent.
    #[serde(with = "fimlake_settings::duration")]
    pub silent_after: Duration,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: true,
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            silent_after: Duration::from_secs(15 * 60),
        }
    }
}

/// What the console's handlers share.
#[derive(Clone)]
pub struct UiState {
    pub(crate) engine: Arc<QueryEngine>,
    pub(crate) alerting: Arc<Alerting>,
    pub(crate) audit: Audit,
    pub(crate) config: UiConfig,
    pub(crate) sessions: Arc<session::Sessions>,
    pub(crate) saved: Arc<saved::SavedQueries>,
    /// Cookies get `Secure` when the server speaks TLS.
    pub(crate) secure_cookies: bool,
    /// The fleet's keys and group configurations, for the machine list (none: not shown).
    pub(crate) fleet: Option<Arc<fimlake_fleet::Fleet>>,
}

impl UiState {
    /// `data_dir` holds the saved queries (`<data_dir>/ui/saved-queries.json`).
    pub fn new(
        engine: Arc<QueryEngine>,
        alerting: Arc<Alerting>,
        keys: Arc<dyn KeyCheck>,
        config: UiConfig,
        data_dir: &std::path::Path,
        secure_cookies: bool,
    ) -> std::io::Result<UiState> {
        let saved = saved::SavedQueries::open(&data_dir.join("ui"))?;
        Ok(UiState {
            engine,
            audit: alerting.audit().clone(),
            alerting,
            sessions: Arc::new(session::Sessions::new(keys, config.session_idle, config.session_max)),
            config,
            saved: Arc::new(saved),
            secure_cookies,
            fleet: None,
        })
    }

    /// Shows the fleet's keys and configuration versions in the machine list.
    pub fn with_fleet(self, fleet: Arc<fimlake_fleet::Fleet>) -> UiState {
        UiState { fleet: Some(fleet), ..self }
    }
}

/// The console's routes. Every page but the sign-in form and the assets needs a session
/// ([`session::require`]); every response gets the security headers ([`headers::secure`]).
pub fn router(state: UiState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::overview::page))
        .route("/machines", get(pages::machines::list))
        .route("/machines/{computer}", get(pages::machines::page))
        .route("/changes", get(pages::changes::list))
        .route("/changes.csv", get(pages::export::csv))
        .route("/changes/{item}", get(pages::change::page))
        .route("/changes/{item}/history", get(pages::change::history_fragment))
        .route("/hunt", get(pages::hunt::page))
        .route("/hunt/saved", post(pages::hunt::save))
        .route("/hunt/saved/{id}/delete", post(pages::hunt::delete_saved))
        .route("/hunt.csv", get(pages::hunt::csv))
        .route("/alerts", get(pages::alerts::list))
        .route("/alerts/{id}", get(pages::alerts::page))
        .route("/alerts/{id}/state", post(pages::alerts::change_state))
        .route("/rules", get(pages::rules::list))
        .route("/rules/new", get(pages::rules::new_form))
        .route("/rules/edit/{name}", get(pages::rules::edit_form))
        .route("/rules/save", post(pages::rules::save))
        .route("/rules/preview", post(pages::rules::preview))
        .route("/rules/toggle/{name}", post(pages::rules::toggle))
        .route("/rules/delete/{name}", post(pages::rules::delete))
        .route("/deliveries", get(pages::deliveries::list))
        .route("/deliveries/retry/{id}", post(pages::deliveries::retry))
        .route("/audit", get(pages::audit::list))
        .route("/report", get(pages::report::page))
        .route("/signout", post(session::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), session::require));
    Router::new()
        .merge(pages)
        .route("/signin", get(session::sign_in_form).post(session::sign_in))
        .route("/assets/{file}", get(assets::serve))
        .with_state(state)
        .layer(axum::middleware::from_fn(headers::secure))
}
