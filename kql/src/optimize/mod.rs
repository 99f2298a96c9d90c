//! DataFusion optimizer rules that know KQL's semantics, for the sessions that run KQL plans.

mod build_on_summaries;
mod never_null_strings;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;

pub use build_on_summaries::BuildOnSummaries;
pub use never_null_strings::NeverNullStrings;

/// A session state for running KQL plans: DataFusion's defaults with [`optimizer_rules`] and
/// [`physical_optimizer_rules`]. Add the configuration and runtime, then `build()`.
pub fn session_state() -> SessionStateBuilder {
    SessionStateBuilder::new()
        .with_default_features()
        .with_optimizer_rules(optimizer_rules())
        .with_physical_optimizer_rules(physical_optimizer_rules())
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

/// DataFusion's physical optimizer rules with fimlake's: [`BuildOnSummaries`] right after
/// `join_selection`, which it corrects where the statistics could not tell, and before the
/// rules that add repartitions and the joins' dynamic filters.
pub fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    let after_join_selection = rules.iter().position(|r| r.name() == "join_selection").map_or(0, |i| i + 1);
    assert!(after_join_selection > 0, "DataFusion's physical optimizer has a join_selection rule");
    rules.insert(after_join_selection, Arc::new(BuildOnSummaries));
    rules
}
