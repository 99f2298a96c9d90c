//! fimlake's alert rules: a saved KQL query on a schedule, a condition, and the action groups
//! to notify.
//!
//! - [`rule`]: rule and action-group files, their validation (`fimlake rules validate DIR`).
//! - [`engine`]: [`Alerting`], which schedules rules ([`schedule`]), evaluates them over
//!   gapless windows, keeps their state ([`state`]) and writes notifications ([`notify`]) to the
//!   durable [`outbox`], which [`deliver`] sends by webhook and email.
//! - [`audit`]: evaluations, alerts and deliveries as rows of queryable tables; [`api`]: the
//!   `/v1/alert-rules` and `/v1/alerts` HTTP API; [`metrics`].

pub mod action_groups;
pub mod api;
pub mod audit;
pub mod condition;
pub mod deliver;
pub mod engine;
mod evaluation;
pub mod gate;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod place;
pub mod preview;
pub mod response;
pub mod rule;
pub mod schedule;
pub mod state;
pub mod store;

pub use engine::{Alerting, AlertingConfig, AlertingError, Report};
pub use rule::{ActionGroup, Condition, LoadError, Rule, RuleSet, load_dir};
