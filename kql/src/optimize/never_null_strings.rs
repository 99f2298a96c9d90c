//! Filters read string columns plainly where Kusto's never-null strings cannot change the rows.
//!
//! Kusto strings are never null, so a scan reads every string column as `coalesce(column, '')`
//! (`plan/sources.rs`). A filter keeps a row only when its predicate is true. For a predicate
//! that is false on `''` and false or null on null, the coalesce therefore changes nothing: the
//! row is dropped either way. Without it, DataFusion pushes the plain column into the scan,
//! where file and row-group statistics and the Parquet decoder can use it, and no copy of the
//! column is made for the comparison.
//!
//! Only the leaves of a filter's `and`/`or` tree are rewritten: around them, a false turned into
//! a null still drops the row (a `not`, `case` or `is null` could turn it into a true). A leaf
//! is rewritten only when every column it reads is inside the same `coalesce(column, '')`; it is
//! then evaluated as a constant on `''` and on null, which proves the two conditions.

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{BinaryExpr, Case, Expr, LogicalPlan, Operator};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Strips `coalesce(column, '')` from filter predicates where it cannot change which rows pass.
#[derive(Debug, Default)]
pub struct NeverNullStrings;

impl OptimizerRule for NeverNullStrings {
    fn name(&self) -> &str {
        "kql_never_null_strings"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Filter(mut filter) => {
                let predicate = kept_when_true(filter.predicate)?;
                filter.predicate = predicate.data;
                Ok(Transformed::new_transformed(LogicalPlan::Filter(filter), predicate.transformed))
            }
            LogicalPlan::TableScan(mut scan) => {
                let mut changed = false;
                let mut filters = Vec::with_capacity(scan.filters.len());
                for filter in scan.filters {
                    let filter = kept_when_true(filter)?;
                    changed |= filter.transformed;
                    filters.push(filter.data);
                }
                scan.filters = filters;
                Ok(Transformed::new_transformed(LogicalPlan::TableScan(scan), changed))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

/// A filter's `predicate` with each leaf of its `and`/`or` tree read plainly where it can be.
fn kept_when_true(predicate: Expr) -> Result<Transformed<Expr>> {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::And | Operator::Or), right }) => {
            let left = kept_when_true(*left)?;
            let right = kept_when_true(*right)?;
            let changed = left.transformed || right.transformed;
            let both = Expr::BinaryExpr(BinaryExpr::new(Box::new(left.data), op, Box::new(right.data)));
            Ok(Transformed::new_transformed(both, changed))
        }
        leaf => Ok(plain_leaf(leaf)),
    }
}

/// `leaf` on the plain column, when it is false on `''` and false or null on null.
fn plain_leaf(leaf: Expr) -> Transformed<Expr> {
    let Some((column, empty)) = first_never_null_column(&leaf) else {
        return Transformed::no(leaf);
    };
    let on_empty = constant(replaced(leaf.clone(), &column, Expr::Literal(empty.clone(), None)));
    let on_null = constant(replaced(leaf.clone(), &column, string_null(&empty)));
    if on_empty != Some(Some(false)) || !matches!(on_null, Some(None | Some(false))) {
        return Transformed::no(leaf);
    }
    Transformed::yes(replaced(leaf, &column, Expr::Column(column.clone())))
}

/// The column of the first `coalesce(column, '')` in `e`, with its `''` (see
/// [`never_null_column`]).
fn first_never_null_column(e: &Expr) -> Option<(Column, ScalarValue)> {
    let mut found = None;
    e.apply(|node| {
        found = never_null_column(node).map(|(column, empty)| (column.clone(), empty.clone()));
        Ok(if found.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })
    .expect("the visit cannot fail");
    found
}

/// `column` and its `''` if `e` is `coalesce(column, '')`, or the `case` DataFusion's
/// simplifier makes of it (`case when column is not null then column else '' end`). The `''` is
/// of the column's string type (`Utf8View` for a stored table's column, `Utf8` for a computed
/// one).
fn never_null_column(e: &Expr) -> Option<(&Column, &ScalarValue)> {
    match e {
        Expr::ScalarFunction(call) if call.func.name() == "coalesce" => match call.args.as_slice() {
            [Expr::Column(column), otherwise] => Some((column, empty_string(otherwise)?)),
            _ => None,
        },
        Expr::Case(Case { expr: None, when_then_expr, else_expr: Some(otherwise) }) => {
            let empty = empty_string(otherwise)?;
            match when_then_expr.as_slice() {
                [(when, then)] => match (when.as_ref(), then.as_ref()) {
                    (Expr::IsNotNull(tested), Expr::Column(column)) if **tested == Expr::Column(column.clone()) => {
                        Some((column, empty))
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// The literal of `e` if it is an empty string, of any of Arrow's string types.
fn empty_string(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(
            value @ (ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s))),
            _,
        ) if s.is_empty() => Some(value),
        _ => None,
    }
}

/// `e` with every `coalesce(column, '')` replaced by `by`.
fn replaced(e: Expr, column: &Column, by: Expr) -> Expr {
    e.transform_up(|node| {
        Ok(match never_null_column(&node) {
            Some((c, _)) if c == column => Transformed::yes(by.clone()),
            _ => Transformed::no(node),
        })
    })
    .expect("the rewrite cannot fail")
    .data
}

/// A null of the string type of `like`.
fn string_null(like: &ScalarValue) -> Expr {
    let null = ScalarValue::try_from(like.data_type()).expect("a string type has a null");
    Expr::Literal(null, None)
}

/// The value of `e` when it reads no column and folds to a boolean constant (`Some(None)`: null).
fn constant(e: Expr) -> Option<Option<bool>> {
    if !e.column_refs().is_empty() {
        return None;
    }
    match ExprSimplifier::new(SimplifyContext::default()).simplify(e).ok()? {
        Expr::Literal(ScalarValue::Boolean(value), _) => Some(value),
        Expr::Literal(ScalarValue::Null, _) => Some(None),
        _ => None,
    }
}
