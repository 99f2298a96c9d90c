//! Rule evaluation as a spec: windows without gaps or overlaps, catch-up after downtime,
//! aggregate rules per dimension, mute and summaries, rule health. Every test runs the real
//! storage and query engines; rules are evaluated at chosen instants (`Alerting::evaluate`).

mod common;

use common::{Env, S, iso, rules_dir, start_rule_at, t0};
use fimlake_alerting::AlertingConfig;
use serde_json::Value;

const GROUP: &str = "webhooks = [{ url = \"http://127.0.0.1:9/unused\" }]";

const CHANGES: &str = r#"
name = "changes"
severity = 1
query = "ConfigurationChange | project Computer, FileSystemPath, ChangeCategory, TimeGenerated"
frequency = "10s"
condition = { kind = "per_row" }
actions = ["ops"]
"#;

/// The paths of the alerts raised by `rule`, by reading its outbox entries' rows.
fn alerted_paths(env: &Env, rule: &str) -> Vec<String> {
    let mut paths: Vec<String> = env
        .alerting
        .outbox()
        .pending()
        .iter()
        .filter(|e| e.rule == rule && e.kind == "Fired")
        .map(|e| match &e.target {
            fimlake_alerting::outbox::Target::Webhook { body, .. } => {
                let v: Value = serde_json::from_str(body).unwrap();
                v["data"]["alertContext"]["fimlake"]["alerts"][0]["dimensions"]["FileSystemPath"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            _ => unreachable!(),
        })
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn records_at_window_edges_and_during_downtime_alert_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), GROUP, &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), AlertingConfig::default()).await;

    // Windows are [start, end) of _TimeReceived: a record stamped exactly at an edge belongs to
    // the window that starts there.
    env.change("web1", "/etc/at-start", "Modified", t, t).await;
    env.change("web1", "/etc/just-before-end", "Modified", t, t + 10 * S - 1).await;
    env.change("web1", "/etc/at-end", "Modified", t, t + 10 * S).await;
    // Generated a day ago, received now (an agent's spool after an outage): still alerted.
    env.change("web1", "/etc/late", "Removed", t - 86_400 * S, t + 15 * S).await;

    let r1 = env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    assert_eq!((r1.window_start_us, r1.window_end_us, r1.fired), (t, t + 10 * S, 2));
    assert_eq!(alerted_paths(&env, "changes"), ["/etc/at-start", "/etc/just-before-end"]);

    let r2 = env.alerting.evaluate("changes", t + 20 * S).await.unwrap();
    assert_eq!((r2.window_start_us, r2.fired), (t + 10 * S, 2));

    // No evaluation for 40 s (the server down, or the schedule late); records keep arriving.
    env.change("web2", "/etc/down-1", "Added", t + 25 * S, t + 25 * S).await;
    env.change("web2", "/etc/down-2", "Added", t + 35 * S, t + 35 * S).await;
    env.change("web2", "/etc/down-3", "Added", t + 59 * S, t + 59 * S).await;
    env.close().await;

    // Restarted: the saved watermark says where to resume.
    let env = Env::open(dir.path(), AlertingConfig::default()).await;
    let r3 = env.alerting.evaluate("changes", t + 60 * S).await.unwrap();
    assert_eq!((r3.window_start_us, r3.window_end_us, r3.fired), (t + 20 * S, t + 60 * S, 3));
    let again = env.alerting.evaluate("changes", t + 60 * S).await.unwrap();
    assert_eq!(again.fired, 0, "an empty window raises nothing");
    assert_eq!(
        alerted_paths(&env, "changes"),
        [
            "/etc/at-end",
            "/etc/at-start",
            "/etc/down-1",
            "/etc/down-2",
            "/etc/down-3",
            "/etc/just-before-end",
            "/etc/late"
        ],
        "each record exactly once"
    );

    // The audit trail has every evaluation with its window.
    let rows = env
        .query("AlertEvaluation | where RuleName == 'changes' | sort by WindowStart asc | project WindowStart, WindowEnd, AlertsFired, Status")
        .await;
    let got: Vec<(String, i64)> =
        rows.iter().map(|r| (r[0].as_str().unwrap().to_string(), r[2].as_i64().unwrap())).collect();
    assert_eq!(got[..3], [(iso(t), 2), (iso(t + 10 * S), 2), (iso(t + 20 * S), 3)]);
    let fired = env.query("AlertEvent | where RuleName == 'changes' and MonitorCondition == 'Fired' | count").await;
    assert_eq!(fired[0][0], 7);
    env.close().await;
}

#[tokio::test]
async fn the_same_key_in_a_later_window_is_a_new_alert_and_once_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let by_file = CHANGES
        .replace("project Computer, FileSystemPath, ChangeCategory, TimeGenerated", "project Computer, FileSystemPath");
    rules_dir(dir.path(), GROUP, &[("changes", &by_file)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), AlertingConfig::default()).await;
    env.change("web1", "/etc/hosts", "Modified", t, t + S).await;
    env.change("web1", "/etc/hosts", "Modified", t, t + 2 * S).await;
    let r = env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    assert_eq!(r.fired, 1, "two rows with one key in one window are one alert");
    env.change("web1", "/etc/hosts", "Modified", t, t + 11 * S).await;
    let r = env.alerting.evaluate("changes", t + 20 * S).await.unwrap();
    assert_eq!(r.fired, 1, "a later change of the same file is a new alert");
    assert_eq!(alerted_paths(&env, "changes"), ["/etc/hosts", "/etc/hosts"], "two notifications, two ids");
    env.close().await;
}

#[tokio::test]
async fn catch_up_is_bounded_and_the_skipped_range_recorded() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), GROUP, &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let cfg = AlertingConfig { max_catch_up: std::time::Duration::from_secs(60), ..AlertingConfig::default() };
    let env = Env::open(dir.path(), cfg).await;
    env.change("web1", "/etc/too-old", "Modified", t, t + S).await;
    env.change("web1", "/etc/recent", "Modified", t, t + 150 * S).await;
    let r = env.alerting.evaluate("changes", t + 180 * S).await.unwrap();
    assert_eq!(r.skipped, Some((t, t + 120 * S)));
    assert_eq!(alerted_paths(&env, "changes"), ["/etc/recent"]);
    let rows = env.query("AlertEvaluation | project SkippedStart, SkippedEnd").await;
    assert_eq!(rows[0], serde_json::json!([iso(t), iso(t + 120 * S)]));
    env.close().await;
}

const BUSY: &str = r#"
name = "busy"
severity = 2
query = "ConfigurationChange | summarize Changes = count() by Computer"
frequency = "1m"
window = "1m"
condition = { kind = "aggregate", measure = "Changes", operator = ">", threshold = 2, dimensions = ["Computer"] }
actions = ["ops"]
"#;

const BUSY_TWICE: &str = r#"
name = "busy-twice"
severity = 2
query = "ConfigurationChange | summarize Changes = count() by Computer"
frequency = "1m"
window = "1m"
condition = { kind = "aggregate", measure = "Changes", operator = ">", threshold = 2, dimensions = ["Computer"], failing_periods = 2, evaluation_periods = 3 }
actions = ["ops"]
"#;

/// (monitor condition, Computer) of each alert event of a report's evaluation, from the
/// rule's remembered alerts.
async fn events(env: &Env, rule: &str, since: usize) -> Vec<(String, String)> {
    let (_, recent) = env.alerting.alerts().await;
    let mut mine: Vec<_> = recent.into_iter().filter(|a| a.rule == rule).collect();
    mine.sort_by_key(|a| (a.resolved_us.unwrap_or(a.fired_us), a.dimensions["Computer"].to_string()));
    mine.into_iter()
        .skip(since)
        .map(|a| (a.monitor_condition.to_string(), a.dimensions["Computer"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn an_aggregate_rule_fires_and_resolves_per_dimension() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), GROUP, &[("busy", BUSY), ("busy-twice", BUSY_TWICE)]);
    let t = t0();
    let env = Env::open(dir.path(), AlertingConfig::default()).await;
    let minute = 60 * S;
    // Changes per computer and minute (TimeGenerated), as evaluated at the end of each minute.
    let plan: [(&str, [usize; 4]); 2] = [("web1", [3, 1, 3, 0]), ("web2", [1, 3, 0, 0])];
    for (computer, counts) in plan {
        for (m, n) in counts.iter().enumerate() {
            for i in 0..*n {
                let at = t + m as i64 * minute + (i as i64 + 1) * S;
                env.change(computer, &format!("/etc/f{i}"), "Modified", at, at).await;
            }
        }
    }
    let mut seen = 0;
    let step = |m: i64| {
        let env = &env;
        async move {
            env.alerting.evaluate("busy", t + m * minute).await.unwrap();
            env.alerting.evaluate("busy-twice", t + m * minute).await.unwrap();
        }
    };
    step(1).await;
    assert_eq!(events(&env, "busy", seen).await, [("Fired".into(), "web1".into())]);
    seen += 1;
    step(2).await;
    assert_eq!(events(&env, "busy", seen).await, [("Resolved".into(), "web1".into()), ("Fired".into(), "web2".into())]);
    seen += 2;
    step(3).await;
    assert_eq!(events(&env, "busy", seen).await, [("Fired".into(), "web1".into()), ("Resolved".into(), "web2".into())]);
    seen += 2;
    step(4).await;
    assert_eq!(events(&env, "busy", seen).await, [("Resolved".into(), "web1".into())]);
    let (active, _) = env.alerting.alerts().await;
    assert!(active.iter().all(|a| a.rule != "busy"), "{active:?}");

    // 2 failing of the last 3: web1 fails in minutes 1 and 3, so it fires at minute 3 only, and
    // resolves when fewer than 2 of the last 3 fail (minute 5: pass, pass... minute 4 has
    // minutes 2-4 = fail once).
    assert_eq!(
        events(&env, "busy-twice", 0).await,
        [("Fired".into(), "web1".into()), ("Resolved".into(), "web1".into())]
    );
    let (_, recent) = env.alerting.alerts().await;
    let twice: Vec<_> = recent.iter().filter(|a| a.rule == "busy-twice").collect();
    let fired = twice.iter().find(|a| a.monitor_condition == fimlake_alerting::state::MonitorCondition::Fired).unwrap();
    assert_eq!(fired.fired_us, t + 3 * minute);
    assert_eq!(fired.metric_value, Some(3.0));

    // Each fired and resolved alert became a notification; resolved ones carry the alert id.
    let kinds: Vec<String> =
        env.alerting.outbox().pending().iter().filter(|e| e.rule == "busy").map(|e| e.kind.clone()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "Fired").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "Resolved").count(), 3);
    env.close().await;
}

#[tokio::test]
async fn the_example_agent_stopped_rule_fires_for_the_silent_computer_only() {
    let dir = tempfile::tempdir().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rules");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for f in ["agent-stopped.toml", "action-groups.toml"] {
        std::fs::copy(examples.join(f), rules.join(f)).unwrap();
    }
    let env = Env::open(dir.path(), AlertingConfig::default()).await;
    let t = t0();
    let beat = |c: &str, at: i64| serde_json::json!({"Computer": c, "TimeGenerated": iso(at), "_TimeReceived": iso(at), "Category": "Direct Agent"});
    // web1 beats every minute; web2 stops after 2 minutes.
    let mut rows = Vec::new();
    for m in 0..30 {
        rows.push(beat("web1", t + m * 60 * S));
        if m < 2 {
            rows.push(beat("web2", t + m * 60 * S));
        }
    }
    env.append("Heartbeat", rows).await;
    env.alerting.evaluate("agent-stopped", t + 5 * 60 * S).await.unwrap();
    assert_eq!(events(&env, "agent-stopped", 0).await, [], "web2 silent for 4 minutes only");
    env.alerting.evaluate("agent-stopped", t + 15 * 60 * S).await.unwrap();
    assert_eq!(events(&env, "agent-stopped", 0).await, [("Fired".into(), "web2".into())]);
    env.alerting.evaluate("agent-stopped", t + 20 * 60 * S).await.unwrap();
    assert_eq!(events(&env, "agent-stopped", 1).await, [], "still firing: no second alert");
    env.append("Heartbeat", vec![beat("web2", t + 21 * 60 * S)]).await;
    env.alerting.evaluate("agent-stopped", t + 25 * 60 * S).await.unwrap();
    assert_eq!(events(&env, "agent-stopped", 1).await, [("Resolved".into(), "web2".into())]);
    env.close().await;
}

#[tokio::test]
async fn a_muted_rule_defers_notifications_and_then_summarises_them() {
    let dir = tempfile::tempdir().unwrap();
    let muted = CHANGES.replace("name = \"changes\"", "name = \"changes\"\nmute = \"1h\"");
    rules_dir(dir.path(), GROUP, &[("changes", &muted)]);
    let t = t0() - 3 * 3600 * S;
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), AlertingConfig::default()).await;
    env.change("web1", "/etc/first", "Modified", t, t + S).await;
    let r = env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    assert_eq!((r.fired, r.notifications, r.deferred), (1, 1, 0));
    env.change("web1", "/etc/second", "Modified", t, t + 11 * S).await;
    env.change("web1", "/etc/third", "Modified", t, t + 12 * S).await;
    let r = env.alerting.evaluate("changes", t + 20 * S).await.unwrap();
    assert_eq!((r.fired, r.notifications, r.deferred), (2, 0, 2), "muted: held back, not dropped");
    let r = env.alerting.evaluate("changes", t + 3600 * S + 30 * S).await.unwrap();
    assert_eq!(r.notifications, 1, "the mute ended: one summary");
    let summary: Vec<_> = env.alerting.outbox().pending().into_iter().filter(|e| e.kind == "Summary").collect();
    assert_eq!(summary.len(), 1);
    let fimlake_alerting::outbox::Target::Webhook { body, .. } = &summary[0].target else { unreachable!() };
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["data"]["alertContext"]["fimlake"]["alertCount"], 2);
    assert_eq!(v["data"]["alertContext"]["searchResults"]["totalRows"], 2);
    let deferred = env.query("AlertEvent | where Notification == 'Deferred' | count").await;
    assert_eq!(deferred[0][0], 2);
    env.close().await;
}

#[tokio::test]
async fn more_alerts_than_the_limit_are_summarised() {
    let dir = tempfile::tempdir().unwrap();
    rules_dir(dir.path(), GROUP, &[("changes", CHANGES)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let cfg = AlertingConfig { max_notifications_per_evaluation: 3, ..AlertingConfig::default() };
    let env = Env::open(dir.path(), cfg).await;
    for i in 0..10 {
        env.change("web1", &format!("/usr/bin/tool{i}"), "Modified", t, t + S).await;
    }
    let r = env.alerting.evaluate("changes", t + 10 * S).await.unwrap();
    assert_eq!((r.fired, r.notifications), (10, 3), "2 one by one, then one summary of 8");
    let pending = env.alerting.outbox().pending();
    let summary = pending.iter().find(|e| e.kind == "Summary").unwrap();
    let fimlake_alerting::outbox::Target::Webhook { body, .. } = &summary.target else { unreachable!() };
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["data"]["alertContext"]["fimlake"]["alertCount"], 8);
    env.close().await;
}

#[tokio::test]
async fn a_failing_rule_is_unhealthy_notifies_once_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let failing = CHANGES.replace(
        "project Computer, FileSystemPath, ChangeCategory, TimeGenerated",
        "summarize c = count() | extend ratio = 1 / (c - c)",
    );
    rules_dir(dir.path(), GROUP, &[("changes", &failing)]);
    let t = t0();
    start_rule_at(dir.path(), "changes", t);
    let env = Env::open(dir.path(), AlertingConfig::default()).await;
    env.change("web1", "/etc/x", "Modified", t, t + S).await;
    let e = env.alerting.evaluate("changes", t + 10 * S).await.unwrap_err();
    assert!(e.to_string().contains("changes"), "{e}");
    env.alerting.evaluate("changes", t + 20 * S).await.unwrap_err();
    let status = env.alerting.rule("changes").await.unwrap();
    assert!(!status.healthy);
    assert_eq!(status.consecutive_failures, 2);
    assert_eq!(status.evaluated_until, iso(t), "a failed window is evaluated again, not skipped");
    let kinds: Vec<String> = env.alerting.outbox().pending().iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds, ["RuleUnhealthy"], "one notification for the failure, not one per evaluation");
    let failed = env.query("AlertEvaluation | where Status == 'Failed' | count").await;
    assert_eq!(failed[0][0], 2);

    // Fixed through the API: the rule keeps its state, evaluates the failed windows, recovers.
    let fixed: fimlake_alerting::Rule = toml::from_str(CHANGES).unwrap();
    assert!(!env.alerting.put_rule(fixed).await.unwrap(), "replaced, not created");
    let r = env.alerting.evaluate("changes", t + 30 * S).await.unwrap();
    assert_eq!((r.window_start_us, r.fired), (t, 1), "the record of the failed windows is alerted");
    assert!(env.alerting.rule("changes").await.unwrap().healthy);
    let mut kinds: Vec<String> = env.alerting.outbox().pending().iter().map(|e| e.kind.clone()).collect();
    kinds.sort();
    assert_eq!(kinds, ["Fired", "RuleHealthy", "RuleUnhealthy"]);
    let saved = std::fs::read_to_string(dir.path().join("rules/changes.toml")).unwrap();
    assert!(saved.contains("project Computer"), "the API wrote the rule file: {saved}");
    env.close().await;
}
