//! The console's routes on the real server with API keys: every route without a session
//! (pages redirect to sign-in, actions are refused), with a `query` session and an `admin`
//! session (admin-only pages refused to `query`), every action refused without its CSRF token;
//! sign-in and its refusals in `AuditLog`; the security headers and cookie attributes; and no
//! sign-in at all on a server without keys.
#![allow(clippy::too_many_lines, reason = "a table of routes, one line each")]

mod common;

use common::{Server, create_key, header, http};

fn cookie_value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
}

/// A signed-in browser: its session cookie and the CSRF token its pages carry.
struct Session {
    cookie: String,
    csrf: String,
}

fn sign_in(server: &Server, key: &str) -> Result<Session, (u16, String)> {
    let (status, headers, _) = http("GET", &format!("{}/signin", server.url), &[], b"").unwrap();
    assert_eq!(status, 200);
    let form_token = cookie_value(&headers, "fimlake_signin").expect("the sign-in form sets its token cookie");
    let body = format!("csrf={form_token}&next=%2F&key={key}");
    let cookie = format!("fimlake_signin={form_token}");
    let (status, headers, _) = http(
        "POST",
        &format!("{}/signin", server.url),
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", &cookie)],
        body.as_bytes(),
    )
    .unwrap();
    let location = header(&headers, "location").unwrap_or_default().to_string();
    let Some(session) = cookie_value(&headers, "fimlake_session") else { return Err((status, location)) };
    let set = headers.iter().find(|(k, v)| k == "set-cookie" && v.starts_with("fimlake_session=")).unwrap();
    assert!(set.1.contains("HttpOnly") && set.1.contains("SameSite=Strict"), "{}", set.1);
    let cookie = format!("fimlake_session={session}");
    let (_, _, page) = http("GET", &format!("{}/", server.url), &[("Cookie", &cookie)], b"").unwrap();
    let page = String::from_utf8(page).unwrap();
    let at = page.find(r#"name="csrf" value=""#).expect("pages carry the CSRF token") + r#"name="csrf" value=""#.len();
    let csrf = page[at..at + page[at..].find('"').unwrap()].to_string();
    Ok(Session { cookie, csrf })
}

fn request(server: &Server, method: &str, path: &str, session: Option<&Session>, body: &str) -> u16 {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(s) = session {
        headers.push(("Cookie", s.cookie.as_str()));
    }
    http(method, &format!("{}{path}", server.url), &headers, body.as_bytes()).unwrap().0
}

#[test]
fn every_console_route_checks_session_role_and_csrf() {
    let (query_key, query_cfg) = create_key(&["--role", "query", "--name", "analyst"]);
    let (admin_key, admin_cfg) = create_key(&["--role", "admin", "--name", "secops"]);
    let (ingest_key, ingest_cfg) = create_key(&["--role", "ingest", "--name", "agent"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fimlake.toml");
    std::fs::write(&config, [query_cfg, admin_cfg, ingest_cfg].join("\n")).unwrap();
    let server = Server::start(dir.path(), &[("FIMLAKE_CONFIG", config.to_str().unwrap())]);

    // Wrong keys and ingest keys do not sign in; the refusal says why.
    let (status, location) = sign_in(&server, "flk_wrong").err().expect("a wrong key is refused");
    assert_eq!(status, 303);
    assert!(location.contains("failed=That+key+is+not+valid"), "{location}");
    let (_, location) = sign_in(&server, &ingest_key).err().expect("an ingest key is refused");
    assert!(location.contains("ingest+role"), "{location}");
    let analyst = sign_in(&server, &query_key).unwrap();
    let secops = sign_in(&server, &admin_key).unwrap();

    // (path, status for: no session, query, admin)
    let pages: &[(&str, [u16; 3])] = &[
        ("/", [303, 200, 200]),
        ("/?range=7d&by=category", [303, 200, 200]),
        ("/?range=1y", [303, 400, 400]),
        ("/machines", [303, 200, 200]),
        ("/machines/web1", [303, 200, 200]),
        ("/changes?path=passwd", [303, 200, 200]),
        ("/changes?after=garbage", [303, 400, 400]),
        ("/changes.csv", [303, 200, 200]),
        ("/changes/no-such-id", [303, 404, 404]),
        ("/changes/no-such-id/history?computer=web1&path=%2Fetc%2Fpasswd", [303, 200, 200]),
        ("/hunt", [303, 200, 200]),
        ("/hunt?q=Heartbeat%20%7C%20count", [303, 200, 200]),
        ("/hunt?q=Heartbeat%20%7C%20wher", [303, 400, 400]),
        ("/hunt.csv?q=Heartbeat", [303, 200, 200]),
        ("/alerts", [303, 200, 200]),
        ("/alerts/no-such-alert", [303, 404, 404]),
        ("/rules", [303, 200, 200]),
        ("/rules/new", [303, 403, 200]),
        ("/rules/edit/no-such-rule", [303, 403, 404]),
        ("/deliveries", [303, 200, 200]),
        ("/audit", [303, 200, 200]),
        ("/report", [303, 200, 200]),
        ("/report?gap=soon", [303, 400, 400]),
    ];
    for (path, expected) in pages {
        let got = [None, Some(&analyst), Some(&secops)].map(|s| request(&server, "GET", path, s, ""));
        assert_eq!(&got, expected, "GET {path}");
    }
    let (_, headers, _) = http("GET", &format!("{}/changes", server.url), &[], b"").unwrap();
    assert_eq!(header(&headers, "location"), Some("/signin?next=%2Fchanges"));

    // Actions: (path, body, status for: no session, query, admin), each with the CSRF token;
    // without it every one is 403.
    let actions: &[(&str, &str, [u16; 3])] = &[
        ("/hunt/saved", "name=mine&text=Heartbeat", [401, 303, 303]),
        ("/hunt/saved/no-such-id/delete", "", [401, 404, 404]),
        ("/alerts/no-such-alert/state", "state=Acknowledged&comment=x", [401, 404, 404]),
        ("/alerts/no-such-alert/state", "state=Done", [401, 400, 400]),
        ("/rules/preview", "name=r&severity=1&query=Heartbeat&frequency=1m&kind=per_row&actions=none", [401, 403, 400]),
        ("/rules/save", "name=r&severity=1&query=Heartbeat%20%7C%20wher&frequency=1m&kind=per_row", [401, 403, 400]),
        ("/rules/toggle/no-such-rule", "", [401, 403, 404]),
        ("/rules/delete/no-such-rule", "", [401, 403, 404]),
        ("/deliveries/retry/no-such-delivery", "", [401, 404, 404]),
    ];
    for (path, body, expected) in actions {
        let got = [None, Some(&analyst), Some(&secops)].map(|s| {
            let with_token = s.map_or(body.to_string(), |s| format!("csrf={}&{body}", s.csrf));
            request(&server, "POST", path, s, &with_token)
        });
        assert_eq!(&got, expected, "POST {path}");
        for s in [&analyst, &secops] {
            assert_eq!(request(&server, "POST", path, Some(s), body), 403, "POST {path} without the CSRF token");
            let stale = format!("csrf=not-the-token&{body}");
            assert_eq!(request(&server, "POST", path, Some(s), &stale), 403, "POST {path} with another token");
        }
    }

    // Security headers on pages and on the sign-in form.
    for path in ["/", "/signin"] {
        let cookie = if path == "/" { analyst.cookie.as_str() } else { "" };
        let (_, headers, _) = http("GET", &format!("{}{path}", server.url), &[("Cookie", cookie)], b"").unwrap();
        let csp = header(&headers, "content-security-policy").expect("a CSP");
        assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(request(&server, "GET", "/assets/console.js", None, ""), 200);
    assert_eq!(request(&server, "GET", "/assets/nothing.js", None, ""), 404);

    // Signing out ends the session.
    assert_eq!(request(&server, "POST", "/signout", Some(&analyst), &format!("csrf={}", analyst.csrf)), 303);
    assert_eq!(request(&server, "GET", "/", Some(&analyst), ""), 303);
    assert_eq!(request(&server, "GET", "/", Some(&secops), ""), 200);

    // The API keeps its own rules next to the console: an unknown API route is 404 only with a key.
    assert_eq!(request(&server, "GET", "/v1/nothing", None, ""), 401);

    // Sign-ins, refusals and sign-outs are in AuditLog.
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    let query = r#"{"query": "AuditLog | where Route in ('/signin', '/signout') | summarize count() by Principal, Status, Detail | sort by Principal asc, Detail asc"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let rows = loop {
        let (status, _, body) = http(
            "POST",
            &format!("{}/v1/workspaces/{ws}/query", server.url),
            &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {query_key}"))],
            query.as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rows = v["tables"][0]["rows"].as_array().unwrap().clone();
        if rows.len() >= 5 || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let rows: Vec<String> = rows.iter().map(|r| format!("{} {} {} {}", r[0], r[1], r[2], r[3])).collect();
    assert_eq!(
        rows,
        [
            r#""agent" 401 "console sign-in refused: That key has the ingest role, which cannot use the console." 1"#,
            r#""analyst" 303 "console sign-in" 1"#,
            r#""analyst" 303 "console sign-out" 1"#,
            r#""secops" 303 "console sign-in" 1"#,
            r#""unknown" 401 "console sign-in refused: That key is not valid." 1"#,
        ]
    );
}

#[test]
fn without_keys_the_console_needs_no_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, headers, body) = http("GET", &format!("{}/", server.url), &[], b"").unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("anonymous"));
    assert!(cookie_value(&headers, "fimlake_session").is_some(), "an anonymous session carries the CSRF token");
    assert_eq!(request(&server, "GET", "/signin", None, ""), 303);
    assert_eq!(request(&server, "POST", "/hunt/saved", None, "name=x&text=y"), 403, "CSRF still applies");
}
