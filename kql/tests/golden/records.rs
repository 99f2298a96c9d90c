//! The golden-file format: a file is a sequence of records separated by blank lines; lines
//! starting with `#` between records are comments.
//!
//! ```text
//! statement            a `let` (or several) prepended to every later query in the file
//! let T = datatable(a:long)[1, 2];
//!
//! query                plans and runs the text; the expected block is the columns
//! T | where a > 1      (`name:type | ...`) and the rows (cells joined by ` | `)
//! ----
//! a:long
//! 2
//!
//! query rowsort        the same, rows compared after sorting (for unordered results)
//! parse                parses only; the expected block is the syntax tree (`sexpr`)
//! ```
//!
//! A record that fails expects one line: `error: KIND at LINE:COLUMN: MESSAGE`, the position
//! counted in the record's own text (the statements before it are not counted).

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Statement,
    Query { rowsort: bool },
    Parse,
}

#[derive(Debug)]
pub struct Record {
    pub kind: Kind,
    /// The line of the record's header, 1-based, for messages.
    pub line: usize,
    pub text: String,
    pub expected: Vec<String>,
    /// The expected block's lines in the file (0-based), replaced when rewriting.
    pub expected_lines: Range<usize>,
}

/// Reads a golden file's records; `Err` names the line that is not a record.
pub fn read(content: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = content.lines().collect();
    let mut records = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at].trim_end();
        if line.is_empty() || line.starts_with('#') {
            at += 1;
            continue;
        }
        let kind = kind_of(line)
            .ok_or_else(|| format!("line {}: expected statement, query or parse, found '{line}'", at + 1))?;
        let (record, next) = read_record(&lines, at, kind)?;
        records.push(record);
        at = next;
    }
    Ok(records)
}

fn kind_of(header: &str) -> Option<Kind> {
    match header.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["statement"] => Some(Kind::Statement),
        ["query"] => Some(Kind::Query { rowsort: false }),
        ["query", "rowsort"] => Some(Kind::Query { rowsort: true }),
        ["parse"] => Some(Kind::Parse),
        _ => None,
    }
}

/// One record from its header line; returns it and the index of the line after it.
fn read_record(lines: &[&str], header: usize, kind: Kind) -> Result<(Record, usize), String> {
    let body_end = lines[header + 1..]
        .iter()
        .position(|l| l.trim_end().is_empty() || (kind != Kind::Statement && l.trim_end() == "----"))
        .map_or(lines.len(), |i| header + 1 + i);
    let text = lines[header + 1..body_end].join("\n");
    if text.trim().is_empty() {
        return Err(format!("line {}: the record has no text", header + 1));
    }
    let mut record = Record { kind, line: header + 1, text, expected: Vec::new(), expected_lines: body_end..body_end };
    if kind == Kind::Statement {
        return Ok((record, body_end));
    }
    if lines.get(body_end).map(|l| l.trim_end()) != Some("----") {
        return Err(format!("line {}: a {kind:?} record needs '----' and the expected output", header + 1));
    }
    let expected_start = body_end + 1;
    let expected_end = lines[expected_start..]
        .iter()
        .position(|l| l.trim_end().is_empty())
        .map_or(lines.len(), |i| expected_start + i);
    record.expected = lines[expected_start..expected_end].iter().map(|l| l.trim_end().to_string()).collect();
    record.expected_lines = expected_start..expected_end;
    Ok((record, expected_end))
}

/// The file with each record's expected block replaced by its actual output.
pub fn rewrite(content: &str, records: &[Record], actual: &[Vec<String>]) -> String {
    let lines: Vec<&str> = content.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut at = 0;
    for (record, output) in records.iter().zip(actual) {
        if record.kind == Kind::Statement {
            continue;
        }
        out.extend(lines[at..record.expected_lines.start].iter().map(|l| l.to_string()));
        out.extend(output.iter().cloned());
        at = record.expected_lines.end;
    }
    out.extend(lines[at..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}
