//! UDFs over strings: splitting, joining and regex extraction.

use super::*;

/// `split(s, delimiter)`: a dynamic array of the parts (`split("", ",")` is `[""]`).
pub fn split(s: Expr, delimiter: Expr) -> Expr {
    make(
        "split",
        any(2),
        Ret::Dynamic,
        |a| {
            let s = match &a[0] {
                ArgValue::Str(s) => s.clone(),
                ArgValue::Null => String::new(),
                other => json_to_string(&to_json(other)),
            };
            match &a[1] {
                ArgValue::Str(d) if !d.is_empty() => {
                    Out::Json(Value::Array(s.split(d.as_str()).map(|p| Value::String(p.into())).collect()))
                }
                _ => Out::Null,
            }
        },
        vec![s, delimiter],
        0,
    )
}

/// `strcat_array(d, delimiter)`: the elements as strings, joined.
pub fn strcat_array(d: Expr, delimiter: Expr) -> Expr {
    make(
        "strcat_array",
        any(2),
        Ret::Type(DataType::Utf8),
        |a| {
            let delim = match &a[1] {
                ArgValue::Str(s) => s.clone(),
                _ => String::new(),
            };
            match &a[0] {
                ArgValue::Json(Value::Array(v)) => {
                    Out::Str(v.iter().map(json_to_string).collect::<Vec<_>>().join(&delim))
                }
                _ => Out::Str(String::new()),
            }
        },
        vec![d, delimiter],
        1,
    )
}

/// `extract(regex, group, text)`: the capture group of the first match, "" when none.
pub fn extract(regex: &regex::Regex, group: usize, text: Expr) -> Expr {
    ScalarUDF::new_from_impl(Extract::new(regex.as_str().to_string(), group)).call(vec![text])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Extract {
    /// `extract[regex, group]` ([`super::wire`]).
    name: String,
    signature: Signature,
    pub(super) regex: String,
    pub(super) group: usize,
}

impl Extract {
    pub(super) fn new(regex: String, group: usize) -> Extract {
        let name = super::wire::name("extract", &serde_json::json!([regex, group]));
        Extract { name, signature: any(1), regex, group }
    }
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let re = regex::Regex::new(&self.regex).map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let out: StringArray = text
            .iter()
            .map(|t| {
                Some(
                    t.and_then(|t| re.captures(t))
                        .and_then(|c| c.get(self.group))
                        .map_or(String::new(), |m| m.as_str().to_string()),
                )
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
