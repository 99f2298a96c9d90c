//! Records of all three tables go through the real server into Delta tables that an
//! independent Delta reader (the Python `deltalake` package) reads with the documented schema
//! and partitions.
#![allow(
    clippy::disallowed_methods,
    reason = "test settings (the venv python, bench sizes) come from the environment scripts/test sets"
)]

mod common;

use std::process::Command;

use common::{Server, read_table, wal_is_empty};
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("FIMLAKE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FIMLAKE_TEST_PYTHON is not set: run the test suite with scripts/test, which installs the \
             Python deltalake package this test reads the tables with"
        )
    })
}

const READER: &str = r#"
import json, sys
from deltalake import DeltaTable
out = {}
for name in sys.argv[2:]:
    dt = DeltaTable(f"{sys.argv[1]}/{name}")
    t = dt.to_pyarrow_table()
    schema = {f.name: str(f.type) for f in t.schema}
    rows = t.to_pylist()
    for r in rows:
        for k, v in list(r.items()):
            if hasattr(v, "isoformat"):
                r[k] = v.isoformat()
    out[name] = {
        "partition_columns": dt.metadata().partition_columns,
        "schema": schema,
        "rows": rows,
        "files": dt.file_uris(),
    }
print(json.dumps(out, default=str))
sys.stdout.flush()
# Skip interpreter teardown: the reader's native threads sometimes abort the process while
# Python shuts down ("terminate called without an active exception"), after the work is done.
import os
os._exit(0)
"#;

#[test]
fn sample_records_round_trip_into_delta_tables_other_engines_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-records.sh");
    let out = Command::new("sh").arg(script).arg(&server.url).output().expect("running the example script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "{\"accepted\":5}\n{\"accepted\":4}\nHeartbeat: HTTP 204\n");
    server.stop();

    let tables = dir.path().join("tables");
    let py = Command::new(python())
        .arg("-c")
        .arg(READER)
        .arg(&tables)
        .args(["ConfigurationChange", "ConfigurationData", "Heartbeat"])
        .output()
        .expect("running the Python Delta reader");
    assert!(py.status.success(), "python: {}", String::from_utf8_lossy(&py.stderr));
    let got: Value = serde_json::from_slice(&py.stdout).unwrap();

    let registry = fimlake_storage::TableRegistry::builtin();
    for (table, rows) in [("ConfigurationChange", 5), ("ConfigurationData", 4), ("Heartbeat", 3)] {
        let t = &got[table];
        assert_eq!(t["partition_columns"], json!(["PartitionDate", "PartitionHour"]), "{table}");
        assert_eq!(t["rows"].as_array().unwrap().len(), rows, "{table}");
        let def = registry.get(table).unwrap();
        for c in def.columns() {
            let arrow_type = t["schema"][&c.name].as_str().unwrap_or_else(|| panic!("{table}.{} missing", c.name));
            let expected = match c.ty.name() {
                "datetime" => "timestamp[us, tz=UTC]",
                "long" => "int64",
                "int" => "int32",
                "real" => "double",
                "bool" => "bool",
                _ => "string",
            };
            assert_eq!(arrow_type, expected, "{table}.{}", c.name);
        }
        for f in t["files"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            assert!(f.contains("/PartitionDate=2024-05-01/PartitionHour="), "{f}");
            assert!(f.ends_with(".parquet"), "{f}");
        }
    }

    let changes = got["ConfigurationChange"]["rows"].as_array().unwrap();
    let passwd = changes.iter().find(|r| r["FileSystemPath"] == "/etc/passwd").unwrap();
    assert_eq!(passwd["Computer"], "web-01");
    assert_eq!(passwd["ChangeCategory"], "Modified");
    assert_eq!(passwd["Size"], 2874);
    assert_eq!(passwd["PreviousSize"], 2831);
    assert_eq!(passwd["TimeGenerated"], "2024-05-01T10:15:02.123000+00:00");
    assert_eq!(passwd["Type"], "ConfigurationChange");
    assert_eq!(passwd["PartitionHour"], 10);
    assert!(passwd["_ItemId"].as_str().unwrap().len() == 36);
    let hb = got["Heartbeat"]["rows"].as_array().unwrap();
    let first = hb.iter().find(|r| r["ComputerIP"] == "203.0.113.10").unwrap();
    assert_eq!(first["ComputerPrivateIPs"], "[\"10.0.0.5\", \"172.17.0.1\"]", "dynamic is JSON text as sent");
    assert_eq!(first["IsGatewayInstalled"], false);
    assert_eq!(first["RemoteIPLatitude"], 52.37);

    // fimlake reads back what it wrote, with nothing left in the WAL.
    let rows = read_table(dir.path(), "ConfigurationChange", &["Computer", "FileSystemPath"]);
    assert_eq!(rows.len(), 5);
    assert!(wal_is_empty(dir.path(), "ConfigurationChange"));
}
