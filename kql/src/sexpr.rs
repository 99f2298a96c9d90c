//! A compact, stable text form of the syntax tree (S-expressions), for golden tests and for
//! `--explain`.

use std::fmt::Write;

use crate::ast::*;

pub fn query(q: &Query) -> String {
    let mut out = String::new();
    for l in &q.lets {
        match &l.value {
            LetValue::Expr(e) => write!(out, "(let {} {}) ", l.name.name, expr(e)).unwrap(),
            LetValue::Function { params, body } => {
                let ps: Vec<String> = params.iter().map(|p| format!("{}:{}", p.name.name, p.ty)).collect();
                write!(out, "(let {} (fn ({}) {})) ", l.name.name, ps.join(" "), query(body)).unwrap()
            }
        }
    }
    out.push_str(&pipeline(&q.body));
    out
}

pub fn pipeline(p: &Pipeline) -> String {
    let mut parts = vec![source(&p.source)];
    parts.extend(p.ops.iter().map(op));
    if parts.len() == 1 { parts.remove(0) } else { format!("({})", parts.join(" ")) }
}

fn source(s: &Source) -> String {
    match s {
        Source::Expr(e) => expr(e),
        Source::Union(u) => union(u),
        Source::Datatable { columns, values } => {
            let cols: Vec<String> = columns.iter().map(|(n, t)| format!("{}:{t}", n.name)).collect();
            format!("(datatable ({}) [{}])", cols.join(" "), list(values))
        }
        Source::Print(items) => format!("(print {})", named(items)),
        Source::Range { column, from, to, step } => {
            format!("(range {} {} {} {})", column.name, expr(from), expr(to), expr(step))
        }
    }
}

fn union(u: &Union) -> String {
    let mut s = String::from("(union");
    if let Some(k) = &u.kind {
        write!(s, " kind={k}").unwrap();
    }
    if let Some(w) = &u.with_source {
        write!(s, " withsource={}", w.name).unwrap();
    }
    if u.is_fuzzy {
        s.push_str(" isfuzzy");
    }
    for t in &u.tables {
        write!(s, " {}", pipeline(t)).unwrap();
    }
    s.push(')');
    s
}

fn join(j: &Join) -> String {
    let on: Vec<String> =
        j.on.iter()
            .map(|c| match c {
                JoinCondition::Same(n) => n.name.clone(),
                JoinCondition::Pair { left, right } => format!("$left.{}==$right.{}", left.name, right.name),
            })
            .collect();
    let kind = j.kind.as_ref().map(|k| format!(" kind={}", k.name)).unwrap_or_default();
    format!("(join{kind} {} on {})", pipeline(&j.right), on.join(" "))
}

fn op(o: &Op) -> String {
    match &o.kind {
        OpKind::Where(e) => format!("(where {})", expr(e)),
        OpKind::Project(items) => format!("(project {})", named(items)),
        OpKind::Extend(items) => format!("(extend {})", named(items)),
        OpKind::ProjectAway(n) => format!("(project-away {})", names(n)),
        OpKind::ProjectKeep(n) => format!("(project-keep {})", names(n)),
        OpKind::ProjectRename(pairs) => {
            let p: Vec<String> = pairs.iter().map(|(a, b)| format!("{}={}", a.name, b.name)).collect();
            format!("(project-rename {})", p.join(" "))
        }
        OpKind::ProjectReorder(cols) => {
            let c: Vec<String> = cols.iter().map(|(n, d)| format!("{}{}", n.name, dir(*d))).collect();
            format!("(project-reorder {})", c.join(" "))
        }
        OpKind::Summarize { aggregates, by } => {
            let mut s = String::from("(summarize");
            if !aggregates.is_empty() {
                write!(s, " {}", named(aggregates)).unwrap();
            }
            if !by.is_empty() {
                write!(s, " by {}", named(by)).unwrap();
            }
            s.push(')');
            s
        }
        OpKind::Sort(keys) => format!("(sort {})", keys.iter().map(sort_key).collect::<Vec<_>>().join(" ")),
        OpKind::Take(e) => format!("(take {})", expr(e)),
        OpKind::Top { count, key } => format!("(top {} {})", expr(count), sort_key(key)),
        OpKind::Distinct(items) => format!("(distinct {})", named(items)),
        OpKind::Count => "(count)".to_string(),
        OpKind::Join(j) => join(j),
        OpKind::Union(u) => union(u),
        OpKind::Parse { expr: e, kind, pattern } => {
            let parts: Vec<String> = pattern
                .iter()
                .map(|p| match p {
                    ParsePart::Literal(s) => format!("{s:?}"),
                    ParsePart::Column { name, ty: Some(t) } => format!("{}:{t}", name.name),
                    ParsePart::Column { name, ty: None } => name.name.clone(),
                    ParsePart::Wildcard => "*".to_string(),
                })
                .collect();
            let kind = kind.as_ref().map(|k| format!(" kind={k}")).unwrap_or_default();
            format!("(parse{kind} {} with {})", expr(e), parts.join(" "))
        }
        OpKind::MvExpand(m) => format!("(mv-expand {})", mv_expansion(m)),
        OpKind::MvApply { expand, subquery } => {
            let ops: Vec<String> = subquery.iter().map(op).collect();
            format!("(mv-apply {} on {})", mv_expansion(expand), ops.join(" "))
        }
        OpKind::TopNested(levels) => {
            let levels: Vec<String> = levels.iter().map(top_nested_level).collect();
            format!("(top-nested {})", levels.join(" "))
        }
        OpKind::MakeSeries(m) => {
            let aggs: Vec<String> = m
                .aggregates
                .iter()
                .map(|(a, d)| match d {
                    Some(d) => format!("{} (default {})", named(std::slice::from_ref(a)), expr(d)),
                    None => named(std::slice::from_ref(a)),
                })
                .collect();
            let opt = |o: &Option<Expr>| o.as_ref().map_or("_".to_string(), expr);
            format!(
                "(make-series {} (on {}) (from {}) (to {}) (step {}) (by {}))",
                aggs.join(" "),
                expr(&m.axis),
                opt(&m.from),
                opt(&m.to),
                expr(&m.step),
                named(&m.by)
            )
        }
        OpKind::Evaluate { plugin, args, schema } => {
            let schema = schema.as_ref().map_or(String::new(), |columns| {
                let columns: Vec<String> = columns.iter().map(|(n, t)| format!("{}:{t}", n.name)).collect();
                format!(" : ({})", columns.join(" "))
            });
            format!("(evaluate {} {}{schema})", plugin.name, args.iter().map(expr).collect::<Vec<_>>().join(" "))
        }
        OpKind::As(n) => format!("(as {})", n.name),
        OpKind::Lookup(j) => format!("(lookup {})", join(j)),
        OpKind::GetSchema => "(getschema)".to_string(),
        OpKind::Sample(n) => format!("(sample {})", expr(n)),
        OpKind::SampleDistinct { count, column } => format!("(sample-distinct {} {})", expr(count), expr(column)),
        OpKind::Invoke { function, args } => format!("(invoke {} {})", function.name, list(args)),
        OpKind::Serialize(items) => format!("(serialize {})", named(items)).replace(" )", ")"),
        OpKind::Render(r) => format!("(render {})", r.visualization),
    }
}

fn mv_expansion(m: &MvExpand) -> String {
    let index = m.index.as_ref().map(|i| format!("with_itemindex={} ", i.name)).unwrap_or_default();
    let limit = m.limit.as_ref().map(|l| format!(" limit {}", expr(l))).unwrap_or_default();
    format!("{index}{}{limit}", named(&m.items))
}

fn top_nested_level(l: &TopNestedLevel) -> String {
    let count = l.count.as_ref().map_or("all".to_string(), expr);
    let others = l.others.as_ref().map(|o| format!(" (others {})", expr(o))).unwrap_or_default();
    let direction = if l.descending { "desc" } else { "asc" };
    let (of, by) = (named(std::slice::from_ref(&l.of)), named(std::slice::from_ref(&l.by)));
    format!("({count} of {of}{others} by {by} {direction})")
}

fn dir(d: Option<SortDirection>) -> &'static str {
    match d {
        Some(SortDirection::Asc) => " asc",
        Some(SortDirection::Desc) => " desc",
        None => "",
    }
}

fn sort_key(k: &SortKey) -> String {
    let nulls = match k.nulls_first {
        Some(true) => " nulls-first",
        Some(false) => " nulls-last",
        None => "",
    };
    format!("{}{}{nulls}", expr(&k.expr), dir(k.direction))
}

fn names(n: &[Ident]) -> String {
    n.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(" ")
}

fn named(items: &[NamedExpr]) -> String {
    items
        .iter()
        .map(|i| match i.names.as_slice() {
            [] => expr(&i.expr),
            [one] => format!("{}={}", one.name, expr(&i.expr)),
            many => format!("({})={}", names(many), expr(&i.expr)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(items: &[Expr]) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(" ")
}

pub fn timespan(ns: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000_000_000i64),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ] {
        if ns != 0 && ns % size == 0 {
            return format!("{}{unit}", ns / size);
        }
    }
    format!("{ns}ns")
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Literal(l) => match l {
            Literal::Null => "null".into(),
            Literal::Bool(b) => b.to_string(),
            Literal::Long(n) => n.to_string(),
            Literal::Real(n) => format!("{n:?}"),
            Literal::String(s) => format!("{s:?}"),
            Literal::Timespan(ns) => timespan(*ns),
            Literal::DateTime(us) => format!("datetime({us})"),
            Literal::Dynamic(v) => format!("dynamic({v})"),
            Literal::TypedNull(t) => format!("{t}(null)"),
        },
        ExprKind::Name(n) => n.clone(),
        ExprKind::Star => "*".into(),
        ExprKind::Binary { op, left, right } => format!("({} {} {})", binop(*op), expr(left), expr(right)),
        ExprKind::Negate(e) => format!("(- {})", expr(e)),
        ExprKind::Call { name, args } => {
            format!("{}({})", name.name, args.iter().map(expr).collect::<Vec<_>>().join(", "))
        }
        ExprKind::Member { target, name } => format!("{}.{}", expr(target), name.name),
        ExprKind::Index { target, index } => format!("{}[{}]", expr(target), expr(index)),
        ExprKind::In { expr: e, list: l, negated, case_insensitive } => {
            format!(
                "({}in{} {} [{}])",
                if *negated { "!" } else { "" },
                if *case_insensitive { "~" } else { "" },
                expr(e),
                list(l)
            )
        }
        ExprKind::Between { expr: e, low, high, negated } => {
            format!("({}between {} {} {})", if *negated { "!" } else { "" }, expr(e), expr(low), expr(high))
        }
        ExprKind::Pipeline(p) => format!("{{{}}}", pipeline(p)),
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::NamedArg { name, value } => format!("{}={}", name.name, expr(value)),
    }
}

fn binop(op: BinaryOp) -> String {
    match op {
        BinaryOp::Or => "or".into(),
        BinaryOp::And => "and".into(),
        BinaryOp::Eq => "==".into(),
        BinaryOp::NotEq => "!=".into(),
        BinaryOp::EqTilde => "=~".into(),
        BinaryOp::NotEqTilde => "!~".into(),
        BinaryOp::Lt => "<".into(),
        BinaryOp::LtEq => "<=".into(),
        BinaryOp::Gt => ">".into(),
        BinaryOp::GtEq => ">=".into(),
        BinaryOp::Add => "+".into(),
        BinaryOp::Sub => "-".into(),
        BinaryOp::Mul => "*".into(),
        BinaryOp::Div => "/".into(),
        BinaryOp::Mod => "%".into(),
        BinaryOp::Str(s) => format!("{}{}", if s.negated { "!" } else { "" }, s.name),
    }
}
