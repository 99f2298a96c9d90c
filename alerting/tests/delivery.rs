//! Delivery as a spec, against real receivers on 127.0.0.1 started here: a webhook server that
//! fails before it answers, and an SMTP server (mailin-embedded) that receives what lettre sent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::{Env, S, rules_dir, start_rule_at, t0};
use fimlake_alerting::AlertingConfig;
use fimlake_alerting::deliver::{DeliveryConfig, sign};
use serde_json::Value;

const CHANGES: &str = r#"
name = "changes"
severity = 1
description = "A critical file changed"
query = "ConfigurationChange | project Computer, FileSystemPath, ChangeCategory, PreviousFileContentChecksum, FileContentChecksum"
frequency = "10s"
condition = { kind = "per_row" }
properties = { pci = "11.5.2" }
actions = ["ops"]
"#;

#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct Received {
    key: String,
    signature: String,
    body: String,
}

/// A webhook receiver answering each request with the next scripted answer (then 200).
async fn receiver(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let script = Arc::new(Mutex::new(script.into_iter()));
    let (s2, sc) = (seen.clone(), script.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (seen, script) = (s2.clone(), sc.clone());
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                seen.lock().unwrap().push(Received {
                    key: h("idempotency-key"),
                    signature: h("x-fimlake-signature"),
                    body,
                });
                let answer = script.lock().unwrap().next().unwrap_or(Answer::Status(200));
                match answer {
                    Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
                    Answer::Hang(d) => {
                        tokio::time::sleep(d).await;
                        StatusCode::OK
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn fast_retries() -> AlertingConfig {
    AlertingConfig {
        delivery: DeliveryConfig {
            attempt_timeout: Duration::from_millis(500),
            min_retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_millis(200),
            ..DeliveryConfig::default()
        },
        ..AlertingConfig::default()
    }
}

/// Waits (bounded) until `done` holds.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_failing_webhook_gets_retries_with_one_key_and_a_valid_signature() {
    let (url, seen) = receiver(vec![Answer::Status(503), Answer::Hang(Duration::from_secs(2))]).await;
    let dir = tempfile::tempdir().unwrap();
    let group = format!("webhooks = [{{ url = \"{url}\", secret = \"s3cret\", headers = {{ X-Team = \"sec\" }} }}]");
    rules_dir(dir.path(), &group, &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), fast_retries()).await;
    env.change("web1", "/etc/passwd", "Modified", t, t + S).await;
    env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    env.alerting.start_delivery();
    wait_for("a delivery", || env.alerting.outbox().depth() == 0).await;

    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "503, a timeout, then 200: {got:?}");
    assert!(got.iter().all(|r| r.key == got[0].key && !r.key.is_empty()), "one idempotency key for every attempt");
    for r in &got {
        assert_eq!(r.signature, sign("s3cret", r.body.as_bytes()), "each attempt is signed");
        assert_eq!(r.body, got[0].body, "each attempt sends the same bytes");
    }
    let v: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(v["schemaId"], "azureMonitorCommonAlertSchema");
    let e = &v["data"]["essentials"];
    assert_eq!(
        (e["alertRule"].as_str(), e["severity"].as_str(), e["monitorCondition"].as_str()),
        (Some("changes"), Some("Sev1"), Some("Fired"))
    );
    assert_eq!(e["alertTargetIDs"], serde_json::json!(["web1"]));
    let ctx = &v["data"]["alertContext"];
    assert_eq!(ctx["conditionType"], "LogQueryCriteria");
    assert_eq!(ctx["properties"]["pci"], "11.5.2");
    assert_eq!(ctx["searchResults"]["totalRows"], 1);
    assert_eq!(ctx["searchResults"]["tables"][0]["rows"][0][1], "/etc/passwd");

    // The audit row follows the outbox write: wait for the last attempt's row.
    let statuses = env
        .query_until("AlertDelivery | sort by Attempt asc | project Attempt, Status, HttpStatus", |rows| {
            rows.len() >= 3
        })
        .await;
    assert_eq!(
        statuses,
        [
            serde_json::json!([1, "Retrying", 503]),
            serde_json::json!([2, "Retrying", null]),
            serde_json::json!([3, "Delivered", 200])
        ]
    );
    env.close().await;
}

#[tokio::test]
async fn permanent_failures_and_expired_retries_are_recorded_and_kept() {
    let (bad, _) = receiver(vec![Answer::Status(400)]).await;
    let (down, seen_down) = receiver(vec![Answer::Status(503); 1000]).await;
    let dir = tempfile::tempdir().unwrap();
    let group = format!("webhooks = [{{ url = \"{bad}\" }}, {{ url = \"{down}\" }}]");
    rules_dir(dir.path(), &group, &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let mut cfg = fast_retries();
    cfg.delivery.retry_for = Duration::from_secs(1);
    let env = Env::open(dir.path(), cfg).await;
    env.change("web1", "/etc/passwd", "Modified", t, t + S).await;
    // Now, so that the 1 s retry period starts now.
    let now = chrono::Utc::now().timestamp_micros();
    env.alerting.evaluate("changes", now).await.unwrap();
    env.alerting.start_delivery();
    wait_for("both given up", || env.alerting.outbox().depth() == 0).await;
    let failed = env.alerting.outbox().failed().unwrap();
    assert_eq!(failed.len(), 2);
    let errors: Vec<String> = failed.iter().map(|e| e.last_error.clone().unwrap()).collect();
    assert!(errors.iter().any(|e| e.contains("HTTP 400")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("gave up after")), "{errors:?}");
    assert!(seen_down.lock().unwrap().len() >= 2, "retried before giving up");
    let rows = env.query_until("AlertDelivery | where Status == 'Failed' | count", |rows| rows[0][0] == 2).await;
    assert_eq!(rows[0][0], 2);
    env.close().await;
}

#[derive(Clone, Default)]
struct Mailbox {
    data: Arc<Mutex<Vec<u8>>>,
    rcpt: Arc<Mutex<Vec<String>>>,
    logins: Arc<Mutex<Vec<(String, String)>>>,
}

impl mailin_embedded::Handler for Mailbox {
    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        self.rcpt.lock().unwrap().push(to.to_string());
        mailin_embedded::response::OK
    }
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> mailin_embedded::Response {
        self.logins.lock().unwrap().push((user.to_string(), password.to_string()));
        if password == "right" {
            mailin_embedded::response::AUTH_OK
        } else {
            mailin_embedded::response::INVALID_CREDENTIALS
        }
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.lock().unwrap().extend_from_slice(buf);
        Ok(())
    }
}

/// An SMTP server on 127.0.0.1, with STARTTLS when given a certificate and key (PEM files).
fn smtp_server(tls: Option<(String, String)>) -> (u16, Mailbox) {
    let mailbox = Mailbox::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = mailin_embedded::Server::new(mailbox.clone());
    let ssl = match tls {
        Some((cert_path, key_path)) => {
            server.with_auth(mailin_embedded::AuthMechanism::Plain);
            mailin_embedded::SslConfig::SelfSigned { cert_path, key_path }
        }
        None => mailin_embedded::SslConfig::None,
    };
    server.with_name("mail.test").with_ssl(ssl).unwrap().with_tcp_listener(listener);
    // The SMTP server's threads end with the test process.
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, mailbox)
}

async fn send_one_change(dir: &std::path::Path, email: &str) -> Env {
    rules_dir(dir, &format!("emails = [{email}]"), &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir, "changes", t);
    let env = Env::open(dir, fast_retries()).await;
    env.append(
        "ConfigurationChange",
        vec![serde_json::json!({
            "Computer": "web1", "FileSystemPath": "/etc/sudoers", "ChangeCategory": "Modified",
            "PreviousFileContentChecksum": "aaa111", "FileContentChecksum": "bbb222",
            "TimeGenerated": common::iso(t), "_TimeReceived": common::iso(t + S),
        })],
    )
    .await;
    env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    env.alerting.start_delivery();
    wait_for("the email", || env.alerting.outbox().depth() == 0).await;
    env
}

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server() {
    let (port, mailbox) = smtp_server(None);
    let dir = tempfile::tempdir().unwrap();
    let email = format!(
        "{{ smtp_host = \"127.0.0.1\", smtp_port = {port}, tls = \"none\", from = \"fimlake@example.com\", to = [\"soc@example.com\", \"pci@example.com\"] }}"
    );
    let env = send_one_change(dir.path(), &email).await;
    assert!(env.alerting.outbox().failed().unwrap().is_empty());

    let mail = String::from_utf8(mailbox.data.lock().unwrap().clone()).unwrap();
    let mut rcpt = mailbox.rcpt.lock().unwrap().clone();
    rcpt.sort();
    assert_eq!(rcpt, ["pci@example.com", "soc@example.com"]);
    assert!(mail.contains("Subject: [fimlake Sev1] changes: Modified /etc/sudoers on web1"), "{mail}");
    assert!(mail.contains("Content-Type: text/plain"), "{mail}");
    assert!(mail.contains("Content-Type: text/html"), "{mail}");
    for expected in [
        "Computer: web1",
        "PreviousFileContentChecksum: aaa111",
        "FileContentChecksum: bbb222",
        "<td>/etc/sudoers</td>",
    ] {
        assert!(mail.contains(expected), "missing {expected}: {mail}");
    }
    assert!(mail.contains("Message-ID: <"), "a stable Message-ID lets mail clients drop duplicates");
    env.close().await;
}

#[tokio::test]
async fn an_email_goes_over_starttls_to_a_server_of_a_private_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (port, mailbox) =
        smtp_server(Some((cert_path.to_str().unwrap().to_string(), key_path.to_str().unwrap().to_string())));

    let email = |ca: &str| {
        format!(
            "{{ smtp_host = \"127.0.0.1\", smtp_port = {port}, tls = \"starttls\", from = \"fimlake@example.com\", to = [\"soc@example.com\"]{ca} }}"
        )
    };
    // Trusting the server's CA: logged in and delivered, encrypted.
    let trusted = format!(", ca_file = \"{}\", username = \"fimlake\", password = \"right\"", cert_path.display());
    let env = send_one_change(dir.path(), &email(&trusted)).await;
    assert_eq!(*mailbox.logins.lock().unwrap(), [("fimlake".to_string(), "right".to_string())]);
    assert!(env.alerting.outbox().failed().unwrap().is_empty(), "{:?}", env.alerting.outbox().failed());
    let mail = String::from_utf8(mailbox.data.lock().unwrap().clone()).unwrap();
    assert!(mail.contains("Modified /etc/sudoers on web1"), "{mail}");
    env.close().await;

    // Without it, the certificate is refused and nothing is sent in clear text.
    let dir2 = tempfile::tempdir().unwrap();
    let (port2, mailbox2) =
        smtp_server(Some((cert_path.to_str().unwrap().to_string(), key_path.to_str().unwrap().to_string())));
    let untrusted = email("").replace(&port.to_string(), &port2.to_string());
    rules_dir(dir2.path(), &format!("emails = [{untrusted}]"), &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir2.path(), "changes", t);
    let mut cfg = fast_retries();
    cfg.delivery.retry_for = Duration::from_secs(1);
    let env = Env::open(dir2.path(), cfg).await;
    env.change("web1", "/etc/sudoers", "Modified", t, t + S).await;
    env.alerting.evaluate("changes", chrono::Utc::now().timestamp_micros()).await.unwrap();
    env.alerting.start_delivery();
    wait_for("giving up", || env.alerting.outbox().depth() == 0).await;
    let failed = env.alerting.outbox().failed().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(mailbox2.data.lock().unwrap().is_empty(), "no message without a trusted TLS session");
    env.close().await;
}

#[tokio::test]
async fn pending_deliveries_resume_after_a_restart() {
    // Nothing listens at first: the notification waits in the outbox.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let dir = tempfile::tempdir().unwrap();
    let group = format!("webhooks = [{{ url = \"http://{addr}/hook\" }}]");
    rules_dir(dir.path(), &group, &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), fast_retries()).await;
    env.change("web1", "/etc/hosts", "Modified", t, t + S).await;
    env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    env.alerting.start_delivery();
    wait_for("a failed attempt", || env.alerting.outbox().pending().first().is_some_and(|e| e.attempts >= 1)).await;
    env.close().await;

    // The receiver comes up on that address; a new engine over the same directory delivers.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = s2.clone();
            async move {
                seen.lock().unwrap().push(headers["idempotency-key"].to_str().unwrap().to_string());
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let env = Env::open(dir.path(), fast_retries()).await;
    assert_eq!(env.alerting.outbox().depth(), 1, "the pending notification survived");
    env.alerting.start_delivery();
    wait_for("the delivery after restart", || !seen.lock().unwrap().is_empty()).await;
    wait_for("an empty outbox", || env.alerting.outbox().depth() == 0).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    env.close().await;
}

/// A crash after an evaluation wrote its notification to the outbox but before it saved the
/// rule's state: the restarted engine repeats the evaluation, and the receiver gets the
/// notification once, not once before the repeat and once after it.
#[tokio::test]
async fn an_evaluation_interrupted_before_its_state_was_saved_notifies_once() {
    let (url, seen) = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), &format!("webhooks = [{{ url = \"{url}\" }}]"), &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), fast_retries()).await;
    env.change("web1", "/etc/shadow", "Modified", t, t + S).await;
    env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    env.close().await;
    // The state as it was before that evaluation: as if the crash came before its save.
    start_rule_at(dir.path(), "changes", t);

    let env = Env::open(dir.path(), fast_retries()).await;
    assert_eq!(env.alerting.outbox().depth(), 1, "the notification survived");
    env.alerting.start_delivery();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.lock().unwrap().is_empty(), "held until its evaluation is repeated");
    let report = env.alerting.evaluate("changes", t + 20 * S).await.unwrap();
    assert_eq!(report.notifications, 1, "the repeat raises the same notification");
    wait_for("the delivery", || env.alerting.outbox().depth() == 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "delivered once");
    env.close().await;
}

#[tokio::test]
async fn action_groups_changed_at_runtime_take_effect_for_the_next_notification() {
    let (before, seen_before) = receiver(vec![]).await;
    let (after, seen_after) = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), &format!("webhooks = [{{ url = \"{before}\" }}]"), &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), fast_retries()).await;
    env.alerting.start_delivery();

    // Replaced while running: the next notification goes to the new webhook, signed with its secret.
    let group: fimlake_alerting::ActionGroup = serde_json::from_value(serde_json::json!({
        "webhooks": [{"url": after, "secret": "n3w", "headers": {"X-Team": "soc"}}]
    }))
    .unwrap();
    assert!(!env.alerting.put_action_group("ops", group).await.unwrap(), "replaced, not created");
    env.change("web1", "/etc/passwd", "Modified", t, t + S).await;
    env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    wait_for("the delivery", || !seen_after.lock().unwrap().is_empty()).await;
    assert!(seen_before.lock().unwrap().is_empty(), "the old webhook got nothing");
    let got = seen_after.lock().unwrap()[0].clone();
    assert_eq!(got.signature, sign("n3w", got.body.as_bytes()));

    // Written to the rules directory: the next start loads the same groups.
    let reloaded = fimlake_alerting::load_dir(&rules).unwrap();
    assert_eq!(reloaded.action_groups["ops"].webhooks[0].url, after);
    let listed = fimlake_alerting::action_groups::redacted(&env.alerting.action_groups()["ops"]);
    assert_eq!(
        (listed.webhooks[0].secret.as_deref(), listed.webhooks[0].headers["X-Team"].as_str()),
        (Some("(set)"), "(set)"),
        "secrets are write-only"
    );

    // Checked as at start, every problem named; a group a rule uses cannot go.
    let bad: fimlake_alerting::ActionGroup =
        serde_json::from_value(serde_json::json!({"webhooks": [{"url": "ftp://x"}], "emails": []})).unwrap();
    let e = env.alerting.put_action_group("bad name", bad).await.unwrap_err().to_string();
    assert!(e.contains("ftp://x") && e.contains("'bad name'"), "{e}");
    let e = env.alerting.delete_action_group("ops").await.unwrap_err().to_string();
    assert!(e.contains("used by the rules changes"), "{e}");
    let spare: fimlake_alerting::ActionGroup =
        serde_json::from_value(serde_json::json!({"webhooks": [{"url": before}]})).unwrap();
    assert!(env.alerting.put_action_group("spare", spare).await.unwrap());
    env.alerting.delete_action_group("spare").await.unwrap();
    assert!(!fimlake_alerting::load_dir(&rules).unwrap().action_groups.contains_key("spare"));
    env.close().await;
}

#[tokio::test]
async fn a_node_that_does_not_lead_delivers_nothing_until_it_leads_again() {
    let (url, seen) = receiver(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), &format!("webhooks = [{{ url = \"{url}\" }}]"), &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), fast_retries()).await;
    let leads = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let check = leads.clone();
    env.alerting.run_while(Arc::new(move || check.load(std::sync::atomic::Ordering::SeqCst)));
    env.change("web1", "/etc/shadow", "Modified", t, t + S).await;
    env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    env.alerting.start_delivery();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(seen.lock().unwrap().is_empty(), "a cluster node without the lease sent a notification");
    assert_eq!(env.alerting.outbox().depth(), 1, "it waits in the outbox");
    leads.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for("the delivery once leading", || !seen.lock().unwrap().is_empty()).await;
    env.close().await;
}
