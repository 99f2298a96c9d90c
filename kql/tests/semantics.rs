//! KQL semantics, as a table of (query, expected rows): every query brings its input with
//! `datatable`, runs through the planner on DataFusion, and the rows (columns joined by " | ")
//! must equal the expected ones. Points are numbered as in `kql-usage.md`, "Semantics to get
//! right".

use datafusion::prelude::SessionContext;
use fimlake_kql::{TableList, parse, plan_query};

/// 2024-05-01T12:00:00Z
const NOW_US: i64 = 1_714_564_800_000_000;

const T: &str = "let T = datatable(Computer:string, Path:string, Size:long, Time:datetime)[
    'web-01', '/etc/passwd', 10, datetime(2024-05-01 10:15),
    'WEB-01', '/etc/ssh/sshd_config', 20, datetime(2024-05-01 10:45),
    'db-02', '/usr/bin/KustoExplorerQueryRun', 5, datetime(2024-05-01 11:05),
    '', '/tmp/x', long(null), datetime(2024-04-30 23:59)];
";

async fn run(query: &str) -> Result<Vec<String>, String> {
    let q = parse(query).map_err(|e| e.render())?;
    let plan = plan_query(&q, query, &TableList::default(), NOW_US).map_err(|e| e.render())?;
    let ctx = SessionContext::new();
    let batches =
        ctx.execute_logical_plan(plan).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "null".to_string()
                    } else {
                        arrow::util::display::array_value_to_string(c, r).unwrap()
                    }
                })
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    Ok(rows)
}

async fn columns(query: &str) -> Vec<String> {
    let q = parse(query).unwrap();
    let plan = plan_query(&q, query, &TableList::default(), NOW_US).unwrap();
    plan.schema().fields().iter().map(|f| f.name().clone()).collect()
}

async fn check(cases: &[(&str, &[&str])]) {
    for (q, want) in cases {
        let query = format!("{T}{q}");
        let got = run(&query).await.unwrap_or_else(|e| panic!("{q}\n{e}"));
        assert_eq!(got, *want, "{q}");
    }
}

#[tokio::test]
async fn s1_string_operator_case_rules() {
    check(&[
        ("T | where Computer == 'web-01' | project Size", &["10"]),
        ("T | where Computer =~ 'web-01' | project Size", &["10", "20"]),
        ("T | where Computer !~ 'web-01' | project Size", &["5", "null"]),
        ("T | where Path contains 'SSH' | project Size", &["20"]),
        ("T | where Path contains_cs 'SSH' | project Size", &[]),
        ("T | where Path !contains 'etc' | project Size", &["5", "null"]),
        ("T | where Path startswith '/ETC' | project Size", &["10", "20"]),
        ("T | where Path endswith_cs 'Run' | project Size", &["5"]),
        ("T | where Path contains '%' | project Size", &[]),
    ])
    .await;
}

#[tokio::test]
async fn s2_has_matches_whole_terms() {
    check(&[
        ("T | where Path has 'Explorer' | project Size", &[]),
        ("T | where Path contains 'Explorer' | project Size", &["5"]),
        ("T | where Path has 'SSHD_config' | project Size", &["20"]),
        ("T | where Path has 'etc' | project Size", &["10", "20"]),
        ("T | where Path !has 'etc' | project Size", &["5", "null"]),
        ("T | where Path has_cs 'ETC' | project Size", &[]),
        ("T | where Path hasprefix 'pass' | project Size", &["10"]),
        ("T | where Path has_any ('passwd', 'x') | project Size", &["10", "null"]),
        ("T | where Path has_all ('etc', 'passwd') | project Size", &["10"]),
    ])
    .await;
}

#[tokio::test]
async fn s3_in_is_case_sensitive_and_in_tilde_is_not() {
    check(&[
        ("T | where Computer in ('web-01', 'db-02') | project Size", &["10", "5"]),
        ("T | where Computer in~ ('web-01') | project Size", &["10", "20"]),
        ("T | where Computer !in ('web-01') | project Size", &["20", "5", "null"]),
        ("T | where Computer !in~ ('WEB-01', '') | project Size", &["5"]),
        ("let hosts = dynamic(['db-02']); T | where Computer in (hosts) | project Size", &["5"]),
    ])
    .await;
}

#[tokio::test]
async fn s4_missing_strings_are_empty_and_negations_keep_nulls() {
    check(&[
        ("T | where isempty(Computer) | project Path", &["/tmp/x"]),
        ("T | where isnotempty(Computer) | count", &["3"]),
        ("T | where Size != 10 | project Path", &["/etc/ssh/sshd_config", "/usr/bin/KustoExplorerQueryRun", "/tmp/x"]),
        ("T | where isnull(Size) | project Path", &["/tmp/x"]),
        ("T | extend c = coalesce(Computer, 'none') | project c", &["web-01", "WEB-01", "db-02", "none"]),
    ])
    .await;
}

#[tokio::test]
async fn s5_s6_sort_defaults_to_descending_and_top_takes_the_first() {
    check(&[
        ("T | sort by Size | project Size", &["20", "10", "5", "null"]),
        ("T | order by Size asc | project Size", &["null", "5", "10", "20"]),
        ("T | sort by Size asc nulls last | project Size", &["5", "10", "20", "null"]),
        ("T | top 2 by Size | project Size", &["20", "10"]),
        ("T | top 1 by Time asc | project Path", &["/tmp/x"]),
        ("T | sort by Computer asc, Size desc | take 2 | project Computer", &["", "WEB-01"]),
    ])
    .await;
}

#[tokio::test]
async fn s9_summarize_names_and_empty_inputs() {
    check(&[
        (
            "T | summarize count() by Computer | sort by Computer asc",
            &[" | 1", "WEB-01 | 1", "db-02 | 1", "web-01 | 1"],
        ),
        ("T | summarize n = count(), total = sum(Size), m = max(Size)", &["4 | 35 | 20"]),
        ("T | where Size > 100 | summarize count(), sum(Size)", &["0 | 0"]),
        ("T | where Size > 100 | summarize count() by Computer", &[]),
        ("T | summarize countif(Size > 5), dcount(Computer)", &["2 | 4"]),
        ("T | summarize by tolower(Computer) | sort by Column1 asc", &["", "db-02", "web-01"]),
    ])
    .await;
    assert_eq!(
        columns(&format!("{T}T | summarize count(), max(Time), dcount(Computer), avg(Size) by Computer")).await,
        vec!["Computer", "count_", "max_Time", "dcount_Computer", "avg_Size"]
    );
    assert_eq!(columns(&format!("{T}T | count")).await, vec!["Count"]);
}

#[tokio::test]
async fn arg_max_returns_the_whole_row_of_the_extreme() {
    check(&[
        (
            "T | summarize arg_max(Time, *) by Computer | sort by Computer asc",
            &[
                " | 2024-04-30T23:59:00Z | /tmp/x | null",
                "WEB-01 | 2024-05-01T10:45:00Z | /etc/ssh/sshd_config | 20",
                "db-02 | 2024-05-01T11:05:00Z | /usr/bin/KustoExplorerQueryRun | 5",
                "web-01 | 2024-05-01T10:15:00Z | /etc/passwd | 10",
            ],
        ),
        (
            "T | summarize arg_min(Size, Path) by k = tolower(Computer) | sort by k asc",
            &[" | null | /tmp/x", "db-02 | 5 | /usr/bin/KustoExplorerQueryRun", "web-01 | 10 | /etc/passwd"],
        ),
        ("T | summarize arg_max(Latest = Time, Computer)", &["2024-05-01T11:05:00Z | db-02"]),
        ("T | summarize Latest = arg_max(Time, Computer)", &["2024-05-01T11:05:00Z | db-02"]),
        // arg_max combines with other aggregates in one summarize.
        (
            "T | where isnotnull(Size) | summarize arg_max(Time, Path), n = count(), s = sum(Size) by k = tolower(Computer) | sort by k asc",
            &[
                "db-02 | 2024-05-01T11:05:00Z | /usr/bin/KustoExplorerQueryRun | 1 | 5",
                "web-01 | 2024-05-01T10:45:00Z | /etc/ssh/sshd_config | 2 | 30",
            ],
        ),
    ])
    .await;
    assert_eq!(
        columns(&format!("{T}T | summarize arg_max(Time, *) by Computer")).await,
        vec!["Computer", "Time", "Path", "Size"]
    );
}

const U: &str = "let U = datatable(Computer:string, OS:string)['web-01', 'Linux', 'web-01', 'Debian', 'db-02', 'Linux', 'x', 'Windows'];\n";

async fn check_join(cases: &[(&str, &[&str])]) {
    for (q, want) in cases {
        let query = format!("{T}{U}{q}");
        let got = run(&query).await.unwrap_or_else(|e| panic!("{q}\n{e}"));
        let (mut got, mut want) = (got, want.to_vec());
        got.sort();
        want.sort();
        assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{q}");
    }
}

#[tokio::test]
async fn s7_join_kinds_and_innerunique_default() {
    check_join(&[
        // innerunique: the left side is deduplicated on the key (U has web-01 twice).
        ("U | join (T | project Computer, Size) on Computer | project Computer, Size", &["web-01 | 10", "db-02 | 5"]),
        ("U | join kind=inner (T | project Computer, Size) on Computer | project Computer, OS, Size", &[
            "web-01 | Linux | 10",
            "web-01 | Debian | 10",
            "db-02 | Linux | 5",
        ]),
        ("U | join kind=leftouter (T | project Computer, Size) on Computer | where OS == 'Windows' | project Computer, Size", &["x | null"]),
        ("U | join kind=leftanti T on Computer | project Computer", &["x"]),
        ("T | join kind=rightanti U on Computer | project Computer", &["x"]),
        ("U | join kind=leftsemi T on Computer | distinct Computer", &["web-01", "db-02"]),
        ("U | join kind=inner (T | project Host = Computer, Size) on $left.Computer == $right.Host | project Host, Size | distinct *", &[
            "web-01 | 10",
            "db-02 | 5",
        ]),
    ])
    .await;
    assert_eq!(
        columns(&format!("{T}{U}U | join kind=inner T on Computer")).await,
        vec!["Computer", "OS", "Computer1", "Path", "Size", "Time"]
    );
}

#[tokio::test]
async fn s8_union_aligns_columns_by_name_and_s3_in_takes_a_tabular_expression() {
    check_join(&[
        ("union withsource=Src (T | project Computer, Size), (U | project Computer, OS) | where Computer == 'db-02' | project Src, Computer, Size, OS", &[
            "T | db-02 | 5 | null",
            "U | db-02 | null | Linux",
        ]),
        ("T | project Computer | union (U | project Computer) | count", &["8"]),
        ("T | where Computer in ((U | where OS == 'Linux' | project Computer)) | project Size", &["10", "5"]),
        ("T | where Computer !in (U) | project Size", &["20", "null"]),
        ("let linux = U | where OS == 'Linux'; T | where Computer in~ (linux) | project Size", &["10", "20", "5"]),
    ])
    .await;
}

#[tokio::test]
async fn s10_bin_rounds_down_on_numbers_and_datetimes() {
    check(&[
        (
            "T | summarize count() by bin(Time, 1h) | sort by Time asc",
            &["2024-04-30T23:00:00Z | 1", "2024-05-01T10:00:00Z | 2", "2024-05-01T11:00:00Z | 1"],
        ),
        (
            "T | summarize count() by bin(Time, 1d) | sort by Time asc",
            &["2024-04-30T00:00:00Z | 1", "2024-05-01T00:00:00Z | 3"],
        ),
        ("T | extend b = bin(Size, 7) | project b", &["7.0", "14.0", "0.0", "null"]),
    ])
    .await;
    // 7-day bins count from 0001-01-01 (a Monday), not from 1970-01-01 (a Thursday).
    check(&[("T | summarize count() by bin(Time, 7d) | sort by Time asc", &["2024-04-29T00:00:00Z | 4"])]).await;
}

#[tokio::test]
async fn s11_s14_s17_now_ago_arithmetic_and_between() {
    check(&[
        ("T | where Time > ago(1h) | project Size", &["5"]),
        ("T | where Time > ago(2h) | project Size", &["10", "20", "5"]),
        ("T | where Time between (ago(1h) .. now()) | project Size", &["5"]),
        ("T | where Time between (datetime(2024-05-01 10:15) .. 30m) | project Size", &["10", "20"]),
        ("T | where Size between (5 .. 10) | project Size", &["10", "5"]),
        ("T | where Size !between (5 .. 10) | project Size", &["20", "null"]),
        ("print d = (now() - datetime(2024-05-01 11:00)) / 1h", &["1.0"]),
        ("print a = 7 / 2, b = -7 % 3, c = 7.0 / 2", &["3 | 2 | 3.5"]),
    ])
    .await;
}

#[tokio::test]
async fn s15_datetime_diff_counts_boundaries() {
    check(&[(
        "print h = datetime_diff('hour', datetime(2017-10-31 01:00), datetime(2017-10-30 23:59)), m = datetime_diff('minute', datetime(2017-10-30 23:05:01), datetime(2017-10-30 23:00:59)), mo = datetime_diff('month', datetime(2018-01-01), datetime(2017-12-31))",
        &["2 | 5 | 1"],
    )])
    .await;
}

#[tokio::test]
async fn s18_extend_and_project_columns() {
    assert_eq!(
        columns(&format!("{T}T | extend Size = Size * 2, x = 1")).await,
        vec!["Computer", "Path", "Time", "Size", "x"]
    );
    assert_eq!(columns(&format!("{T}T | project-away Path, Time")).await, vec!["Computer", "Size"]);
    assert_eq!(columns(&format!("{T}T | project-rename Host = Computer")).await, vec!["Host", "Path", "Size", "Time"]);
    assert_eq!(columns(&format!("{T}T | project-reorder Time, Size")).await, vec!["Time", "Size", "Computer", "Path"]);
    check(&[
        ("T | project Computer, Big = Size > 10 | take 2", &["web-01 | false", "WEB-01 | true"]),
        ("T | extend k = iff(Size > 10, 'big', 'small') | project k", &["small", "big", "small", "small"]),
        ("T | extend k = case(Size > 15, 'l', Size > 7, 'm', 's') | project k", &["m", "l", "s", "s"]),
        ("T | extend s = strcat(Computer, ':', Size) | project s | take 1", &["web-01:10"]),
        (
            "T | project u = toupper(Computer), l = strlen(Path), sub = substring(Path, 1, 3) | take 1",
            &["WEB-01 | 11 | etc"],
        ),
        ("T | distinct tolower(Computer) | count", &["3"]),
    ])
    .await;
}

#[tokio::test]
async fn errors_name_the_column_or_function() {
    let cases = [
        (
            "T | where computer == 'a'",
            "unknown column 'computer' (column names are case-sensitive: did you mean 'Computer'?)",
        ),
        ("T | extend x = frobnicate(Size)", "the function 'frobnicate' is not supported"),
        ("T | summarize make_bag(Size)", "the aggregate 'make_bag' is not supported"),
        ("T | extend x = Path.name", "expected a dynamic value (an array or a property bag), got string"),
        ("T | mv-expand Path", "expected a dynamic value (an array or a property bag), got string"),
        ("T | extend x = extract('(a', 1, Path)", "invalid regex"),
        ("T | where Path matches regex '(a+)+$(((('", "invalid regex"),
        ("T | extend x = extract('(a)', 2, Path)", "the regex has 1 capture group(s); group 2 does not exist"),
        ("T | extend x = format_datetime(Time, 'yyyy-MM-dd gg')", "format_datetime specifier 'gg' is not supported"),
        ("T | extend x = datetime_add('fortnight', 1, Time)", "unknown datetime_add period 'fortnight'"),
        ("T | summarize x = Size + 1", "expected an aggregate function such as count() or max(x)"),
        ("T | summarize percentile(Size, 150)", "a percentile is a number from 0 to 100"),
        ("T | extend x = _GetWatchlist('w')", "the function '_GetWatchlist' is not supported"),
        ("_GetWatchlist('w')", "unknown watchlist 'w'"),
        ("T | summarize n = count() + arg_max(Time, Path)", "arg_max() inside an expression is not supported"),
        ("Heartbeat | take 1", "unknown table or tabular let 'Heartbeat'; tables are: "),
        ("T | project-away Nope", "unknown column 'Nope'"),
        ("T | where Time >= 90d", "cannot compare datetime with timespan"),
    ];
    for (q, msg) in cases {
        let query = format!("{T}{q}");
        let parsed = parse(&query).unwrap();
        let e = plan_query(&parsed, &query, &TableList::default(), NOW_US).expect_err(q);
        assert!(e.message.starts_with(msg), "{q}: {}", e.message);
        assert_eq!(e.line, 6, "{q}: errors point into the query");
    }
}

#[tokio::test]
async fn dynamic_values_property_access_and_arrays() {
    let d = r#"let d = dynamic({"a": {"b": [1, 2, 3]}, "s": "web", "n": 5});"#;
    let cases: &[(&str, &[&str])] = &[
        ("print x = d.a.b[1], y = d.a.b[-1], z = d['a']['b'][0], m = d.missing", &["2 | 3 | 1 | null"]),
        // A dynamic string is unquoted by tostring() and compares with a string.
        ("print s = d.s, t = tostring(d.s), eq = d.s == 'web', gt = d.n > 3", &["\"web\" | web | true | true"]),
        ("print n = array_length(d.a.b), m = array_length(d.a), e = array_length(dynamic([]))", &["3 | null | 0"]),
        ("print p = pack_array(1, 'a', true, 2.5)", &["[1,\"a\",true,2.5]"]),
        (
            "print s = split('a.b.c', '.'), first = tostring(split('a.b.c', '.')[0]), third = split('a.b.c', '.', 2), e = split('', ',')",
            &["[\"a\",\"b\",\"c\"] | a | \"c\" | [\"\"]"],
        ),
        ("print j = strcat_array(dynamic(['a', 1, 'b']), '-')", &["a-1-b"]),
        ("print n = toint(d.n) + 1, r = toreal(d.n) / 2", &["6 | 2.5"]),
    ];
    let prefixed: Vec<(String, &[&str])> = cases.iter().map(|(q, w)| (format!("{d}\n{q}"), *w)).collect();
    let borrowed: Vec<(&str, &[&str])> = prefixed.iter().map(|(q, w)| (q.as_str(), *w)).collect();
    check(&borrowed).await;
}

#[tokio::test]
async fn parse_json_reads_json_text_and_keeps_other_text_as_a_string() {
    check(&[
        (
            r#"print a = parse_json('{"name": "web", "ports": [22, 443]}').ports[1], b = todynamic('[1,2]')[0], c = parse_json('not json'), d = tostring(parse_json('not json'))"#,
            &["443 | 1 | \"not json\" | not json"],
        ),
        ("T | extend j = parse_json(strcat('{\"size\":', Size, '}')) | where j.size > 10 | project Computer", &["WEB-01"]),
    ])
    .await;
}

#[tokio::test]
async fn make_set_and_make_list_build_dynamic_arrays_without_nulls() {
    check(&[
        ("T | summarize make_set(Computer), make_list(Size) | project array_length(set_Computer), array_length(list_Size)", &["4 | 3"]),
        ("T | summarize s = make_set_if(Computer, Size > 5), l = make_list_if(Size, Size > 5) | project array_length(s), array_length(l)", &["2 | 2"]),
        ("T | where Size == 10 | summarize makeset(Computer), makelist(Path)", &["[\"web-01\"] | [\"/etc/passwd\"]"]),
        ("T | summarize s = make_list(Size, 1) | project array_length(s)", &["1"]),
        ("T | where Size > 100 | summarize s = make_set(Computer)", &["[]"]),
    ])
    .await;
}

#[tokio::test]
async fn mv_expand_gives_a_row_per_element() {
    check(&[
        (
            "datatable(Computer:string, Ports:dynamic)['a', dynamic([22, 443]), 'b', dynamic([]), 'c', dynamic(null)] | mv-expand Ports",
            &["a | 22", "a | 443", "c | null"],
        ),
        (
            "datatable(Computer:string, Ports:dynamic)['a', dynamic([22, 443])] | mv-expand p = Ports to typeof(long) | extend q = p + 1 | project Computer, q",
            &["a | 23", "a | 444"],
        ),
        ("print b = dynamic({'x': 1, 'y': 2}) | mv-expand b", &["{\"x\":1}", "{\"y\":2}"]),
    ])
    .await;
}

#[tokio::test]
async fn parse_operator_extracts_typed_columns() {
    check(&[
        (
            "print v = 'Version:1.13.40-0' | parse v with * 'Version:' Major:long '.' Minor:long '.' Patch:long '-' * | project Major, Minor, Patch",
            &["1 | 13 | 40"],
        ),
        (
            "T | parse Path with '/' Dir '/' Rest | project Dir, Rest",
            &["etc | passwd", "etc | ssh/sshd_config", "usr | bin/KustoExplorerQueryRun", "tmp | x"],
        ),
        // A row that does not match gets empty strings and nulls.
        ("print v = 'nothing here' | parse v with 'Version:' N:long | project N", &["null"]),
        ("print v = 'id=42;' | parse kind=regex v with 'id=' N:long ';' | project N", &["42"]),
    ])
    .await;
}

#[tokio::test]
async fn range_toscalar_and_aggregates_inside_expressions() {
    check(&[
        ("range x from 1 to 7 step 3", &["1", "4", "7"]),
        (
            "range t from datetime(2024-05-01) to datetime(2024-05-01 02:00) step 1h",
            &["2024-05-01T00:00:00Z", "2024-05-01T01:00:00Z", "2024-05-01T02:00:00Z"],
        ),
        ("let m = toscalar(T | summarize max(Size)); T | where Size == m | project Computer", &["WEB-01"]),
        // Kusto allows scalar expressions around aggregates.
        (
            "T | where isnotnull(Size) | summarize Span = (max(Time) - min(Time)) / 1m, Avg = sum(Size) / count() by Big = Size > 8 | sort by Big asc",
            &["false | 0.0 | 5", "true | 30.0 | 15"],
        ),
        ("T | summarize LastSeen = now() - max(Time) | project LastSeen / 1m", &["55.0"]),
    ])
    .await;
}

#[tokio::test]
async fn percentiles_are_nearest_rank() {
    check(&[
        (
            "range x from 1 to 4 step 1 | summarize percentile(x, 50), percentile(x, 100), p0 = percentile(x, 0)",
            &["2 | 4 | 1"],
        ),
        ("range x from 1 to 10 step 1 | summarize percentiles(x, 25, 90)", &["3 | 9"]),
    ])
    .await;
    assert_eq!(
        columns(&format!("{T}range x from 1 to 4 step 1 | summarize percentiles(x, 50, 95)")).await,
        ["percentile_x_50", "percentile_x_95"]
    );
}

#[tokio::test]
async fn string_functions_extract_replace_trim() {
    check(&[
        ("print e = extract('([a-z]+)-([0-9]+)', 2, 'host web-01'), n = extract('x(\\\\d)', 1, 'none')", &["01 | "]),
        ("print r = replace_string('a.b.c', '.', '/'), x = replace_regex('web-01', '([a-z]+)-(\\\\d+)', '\\\\2:\\\\1')", &["a/b/c | 01:web"]),
        ("print t = trim(' ', '  x y  '), s = trim_start('-', '--a-'), e = trim_end('-', '--a-')", &["x y | a- | --a"]),
        ("print i = indexof('hello', 'l'), j = indexof('hello', 'z')", &["2 | -1"]),
        ("T | where * contains 'sshd' | project Size", &["20"]),
    ])
    .await;
}

#[tokio::test]
async fn datetime_functions_format_add_and_parts() {
    check(&[
        ("print f = format_datetime(datetime(2024-05-01 09:05:03.123), 'yyyy-MM-dd HH:mm:ss.fff')", &["2024-05-01 09:05:03.123"]),
        ("print f = format_datetime(datetime(2024-05-01 21:05), 'M/d/yy h:mm tt')", &["5/1/24 9:05 PM"]),
        (
            "print a = datetime_add('month', 1, datetime(2024-01-31)), b = datetime_add('day', -2, datetime(2024-05-01)), c = datetime_add('hour', 3, datetime(2024-05-01))",
            &["2024-02-29T00:00:00Z | 2024-04-29T00:00:00Z | 2024-05-01T03:00:00Z"],
        ),
        // 2024-05-01 was a Wednesday: three days after Sunday.
        ("print d = dayofweek(datetime(2024-05-01)) / 1d, h = hourofday(datetime(2024-05-01 13:30)), m = getmonth(datetime(2024-05-01))", &["3.0 | 13 | 5"]),
        ("print t = totimespan('1.02:03:04') / 1s, u = totimespan('00:00:01.5') / 1ms", &["93784.0 | 1500.0"]),
    ])
    .await;
}

#[tokio::test]
async fn make_series_fills_every_bin() {
    check(&[
        (
            "T | make-series n = count() default = 0 on Time from datetime(2024-05-01 10:00) to datetime(2024-05-01 13:00) step 1h by k = tolower(Computer) | sort by k asc",
            &[
                "db-02 | [0,1,0] | [\"2024-05-01T10:00:00Z\",\"2024-05-01T11:00:00Z\",\"2024-05-01T12:00:00Z\"]",
                "web-01 | [2,0,0] | [\"2024-05-01T10:00:00Z\",\"2024-05-01T11:00:00Z\",\"2024-05-01T12:00:00Z\"]",
            ],
        ),
        (
            "T | make-series total = sum(Size) default = -1 on Time in range(datetime(2024-05-01 10:00), datetime(2024-05-01 12:00), 1h) | project total",
            &["[30,5]"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn search_matches_terms_in_any_or_one_column() {
    check(&[
        ("T | search 'sshd_config' | project Size", &["20"]),
        // Terms as `has` matches them: 'web-01' has the term 'web', in any case by default.
        ("T | search Computer:'WEB' | project Size", &["10", "20"]),
        ("T | search kind=case_sensitive Computer:'WEB' | project Size", &["20"]),
        ("T | search Computer:'web*' and Path:'passwd' | project Size", &["10"]),
        ("T | search Computer:'db-02' or Size > 15 | project Size", &["20", "5"]),
    ])
    .await;
}

#[tokio::test]
async fn evaluate_narrow_and_property_bags() {
    check(&[
        ("print a = 1, b = 'x' | evaluate narrow()", &["0 | a | 1", "0 | b | x"]),
        ("print p = bag_pack('n', 1, 's', 'x'), q = pack('d', dynamic([1]))", &["{\"n\":1,\"s\":\"x\"} | {\"d\":[1]}"]),
        ("print a = 1, b = 'x' | project p = pack_all()", &["{\"a\":1,\"b\":\"x\"}"]),
        (
            "print s = array_sort_asc(dynamic([3, 1, 2])), d = array_sort_desc(dynamic(['a', 'c', 'b'])), l = array_slice(dynamic([1, 2, 3, 4]), 1, -2)",
            &["[1,2,3] | [\"c\",\"b\",\"a\"] | [2,3]"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn s12_timespan_literals() {
    check(&[
        (
            "print a = 2d / 1h, b = 1.5h / 1m, c = 30m / 1s, d = 100ms / 1ms, e = 1tick / 1microsecond",
            &["48.0 | 90.0 | 1800.0 | 100.0 | 0.1"],
        ),
        ("print a = 10microsecond / 1tick, b = 2hours / 1min, c = time(1d) / 1h", &["100.0 | 120.0 | 24.0"]),
    ])
    .await;
}

#[tokio::test]
async fn s13_datetime_literals_are_utc() {
    check(&[
        (
            "print a = datetime(2015-12-31 23:59:59.9), b = datetime(2015-12-31), c = todatetime('2014-05-25T08:20:03.123456Z'), d = isnull(datetime(null))",
            &["2015-12-31T23:59:59.900Z | 2015-12-31T00:00:00Z | 2014-05-25T08:20:03.123456Z | true"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn s16_integer_division_truncates_and_modulo_is_never_negative() {
    check(&[(
        "print a = 1 / 2, b = 1.0 / 2, c = -7 / 2, d = -7 % 3, e = 7 % -3, f = 10 / 4.",
        &["0 | 0.5 | -3 | 2 | 1 | 2.5"],
    )])
    .await;
}

#[tokio::test]
async fn s19_identifiers_are_case_sensitive_and_brackets_quote_them() {
    check(&[
        ("T | project ['Computer name'] = Computer, ['a.b'] = Size | take 1 | project ['a.b']", &["10"]),
        ("T | extend computer = 'x' | project Computer, computer | take 1", &["web-01 | x"]),
    ])
    .await;
}

#[tokio::test]
async fn s20_let_binds_a_calculation_with_one_now_per_query() {
    check(&[
        ("let since = ago(2h); let recent = T | where Time > since; recent | count", &["3"]),
        ("let t = now(); print same = t == now(), earlier = ago(1s) < now()", &["true | true"]),
        ("let n = 3; T | take n | count", &["3"]),
    ])
    .await;
}

#[tokio::test]
async fn s21_conditional_and_string_helpers() {
    check(&[
        ("print a = iff(1 > 2, 'y', 'n'), b = iif(true, 1, 2), c = case(false, 'a', true, 'b', 'c')", &["n | 1 | b"]),
        ("print s = strcat('a', 1, true, 2.5)", &["a1true2.5"]),
        ("T | count", &["4"]),
    ])
    .await;
    assert_eq!(columns(&format!("{T}T | count")).await, ["Count"]);
    assert_eq!(columns(&format!("{T}T | summarize count()")).await, ["count_"]);
}
