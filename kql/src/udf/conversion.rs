//! Conversions DataFusion has no cast for.

use super::*;

/// `totimespan(s)`: `[-][d.]hh:mm[:ss[.fffffff]]` text to a timespan, null when malformed.
pub fn totimespan(s: Expr) -> Expr {
    make(
        "totimespan",
        any(1),
        Ret::Type(DataType::Duration(TimeUnit::Nanosecond)),
        |a| match &a[0] {
            ArgValue::Str(s) => fimlake_kusto::timespan::parse(s).map_or(Out::Null, Out::Timespan),
            ArgValue::Json(Value::String(s)) => fimlake_kusto::timespan::parse(s).map_or(Out::Null, Out::Timespan),
            ArgValue::Timespan(ns) => Out::Timespan(*ns),
            // A number is a count of 100 ns ticks.
            ArgValue::Long(t) => Out::Timespan(t.saturating_mul(100)),
            _ => Out::Null,
        },
        vec![s],
        0,
    )
}
