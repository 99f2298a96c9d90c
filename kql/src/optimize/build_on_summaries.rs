//! The `kql_build_on_summaries` physical optimizer rule: a hash join builds its table from a
//! `summarize`'s result rather than from a table's rows, when the statistics cannot tell which
//! side is smaller.
//!
//! A hunt joins a table's rows with a summary of another (`ConfigurationChange | join
//! (Heartbeat | summarize arg_max(TimeGenerated, ComputerIP) by Computer) on Computer`). The
//! files tell their row counts but not how many distinct keys a column holds, so DataFusion
//! estimates a grouped aggregate at as many rows as its input and keeps the join's left side,
//! millions of filtered changes, as the side it builds a hash table of, probing it with a
//! hundred heartbeats. A summary by keys has one row per key: this rule builds on it instead,
//! unless the rows side is itself small. Only where DataFusion's own join selection left a
//! join collecting its left side, and only for join kinds that can be swapped (the swap keeps
//! the output's columns in order).

use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// A rows side estimated at most this many rows stays the build side: a `datatable` or a
/// narrow filter may well be smaller than a summary.
const SMALL_SIDE_ROWS: usize = 10_000;

#[derive(Debug, Default)]
pub struct BuildOnSummaries;

impl PhysicalOptimizerRule for BuildOnSummaries {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            if !builds_on_rows_probing_a_summary(join)? {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(join.swap_inputs(PartitionMode::CollectLeft)?))
        })
        .data()
    }

    fn name(&self) -> &str {
        "kql_build_on_summaries"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `join` collects a large rows side (its left) and probes it with a summary.
fn builds_on_rows_probing_a_summary(join: &HashJoinExec) -> Result<bool> {
    if *join.partition_mode() != PartitionMode::CollectLeft || !join.join_type().supports_swap() {
        return Ok(false);
    }
    let (left, right) = (join.left(), join.right());
    if !is_summary(right) || is_summary(left) {
        return Ok(false);
    }
    let statistics = StatisticsContext::new().compute(left.as_ref(), &StatisticsArgs::new())?;
    let small = match statistics.num_rows {
        Precision::Exact(rows) | Precision::Inexact(rows) => rows <= SMALL_SIDE_ROWS,
        Precision::Absent => false,
    };
    Ok(!small)
}

/// Whether `plan` ends in a grouped aggregate's result: one row per group, seen through the
/// operators that keep or drop rows without adding any.
fn is_summary(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        return *aggregate.mode() != AggregateMode::Partial && !aggregate.group_expr().is_empty();
    }
    let passes_rows_through = plan.is::<ProjectionExec>()
        || plan.is::<FilterExec>()
        || plan.is::<CoalescePartitionsExec>()
        || plan.is::<RepartitionExec>();
    match plan.children().as_slice() {
        [only] if passes_rows_through => is_summary(only),
        _ => false,
    }
}
