//! The page shell (navigation, the time range picker, who is signed in) and small helpers
//! every page uses. maud escapes every interpolated value, so data never becomes markup.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::range::{PRESETS, TimeRange, local};
use crate::session::Viewer;

const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/machines", "Machines"),
    ("/changes", "Changes"),
    ("/hunt", "Hunting"),
    ("/alerts", "Alerts"),
    ("/rules", "Rules"),
    ("/deliveries", "Deliveries"),
    ("/audit", "Audit"),
    ("/report", "PCI 11.5 report"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · fimlake" }
            link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/assets/uPlot.min.css";
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/uPlot.iife.min.js" defer {}
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page without navigation (sign-in).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { (body) }
        }
    }
}

/// A console page: navigation with `active` marked, the range picker when the page has a
/// range, the signed-in principal and the sign-out button.
pub fn page(viewer: &Viewer, title: &str, active: &str, range: Option<&TimeRange>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "fimlake" }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) class=[(*href == active).then_some("active")] { (label) }
                        }
                    }
                    div.who {
                        span data-testid="principal" { (viewer.principal) } " (" (viewer.role.as_str()) ")"
                        @if viewer.signed_in {
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    div.titlebar {
                        h1 { (title) }
                        @if let Some(r) = range { (range_picker(r)) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The range picker: a GET form, so the choice is in the URL. The page's other parameters are
/// kept by `console.js`; without JavaScript the picker still works, on the page's defaults.
fn range_picker(r: &TimeRange) -> Markup {
    html! {
        form.range method="get" {
            select name="range" aria-label="Time range" {
                @for (name, label, _) in PRESETS {
                    option value=(name) selected[r.name == *name] { (label) }
                }
                option value="custom" selected[r.name == "custom"] { "Custom (UTC)" }
            }
            input type="datetime-local" name="from" aria-label="From (UTC)" value=(local(r.start_us));
            input type="datetime-local" name="to" aria-label="To (UTC)" value=(local(r.end_us));
            button type="submit" { "Apply" }
        }
    }
}

/// An error box (a query that failed, a bad parameter).
pub fn error_box(message: &str) -> Markup {
    html! { div.error role="alert" { pre { (message) } } }
}

/// A datetime cell shown as `2024-01-02 03:04:05` (UTC), with the exact value as its title.
pub fn when(v: &serde_json::Value) -> Markup {
    let text = crate::data::text(v);
    let short = text.replace('T', " ").trim_end_matches('Z').chars().take(19).collect::<String>();
    html! { time datetime=(text) title=(text) { (short) } }
}

pub fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A path segment (a computer's name, an id) for a link.
pub fn segment(text: &str) -> String {
    url_encode(text).replace('+', "%20")
}

/// A number as `12,345`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Data for a chart, read by `console.js` from a `<script type="application/json">` element
/// (not executed, so the CSP allows it; `</` is escaped so no value can end the element).
pub fn chart_data(id: &str, data: &serde_json::Value) -> Markup {
    let json = data.to_string().replace("</", "<\\/");
    html! { script type="application/json" id=(id) { (PreEscaped(json)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_segments() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(segment("web 1/a"), "web%201%2Fa");
    }

    #[test]
    fn chart_data_cannot_close_its_element() {
        let m = chart_data("c", &serde_json::json!({"label": "</script><script>alert(1)</script>"})).into_string();
        assert_eq!(m.matches("</script>").count(), 1, "{m}");
    }
}
