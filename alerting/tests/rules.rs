//! Rule files: the example PCI DSS pack loads, and every kind of mistake is refused with the
//! file and the reason.

use std::path::PathBuf;

use fimlake_alerting::{Condition, load_dir};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules")
}

#[test]
fn the_example_pci_pack_loads() {
    let set = load_dir(&examples()).unwrap();
    let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "agent-coverage-lost",
            "agent-stopped",
            "critical-file-modified",
            "cron-new-file",
            "permission-or-owner-change"
        ]
    );
    let stopped = set.rules.iter().find(|r| r.name == "agent-stopped").unwrap();
    assert!(matches!(&stopped.condition, Condition::Aggregate { dimensions, .. } if dimensions == &["Computer"]));
    assert_eq!(set.action_groups["security-team"].webhooks.len(), 1);
}

fn check(rule: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("action-groups.toml"),
        "[ops]\nwebhooks = [{ url = \"http://127.0.0.1:9/hook\" }]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("rule.toml"), rule).unwrap();
    let e = load_dir(dir.path()).expect_err(expected).to_string();
    assert!(e.contains("rule.toml: "), "{e}");
    assert!(e.contains(expected), "expected '{expected}' in:\n{e}");
}

const GOOD: &str = r#"
name = "r"
severity = 2
query = "ConfigurationChange | project Computer, FileSystemPath"
frequency = "1m"
condition = { kind = "per_row", key = ["Computer"] }
actions = ["ops"]
"#;

#[test]
fn mistakes_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("action-groups.toml"),
        "[ops]\nwebhooks = [{ url = \"http://127.0.0.1:9/hook\" }]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("rule.toml"), GOOD).unwrap();
    assert_eq!(load_dir(dir.path()).unwrap().rules.len(), 1);

    check(&GOOD.replace("| project", "| wher"), "the query does not compile: expected a tabular operator");
    check(&GOOD.replace("project Computer", "project Computr"), "unknown column 'Computr'");
    check(
        &GOOD.replace("key = [\"Computer\"]", "key = [\"Path\"]"),
        "key column 'Path' is not in the query's result (columns: Computer, FileSystemPath)",
    );
    check(&GOOD.replace("[\"ops\"]", "[\"nobody\"]"), "action group 'nobody' is not defined");
    check(&GOOD.replace("severity = 2", "severity = 7"), "severity 7 is not 0 to 4");
    check(&GOOD.replace("\"1m\"", "\"5s\""), "frequency must be at least 10s");
    check(&GOOD.replace("\"1m\"", "\"soon\""), "invalid duration 'soon'");
    check(&GOOD.replace("name = \"r\"", "name = \"r r\""), "use letters, digits");
    check(&format!("{GOOD}\ncolour = \"red\""), "unknown field `colour`");
    check(
        &GOOD.replace(
            "{ kind = \"per_row\", key = [\"Computer\"] }",
            "{ kind = \"aggregate\", operator = \"~\", threshold = 1, dimensions = [\"Host\"], failing_periods = 3 }",
        ),
        "unknown variant `~`, expected one of `>`, `>=`, `<`, `<=`, `==`, `!=`",
    );
    check(
        &GOOD.replace(
            "{ kind = \"per_row\", key = [\"Computer\"] }",
            "{ kind = \"aggregate\", operator = \">\", threshold = 1, dimensions = [\"Host\"], failing_periods = 3 }",
        ),
        "dimension 'Host' is not in the query's result",
    );
}

#[test]
fn durations_are_numbers_of_seconds_or_humantime_as_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("action-groups.toml"),
        "[ops]\nwebhooks = [{ url = \"http://127.0.0.1:9/hook\" }]\n",
    )
    .unwrap();
    let rule = GOOD.replace("frequency = \"1m\"", "frequency = 300\nmute = \"1h 30m\"");
    std::fs::write(dir.path().join("rule.toml"), rule).unwrap();
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(set.rules[0].frequency, std::time::Duration::from_secs(300));
    assert_eq!(set.rules[0].mute, Some(std::time::Duration::from_secs(5400)));
}
