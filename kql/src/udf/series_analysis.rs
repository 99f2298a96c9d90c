//! UDFs analysing a numeric series (a dynamic array): `series_stats`, `series_fit_line`,
//! `series_fit_2lines`. Each returns a property bag of its results, in Kusto's order; the
//! planner reads them out into columns for `extend (a, b, ...) = series_stats(x)`.

use serde_json::{Map, json};

use super::*;

/// The numbers of a series with their positions; other elements are skipped.
fn numbers(a: &ArgValue) -> Option<Vec<(usize, f64)>> {
    a.array().map(|items| items.iter().enumerate().filter_map(|(i, v)| v.as_f64().map(|x| (i, x))).collect())
}

/// A finite number as JSON; NaN and infinities as null.
fn real(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// The sample variance (over n - 1) of `values` about `mean`.
fn sample_variance(values: impl Iterator<Item = f64>, mean: f64, count: usize) -> f64 {
    if count < 2 {
        return 0.0;
    }
    values.map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1) as f64
}

fn series_udf(name: &'static str, eval: RowFn, series: Expr) -> Expr {
    make(name, any(1), Ret::Dynamic, eval, vec![series], 1)
}

/// `series_stats(x)`: `min`, `min_idx`, `max`, `max_idx`, `avg`, `stdev`, `variance` (sample)
/// of the numbers of the series.
pub fn series_stats(series: Expr) -> Expr {
    series_udf("series_stats", |a| numbers(&a[0]).map_or(Out::Null, |values| Out::Json(stats(&values))), series)
}

fn stats(values: &[(usize, f64)]) -> Value {
    if values.is_empty() {
        let nothing =
            ["min", "min_idx", "max", "max_idx", "avg", "stdev", "variance"].map(|k| (k.to_string(), Value::Null));
        return Value::Object(nothing.into_iter().collect());
    }
    let min = values.iter().fold(values[0], |best, v| if v.1 < best.1 { *v } else { best });
    let max = values.iter().fold(values[0], |best, v| if v.1 > best.1 { *v } else { best });
    let mean = values.iter().map(|v| v.1).sum::<f64>() / values.len() as f64;
    let variance = sample_variance(values.iter().map(|v| v.1), mean, values.len());
    json!({
        "min": real(min.1), "min_idx": min.0, "max": real(max.1), "max_idx": max.0,
        "avg": real(mean), "stdev": real(variance.sqrt()), "variance": real(variance),
    })
}

/// A least-squares line through `(x, y)` points.
struct Line {
    slope: f64,
    interception: f64,
    rsquare: f64,
    variance: f64,
    rvariance: f64,
    residuals: f64,
}

/// The best line through `ys` at x = `first_x`, `first_x + 1`, ... (Kusto numbers a series'
/// points from 1).
fn fit(ys: &[f64], first_x: f64) -> Line {
    let count = ys.len() as f64;
    let xs = || (0..ys.len()).map(|i| first_x + i as f64);
    let mean_x = xs().sum::<f64>() / count;
    let mean_y = ys.iter().sum::<f64>() / count;
    let sxy: f64 = xs().zip(ys).map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let sxx: f64 = xs().map(|x| (x - mean_x).powi(2)).sum();
    let slope = if sxx == 0.0 { 0.0 } else { sxy / sxx };
    let interception = mean_y - slope * mean_x;
    let residuals: f64 = xs().zip(ys).map(|(x, y)| (y - (slope * x + interception)).powi(2)).sum();
    let total: f64 = ys.iter().map(|y| (y - mean_y).powi(2)).sum();
    let degrees = (ys.len().max(2) - 1) as f64;
    Line {
        slope,
        interception,
        rsquare: if total == 0.0 { 1.0 } else { 1.0 - residuals / total },
        variance: total / degrees,
        rvariance: residuals / degrees,
        residuals,
    }
}

/// `series_fit_line(y)`: `rsquare`, `slope`, `variance`, `rvariance`, `interception`,
/// `line_fit` of the least-squares line (x = 1, 2, ...).
pub fn series_fit_line(series: Expr) -> Expr {
    series_udf(
        "series_fit_line",
        |a| match numbers(&a[0]) {
            Some(values) if !values.is_empty() => {
                let ys: Vec<f64> = values.iter().map(|v| v.1).collect();
                let line = fit(&ys, 1.0);
                let line_fit: Vec<Value> =
                    (1..=ys.len()).map(|x| real(line.slope * x as f64 + line.interception)).collect();
                Out::Json(json!({
                    "rsquare": real(line.rsquare), "slope": real(line.slope), "variance": real(line.variance),
                    "rvariance": real(line.rvariance), "interception": real(line.interception), "line_fit": line_fit,
                }))
            }
            _ => Out::Null,
        },
        series,
    )
}

/// `series_fit_2lines(y)`: the split of the series into two parts, each fitted by its own line,
/// whose residuals are the smallest: `rsquare`, `split_idx` (the first index of the right
/// part), `variance`, `rvariance`, `line_fit`, then `right_` and `left_` `rsquare`, `slope`,
/// `interception`, `variance`, `rvariance`.
pub fn series_fit_2lines(series: Expr) -> Expr {
    series_udf(
        "series_fit_2lines",
        |a| match numbers(&a[0]) {
            Some(values) if values.len() >= 4 => {
                Out::Json(two_lines(&values.iter().map(|v| v.1).collect::<Vec<f64>>()))
            }
            _ => Out::Null,
        },
        series,
    )
}

fn two_lines(ys: &[f64]) -> Value {
    let split = (2..=ys.len() - 2)
        .min_by(|&a, &b| {
            let cost = |s: usize| fit(&ys[..s], 1.0).residuals + fit(&ys[s..], s as f64 + 1.0).residuals;
            cost(a).total_cmp(&cost(b))
        })
        .expect("a series of 4 or more points has a split");
    let (left, right) = (fit(&ys[..split], 1.0), fit(&ys[split..], split as f64 + 1.0));
    let line_fit: Vec<f64> = (1..=ys.len())
        .map(|x| {
            let line = if x <= split { &left } else { &right };
            line.slope * x as f64 + line.interception
        })
        .collect();
    let whole = fit(ys, 1.0);
    let residuals = left.residuals + right.residuals;
    let total = whole.variance * (ys.len() - 1) as f64;
    let mut out = Map::new();
    out.insert("rsquare".into(), real(if total == 0.0 { 1.0 } else { 1.0 - residuals / total }));
    out.insert("split_idx".into(), json!(split));
    out.insert("variance".into(), real(whole.variance));
    out.insert("rvariance".into(), real(residuals / (ys.len() - 1) as f64));
    out.insert("line_fit".into(), Value::Array(line_fit.into_iter().map(real).collect()));
    for (side, line) in [("right", &right), ("left", &left)] {
        out.insert(format!("{side}_rsquare"), real(line.rsquare));
        out.insert(format!("{side}_slope"), real(line.slope));
        out.insert(format!("{side}_interception"), real(line.interception));
        out.insert(format!("{side}_variance"), real(line.variance));
        out.insert(format!("{side}_rvariance"), real(line.rvariance));
    }
    Value::Object(out)
}
