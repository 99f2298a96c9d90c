//! `contains`, `has`, `hasprefix`, `hassuffix`, and `startswith` and `endswith` ignoring case,
//! with a literal: one searcher per query (the needle folded once, a SIMD substring finder; the
//! ends of a row compared in place). A `Utf8` array whose text is all ASCII is
//! searched whole, in one pass over its values; a `Utf8View` array (a stored table's column)
//! once per distinct view; otherwise row by row, the ASCII rows by the finder and a
//! row with other characters by the Unicode-aware regular expression the operator is defined
//! by, so answers do not depend on which path a row takes.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, StringArray, StringViewArray};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, HashMap, Result};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};
use memchr::memmem;

use super::any;

/// How many distinct views [`TextSearch::evaluate_views`] remembers the answer for at once (a
/// batch of unique strings would otherwise keep one entry per row).
const MAX_VIEWS_REMEMBERED: usize = 4096;

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Search {
    /// The needle anywhere (`contains`).
    Substring,
    /// The needle at the start (`startswith`).
    Prefix,
    /// The needle at the end (`endswith`).
    Suffix,
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
pub(super) struct TextSearch {
    /// The operator and its needle: `has["nginx"]` ([`super::wire`]).
    name: String,
    signature: Signature,
    needle: String,
    search: Search,
    case_sensitive: bool,
    /// The searcher of the needle in ASCII rows; `None` when every row needs the regular
    /// expression (a needle with other characters, an empty term).
    ascii: Option<AsciiSearcher>,
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
    pub(super) fn new(needle: &str, search: Search, case_sensitive: bool) -> TextSearch {
        let empty_term = needle.is_empty() && matches!(search, Search::Term { .. });
        let ascii = (needle.is_ascii() && !empty_term).then(|| AsciiSearcher::new(needle, case_sensitive));
        let operator = operator_name(search, case_sensitive);
        TextSearch {
            name: super::wire::name(operator, &serde_json::json!([needle])),
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
                Search::Substring | Search::Prefix | Search::Suffix => (false, false),
                Search::Term { start, end } => (start, end),
            };
            if self.search == Search::Prefix {
                pattern.push('^');
            }
            if start {
                pattern.push_str(r"(^|[^\p{L}\p{N}])");
            }
            pattern.push_str(&regex::escape(&self.needle));
            if end {
                pattern.push_str(r"([^\p{L}\p{N}]|$)");
            }
            if self.search == Search::Suffix {
                pattern.push('$');
            }
            regex::Regex::new(&pattern).map_err(|e| e.to_string())
        });
        built.as_ref().map_err(|e| DataFusionError::Execution(format!("searching for {:?}: {e}", self.needle)))
    }

    /// Whether one row matches; `folded` is scratch space for its lowercase copy.
    fn matches(&self, row: &str, folded: &mut Vec<u8>) -> Result<bool> {
        if let Some(hit) = self.ascii.as_ref().and_then(|searcher| searcher.at_edge(self.search, row.as_bytes())) {
            return Ok(hit);
        }
        let Some(searcher) = self.ascii.as_ref().filter(|_| row.is_ascii()) else {
            return Ok(self.regex()?.is_match(row));
        };
        let haystack = searcher.haystack(row.as_bytes(), folded);
        Ok(match self.search {
            Search::Substring => searcher.find(haystack, 0).is_some(),
            Search::Prefix => haystack.starts_with(searcher.finder.needle()),
            Search::Suffix => haystack.ends_with(searcher.finder.needle()),
            Search::Term { .. } => {
                // Every occurrence, overlapping ones too: one that fails its bounds may overlap
                // one that holds (`a-a` in `xa-a-a`).
                let mut from = 0;
                while let Some(at) = searcher.find(haystack, from) {
                    if self.bounds_hold(haystack, at) {
                        return Ok(true);
                    }
                    from = at + 1;
                }
                false
            }
        })
    }

    fn evaluate<'a>(&self, rows: impl Iterator<Item = Option<&'a str>>) -> Result<BooleanArray> {
        let mut folded = Vec::new();
        rows.map(|row| row.map(|r| self.matches(r, &mut folded)).transpose()).collect()
    }

    /// A `Utf8` array whose text is all ASCII, searched whole: its values folded to lowercase in
    /// one pass (when case is ignored), one finder pass over them, each occurrence checked
    /// against its row's bounds. `None` when the array takes the row path (text beyond ASCII, an
    /// empty needle, no ASCII searcher). Answers as [`TextSearch::matches`] row by row.
    fn evaluate_ascii_values(&self, array: &StringArray) -> Option<BooleanArray> {
        let searchable = !self.needle.is_empty() && matches!(self.search, Search::Substring | Search::Term { .. });
        let searcher = self.ascii.as_ref().filter(|_| searchable)?;
        let offsets = array.value_offsets();
        let base = offsets[0] as usize;
        let values = &array.value_data()[base..offsets[array.len()] as usize];
        if !values.is_ascii() {
            return None;
        }
        let folded;
        let haystack = if searcher.case_sensitive {
            values
        } else {
            folded = values.to_ascii_lowercase();
            folded.as_slice()
        };
        let row_end = |row: usize| offsets[row + 1] as usize - base;
        let mut matched = BooleanBufferBuilder::new(array.len());
        matched.append_n(array.len(), false);
        let (mut row, mut from) = (0, 0);
        while let Some(at) = searcher.find(haystack, from) {
            while row_end(row) <= at {
                row += 1;
            }
            let (start, end) = (offsets[row] as usize - base, row_end(row));
            if at + self.needle.len() <= end && self.bounds_hold(&haystack[start..end], at - start) {
                matched.set_bit(row, true);
                from = end;
            } else {
                from = at + 1;
            }
        }
        Some(BooleanArray::new(matched.finish(), array.nulls().cloned()))
    }

    /// A `Utf8View` array searched by view: two rows with the same 16-byte view hold the same
    /// string (a string of up to 12 bytes is inside its view; a longer one is named by its
    /// buffer and offset, and the rows of a Parquet dictionary page share their entry's view),
    /// so each distinct view is searched once. Answers as [`TextSearch::matches`] row by row.
    fn evaluate_views(&self, array: &StringViewArray) -> Result<BooleanArray> {
        let mut folded = Vec::new();
        let mut searched: HashMap<u128, bool> = HashMap::new();
        let mut matched = BooleanBufferBuilder::new(array.len());
        for (row, view) in array.views().iter().enumerate() {
            // A null row's view may name no string: it is not read (the null mask answers).
            if array.is_null(row) {
                matched.append(false);
                continue;
            }
            let hit = match searched.get(view) {
                Some(hit) => *hit,
                None => {
                    let hit = self.matches(array.value(row), &mut folded)?;
                    if searched.len() == MAX_VIEWS_REMEMBERED {
                        searched.clear();
                    }
                    searched.insert(*view, hit);
                    hit
                }
            };
            matched.append(hit);
        }
        Ok(BooleanArray::new(matched.finish(), array.nulls().cloned()))
    }

    /// Whether the occurrence of the needle at `at` in `row` is one the search wants: a term
    /// needs no letter or digit on the sides it names.
    fn bounds_hold(&self, row: &[u8], at: usize) -> bool {
        let Search::Term { start, end } = self.search else { return true };
        let free = |byte: Option<&u8>| byte.is_none_or(|b| !b.is_ascii_alphanumeric());
        (!start || free(at.checked_sub(1).and_then(|i| row.get(i)))) && (!end || free(row.get(at + self.needle.len())))
    }
}

/// The needle's searcher in ASCII text: a SIMD finder of its bytes, lowercase when case is
/// ignored (rows are then searched in a lowercase copy: measured faster on paths than folding
/// inside the search with `aho-corasick`'s ASCII case-insensitive automaton, 21 % of the query's
/// profile against 26 %).
#[derive(Debug)]
struct AsciiSearcher {
    finder: memmem::Finder<'static>,
    case_sensitive: bool,
}

impl AsciiSearcher {
    fn new(needle: &str, case_sensitive: bool) -> AsciiSearcher {
        let folded = if case_sensitive { needle.to_string() } else { needle.to_ascii_lowercase() };
        AsciiSearcher { finder: memmem::Finder::new(folded.as_bytes()).into_owned(), case_sensitive }
    }

    /// `row` as the finder searches it: itself, or its lowercase copy in `folded`.
    fn haystack<'a>(&self, row: &'a [u8], folded: &'a mut Vec<u8>) -> &'a [u8] {
        if self.case_sensitive {
            return row;
        }
        folded.clear();
        folded.extend(row.iter().map(u8::to_ascii_lowercase));
        folded
    }

    /// `startswith` or `endswith` (`search`) answered from the bytes at that end of `row`, when
    /// they are ASCII: compared in place, the row neither folded nor read further. `None` for
    /// the other searches, and for a row whose end is not ASCII (a Unicode case fold of it,
    /// such as the Kelvin sign's to `k`, is the regular expression's to answer). A row shorter
    /// than the needle never matches: every character that folds to an ASCII one is as long or
    /// longer.
    fn at_edge(&self, search: Search, row: &[u8]) -> Option<bool> {
        let needle = self.finder.needle();
        let edge = match search {
            Search::Prefix => row.get(..needle.len()),
            Search::Suffix => row.len().checked_sub(needle.len()).map(|start| &row[start..]),
            Search::Substring | Search::Term { .. } => return None,
        };
        let Some(edge) = edge else { return Some(false) };
        if !edge.is_ascii() {
            return None;
        }
        Some(if self.case_sensitive { edge == needle } else { edge.eq_ignore_ascii_case(needle) })
    }

    /// The first occurrence starting at `from` or later.
    fn find(&self, haystack: &[u8], from: usize) -> Option<usize> {
        self.finder.find(haystack.get(from..)?).map(|at| at + from)
    }
}

impl ScalarUDFImpl for TextSearch {
    fn name(&self) -> &str {
        &self.name
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
            DataType::Utf8 => {
                let strings = text.as_string::<i32>();
                match self.evaluate_ascii_values(strings) {
                    Some(matched) => matched,
                    None => self.evaluate(strings.iter())?,
                }
            }
            DataType::LargeUtf8 => self.evaluate(text.as_string::<i64>().iter())?,
            DataType::Utf8View => self.evaluate_views(text.as_string_view())?,
            _ => {
                let text: ArrayRef = arrow::compute::cast(&text, &DataType::Utf8)?;
                self.evaluate(text.as_string::<i32>().iter())?
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The KQL operator a search is.
pub(super) fn operator_name(search: Search, case_sensitive: bool) -> &'static str {
    match (search, case_sensitive) {
        (Search::Substring, false) => "contains",
        (Search::Substring, true) => "contains_cs",
        (Search::Prefix, false) => "startswith",
        (Search::Prefix, true) => "startswith_cs",
        (Search::Suffix, false) => "endswith",
        (Search::Suffix, true) => "endswith_cs",
        (Search::Term { start: true, end: true }, false) => "has",
        (Search::Term { start: true, end: true }, true) => "has_cs",
        (Search::Term { start: true, end: false }, false) => "hasprefix",
        (Search::Term { start: true, end: false }, true) => "hasprefix_cs",
        (Search::Term { end: true, .. }, false) => "hassuffix",
        (Search::Term { .. }, _) => "hassuffix_cs",
    }
}

/// The search and case sensitivity of the KQL operator `name` (as [`operator_name`] names them).
pub(super) fn operator(name: &str) -> Option<(Search, bool)> {
    let case_sensitive = name.ends_with("_cs");
    let search = match name.trim_end_matches("_cs") {
        "contains" => Search::Substring,
        "startswith" => Search::Prefix,
        "endswith" => Search::Suffix,
        "has" => Search::Term { start: true, end: true },
        "hasprefix" => Search::Term { start: true, end: false },
        "hassuffix" => Search::Term { start: false, end: true },
        _ => return None,
    };
    Some((search, case_sensitive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringViewBuilder;

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
        assert!(check("a-a", HAS, false, "xa-A-a"), "an occurrence overlapping one that fails its bounds");
        assert!(check("a-a", HAS, true, "xa-a-a"));
        assert!(check("", Search::Substring, true, ""));
    }

    #[test]
    fn startswith_and_endswith_compare_the_row_s_ends() {
        assert!(check("/ETC/SSH", Search::Prefix, false, "/etc/ssh/sshd_config"));
        assert!(!check("/ETC/SSH", Search::Prefix, true, "/etc/ssh/sshd_config"));
        assert!(!check("ssh", Search::Prefix, false, "/etc/ssh"), "not at the start");
        assert!(check("CONFIG", Search::Suffix, false, "/etc/ssh/sshd_config"));
        assert!(!check("config", Search::Suffix, false, "/etc/ssh/sshd_config.d"));
        assert!(check("", Search::Prefix, false, ""));
        assert!(check("", Search::Suffix, true, "abc"));
        assert!(!check("abcd", Search::Prefix, false, "abc"), "shorter than the needle");
        assert!(check("/étc", Search::Prefix, false, "/ÉTC/x"), "a needle beyond ASCII: the regex");
        assert!(check("k", Search::Prefix, false, "\u{212A}elvin"), "the Kelvin sign folds to k");
        assert!(check("xk", Search::Suffix, false, "ax\u{212A}"));
        assert!(check("ok", Search::Suffix, false, "é-ok"), "only the row's end needs to be ASCII");
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

    /// The whole-array path against the row path, on `rows` sliced from `skip` on.
    fn check_array(needle: &str, search: Search, case_sensitive: bool, rows: &[Option<String>], skip: usize) {
        let searcher = TextSearch::new(needle, search, case_sensitive);
        let array = StringArray::from(rows.to_vec());
        let array = array.slice(skip.min(rows.len()), rows.len() - skip.min(rows.len()));
        let by_rows = searcher.evaluate(array.iter()).unwrap();
        if let Some(whole) = searcher.evaluate_ascii_values(&array) {
            assert_eq!(
                whole, by_rows,
                "{needle:?} in {rows:?} from {skip} ({search:?}, case sensitive: {case_sensitive})"
            );
        }
        // As views, each repeated string sharing one view, as a dictionary page's rows do.
        let mut builder = StringViewBuilder::new().with_deduplicate_strings();
        rows.iter().for_each(|row| builder.append_option(row.as_deref()));
        let views = builder.finish();
        let views = views.slice(skip.min(rows.len()), rows.len() - skip.min(rows.len()));
        assert_eq!(
            searcher.evaluate_views(&views).unwrap(),
            by_rows,
            "views: {needle:?} in {rows:?} from {skip} ({search:?}, case sensitive: {case_sensitive})"
        );
    }

    #[test]
    fn the_whole_array_path_keeps_occurrences_within_their_rows() {
        let rows = |r: &[&str]| r.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        check_array("ab", Search::Substring, false, &rows(&["xa", "bx", "AB", ""]), 0);
        check_array("ab", HAS, false, &rows(&["ab", "cab", "ab-c", "a", "b"]), 1);
        check_array("a-a", HAS, true, &rows(&["xa-a-a", "a-a"]), 0);
        check_array("x", Search::Substring, false, &[None, Some("x".into()), None], 0);
        let searcher = TextSearch::new("ab", Search::Substring, false);
        let matched = searcher.evaluate_ascii_values(&StringArray::from(vec!["a", "b", "xAB"])).unwrap();
        assert_eq!(matched, BooleanArray::from(vec![false, false, true]), "not across the rows a|b");
        assert!(searcher.evaluate_ascii_values(&StringArray::from(vec!["é"])).is_none(), "beyond ASCII: the rows");
    }

    /// The search a property test's `mode` (0..6) stands for.
    fn search_of(mode: u8) -> Search {
        match mode {
            0 => Search::Substring,
            1 => HAS,
            2 => Search::Term { start: true, end: false },
            3 => Search::Term { start: false, end: true },
            4 => Search::Prefix,
            _ => Search::Suffix,
        }
    }

    proptest::proptest! {
        #[test]
        fn the_whole_array_path_answers_as_the_row_path_does(
            rows in proptest::collection::vec(proptest::option::of("[aAbB1_ .\\-]{0,8}|[aAbB1_ .\\-]{13,16}"), 0..12),
            needle in "[aAbB1_ .\\-]{0,3}",
            case_sensitive: bool,
            mode in 0..6u8,
            skip in 0..3usize,
        ) {
            check_array(&needle, search_of(mode), case_sensitive, &rows, skip);
        }

        #[test]
        fn the_searcher_answers_as_the_defining_regex_does(
            row in "[aAbB1_ .\\-é]{0,12}",
            needle in "[aAbB1_ .\\-é]{0,4}",
            case_sensitive: bool,
            mode in 0..6u8,
        ) {
            check(&needle, search_of(mode), case_sensitive, &row);
        }
    }
}
