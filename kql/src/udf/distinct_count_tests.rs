use arrow::array::{Int64Array, StringArray, StringViewArray};

use super::*;

fn paths(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringViewArray::from(values.to_vec()))
}

fn counts(array: ArrayRef) -> Vec<i64> {
    array.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec()
}

fn accumulator() -> DistinctCounts {
    DistinctCounts::new(&DataType::Utf8View).unwrap()
}

/// Rows of three groups: group 0 has two distinct paths, group 1 one (and a null), group 2
/// three (one of them the empty string).
fn rows() -> (ArrayRef, Vec<usize>) {
    let values = paths(&[
        Some("/etc/hosts"),
        Some("/etc/passwd"),
        Some("/etc/hosts"),
        None,
        Some("/etc/hosts"),
        Some("/a/very/long/path/past/twelve/bytes"),
        Some(""),
        Some("/etc/hosts"),
        Some("/etc/hosts"),
    ]);
    (values, vec![0, 0, 0, 1, 1, 2, 2, 2, 1])
}

#[test]
fn counts_the_distinct_non_null_values_of_each_group() {
    let (values, groups) = rows();
    let mut all = accumulator();
    all.update_batch(&[values], &groups, None, 3).unwrap();
    assert_eq!(counts(all.evaluate(EmitTo::All).unwrap()), vec![2, 1, 3]);
    assert!(all.seen.is_empty() && all.counts.is_empty(), "evaluating everything resets the state");
}

#[test]
fn partial_states_merged_count_as_one_pass() {
    let (values, groups) = rows();
    let (mut first, mut second, mut merged) = (accumulator(), accumulator(), accumulator());
    first.update_batch(&[values.slice(0, 5)], &groups[..5], None, 2).unwrap();
    second.update_batch(&[values.slice(5, 4)], &groups[5..], None, 3).unwrap();
    for partial in [&mut first, &mut second] {
        let state = partial.state(EmitTo::All).unwrap();
        let groups: Vec<usize> = (0..state[0].len()).collect();
        merged.merge_batch(&state, &groups, 3).unwrap();
    }
    assert_eq!(counts(merged.evaluate(EmitTo::All).unwrap()), vec![2, 1, 3]);
}

#[test]
fn rows_converted_to_states_merge_into_the_same_counts() {
    let (values, groups) = rows();
    let filter = BooleanArray::from(vec![true, true, true, true, true, true, false, true, true]);
    let state = accumulator().convert_to_state(&[values], Some(&filter)).unwrap();
    let lists = state[0].as_list::<i32>();
    assert_eq!(lists.len(), 9, "one list per row");
    assert_eq!((lists.value_length(3), lists.value_length(6)), (0, 0), "a null or filtered row has no key");
    let mut merged = accumulator();
    merged.merge_batch(&state, &groups, 3).unwrap();
    assert_eq!(counts(merged.evaluate(EmitTo::All).unwrap()), vec![2, 1, 2]);
}

#[test]
fn emitting_the_first_groups_renumbers_the_rest() {
    let (values, groups) = rows();
    let mut partial = accumulator();
    partial.update_batch(&[values], &groups, None, 3).unwrap();
    let state = partial.state(EmitTo::First(1)).unwrap();
    assert_eq!(state[0].as_list::<i32>().value_length(0), 2, "group 0's two keys");
    assert_eq!(counts(partial.evaluate(EmitTo::First(1)).unwrap()), vec![1], "group 1 is group 0 now");
    partial.update_batch(&[paths(&[Some("/etc/hosts"), Some("/new")])], &[0, 0], None, 1).unwrap();
    assert_eq!(counts(partial.evaluate(EmitTo::All).unwrap()), vec![4], "group 2's three and one new");
}

#[test]
fn a_filter_leaves_out_its_false_and_null_rows() {
    let values = paths(&[Some("a"), Some("b"), Some("c")]);
    let filter = BooleanArray::from(vec![Some(true), Some(false), None]);
    let mut filtered = accumulator();
    filtered.update_batch(&[values], &[0, 0, 0], Some(&filter), 1).unwrap();
    assert_eq!(counts(filtered.evaluate(EmitTo::All).unwrap()), vec![1]);
}

#[test]
fn strings_count_alike_in_every_string_type_and_numbers_exactly() {
    let plain: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "x"]));
    let mut text = DistinctCounts::new(&DataType::Utf8).unwrap();
    text.update_batch(&[plain], &[0, 0, 0], None, 1).unwrap();
    assert_eq!(counts(text.evaluate(EmitTo::All).unwrap()), vec![2]);
    let numbers: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, -1, 0, i64::MAX, -1]).slice(1, 4));
    let mut longs = DistinctCounts::new(&DataType::Int64).unwrap();
    longs.update_batch(&[numbers], &[0, 0, 0, 0], None, 1).unwrap();
    assert_eq!(counts(longs.evaluate(EmitTo::All).unwrap()), vec![3], "-1, 0 and MAX from a sliced array");
    let reals: ArrayRef = Arc::new(arrow::array::Float32Array::from(vec![0.0, -0.0, f32::NAN, -f32::NAN, 1.5]));
    let mut singles = DistinctCounts::new(&DataType::Float32).unwrap();
    singles.update_batch(&[reals], &[0; 5], None, 1).unwrap();
    assert_eq!(counts(singles.evaluate(EmitTo::All).unwrap()), vec![3], "0, NaN and 1.5 in 32 bits too");
}

#[test]
fn without_keys_the_state_survives_evaluation() {
    let (values, _) = rows();
    let mut single = SingleGroup(accumulator());
    single.update_batch(&[values]).unwrap();
    let state = single.state().unwrap();
    assert_eq!(single.evaluate().unwrap(), ScalarValue::Int64(Some(4)));
    let mut merged = SingleGroup(accumulator());
    merged.merge_batch(&[state[0].to_array().unwrap()]).unwrap();
    assert_eq!(merged.evaluate().unwrap(), ScalarValue::Int64(Some(4)));
}
