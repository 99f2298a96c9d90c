//! UDFs over text: URL and base64 encodings, hashes, counting and finding substrings, file paths.

use base64::Engine as _;
use md5::Digest as _;

use super::*;

/// A string UDF of one string argument.
fn string_to_string(name: &'static str, eval: RowFn, s: Expr) -> Expr {
    make(name, any(1), Ret::Type(DataType::Utf8), eval, vec![s], 0)
}

/// `url_encode(s)`: as .NET's `HttpUtility.UrlEncode`, a space is `+`, hex digits lowercase.
pub fn url_encode(s: Expr) -> Expr {
    string_to_string("url_encode", |a| a[0].text().map_or(Out::Null, |s| Out::Str(percent_encode(s, "+"))), s)
}

/// `url_encode_component(s)`: a space is `%20`.
pub fn url_encode_component(s: Expr) -> Expr {
    string_to_string(
        "url_encode_component",
        |a| a[0].text().map_or(Out::Null, |s| Out::Str(percent_encode(s, "%20"))),
        s,
    )
}

/// Letters, digits and `-_.!*()` as they are; a space as `space`; other bytes of the UTF-8
/// form as `%xx`.
fn percent_encode(s: &str, space: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b' ' => out.push_str(space),
            b if b.is_ascii_alphanumeric() || b"-_.!*()".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// `url_decode(s)`: `%xx` sequences and `+` (a space) decoded; a sequence that is not two hex
/// digits is kept as it is; text that does not decode to UTF-8 is null.
pub fn url_decode(s: Expr) -> Expr {
    string_to_string("url_decode", |a| a[0].text().and_then(percent_decode).map_or(Out::Null, Out::Str), s)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `base64_encode_tostring(s)`: the UTF-8 bytes, standard alphabet with padding.
pub fn base64_encode(s: Expr) -> Expr {
    string_to_string(
        "base64_encode_tostring",
        |a| a[0].text().map_or(Out::Null, |s| Out::Str(base64::engine::general_purpose::STANDARD.encode(s))),
        s,
    )
}

/// `base64_decode_tostring(s)`: null when `s` is not base64 or does not decode to UTF-8.
pub fn base64_decode(s: Expr) -> Expr {
    string_to_string(
        "base64_decode_tostring",
        |a| {
            a[0].text()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map_or(Out::Null, Out::Str)
        },
        s,
    )
}

/// `hash_sha256(s)`: the SHA-256 of the UTF-8 bytes, lowercase hex.
pub fn hash_sha256(s: Expr) -> Expr {
    string_to_string("hash_sha256", |a| a[0].text().map_or(Out::Null, |s| Out::Str(hex(&sha2::Sha256::digest(s)))), s)
}

/// `hash_md5(s)`: the MD5 of the UTF-8 bytes, lowercase hex.
pub fn hash_md5(s: Expr) -> Expr {
    string_to_string("hash_md5", |a| a[0].text().map_or(Out::Null, |s| Out::Str(hex(&md5::Md5::digest(s)))), s)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `hash(s [, modulo])`: the xxHash64 of the UTF-8 bytes as a long, modulo `modulo` when given
/// (a modulo that is not positive is null).
pub fn hash(args: Vec<Expr>) -> Expr {
    make(
        "hash",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Type(DataType::Int64),
        |a| {
            let Some(s) = a[0].text() else { return Out::Null };
            let hash = twox_hash::XxHash64::oneshot(0, s.as_bytes());
            match a.get(1).map(ArgValue::whole) {
                None => Out::Long(hash as i64),
                Some(Some(modulo)) if modulo > 0 => Out::Long((hash % modulo as u64) as i64),
                Some(_) => Out::Null,
            }
        },
        args,
        0,
    )
}

/// `countof(text, search)`: occurrences of `search`, overlapping ones counted (`countof("aaa",
/// "aa")` is 2); 0 for an empty `search`.
pub fn countof(text_arg: Expr, search: Expr) -> Expr {
    make(
        "countof",
        any(2),
        Ret::Type(DataType::Int64),
        |a| match (a[0].text(), a[1].text()) {
            (Some(_), Some("")) => Out::Long(0),
            (Some(t), Some(s)) => Out::Long(t.char_indices().filter(|(i, _)| t[*i..].starts_with(s)).count() as i64),
            _ => Out::Null,
        },
        vec![text_arg, search],
        0,
    )
}

/// `indexof(s, lookup [, start [, length [, occurrence]]])`: the character index of the
/// `occurrence`th match of `lookup` that lies within `length` characters from `start` (a
/// negative `start` counts from the end); -1 when there is none; null for a `length` below -1
/// or an `occurrence` below 0.
pub fn indexof(args: Vec<Expr>) -> Expr {
    make(
        "indexof",
        Signature::variadic_any(Volatility::Immutable),
        Ret::Type(DataType::Int64),
        |a| {
            let (Some(s), Some(lookup)) = (a[0].text(), a[1].text()) else { return Out::Null };
            let option = |i: usize, default: i64| a.get(i).map_or(Some(default), ArgValue::whole);
            let (Some(start), Some(length), Some(occurrence)) = (option(2, 0), option(3, -1), option(4, 1)) else {
                return Out::Null;
            };
            if length < -1 || occurrence < 0 {
                return Out::Null;
            }
            Out::Long(find_occurrence(s, lookup, start, length, occurrence))
        },
        args,
        0,
    )
}

fn find_occurrence(s: &str, lookup: &str, start: i64, length: i64, occurrence: i64) -> i64 {
    let chars: Vec<char> = s.chars().collect();
    let lookup: Vec<char> = lookup.chars().collect();
    let count = chars.len() as i64;
    let mut from = if start < 0 { (count + start).max(0) } else { start };
    let mut found_at = -1;
    for _ in 0..occurrence.max(1) {
        // Each next occurrence is searched from just after the previous one, `length` wide.
        let end = if length == -1 { count } else { from.saturating_add(length).min(count) };
        found_at = (from..=end - lookup.len() as i64)
            .find(|&i| chars[i as usize..i as usize + lookup.len()] == lookup[..])
            .unwrap_or(-1);
        if found_at == -1 {
            return -1;
        }
        from = found_at + 1;
    }
    if occurrence == 0 { -1 } else { found_at }
}

/// `parse_path(path)`: a property bag of the path's `Scheme`, `RootPath` (a drive),
/// `DirectoryPath`, `DirectoryName`, `Filename`, `Extension` and `AlternateDataStreamName`;
/// both `/` and `\` separate.
pub fn parse_path(path: Expr) -> Expr {
    make(
        "parse_path",
        any(1),
        Ret::Dynamic,
        |a| a[0].text().map_or(Out::Null, |path| Out::Json(path_parts(path))),
        vec![path],
        0,
    )
}

fn path_parts(path: &str) -> Value {
    let (scheme, path) = match path.split_once("://") {
        Some((scheme, rest))
            if scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) =>
        {
            (scheme, rest)
        }
        _ => ("", path),
    };
    let separator = path.rfind(['/', '\\']);
    let (directory, file) = match separator {
        Some(0) => (&path[..1], &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    };
    let (filename, stream) = file.split_once(':').unwrap_or((file, ""));
    let extension = filename.rsplit_once('.').map_or("", |(_, extension)| extension);
    let directory_name = directory.rsplit(['/', '\\']).next().unwrap_or("");
    let root = directory.trim_start_matches(r"\\?\");
    let root = match root.as_bytes() {
        [drive, b':', ..] if drive.is_ascii_alphabetic() => &root[..2],
        _ => "",
    };
    serde_json::json!({
        "Scheme": scheme,
        "RootPath": root,
        "DirectoryPath": directory,
        "DirectoryName": directory_name,
        "Filename": filename,
        "Extension": extension,
        "AlternateDataStreamName": stream,
    })
}
