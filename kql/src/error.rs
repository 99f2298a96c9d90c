use std::fmt;

/// A byte range in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// A query error: what went wrong, where (1-based line and column), and the line with a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KqlError {
    pub kind: ErrorKind,
    pub message: String,
    pub span: Span,
    pub line: usize,
    pub column: usize,
    /// The text of the offending line.
    pub line_text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid KQL.
    Syntax,
    /// Valid KQL that fimlake does not support (the message names the operator or function).
    Unsupported,
    /// Valid syntax that does not make sense: unknown column, wrong argument types...
    Semantic,
}

impl KqlError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, span: Span, source: &str) -> KqlError {
        let start = span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        KqlError {
            kind,
            message: message.into(),
            span,
            line,
            column,
            line_text: source[line_start..line_end].trim_end_matches('\r').to_string(),
        }
    }

    /// The message with its position and the line with a caret under the column.
    pub fn render(&self) -> String {
        let caret = format!("{}^", " ".repeat(self.column.saturating_sub(1)));
        format!("{self}\n{}\n{caret}", self.line_text)
    }
}

impl fmt::Display for KqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {}, column {})", self.message, self.line, self.column)
    }
}

impl std::error::Error for KqlError {}
