//! UDFs over network addresses and URLs: `parse_ipv4`, `ipv4_is_private`, `ipv4_is_in_range`,
//! `parse_url`.

use std::net::Ipv4Addr;

use super::*;

/// An IPv4 address with an optional `/prefix` (0 to 32) as its number and prefix length.
fn ipv4(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = match text.trim().split_once('/') {
        Some((address, prefix)) => (address, prefix.trim().parse::<u32>().ok().filter(|p| *p <= 32)?),
        None => (text.trim(), 32),
    };
    let address: Ipv4Addr = address.trim().parse().ok()?;
    Some((u32::from(address), prefix))
}

fn mask(prefix: u32) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
}

fn address_arg(a: &ArgValue) -> Option<(u32, u32)> {
    a.text().and_then(ipv4)
}

/// `parse_ipv4(ip)`: the address as a long, its host bits cleared when a prefix is given; null
/// when it is not an IPv4 address.
pub fn parse_ipv4(ip: Expr) -> Expr {
    make(
        "parse_ipv4",
        any(1),
        Ret::Type(DataType::Int64),
        |a| address_arg(&a[0]).map_or(Out::Null, |(address, prefix)| Out::Long(i64::from(address & mask(prefix)))),
        vec![ip],
        0,
    )
}

/// The private ranges of RFC 1918.
const PRIVATE: [(u32, u32); 3] = [(0x0A00_0000, 8), (0xAC10_0000, 12), (0xC0A8_0000, 16)];

/// `ipv4_is_private(ip)`: whether the address (or the whole `/prefix` range) lies in
/// 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16; null when it is not an IPv4 address.
pub fn ipv4_is_private(ip: Expr) -> Expr {
    make(
        "ipv4_is_private",
        any(1),
        Ret::Type(DataType::Boolean),
        |a| {
            address_arg(&a[0]).map_or(Out::Null, |(address, prefix)| {
                Out::Bool(PRIVATE.iter().any(|(range, bits)| prefix >= *bits && address & mask(*bits) == *range))
            })
        },
        vec![ip],
        0,
    )
}

/// `ipv4_is_in_range(ip, range)`: whether the address lies in the `/prefix` range; null when
/// either is not an IPv4 address.
pub fn ipv4_is_in_range(ip: Expr, range: Expr) -> Expr {
    make(
        "ipv4_is_in_range",
        any(2),
        Ret::Type(DataType::Boolean),
        |a| match (address_arg(&a[0]), address_arg(&a[1])) {
            (Some((address, prefix)), Some((range, bits))) => {
                Out::Bool(prefix >= bits && address & mask(bits) == range & mask(bits))
            }
            _ => Out::Null,
        },
        vec![ip, range],
        0,
    )
}

/// `parse_url(url)`: a property bag of `Scheme`, `Host`, `Port`, `Path`, `Username`,
/// `Password`, `Query Parameters` (a bag) and `Fragment`; null when the text is not an
/// absolute URL.
pub fn parse_url(url: Expr) -> Expr {
    make(
        "parse_url",
        any(1),
        Ret::Dynamic,
        |a| match &a[0] {
            ArgValue::Str(s) => url::Url::parse(s).map_or(Out::Null, |url| Out::Json(url_parts(&url))),
            _ => Out::Null,
        },
        vec![url],
        0,
    )
}

fn url_parts(url: &url::Url) -> Value {
    let query: serde_json::Map<String, Value> =
        url.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    serde_json::json!({
        "Scheme": url.scheme(),
        "Host": url.host_str().unwrap_or(""),
        "Port": url.port().map_or(String::new(), |p| p.to_string()),
        "Path": url.path(),
        "Username": url.username(),
        "Password": url.password().unwrap_or(""),
        "Query Parameters": query,
        "Fragment": url.fragment().unwrap_or(""),
    })
}
