//! fimlake's alert rules: a saved KQL query on a schedule, a condition, and the action groups
//! to notify ([`rule`]). Rules live in TOML files in a rules directory, one rule per file, with
//! the action groups in `action-groups.toml` beside them; [`rule::load_dir`] reads and
//! validates them all (the query must compile against the tables' schemas), which is what
//! `fimlake rules validate DIR` runs.

pub mod rule;

pub use rule::{ActionGroup, Condition, LoadError, Rule, RuleSet, load_dir};
