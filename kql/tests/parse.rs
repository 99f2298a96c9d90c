//! The parser, as a table of queries and the syntax tree each gives (in the S-expression form of
//! `fimlake_kql::sexpr`), and of bad queries and the error each gives.

use fimlake_kql::{ErrorKind, parse, sexpr};

fn check(query: &str, expected: &str) {
    let q = parse(query).unwrap_or_else(|e| panic!("{query}\n{}", e.render()));
    assert_eq!(sexpr::query(&q), expected, "{query}");
}

fn check_err(query: &str, kind: ErrorKind, expected: &str) {
    let e = parse(query).expect_err(query);
    assert_eq!(e.kind, kind, "{query}: {e}");
    assert_eq!(e.to_string(), expected, "{query}");
}

#[test]
fn tabular_operators() {
    let cases = [
        ("Heartbeat", "Heartbeat"),
        ("Heartbeat | where Computer == 'a'", r#"(Heartbeat (where (== Computer "a")))"#),
        ("T | filter a > 1 | take 10 | limit 5", "(T (where (> a 1)) (take 10) (take 5))"),
        ("T | project a, b = c + 1, ['x y'] = 2", "(T (project a b=(+ c 1) x y=2))"),
        ("T | extend (a, b) = f(x)", "(T (extend (a b)=f(x)))"),
        ("T | project-away a, b* | project-keep c", "(T (project-away a b*) (project-keep c))"),
        ("T | project-rename new = old, n2 = o2", "(T (project-rename new=old n2=o2))"),
        ("T | project-reorder b asc, a", "(T (project-reorder b asc a))"),
        ("T | summarize count() by Computer", "(T (summarize count() by Computer))"),
        ("T | summarize by Computer, bin(TimeGenerated, 1h)", "(T (summarize by Computer bin(TimeGenerated, 1h)))"),
        (
            "T | summarize hint.strategy=partitioned LastSeen = max(TimeGenerated), arg_max(TimeGenerated, *) by Computer",
            "(T (summarize LastSeen=max(TimeGenerated) arg_max(TimeGenerated, *) by Computer))",
        ),
        ("T | order by a, b asc nulls last | sort by c desc", "(T (sort a b asc nulls-last) (sort c desc))"),
        ("T | top 10 by TimeGenerated", "(T (top 10 TimeGenerated))"),
        ("T | distinct Computer, OSType | distinct *", "(T (distinct Computer OSType) (distinct *))"),
        ("T | count", "(T (count))"),
        (
            "T | join kind=leftouter hint.remote=auto (U | where x) on Computer, $left.a == $right.b",
            "(T (join kind=leftouter (U (where x)) on Computer $left.a==$right.b))",
        ),
        ("T | join U on $right.b == $left.a", "(T (join U on $left.a==$right.b))"),
        ("union withsource=Src isfuzzy=true A, (B | take 1), C*", "(union withsource=Src isfuzzy A (B (take 1)) C*)"),
        ("T | union kind=outer U", "(T (union kind=outer U))"),
        ("T | render timechart with (title='x', ysplit=axes)", "(T (render timechart))"),
        (
            r#"T | parse Msg with "user=" User:string " id=" Id:long *"#,
            r#"(T (parse Msg with "user=" User:string " id=" Id:long *))"#,
        ),
        (
            "T | mv-expand ips = ComputerPrivateIPs to typeof(string) limit 10",
            "(T (mv-expand ips=tostring(ComputerPrivateIPs) limit 10))",
        ),
        ("T | as X | serialize n = 1", "(T (as X) (serialize n=1))"),
        ("datatable(a:long, b:string)[1, 'x', 2, 'y']", r#"(datatable (a:long b:string) [1 "x" 2 "y"])"#),
        ("print x = 1, 'a'", r#"(print x=1 "a")"#),
        ("range i from 1 to 10 step 2", "(range i 1 10 2)"),
        (
            "T | make-series n = count() default = 0 on t from ago(1d) to now() step 1h by c",
            "(T (make-series n=count() (default 0) (on t) (from ago(1d)) (to now()) (step 1h) (by c)))",
        ),
        (
            "T | make-series avg(x) on t in range(a, b, 10m)",
            "(T (make-series avg(x) (on t) (from a) (to b) (step 10m) (by )))",
        ),
        ("T | evaluate narrow()", "(T (evaluate narrow ))"),
        (
            r#"T | search "err*" and Path:"etc" or not(Size > 1)"#,
            r#"(T (where (or (and (hasprefix * "err") (has Path "etc")) not((> Size 1)))))"#,
        ),
        ("materialize(T | take 1) | count", "(materialize({(T (take 1))}) (count))"),
    ];
    for (q, want) in cases {
        check(q, want);
    }
}

#[test]
fn statements() {
    check("let x = 5; T | where a > x", "(let x 5) (T (where (> a x)))");
    check(
        "let lookback = 1d;\nlet hosts = Heartbeat | distinct Computer;\nT | where Computer in (hosts) and TimeGenerated > ago(lookback)",
        "(let lookback 1d) (let hosts {(Heartbeat (distinct Computer))}) (T (where (and (in Computer [hosts]) (> TimeGenerated ago(lookback)))))",
    );
    check(
        "let f = (n: long, s: string = 'a') { T | take n }; f(3)",
        "(let f (fn (n:long s:string) (T (take n)))) f(3)",
    );
    check("set notruncation; T;", "T");
    check("let names = dynamic(['a', \"b\"]); T", r#"(let names dynamic(["a","b"])) T"#);
}

#[test]
fn expressions_and_precedence() {
    let cases = [
        ("T | where a == 1 and b == 2 or c", "(T (where (or (and (== a 1) (== b 2)) c)))"),
        ("T | where a + b * c - d / e % f", "(T (where (- (+ a (* b c)) (% (/ d e) f))))"),
        ("T | where -x < -1.5", "(T (where (< (- x) -1.5)))"),
        ("T | where a contains 'x' and b !has \"y\"", r#"(T (where (and (contains a "x") (!has b "y"))))"#),
        (
            "T | where a startswith_cs 'x' or a matches regex '^a'",
            r#"(T (where (or (startswith_cs a "x") (matches regex a "^a"))))"#,
        ),
        ("T | where a in ('x', 'y') and b !in~ (1)", r#"(T (where (and (in a ["x" "y"]) (!in~ b [1]))))"#),
        ("T | where Id in ((U | distinct Id))", "(T (where (in Id [{(U (distinct Id))}])))"),
        ("T | where t between (ago(1h) .. now())", "(T (where (between t ago(1h) now())))"),
        ("T | where t !between (1 .. 5)", "(T (where (!between t 1 5)))"),
        ("T | where a has_any ('x', 'y')", r#"(T (where (has_any a ["x" "y"])))"#),
        (
            "T | extend x = d.key, y = d['k'][0], z = split(s, '.')[1]",
            r#"(T (extend x=d.key y=d["k"][0] z=split(s, ".")[1]))"#,
        ),
        ("T | where a =~ 'x' and b !~ 'y' and c <> 1", r#"(T (where (and (and (=~ a "x") (!~ b "y")) (!= c 1))))"#),
        ("T | where not(isempty(a)) == true", "(T (where (== not(isempty(a)) true)))"),
        ("T | where x > datetime(2024-05-01 10:00)", "(T (where (> x datetime(1714557600000000))))"),
        ("T | where x > datetime(2024-05-01T10:00:00.5Z)", "(T (where (> x datetime(1714557600500000))))"),
        (
            "T | extend d = datetime(null), s = timespan(15 seconds), t = time(1.02:00:00)",
            "(T (extend d=datetime(null) s=15s t=26h))",
        ),
        ("T | extend r = 1000. / 24.", "(T (extend r=(/ 1000.0 24.0)))"),
        ("T | extend s = 'a' 'b'", r#"(T (extend s="ab"))"#),
        ("T | summarize count(*) by x", "(T (summarize count(*) by x))"),
        ("T | summarize arg_max(Latest = t, a) by b", "(T (summarize arg_max(Latest=t, a) by b))"),
        ("T | where TimeGenerated >= (90d)", "(T (where (>= TimeGenerated 90d)))"),
    ];
    for (q, want) in cases {
        check(q, want);
    }
}

#[test]
fn errors_say_what_was_expected_and_where() {
    use ErrorKind::*;
    let cases = [
        (
            "T | wher a == 1",
            Syntax,
            "expected a tabular operator (where, project, extend, summarize, sort, take, join, union...), found 'wher' (line 1, column 5)",
        ),
        ("T | where", Syntax, "expected an expression, found the end of the query (line 1, column 10)"),
        ("T\n| where a == (1", Syntax, "expected ')', found the end of the query (line 2, column 16)"),
        ("T | lookup U on x", Unsupported, "the 'lookup' operator is not supported (line 1, column 5)"),
        ("T | mv-apply x on (take 1)", Unsupported, "the 'mv-apply' operator is not supported (line 1, column 5)"),
        ("T | make-series count() on t", Syntax, "expected 'step', found the end of the query (line 1, column 29)"),
        ("T | sort a", Syntax, "expected 'by', found 'a' (line 1, column 10)"),
        ("T | where a == 1 b", Syntax, "expected '|' or the end of the query, found 'b' (line 1, column 18)"),
        ("let x = 1;", Syntax, "the query has no tabular expression to run (only let statements) (line 1, column 11)"),
        (
            "T | where x > datetime(2024-13-01)",
            Syntax,
            "invalid datetime literal '2024-13-01': there is no such day, hour or offset (line 1, column 24)",
        ),
        (
            "print d = datetime(2024-02-31)",
            Syntax,
            "invalid datetime literal '2024-02-31': there is no such day, hour or offset (line 1, column 20)",
        ),
        (
            "print d = datetime(last tuesday)",
            Syntax,
            "invalid datetime literal 'last tuesday': expected a date such as 2024-05-01 or 2024-05-01T12:00:00Z (line 1, column 20)",
        ),
        (
            "T | where {TimeRange:query}",
            Syntax,
            "unexpected '{': a workbook parameter placeholder such as {TimeRange} must be replaced by a value before the query runs (line 1, column 11)",
        ),
        ("T | join U", Syntax, "expected 'on', found the end of the query (line 1, column 11)"),
        (
            "T; U",
            Unsupported,
            "a query with more than one tabular expression statement is not supported (line 1, column 4)",
        ),
    ];
    for (q, kind, msg) in cases {
        check_err(q, kind, msg);
    }
    let e = parse("Heartbeat\n| summarize count() by\n| take 1").unwrap_err();
    assert_eq!(e.render(), "expected an expression, found '|' (line 3, column 1)\n| take 1\n^");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    for q in [
        format!("print x = {}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("print x = {}1", "-".repeat(100_000)),
        format!("print x = {}1", "+ ".repeat(100_000)),
        format!("T | where x in ({}T{})", "(".repeat(50_000), ")".repeat(50_000)),
        format!("print x = f({}", "g(".repeat(100_000)),
    ] {
        let e = parse(&q).expect_err("too deep");
        assert!(e.message.contains("nests expressions more than 64 levels deep"), "{}", e.message);
    }
    // Real queries stay far below the limit; the deepest accepted ones also plan without
    // exhausting a test thread's 2 MiB stack.
    let q = format!("print x = {}1{}", "(".repeat(25), ")".repeat(25));
    parse(&q).unwrap();
    let q = format!("print x = {}1", "-".repeat(60));
    let ast = parse(&q).unwrap();
    fimlake_kql::plan_query(&ast, &q, &fimlake_kql::TableList::default(), 0).unwrap();
    let q = format!("print x = {}1{}", "abs(".repeat(30), ")".repeat(30));
    let ast = parse(&q).unwrap();
    fimlake_kql::plan_query(&ast, &q, &fimlake_kql::TableList::default(), 0).unwrap();
}

#[test]
fn the_parser_never_panics_on_mutated_queries() {
    // A deterministic mutation sweep: every prefix, and every single-character deletion and
    // substitution of a set of representative queries, must give Ok or an error, never a panic.
    let seeds = [
        "let x = dynamic(['a']); T | where a in (x) and b between (1 .. 2) | summarize arg_max(t, *) by c | order by d asc nulls first",
        "union isfuzzy=true (A | extend x = 'y\\'z'), B | join kind=inner (C | project-rename a = b) on $left.a == $right.a | render barchart",
        "T | parse m with 'a' x:long * | mv-expand y to typeof(string) | extend z = d['k'].p[0], w = datetime(2024-01-01) - 1d",
    ];
    let junk = ['(', ')', '|', '\'', '"', '[', ']', '.', '!', '~', '=', '{', ' ', 'a', '1', '\u{a0}', '/'];
    for seed in seeds {
        let chars: Vec<char> = seed.chars().collect();
        for i in 0..=chars.len() {
            let prefix: String = chars[..i].iter().collect();
            let _ = parse(&prefix);
            let mut deleted = chars.clone();
            if i < deleted.len() {
                deleted.remove(i);
                let _ = parse(&deleted.iter().collect::<String>());
            }
            for j in junk {
                let mut replaced = chars.clone();
                if i < replaced.len() {
                    replaced[i] = j;
                    let _ = parse(&replaced.iter().collect::<String>());
                }
            }
        }
    }
}
