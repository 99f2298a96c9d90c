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

/// The sample records posted to `server` by the example script; its standard output.
fn post_samples(server: &Server) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/post-records.sh");
    let out = Command::new("sh").arg(script).arg(&server.url).output().expect("running the example script");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The tables of `data_dir` as the Python Delta reader reads them ([`READER`]).
fn read_with_python(data_dir: &std::path::Path, tables: &[&str]) -> Value {
    let py = Command::new(python())
        .arg("-c")
        .arg(READER)
        .arg(data_dir.join("tables"))
        .args(tables)
        .output()
        .expect("running the Python Delta reader");
    assert!(py.status.success(), "python: {}", String::from_utf8_lossy(&py.stderr));
    serde_json::from_slice(&py.stdout).unwrap()
}

#[test]
fn sample_records_round_trip_into_delta_tables_other_engines_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let stdout = post_samples(&server);
    assert_eq!(stdout, "{\"accepted\":5}\n{\"accepted\":4}\nHeartbeat: HTTP 204\n");
    server.stop();

    let got = read_with_python(dir.path(), &["ConfigurationChange", "ConfigurationData", "Heartbeat"]);

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

/// A closed day's hour files become one file of the day, its `PartitionHour` null (the Delta
/// convention for a null partition value), which the independent reader reads as it reads hour
/// files.
#[test]
fn a_closed_day_compacted_into_one_file_is_read_by_other_engines() {
    let dir = tempfile::tempdir().unwrap();
    // Maintenance often; retention long enough to keep the samples of 2024.
    let often = [
        ("FIMLAKE_STORAGE_FLUSH_AGE", "200ms"),
        ("FIMLAKE_STORAGE_MAINTENANCE_INTERVAL", "200ms"),
        ("FIMLAKE_STORAGE_RETENTION_DAYS", "36500"),
    ];
    let mut server = Server::start(dir.path(), &often);
    post_samples(&server);
    // The sample changes are of 10:00 and 11:00 on 2024-05-01, long closed.
    common::records::wait_compacted(&server.url, None, "ConfigurationChange");
    server.stop();

    let got = read_with_python(dir.path(), &["ConfigurationChange"]);
    let table = &got["ConfigurationChange"];
    let files = table["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{table}");
    let file = files[0].as_str().unwrap();
    assert!(file.contains("/PartitionDate=2024-05-01/PartitionHour=__HIVE_DEFAULT_PARTITION__/"), "{file}");
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let passwd = rows.iter().find(|r| r["FileSystemPath"] == "/etc/passwd").unwrap();
    assert_eq!(passwd["PartitionHour"], Value::Null);
    assert_eq!(passwd["TimeGenerated"], "2024-05-01T10:15:02.123000+00:00");
    assert_eq!(read_table(dir.path(), "ConfigurationChange", &["Computer"]).len(), 5, "fimlake reads it too");
}
