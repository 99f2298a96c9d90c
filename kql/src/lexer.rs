//! Tokens of KQL, read with nom: Unicode whitespace and `//` comments between tokens, strings
//! (`'..'`, `".."`, `@".."` verbatim, `h".."` hidden), bracketed names (`['a b']`), numbers,
//! timespans (`1d`, `1.5h`, `30m`, `100ms`, `1tick`), hyphenated operator names
//! (`project-away`), negated word operators (`!contains`) and `in~`.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{opt, recognize};
use nom::sequence::pair;
use nom::{IResult, Parser};

use crate::error::{ErrorKind, KqlError, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier or keyword, including `project-away`, `!contains`, `in~`, `$left`.
    Ident(String),
    /// A bracketed name: `['Last update']`.
    Quoted(String),
    Str(String),
    Long(i64),
    Real(f64),
    /// A timespan literal, in nanoseconds.
    Timespan(i64),
    /// Punctuation and symbolic operators.
    Sym(&'static str),
    /// `datetime(...)`, `dynamic(...)`, `timespan(...)`, `guid(...)`: the type word and the raw
    /// text between the parentheses (not KQL expressions), with that text's span.
    TypedLit {
        ty: String,
        raw: String,
        inner: Span,
    },
    Eof,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Quoted(s) => format!("['{s}']"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Long(n) => format!("number {n}"),
            Tok::Real(n) => format!("number {n}"),
            Tok::Timespan(_) => "a timespan".to_string(),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::TypedLit { ty, raw, .. } => format!("{ty}({raw})"),
            Tok::Eof => "the end of the query".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Characters Kusto treats as whitespace (Kusto.Language `TextFacts.IsWhitespace`).
pub fn is_kql_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\r' | '\n' | '\x0C' | '\u{00A0}' | '\u{1680}' | '\u{180E}' | '\u{2000}'
            ..='\u{200B}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}'
    )
}

/// Operator names written with a hyphen.
const HYPHENATED: &[&str] = &[
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "project-smart",
    "mv-expand",
    "mv-apply",
    "make-series",
    "top-nested",
    "top-hitters",
    "parse-where",
    "parse-kv",
    "partition-by",
    "sample-distinct",
];

/// Word operators that have a `!` form: the string operators, `in`, `in~` and `between`.
fn negatable(word: &str) -> bool {
    matches!(word, "in" | "in~" | "between") || crate::ast::STRING_OPERATORS.contains(&word)
}

/// Timespan suffixes and their length in nanoseconds (longest match first).
const TIMESPAN_UNITS: &[(&str, f64)] = &[
    ("milliseconds", 1e6),
    ("microseconds", 1e3),
    ("millisecond", 1e6),
    ("microsecond", 1e3),
    ("nanoseconds", 1.0),
    ("nanosecond", 1.0),
    ("millisec", 1e6),
    ("microsec", 1e3),
    ("nanosec", 1.0),
    ("minutes", 6e10),
    ("seconds", 1e9),
    ("millis", 1e6),
    ("micros", 1e3),
    ("minute", 6e10),
    ("second", 1e9),
    ("milli", 1e6),
    ("micro", 1e3),
    ("nanos", 1.0),
    ("hours", 3.6e12),
    ("ticks", 100.0),
    ("nano", 1.0),
    ("hour", 3.6e12),
    ("days", 8.64e13),
    ("tick", 100.0),
    ("min", 6e10),
    ("sec", 1e9),
    ("hrs", 3.6e12),
    ("day", 8.64e13),
    ("ms", 1e6),
    ("hr", 3.6e12),
    ("d", 8.64e13),
    ("h", 3.6e12),
    ("m", 6e10),
    ("s", 1e9),
];

const SYMBOLS: &[&str] = &[
    "==", "!=", "<>", "=~", "!~", "<=", ">=", "..", "=>", "<", ">", "=", "+", "-", "*", "/", "%", "|", ",", ";", "(",
    ")", "[", "]", "{", "}", ".", ":", "!", "?",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident(i: &str) -> IResult<&str, &str> {
    recognize(pair(take_while1(is_ident_start), take_while(is_ident_char))).parse(i)
}

fn number(i: &str) -> IResult<&str, &str> {
    recognize((
        digit1,
        opt(pair(char('.'), take_while(|c: char| c.is_ascii_digit()))),
        opt((alt((tag("e"), tag("E"))), opt(alt((tag("+"), tag("-")))), digit1)),
    ))
    .parse(i)
}

/// Splits `source` into tokens, ending with `Tok::Eof`.
pub fn tokenize(source: &str) -> Result<Vec<Token>, KqlError> {
    let mut lexer = Lexer { source, rest: source, tokens: Vec::new() };
    loop {
        lexer.skip_whitespace_and_comments();
        let start = lexer.position();
        let Some(c) = lexer.rest.chars().next() else {
            lexer.tokens.push(Token { tok: Tok::Eof, span: Span::new(start, start) });
            return Ok(lexer.tokens);
        };
        let tok = if let Some(tok) = lexer.string(start)? {
            tok
        } else if let Some(tok) = lexer.bracketed_name(start)? {
            tok
        } else if c.is_ascii_digit() {
            lexer.number(start)?
        } else if is_ident_start(c) {
            lexer.word(start)?
        } else if let Some(tok) = lexer.negated_word().or_else(|| lexer.symbol()) {
            tok
        } else {
            return Err(lexer.error(format!("unexpected character '{c}'"), start, start + c.len_utf8()));
        };
        let span = Span::new(start, lexer.position());
        lexer.tokens.push(Token { tok, span });
    }
}

/// The tokenizer's state: the text not yet read and the tokens so far. Each reading method
/// consumes one token's text from `rest` and returns the token.
struct Lexer<'s> {
    source: &'s str,
    rest: &'s str,
    tokens: Vec<Token>,
}

impl<'s> Lexer<'s> {
    fn position(&self) -> usize {
        self.source.len() - self.rest.len()
    }

    fn position_of(&self, rest: &str) -> usize {
        self.source.len() - rest.len()
    }

    fn error(&self, message: String, start: usize, end: usize) -> KqlError {
        KqlError::new(ErrorKind::Syntax, message, Span::new(start, end), self.source)
    }

    fn skip_whitespace_and_comments(&mut self) {
        loop {
            let trimmed = self.rest.trim_start_matches(is_kql_whitespace);
            if let Some(after) = trimmed.strip_prefix("//") {
                self.rest = after.find('\n').map_or("", |i| &after[i..]);
            } else {
                self.rest = trimmed;
                return;
            }
        }
    }

    /// Strings: '..', "..", @'..' verbatim, h'..' hidden (optionally verbatim: h@'..').
    fn string(&mut self, start: usize) -> Result<Option<Tok>, KqlError> {
        let rest = self.rest;
        let (prefix_len, verbatim) = if rest.starts_with("h@'") || rest.starts_with("h@\"") || rest.starts_with("H@\"")
        {
            (2, true)
        } else if rest.starts_with("@'") || rest.starts_with("@\"") {
            (1, true)
        } else if (rest.starts_with("h'")
            || rest.starts_with("h\"")
            || rest.starts_with("H\"")
            || rest.starts_with("H'"))
            && !rest[1..].starts_with("''")
        {
            (1, false)
        } else {
            (0, false)
        };
        let quote_at = &rest[prefix_len..];
        if !(quote_at.starts_with('\'') || quote_at.starts_with('"')) {
            return Ok(None);
        }
        let (value, len) = read_string(quote_at, verbatim).map_err(|m| self.error(m, start, self.source.len()))?;
        self.rest = &quote_at[len..];
        Ok(Some(Tok::Str(value)))
    }

    /// Bracketed names: ['name'] or ["name"] -- unless the bracket directly follows an
    /// expression (`d['key']`), where it indexes.
    fn bracketed_name(&mut self, start: usize) -> Result<Option<Tok>, KqlError> {
        let indexes = self.tokens.last().is_some_and(|t: &Token| {
            t.span.end == start && matches!(t.tok, Tok::Ident(_) | Tok::Quoted(_) | Tok::Sym(")") | Tok::Sym("]"))
        });
        if indexes || !(self.rest.starts_with("['") || self.rest.starts_with("[\"")) {
            return Ok(None);
        }
        let (value, len) = read_string(&self.rest[1..], false).map_err(|m| self.error(m, start, self.source.len()))?;
        let after = &self.rest[1 + len..];
        let after_ws = after.trim_start_matches(is_kql_whitespace);
        if after_ws.starts_with(',') {
            // `datatable(P:string) ["/etc/passwd", 1]`: a list whose first item is a string.
            return Ok(None);
        }
        let Some(after_close) = after_ws.strip_prefix(']') else {
            return Err(self.error("expected ']' to close the bracketed name".into(), start, self.position_of(after)));
        };
        self.rest = after_close;
        Ok(Some(Tok::Quoted(value)))
    }

    /// A long, a real, or a timespan (`15m`, `1.5h`).
    fn number(&mut self, start: usize) -> Result<Tok, KqlError> {
        let rest = self.rest;
        let (after, text) = number(rest).map_err(|_| self.error("invalid number".into(), start, start + 1))?;
        // `1..5` is a range, not the real 1. followed by .5
        let (text, after) = if text.ends_with('.') && after.starts_with('.') {
            (&text[..text.len() - 1], &rest[text.len() - 1..])
        } else {
            (text, after)
        };
        let invalid = |end: usize| self.error(format!("invalid number '{text}'"), start, end);
        // A timespan suffix, longest match, not followed by an identifier character.
        if let Some((unit, ns)) =
            TIMESPAN_UNITS.iter().find(|(u, _)| after.starts_with(u) && !after[u.len()..].starts_with(is_ident_char))
        {
            let n: f64 = text.parse().map_err(|_| invalid(start + text.len()))?;
            self.rest = &after[unit.len()..];
            return Ok(Tok::Timespan((n * ns).round() as i64));
        }
        if after.starts_with(is_ident_char) {
            let bad: String = after.chars().take_while(|c| is_ident_char(*c)).collect();
            let message = format!(
                "invalid literal '{text}{bad}': '{bad}' is not a timespan unit (d, h, m, s, ms, microsecond, tick...)"
            );
            return Err(self.error(message, start, self.position_of(after) + bad.len()));
        }
        let end = self.position_of(after);
        let tok = match text.parse::<i64>() {
            Ok(n) if !text.contains(['.', 'e', 'E']) => Tok::Long(n),
            _ => Tok::Real(text.parse().map_err(|_| invalid(end))?),
        };
        self.rest = after;
        Ok(tok)
    }

    /// A name or keyword: `project-away` and the other hyphenated operators, `in~`, and the
    /// raw literals (`datetime(...)`, `dynamic(...)`...) whose parentheses hold text.
    fn word(&mut self, start: usize) -> Result<Tok, KqlError> {
        let (mut after, word) = ident(self.rest).expect("starts with an identifier character");
        let mut word = word.to_string();
        if let Some(tail) = after.strip_prefix('-')
            && let Ok((after2, w2)) = ident(tail)
        {
            let joined = format!("{word}-{w2}");
            if HYPHENATED.contains(&joined.as_str()) {
                word = joined;
                after = after2;
            }
        }
        if word == "in" && after.starts_with('~') {
            word.push('~');
            after = &after[1..];
        }
        let open = after.trim_start_matches(is_kql_whitespace);
        if RAW_LITERALS.contains(&word.as_str()) && open.starts_with('(') {
            return self.raw_literal(word, open, start);
        }
        self.rest = after;
        Ok(Tok::Ident(word))
    }

    /// `datetime(...)` and the other raw literals: the text up to the matching parenthesis.
    fn raw_literal(&mut self, word: String, open: &'s str, start: usize) -> Result<Tok, KqlError> {
        let inner_start = self.position_of(open) + 1;
        let len = matching_paren(open)
            .ok_or_else(|| self.error(format!("expected ')' to close {word}("), start, self.position_of(open) + 1))?;
        let inner_end = self.position_of(open) + len - 1;
        self.rest = &open[len..];
        let raw = self.source[inner_start..inner_end].to_string();
        Ok(Tok::TypedLit { ty: word, raw, inner: Span::new(inner_start, inner_end) })
    }

    /// `!contains`, `!in`, `!in~`, `!between`...
    fn negated_word(&mut self) -> Option<Tok> {
        let (after, w) = ident(self.rest.strip_prefix('!')?).ok()?;
        let (w, after) = if w == "in" && after.starts_with('~') { ("in~", &after[1..]) } else { (w, after) };
        if !negatable(w) {
            return None;
        }
        self.rest = after;
        Some(Tok::Ident(format!("!{w}")))
    }

    fn symbol(&mut self) -> Option<Tok> {
        let sym = SYMBOLS.iter().find(|s| self.rest.starts_with(**s))?;
        self.rest = &self.rest[sym.len()..];
        Some(Tok::Sym(sym))
    }
}

/// Literal forms whose parentheses hold raw text rather than an expression.
const RAW_LITERALS: &[&str] = &["datetime", "date", "timespan", "time", "dynamic", "guid"];

/// The length of `s` (which starts with `(`) up to and including its matching `)`, skipping
/// quoted strings.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (c == ')').then_some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Reads a quoted string starting at its quote; returns the value and the bytes consumed.
pub(crate) fn read_string(s: &str, verbatim: bool) -> Result<(String, usize), String> {
    let quote = s.chars().next().expect("a quote");
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if verbatim && chars.peek().is_some_and(|(_, n)| *n == quote) {
                chars.next();
                out.push(quote);
                continue;
            }
            return Ok((out, i + c.len_utf8()));
        }
        if c == '\n' && !verbatim {
            return Err(format!("unterminated string: a newline before the closing {quote}"));
        }
        if c == '\\' && !verbatim {
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' | '\'' | '"' => out.push(e),
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, h)| h)).collect();
                    let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    out.push(ch.ok_or_else(|| format!("invalid escape \\u{hex}"))?);
                }
                other => return Err(format!("invalid escape sequence '\\{other}' in a string")),
            }
            continue;
        }
        out.push(c);
    }
    Err(format!("unterminated string: no closing {quote}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn id(s: &str) -> Tok {
        Tok::Ident(s.into())
    }

    #[test]
    fn lexes_the_kql_token_forms() {
        use Tok::*;
        let cases: Vec<(&str, Vec<Tok>)> = vec![
            ("T | project-away a", vec![id("T"), Sym("|"), id("project-away"), id("a"), Eof]),
            ("a !contains 'x'", vec![id("a"), id("!contains"), Str("x".into()), Eof]),
            (
                "a in~ (1) and b !in~ (2)",
                vec![
                    id("a"),
                    id("in~"),
                    Sym("("),
                    Long(1),
                    Sym(")"),
                    id("and"),
                    id("b"),
                    id("!in~"),
                    Sym("("),
                    Long(2),
                    Sym(")"),
                    Eof,
                ],
            ),
            (
                "ago(1d) 1.5h 30m 10s 100ms 1tick 2microseconds",
                vec![
                    id("ago"),
                    Sym("("),
                    Timespan(86_400_000_000_000),
                    Sym(")"),
                    Timespan(5_400_000_000_000),
                    Timespan(1_800_000_000_000),
                    Timespan(10_000_000_000),
                    Timespan(100_000_000),
                    Timespan(100),
                    Timespan(2_000),
                    Eof,
                ],
            ),
            (
                "between(1m..15m)",
                vec![
                    id("between"),
                    Sym("("),
                    Timespan(60_000_000_000),
                    Sym(".."),
                    Timespan(900_000_000_000),
                    Sym(")"),
                    Eof,
                ],
            ),
            ("1..5 1000. 2.5e3", vec![Long(1), Sym(".."), Long(5), Real(1000.0), Real(2500.0), Eof]),
            (
                r#"@"c:\dir" 'it\'s' "a\"b" h'secret'"#,
                vec![Str("c:\\dir".into()), Str("it's".into()), Str("a\"b".into()), Str("secret".into()), Eof],
            ),
            ("['Last update'] [\"x\"]", vec![Quoted("Last update".into()), Quoted("x".into()), Eof]),
            ("a // comment | where\n| b", vec![id("a"), Sym("|"), id("b"), Eof]),
            ("a\u{00A0}|\u{200B}b\u{FEFF}", vec![id("a"), Sym("|"), id("b"), Eof]),
            (
                "$left.a == $right.b",
                vec![id("$left"), Sym("."), id("a"), Sym("=="), id("$right"), Sym("."), id("b"), Eof],
            ),
            ("a=~b !~ c <> d", vec![id("a"), Sym("=~"), id("b"), Sym("!~"), id("c"), Sym("<>"), id("d"), Eof]),
            ("x-y", vec![id("x"), Sym("-"), id("y"), Eof]),
            ("'😀'", vec![Str("😀".into()), Eof]),
        ];
        for (src, want) in cases {
            assert_eq!(toks(src), want, "{src}");
        }
    }

    #[test]
    fn lexing_errors_say_what_and_where() {
        let cases = [
            ("T | where a == 'x", "unterminated string: no closing ' (line 1, column 16)"),
            (
                "T | where a > 5w",
                "invalid literal '5w': 'w' is not a timespan unit (d, h, m, s, ms, microsecond, tick...) (line 1, column 15)",
            ),
            ("T\n| where a # 1", "unexpected character '#' (line 2, column 11)"),
            ("T | project ['a' ", "expected ']' to close the bracketed name (line 1, column 13)"),
        ];
        for (src, msg) in cases {
            assert_eq!(tokenize(src).unwrap_err().to_string(), msg, "{src}");
        }
    }
}
