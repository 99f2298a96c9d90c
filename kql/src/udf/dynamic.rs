//! UDFs over dynamic values: parsing, access, arrays and property bags.

use super::*;

/// `parse_json(s)` / `todynamic(s)`: the JSON value of `s`, or `s` itself as a dynamic string
/// when it is not valid JSON (Kusto's rule). A non-string argument becomes its dynamic form.
pub fn parse_json(x: Expr) -> Expr {
    make(
        "parse_json",
        any(1),
        Ret::Dynamic,
        |a| match &a[0] {
            ArgValue::Null => Out::Null,
            ArgValue::Str(s) => Out::Json(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))),
            other => Out::Json(to_json(other)),
        },
        vec![x],
        0,
    )
}

/// `d.key`, `d["key"]`, `d[i]` (negative `i` counts from the end): null when absent.
pub fn dyn_get(d: Expr, key: Expr) -> Expr {
    make(
        "dynamic_get",
        any(2),
        Ret::Dynamic,
        |a| {
            let got = match (&a[0], &a[1]) {
                (ArgValue::Json(Value::Object(m)), ArgValue::Str(k)) => m.get(k).cloned(),
                (ArgValue::Json(Value::Array(v)), ArgValue::Long(i)) => {
                    let i = if *i < 0 { v.len() as i64 + i } else { *i };
                    usize::try_from(i).ok().and_then(|i| v.get(i)).cloned()
                }
                _ => None,
            };
            got.map_or(Out::Null, Out::Json)
        },
        vec![d, key],
        1,
    )
}

/// `tostring()` of a dynamic: strings unquoted, null as "".
pub fn dyn_to_string(d: Expr) -> Expr {
    make(
        "dynamic_to_string",
        any(1),
        Ret::Type(DataType::Utf8),
        |a| match &a[0] {
            ArgValue::Json(v) => Out::Str(json_to_string(v)),
            ArgValue::Null => Out::Str(String::new()),
            other => Out::Str(json_to_string(&to_json(other))),
        },
        vec![d],
        1,
    )
}

/// `array_length(d)`: the number of elements, null when `d` is not an array.
pub fn array_length(d: Expr) -> Expr {
    make(
        "array_length",
        any(1),
        Ret::Type(DataType::Int64),
        |a| match &a[0] {
            ArgValue::Json(Value::Array(v)) => Out::Long(v.len() as i64),
            _ => Out::Null,
        },
        vec![d],
        1,
    )
}

/// `pack_array(a, b, ...)`: a dynamic array of the values (`dynamic_args`: which are dynamic).
pub fn pack_array(xs: Vec<Expr>, dynamic_args: u64) -> Expr {
    make(
        "pack_array",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Dynamic,
        |a| Out::Json(Value::Array(a.iter().map(to_json).collect())),
        xs,
        dynamic_args,
    )
}
/// A list (from `array_agg`) as a dynamic array, without nulls, at most `max` elements;
/// `dynamic_elements` when the elements are themselves dynamic.
pub fn list_to_dynamic(list: Expr, max: i64, dynamic_elements: bool) -> Expr {
    make(
        "make_list",
        any(2),
        Ret::Dynamic,
        |a| {
            let max = a[1].size_limit();
            match &a[0] {
                ArgValue::List(items) => Out::Json(Value::Array(
                    items.iter().filter(|v| !matches!(v, ArgValue::Null)).take(max).map(to_json).collect(),
                )),
                _ => Out::Json(Value::Array(vec![])),
            }
        },
        vec![list, datafusion::logical_expr::lit(max)],
        u64::from(dynamic_elements),
    )
}

/// The elements of a dynamic array as a list of dynamic values (for `mv-expand`); a property
/// bag gives one single-property bag per property, any other value itself.
pub fn dyn_elements(d: Expr) -> Expr {
    ScalarUDF::new_from_impl(DynElements { signature: any(1) }).call(vec![d])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct DynElements {
    pub(super) signature: Signature,
}

fn element_field() -> FieldRef {
    Arc::new(dynamic_field("item"))
}

impl ScalarUDFImpl for DynElements {
    fn name(&self) -> &str {
        "mv_expand_elements"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(element_field()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut b = ListBuilder::new(StringBuilder::new()).with_field(element_field());
        for i in 0..args.number_rows {
            for v in elements(value_at(&arrays[0], i, true)) {
                if v.is_null() { b.values().append_null() } else { b.values().append_value(v.to_string()) }
            }
            b.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// What a value expands to. Kusto: a null expands to one row (null), an empty array or bag to
/// none, a bag to one single-property bag per property, a scalar to itself.
fn elements(value: ArgValue) -> Vec<Value> {
    match value {
        ArgValue::Null | ArgValue::Json(Value::Null) => vec![Value::Null],
        ArgValue::Json(Value::Array(v)) => v,
        ArgValue::Json(Value::Object(m)) => {
            m.into_iter().map(|(k, v)| Value::Object([(k, v)].into_iter().collect())).collect()
        }
        other => vec![to_json(&other)],
    }
}

/// The positions `[0, 1, ...]` of the rows that expanding the values side by side gives: as
/// many as the longest of them has elements (for `mv-expand with_itemindex` and `limit`).
pub fn dyn_element_indices(values: Vec<Expr>) -> Expr {
    ScalarUDF::new_from_impl(DynElementIndices::new()).call(values)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct DynElementIndices {
    signature: Signature,
}

impl DynElementIndices {
    pub(super) fn new() -> DynElementIndices {
        DynElementIndices { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for DynElementIndices {
    fn name(&self) -> &str {
        "mv_expand_indices"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new("item", DataType::Int64, false))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let field = Arc::new(Field::new("item", DataType::Int64, false));
        let mut b = ListBuilder::new(Int64Builder::new()).with_field(field);
        for i in 0..args.number_rows {
            let rows = arrays.iter().map(|a| elements(value_at(a, i, true)).len()).max().unwrap_or(0);
            for position in 0..rows {
                b.values().append_value(position as i64);
            }
            b.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `array_sort_asc(d)` / `array_sort_desc(d)`: numbers before strings, nulls last.
pub fn array_sort(d: Expr, ascending: bool) -> Expr {
    fn sorted(a: &[ArgValue], asc: bool) -> Out {
        let ArgValue::Json(Value::Array(v)) = &a[0] else { return Out::Null };
        let mut v = v.clone();
        let key = |x: &Value| match x {
            Value::Null => (3, 0.0, String::new()),
            Value::Number(n) => (0, n.as_f64().unwrap_or(0.0), String::new()),
            Value::String(s) => (1, 0.0, s.clone()),
            other => (2, 0.0, other.to_string()),
        };
        v.sort_by(|x, y| {
            let (kx, ky) = (key(x), key(y));
            let ord = kx.0.cmp(&ky.0).then(kx.1.total_cmp(&ky.1)).then(kx.2.cmp(&ky.2));
            if asc || kx.0 == 3 || ky.0 == 3 { ord } else { ord.reverse() }
        });
        Out::Json(Value::Array(v))
    }
    if ascending {
        make("array_sort_asc", any(1), Ret::Dynamic, |a| sorted(a, true), vec![d], 1)
    } else {
        make("array_sort_desc", any(1), Ret::Dynamic, |a| sorted(a, false), vec![d], 1)
    }
}

/// `array_slice(d, start, end)`: elements `start..=end`; negative indexes count from the end.
pub fn array_slice(d: Expr, start: Expr, end: Expr) -> Expr {
    make(
        "array_slice",
        any(3),
        Ret::Dynamic,
        |a| {
            let (ArgValue::Json(Value::Array(v)), ArgValue::Long(s), ArgValue::Long(e)) = (&a[0], &a[1], &a[2]) else {
                return Out::Null;
            };
            let len = v.len() as i64;
            let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
            let (s, e) = (fix(*s), fix(*e).min(len - 1));
            if s > e || s >= len {
                return Out::Json(Value::Array(vec![]));
            }
            Out::Json(Value::Array(v[s as usize..=e as usize].to_vec()))
        },
        vec![d, start, end],
        1,
    )
}

/// `bag_pack(k1, v1, k2, v2, ...)` (also `pack`, and `pack_all()` over every column): a property
/// bag. `dynamic_args` says which values are dynamic.
pub fn bag_pack(xs: Vec<Expr>, dynamic_args: u64) -> Expr {
    make(
        "bag_pack",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Dynamic,
        |a| {
            let mut m = serde_json::Map::new();
            for kv in a.chunks(2) {
                if let [ArgValue::Str(k), v] = kv {
                    m.insert(k.clone(), to_json(v));
                }
            }
            Out::Json(Value::Object(m))
        },
        xs,
        dynamic_args,
    )
}
