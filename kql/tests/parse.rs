//! The parser's limits: errors render with a caret, deep nesting is refused rather than
//! overflowing the stack, mutated queries never panic. What each query parses to (or which error
//! it gives) is in the golden files, `tests/golden/parse_*.kqlt`.

use fimlake_kql::{ErrorKind, parse};

#[test]
fn an_error_renders_its_line_with_a_caret_under_the_column() {
    let e = parse("Heartbeat\n| summarize count() by\n| take 1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Syntax);
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
