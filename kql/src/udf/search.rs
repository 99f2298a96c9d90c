//! `contains`, `has`, `hasprefix` and `hassuffix` with a literal: one searcher per query
//! (the needle folded once, a SIMD substring finder), used on every ASCII row; a row with other
//! characters is matched by the Unicode-aware regular expression the operator is defined by, so
//! answers do not depend on which path a row takes.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};
use memchr::memmem;

use super::any;

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Search {
    /// The needle anywhere (`contains`).
    Substring,
    /// The needle as a term: no letter or digit right before it (`start`) and right after it
    /// (`end`) — `has` is both, `hasprefix` the start, `hassuffix` the end.
    Term { start: bool, end: bool },
}

/// `text` matches `needle` as `search` says, ignoring case unless `case_sensitive`.
pub fn text_search(text: Expr, needle: &str, search: Search, case_sensitive: bool) -> Expr {
    let searcher = TextSearch::new(needle, search, case_sensitive);
    ScalarUDF::new_from_impl(searcher).call(vec![text])
}

#[derive(Debug)]
struct TextSearch {
    signature: Signature,
    needle: String,
    search: Search,
    case_sensitive: bool,
    /// The finder of the needle (lowercased when case is ignored) in ASCII rows; `None` when
    /// every row needs the regular expression (a needle with other characters, an empty term).
    ascii: Option<memmem::Finder<'static>>,
    regex: OnceLock<std::result::Result<regex::Regex, String>>,
}

impl PartialEq for TextSearch {
    fn eq(&self, other: &Self) -> bool {
        (&self.needle, self.search, self.case_sensitive) == (&other.needle, other.search, other.case_sensitive)
    }
}

impl Eq for TextSearch {}

impl Hash for TextSearch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.needle, self.search, self.case_sensitive).hash(state);
    }
}

impl TextSearch {
    fn new(needle: &str, search: Search, case_sensitive: bool) -> TextSearch {
        let empty_term = needle.is_empty() && matches!(search, Search::Term { .. });
        let ascii = (needle.is_ascii() && !empty_term).then(|| {
            let folded = if case_sensitive { needle.to_string() } else { needle.to_ascii_lowercase() };
            memmem::Finder::new(folded.as_bytes()).into_owned()
        });
        TextSearch {
            signature: any(1),
            needle: needle.to_string(),
            search,
            case_sensitive,
            ascii,
            regex: OnceLock::new(),
        }
    }

    /// The regular expression that defines the operator (for rows that are not ASCII).
    fn regex(&self) -> Result<&regex::Regex> {
        let built = self.regex.get_or_init(|| {
            let mut pattern = String::new();
            if !self.case_sensitive {
                pattern.push_str("(?i)");
            }
            let (start, end) = match self.search {
                Search::Substring => (false, false),
                Search::Term { start, end } => (start, end),
            };
            if start {
                pattern.push_str(r"(^|[^\p{L}\p{N}])");
            }
            pattern.push_str(&regex::escape(&self.needle));
            if end {
                pattern.push_str(r"([^\p{L}\p{N}]|$)");
            }
            regex::Regex::new(&pattern).map_err(|e| e.to_string())
        });
        built.as_ref().map_err(|e| DataFusionError::Execution(format!("searching for {:?}: {e}", self.needle)))
    }

    /// Whether one row matches; `folded` is scratch space for its lowercase copy.
    fn matches(&self, row: &str, folded: &mut Vec<u8>) -> Result<bool> {
        let Some(finder) = self.ascii.as_ref().filter(|_| row.is_ascii()) else {
            return Ok(self.regex()?.is_match(row));
        };
        let haystack = if self.case_sensitive {
            row.as_bytes()
        } else {
            folded.clear();
            folded.extend(row.bytes().map(|b| b.to_ascii_lowercase()));
            folded.as_slice()
        };
        Ok(match self.search {
            Search::Substring => finder.find(haystack).is_some(),
            Search::Term { start, end } => {
                let length = finder.needle().len();
                let free = |at: Option<&u8>| at.is_none_or(|b| !b.is_ascii_alphanumeric());
                finder.find_iter(haystack).any(|at| {
                    (!start || free(at.checked_sub(1).and_then(|i| haystack.get(i))))
                        && (!end || free(haystack.get(at + length)))
                })
            }
        })
    }

    fn evaluate<'a>(&self, rows: impl Iterator<Item = Option<&'a str>>) -> Result<BooleanArray> {
        let mut folded = Vec::new();
        rows.map(|row| row.map(|r| self.matches(r, &mut folded)).transpose()).collect()
    }
}

impl ScalarUDFImpl for TextSearch {
    fn name(&self) -> &str {
        match (self.search, self.case_sensitive) {
            (Search::Substring, false) => "contains",
            (Search::Substring, true) => "contains_cs",
            (Search::Term { start: true, end: true }, false) => "has",
            (Search::Term { start: true, end: true }, true) => "has_cs",
            (Search::Term { start: true, end: false }, false) => "hasprefix",
            (Search::Term { start: true, end: false }, true) => "hasprefix_cs",
            (Search::Term { end: true, .. }, false) => "hassuffix",
            (Search::Term { .. }, _) => "hassuffix_cs",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let text = args.args[0].to_array(args.number_rows)?;
        let out = match text.data_type() {
            DataType::Utf8 => self.evaluate(text.as_string::<i32>().iter())?,
            DataType::LargeUtf8 => self.evaluate(text.as_string::<i64>().iter())?,
            DataType::Utf8View => self.evaluate(text.as_string_view().iter())?,
            _ => {
                let text: ArrayRef = arrow::compute::cast(&text, &DataType::Utf8)?;
                self.evaluate(text.as_string::<i32>().iter())?
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(needle: &str, search: Search, case_sensitive: bool, row: &str) -> bool {
        let searcher = TextSearch::new(needle, search, case_sensitive);
        let by_kernel = searcher.matches(row, &mut Vec::new()).unwrap();
        let by_regex = searcher.regex().unwrap().is_match(row);
        assert_eq!(by_kernel, by_regex, "{needle:?} in {row:?} ({search:?}, case sensitive: {case_sensitive})");
        by_kernel
    }

    const HAS: Search = Search::Term { start: true, end: true };

    #[test]
    fn the_ascii_path_answers_as_the_defining_regex_does() {
        assert!(check("ETC", Search::Substring, false, "/etc/passwd"));
        assert!(!check("ETC", Search::Substring, true, "/etc/passwd"));
        assert!(check("", Search::Substring, false, "anything"));
        assert!(check("etc", HAS, false, "/ETC/passwd"));
        assert!(!check("etc", HAS, false, "/etcx/passwd"));
        assert!(check("etc", HAS, false, "/etcx/etc_old"), "an underscore is not a letter or digit");
        assert!(check("etc", HAS, false, "etc"));
        assert!(!check("et", HAS, false, "etc etc"));
        assert!(check("pass", Search::Term { start: true, end: false }, false, "/etc/passwd"));
        assert!(!check("wd", Search::Term { start: true, end: false }, false, "/etc/passwd"));
        assert!(check("wd", Search::Term { start: false, end: true }, true, "/etc/passwd"));
        assert!(check("a.b", HAS, false, "x a.b y"), "regex characters are literal");
    }

    #[test]
    fn rows_and_needles_beyond_ascii_take_the_regex() {
        assert!(check("straße", Search::Substring, false, "/srv/STRASSE/Straße"));
        assert!(check("ÉTC", Search::Substring, false, "/étc/x"));
        assert!(!check("etc", HAS, false, "/éetc/x"), "é is a letter: no term boundary");
        assert!(check("etc", HAS, false, "/ü/etc/x"));
        assert!(check("k", HAS, false, "\u{212A}"), "the Kelvin sign folds to k, as the regex says");
        assert!(check("", HAS, false, ""));
        assert!(!check("", HAS, false, "abc"));
    }
}
