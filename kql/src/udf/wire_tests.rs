use super::*;
use datafusion::logical_expr::{col, ident, lit};

/// The function `expr` calls, rebuilt from its name as a worker would.
fn sent(expr: &Expr) -> (ScalarUDF, ScalarUDF) {
    let Expr::ScalarFunction(call) = expr else { panic!("{expr} is not a function call") };
    let rebuilt = rebuild(call.func.name()).unwrap_or_else(|e| panic!("{}: {e}", call.func.name()));
    (call.func.as_ref().clone(), rebuilt)
}

#[test]
fn every_kind_of_kql_function_is_rebuilt_as_it_was_planned() {
    let regex = regex::Regex::new(r"(\d+)\.(\d+)").unwrap();
    let planned = [
        super::super::text_search(
            ident("Path"),
            "Passwd",
            super::super::Search::Term { start: true, end: false },
            false,
        ),
        super::super::text_search(ident("Path"), "é \"quoted\" [x]", super::super::Search::Substring, true),
        super::super::text_search(ident("Path"), "/etc/ssh", super::super::Search::Prefix, false),
        super::super::text_search(ident("Path"), ".conf", super::super::Search::Suffix, false),
        super::super::extract(&regex, 2, ident("Path")),
        super::super::nearest_rank(col("x"), 95.5),
        super::super::dyn_elements(col("d")),
        super::super::dyn_element_indices(vec![col("d"), col("e")]),
        super::super::range_list(lit(1), lit(10), lit(2)),
        super::super::pack_array(vec![col("a"), col("b")], 0b10),
        super::super::parse_json(col("a")),
    ];
    for expr in &planned {
        let (original, rebuilt) = sent(expr);
        assert_eq!(original, rebuilt, "{expr}");
        assert_eq!(original.name(), rebuilt.name(), "{expr}");
        assert_eq!(original.signature(), rebuilt.signature(), "{expr}");
    }
    let names: Vec<String> = planned.iter().map(|e| e.schema_name().to_string()).collect();
    assert_eq!(names[0], r#"hasprefix["Passwd"](Path)"#);
    assert_eq!(names[2], r#"startswith["/etc/ssh"](Path)"#);
    assert_eq!(names[9], "pack_array[2](a,b)");
}

#[test]
fn a_plan_lists_its_kql_functions_once_and_not_datafusions() {
    let schema = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "Path",
        arrow::datatypes::DataType::Utf8,
        true,
    )]);
    let has =
        super::super::text_search(ident("Path"), "nginx", super::super::Search::Term { start: true, end: true }, false);
    let plan = datafusion::logical_expr::table_scan(Some("t"), &schema, None)
        .unwrap()
        .filter(has.clone().or(has))
        .unwrap()
        .project(vec![
            datafusion::functions::string::expr_fn::upper(ident("Path")),
            super::super::parse_json(ident("Path")),
        ])
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(kql_functions(&plan).unwrap(), vec![r#"has["nginx"]"#.to_string(), "parse_json".to_string()]);
}

#[test]
fn an_unknown_function_is_a_clear_error() {
    for name in ["no_such_function", "has", "percentile[\"x\"]", "extract[", "parse_json[1,"] {
        let error = rebuild(name).unwrap_err().to_string();
        assert!(error.contains(&format!("the KQL function {name} is not known to this node")), "{error}");
    }
}

/// The names the row-function constructors give, read from the sources: each must be found
/// by [`row_function`], or a plan using it could not run on a worker.
#[test]
fn every_row_function_is_listed() {
    let sources = [
        include_str!("conversion.rs"),
        include_str!("datetime.rs"),
        include_str!("dynamic.rs"),
        include_str!("network.rs"),
        include_str!("series.rs"),
        include_str!("series_analysis.rs"),
        include_str!("sets.rs"),
        include_str!("string.rs"),
        include_str!("text.rs"),
    ];
    let call = regex::Regex::new(r#"\b(?:make|string_to_string|dynamic_udf|series_udf)\(\s*"(\w+)""#).unwrap();
    let names: Vec<&str> =
        sources.iter().flat_map(|s| call.captures_iter(s).map(|c| c.get(1).unwrap().as_str())).collect();
    assert!(names.len() >= 48, "found {} row functions in the sources", names.len());
    for name in names {
        let row = row_function(name).unwrap_or_else(|| panic!("{name} is missing from wire::constructed"));
        assert_eq!(row.name, name);
        assert_eq!(rebuild(name).unwrap().name(), name);
    }
}
