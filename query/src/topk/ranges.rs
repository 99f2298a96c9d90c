//! The filter a first pass's keys add to the query: ranges of the key that hold every row of
//! the answer, split where the keys are furthest apart, so the scan skips the files and row
//! groups between them by their statistics (a rare file's history: five changes over a month
//! read five row groups, not the month).

use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::disjunction;
use datafusion::logical_expr::{Expr, lit};

/// At most this many ranges: each is two comparisons evaluated on the rows of every row group
/// read, and DataFusion's pruning reads each against the statistics.
pub const MAX_RANGES: usize = 16;

/// A filter every row of the answer passes. `keys` are the keys of the answer's rows in sort
/// order (the first is the first row's), none null. It stops at the last key (rows tied with
/// it pass) and is open past the first: rows that arrived since the first pass with a key
/// beyond every key read pass too, as the plain top-k over the newer rows would take them.
pub fn covering(key: &Expr, keys: &[ScalarValue], ascending: bool) -> Expr {
    assert!(!keys.is_empty(), "a first pass with no key bounds nothing");
    debug_assert!(keys.iter().all(|k| !k.is_null()), "null keys sort apart from every range");
    // `up_to(v)`: at or before `v` in sort order; `from(v)`: at or after it.
    let up_to =
        |v: &ScalarValue| if ascending { key.clone().lt_eq(lit(v.clone())) } else { key.clone().gt_eq(lit(v.clone())) };
    let from =
        |v: &ScalarValue| if ascending { key.clone().gt_eq(lit(v.clone())) } else { key.clone().lt_eq(lit(v.clone())) };
    let through_last_key = up_to(&keys[keys.len() - 1]);
    let groups = groups(keys, MAX_RANGES);
    if groups.len() == 1 {
        return through_last_key;
    }
    let ranges = groups.iter().enumerate().map(|(index, (first, last))| {
        let end = up_to(&keys[*last]);
        if index == 0 { end } else { from(&keys[*first]).and(end) }
    });
    through_last_key.and(disjunction(ranges).expect("two groups or more"))
}

/// `keys` split into at most `most` groups of consecutive keys, as (first, last) indexes, cut
/// at the gaps between neighbours wider than the keys' span over `most` (fewer than `most` gaps
/// can be that wide; a narrower gap skips too little to pay for its comparisons, and evenly
/// spread keys stay one range). One group when the keys' type has no distance (strings) or all
/// keys are equal.
fn groups(keys: &[ScalarValue], most: usize) -> Vec<(usize, usize)> {
    let last = keys.len() - 1;
    let Some(span) = keys[0].distance_u64(&keys[last]) else { return vec![(0, last)] };
    let mut groups = Vec::new();
    let mut first = 0;
    for (index, pair) in keys.windows(2).enumerate() {
        let Some(gap) = pair[0].distance_u64(&pair[1]) else { return vec![(0, last)] };
        if gap > 0 && u128::from(gap) * most as u128 > u128::from(span) {
            groups.push((first, index));
            first = index + 1;
        }
    }
    groups.push((first, last));
    // Gaps that wide add up to less than the span: fewer than `most` of them.
    debug_assert!(groups.len() <= most.max(1), "{} groups over a span of {span}", groups.len());
    groups
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::col;

    use super::*;

    fn ints(values: &[i64]) -> Vec<ScalarValue> {
        values.iter().map(|v| ScalarValue::Int64(Some(*v))).collect()
    }

    #[test]
    fn keys_are_cut_at_the_widest_gaps() {
        // Descending: 100, 99, 98 close together; 50, 49; then 1 alone.
        let keys = ints(&[100, 99, 98, 50, 49, 1]);
        assert_eq!(groups(&keys, 3), [(0, 2), (3, 4), (5, 5)]);
        assert_eq!(groups(&keys, 2), [(0, 5)], "no gap is wider than half the span");
        assert_eq!(groups(&keys, 1), [(0, 5)]);
        assert_eq!(groups(&ints(&[7, 7, 7]), 4), [(0, 2)], "equal keys are never cut apart");
        let strings = [ScalarValue::from("b"), ScalarValue::from("a")];
        assert_eq!(groups(&strings, 4), [(0, 1)], "no distance between strings: one range");
    }

    #[test]
    fn evenly_spread_keys_stay_one_range() {
        let spread: Vec<i64> = (0..100).rev().collect();
        assert_eq!(groups(&ints(&spread), MAX_RANGES), [(0, 99)]);
    }

    #[test]
    fn the_filter_is_open_past_the_first_key_and_stops_at_the_last() {
        let key = col("k");
        let one = covering(&key, &ints(&(0..100).rev().collect::<Vec<_>>()), false);
        assert_eq!(one.to_string(), "k >= Int64(0)");
        // Sixteen clusters of three keys, a thousand apart: sixteen ranges.
        let clustered: Vec<i64> = (0..16).rev().flat_map(|c| [1000 * c + 2, 1000 * c + 1, 1000 * c]).collect();
        let filter = covering(&key, &ints(&clustered), false).to_string();
        assert!(filter.starts_with("k >= Int64(0) AND (k >= Int64(15000) OR k <= Int64(14002) AND k >= "), "{filter}");
        assert_eq!(filter.matches(" OR ").count(), MAX_RANGES - 1, "{filter}");
        let ascending = covering(&key, &ints(&[1, 2, 100]), true).to_string();
        assert_eq!(ascending, "k <= Int64(100) AND (k <= Int64(2) OR k >= Int64(100) AND k <= Int64(100))");
    }
}
