//! DataFusion optimizer rules that know KQL's semantics, for the sessions that run KQL plans.

mod never_null_strings;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::optimizer::{Optimizer, OptimizerRule};

pub use never_null_strings::NeverNullStrings;

/// A session state for running KQL plans: DataFusion's defaults with [`optimizer_rules`]. Add
/// the configuration and runtime, then `build()`.
pub fn session_state() -> SessionStateBuilder {
    SessionStateBuilder::new().with_default_features().with_optimizer_rules(optimizer_rules())
}

/// DataFusion's optimizer rules with fimlake's: [`NeverNullStrings`] right after
/// `push_down_filter`, so that it sees the filters pushed next to their scans before
/// `common_sub_expression_eliminate` can move a repeated `coalesce` out of them.
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    let after_push_down = rules.iter().position(|r| r.name() == "push_down_filter").map_or(rules.len(), |i| i + 1);
    rules.insert(after_push_down, Arc::new(NeverNullStrings));
    rules
}
