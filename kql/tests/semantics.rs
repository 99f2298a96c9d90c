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
        ("T | summarize percentile(Size, 50)", "the aggregate 'percentile' is not supported yet"),
        ("T | summarize arg_max(Time, *), count() by Computer", "arg_max/arg_min together with other aggregates"),
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
