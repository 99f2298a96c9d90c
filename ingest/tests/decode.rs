//! The record decoder, as a table of bodies and what each must give.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::{TimeZone, Utc};
use fimlake_ingest::decode::{DecodeContext, DecodeErrorKind, decode};
use fimlake_ingest::sizing::Sizing;
use fimlake_storage::TableRegistry;

fn ctx() -> DecodeContext {
    DecodeContext {
        received: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        tenant_id: "ws-1".into(),
        max_records: 3,
        sizing: None,
    }
}

fn check_ok(table: &str, body: &str) -> (RecordBatch, Vec<String>) {
    let reg = TableRegistry::builtin();
    let d = decode(reg.get(table).unwrap(), body.as_bytes(), &ctx()).unwrap_or_else(|e| panic!("{body}: {e}"));
    (d.batch, d.additional_fields.into_iter().collect())
}

fn check_err(table: &str, body: &str, kind: DecodeErrorKind, message: &str) {
    let reg = TableRegistry::builtin();
    let e = decode(reg.get(table).unwrap(), body.as_bytes(), &ctx()).expect_err(body);
    assert_eq!(e.kind, kind, "{body}: {e}");
    assert_eq!(e.to_string(), message, "{body}");
}

fn str_col(b: &RecordBatch, c: &str) -> Vec<Option<String>> {
    b.column_by_name(c).unwrap().as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect()
}

fn time_col(b: &RecordBatch, c: &str) -> Vec<Option<i64>> {
    b.column_by_name(c).unwrap().as_primitive::<TimestampMicrosecondType>().iter().collect()
}

const RECEIVED: i64 = 1_714_564_800_000_000;

#[test]
fn arrays_and_ndjson_decode_to_the_same_rows() {
    let array = r#"[{"Computer":"web1","Size":10,"TimeGenerated":"2024-05-01T10:00:00Z"},
                    {"Computer":"web2","Size":null}]"#;
    let ndjson = "{\"Computer\":\"web1\",\"Size\":10,\"TimeGenerated\":\"2024-05-01T10:00:00Z\"}\n\n{\"Computer\":\"web2\",\"Size\":null}\n";
    for body in [array, ndjson] {
        let (b, extra) = check_ok("ConfigurationChange", body);
        assert_eq!(b.num_rows(), 2);
        assert!(extra.is_empty());
        assert_eq!(str_col(&b, "Computer"), vec![Some("web1".into()), Some("web2".into())]);
        let size: Vec<Option<i64>> = b.column_by_name("Size").unwrap().as_primitive::<Int64Type>().iter().collect();
        assert_eq!(size, vec![Some(10), None]);
        assert_eq!(time_col(&b, "TimeGenerated"), vec![Some(1_714_557_600_000_000), Some(RECEIVED)]);
        assert_eq!(time_col(&b, "_TimeReceived"), vec![Some(RECEIVED), Some(RECEIVED)]);
        assert_eq!(str_col(&b, "Type"), vec![Some("ConfigurationChange".into()); 2]);
        assert_eq!(str_col(&b, "TenantId"), vec![Some("ws-1".into()); 2]);
        let ids = str_col(&b, "_ItemId");
        assert!(ids.iter().all(|i| i.as_ref().is_some_and(|i| i.len() == 36)));
        assert_ne!(ids[0], ids[1]);
    }
}

#[test]
fn item_ids_are_distinct_version_7_uuids_of_the_receive_time() {
    let body: String = (0..2_000).map(|i| format!("{{\"Computer\":\"m{i}\"}}\n")).collect();
    let def = TableRegistry::builtin().get("ConfigurationChange").unwrap().clone();
    let b = decode(&def, body.as_bytes(), &DecodeContext { max_records: 2_000, ..ctx() }).unwrap().batch;
    let ids: Vec<uuid::Uuid> =
        str_col(&b, "_ItemId").iter().map(|id| id.as_deref().unwrap().parse().unwrap()).collect();
    let distinct: std::collections::HashSet<&uuid::Uuid> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    for id in &ids {
        assert_eq!(id.get_version_num(), 7);
        let (seconds, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(seconds as i64 * 1_000_000 + i64::from(nanos) / 1_000, RECEIVED, "{id}");
    }
}

#[test]
fn a_body_like_the_last_one_decodes_to_the_same_rows_into_columns_sized_for_it() {
    let def = TableRegistry::builtin().get("ConfigurationChange").unwrap().clone();
    let body = |from: usize| -> String {
        (from..from + 1_000)
            .map(|i| format!("{{\"Computer\":\"m{i}\",\"FileSystemPath\":\"/etc/{i:040}\"}}\n"))
            .collect()
    };
    let sizing = Some(Arc::new(Sizing::new(def.columns().len())));
    let sized = DecodeContext { max_records: 1_000, sizing, ..ctx() };
    decode(&def, body(0).as_bytes(), &sized).unwrap();
    let next = body(1_000);
    let got = decode(&def, next.as_bytes(), &sized).unwrap().batch;
    let grown = decode(&def, next.as_bytes(), &DecodeContext { sizing: None, ..sized.clone() }).unwrap().batch;
    for name in ["Computer", "FileSystemPath", "TimeGenerated", "Type", "Size"] {
        assert_eq!(
            got.column_by_name(name).unwrap().to_data(),
            grown.column_by_name(name).unwrap().to_data(),
            "{name}"
        );
    }
    let paths = got.column_by_name("FileSystemPath").unwrap().as_string::<i32>();
    let (used, room) = (paths.values().len(), paths.values().capacity());
    assert!(room >= used && room <= used + used / 8, "{used} bytes of paths in a buffer of {room}");
}

#[test]
fn server_columns_are_the_servers_and_unknown_fields_are_kept() {
    let body = r#"[{"Computer":"a","_TimeReceived":"2000-01-01T00:00:00Z","Type":"Forged","Owner":"root","Mode":420,
                    "Tags":{"x":[1,2]}}]"#;
    let (b, extra) = check_ok("ConfigurationChange", body);
    assert_eq!(time_col(&b, "_TimeReceived"), vec![Some(RECEIVED)]);
    assert_eq!(str_col(&b, "Type"), vec![Some("ConfigurationChange".into())]);
    assert_eq!(extra, vec!["Mode", "Owner", "Tags"]);
    let af = str_col(&b, "AdditionalFields")[0].clone().unwrap();
    let v: serde_json::Value = serde_json::from_str(&af).unwrap();
    assert_eq!(v, serde_json::json!({"Owner": "root", "Mode": 420, "Tags": {"x": [1, 2]}}));
}

#[test]
fn typed_values_decode_by_kusto_type() {
    let body = r#"[{"Computer":"a","ComputerPrivateIPs":["10.0.0.1"],"IsGatewayInstalled":true,
                    "RemoteIPLatitude":47,"RemoteIPLongitude":-122.5,"TimeGenerated":"2024-05-01 10:00:00.1234567"}]"#;
    let (b, _) = check_ok("Heartbeat", body);
    assert_eq!(str_col(&b, "ComputerPrivateIPs"), vec![Some(r#"["10.0.0.1"]"#.into())]);
    assert!(b.column_by_name("IsGatewayInstalled").unwrap().as_boolean().value(0));
    let lat = b.column_by_name("RemoteIPLatitude").unwrap().as_primitive::<Float64Type>().value(0);
    assert_eq!(lat, 47.0);
    assert_eq!(time_col(&b, "TimeGenerated"), vec![Some(1_714_557_600_123_456)]);
}

#[test]
fn datetimes_in_every_accepted_form() {
    let cases = [
        ("2024-05-01T10:00:00Z", 1_714_557_600_000_000),
        ("2024-05-01T12:00:00+02:00", 1_714_557_600_000_000),
        ("2024-05-01T10:00:00.5Z", 1_714_557_600_500_000),
        ("2024-05-01T10:00:00", 1_714_557_600_000_000),
        ("2024-05-01 10:00", 1_714_557_600_000_000),
        ("2024-05-01", 1_714_521_600_000_000),
    ];
    for (text, us) in cases {
        let (b, _) = check_ok("Heartbeat", &format!(r#"[{{"TimeGenerated":"{text}"}}]"#));
        assert_eq!(time_col(&b, "TimeGenerated"), vec![Some(us)], "{text}");
    }
}

#[test]
fn bad_bodies_name_the_record_field_expectation_and_position() {
    use DecodeErrorKind::*;
    let cases: &[(&str, DecodeErrorKind, &str)] = &[
        (
            r#"[{"Computer":"a"},{"Computer":"b","Size":"big"}]"#,
            Field,
            "invalid record at index 1, field 'Size': expected long (a JSON integer), got string \"big\" (line 1, column 46)",
        ),
        (
            r#"[{"TimeGenerated":"yesterday"}]"#,
            Field,
            "invalid record at index 0, field 'TimeGenerated': expected datetime (an ISO 8601 string such as \"2024-05-01T12:00:00Z\"), got \"yesterday\" (line 1, column 29)",
        ),
        (
            r#"[{"Computer":42}]"#,
            Field,
            "invalid record at index 0, field 'Computer': expected string (a JSON string), got number 42 (line 1, column 15)",
        ),
        (
            r#"[{"Size":1.5}]"#,
            Field,
            "invalid record at index 0, field 'Size': expected long (a JSON integer), got number 1.5 (line 1, column 12)",
        ),
        (
            r#"[{"Computer":{"a":1}}]"#,
            Field,
            "invalid record at index 0, field 'Computer': expected string (a JSON string), got an object (line 1, column 14)",
        ),
        (
            r#"[{"Computer":"a","Computer":"b"}]"#,
            Field,
            "invalid record at index 0, field 'Computer': the field appears twice in the record (line 1, column 27)",
        ),
        (
            "[{\"Computer\":\"a\"},\n {\"Computer\" \"b\"}]",
            Syntax,
            "invalid JSON at index 1: expected `:` (line 2, column 14)",
        ),
        (
            "{\"Computer\":\"a\"}\n{\"Computer\":",
            Syntax,
            "invalid JSON at index 1: EOF while parsing a value (line 2, column 12)",
        ),
        (
            "[1]",
            Syntax,
            "invalid JSON: invalid type: integer `1`, expected a record (a JSON object) (line 1, column 2)",
        ),
        ("[{}] x", Syntax, "invalid JSON: trailing characters (line 1, column 6)"),
        ("[]", Empty, "the body holds no record"),
        ("  \n ", Empty, "the body holds no record"),
        ("[{},{},{},{}]", TooManyRecords, "the body holds more than 3 records"),
        (
            r#"[{"AdditionalFields":[1],"Extra":1}]"#,
            Field,
            "invalid record at index 0, field 'AdditionalFields': field 'AdditionalFields' must be a JSON object when the record also has fields the table does not define (Extra) (line 1, column 35)",
        ),
    ];
    for (body, kind, message) in cases {
        check_err("ConfigurationChange", body, *kind, message);
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let body = format!("[{{\"Tags\":{}{}}}]", "[".repeat(10_000), "]".repeat(10_000));
    let reg = TableRegistry::builtin();
    let e = decode(reg.get("ConfigurationChange").unwrap(), body.as_bytes(), &ctx()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("invalid record at index 0, field 'Tags': "), "{msg}");
    assert!(msg.contains("recursion limit exceeded") || msg.contains("nested 10000 levels deep"), "{msg}");
    let ok = format!("[{{\"Tags\":{}{}}}]", "[".repeat(64), "]".repeat(64));
    assert!(decode(reg.get("ConfigurationChange").unwrap(), ok.as_bytes(), &ctx()).is_ok());
    let deep = format!("[{{\"Tags\":{}{}}}]", "[".repeat(65), "]".repeat(65));
    let e = decode(reg.get("ConfigurationChange").unwrap(), deep.as_bytes(), &ctx()).unwrap_err();
    assert!(e.to_string().contains("nested 65 levels deep; at most 64"), "{e}");
}

#[test]
fn invalid_utf8_is_refused() {
    let reg = TableRegistry::builtin();
    let body = b"[{\"Computer\":\"\xff\xfe\"}]";
    let e = decode(reg.get("ConfigurationChange").unwrap(), body, &ctx()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Syntax);
    assert!(e.to_string().contains("invalid unicode"), "{e}");
}

#[test]
fn a_field_some_records_lack_is_null_in_exactly_those_rows() {
    // Fields of every type come and go: in the first record only, the last only, every other
    // one, and never; the server's own columns are filled in every row all the same.
    let body = r#"{"Computer":"a","IsGatewayInstalled":true,"ComputerPrivateIPs":["10.0.0.1"]}
                  {"Computer":"b","RemoteIPLatitude":1.5}
                  {"IsGatewayInstalled":false,"TimeGenerated":"2024-05-01T10:00:00Z"}
                  {"Computer":"d","RemoteIPLatitude":-2}
                  {"ComputerPrivateIPs":["10.0.0.5"],"Category":"Direct Agent"}"#;
    let ctx = DecodeContext { max_records: 10, ..ctx() };
    let b = decode(TableRegistry::builtin().get("Heartbeat").unwrap(), body.as_bytes(), &ctx).unwrap().batch;
    assert_eq!(b.num_rows(), 5);
    let strings = |c: &str| str_col(&b, c).into_iter().map(|v| v.is_some()).collect::<Vec<_>>();
    assert_eq!(str_col(&b, "Computer"), vec![Some("a".into()), Some("b".into()), None, Some("d".into()), None]);
    assert_eq!(strings("ComputerPrivateIPs"), vec![true, false, false, false, true]);
    assert_eq!(str_col(&b, "Category"), vec![None, None, None, None, Some("Direct Agent".into())]);
    assert_eq!(strings("OSName"), vec![false; 5]);
    let gateway = b.column_by_name("IsGatewayInstalled").unwrap().as_boolean();
    assert_eq!(gateway.iter().collect::<Vec<_>>(), vec![Some(true), None, Some(false), None, None]);
    let latitude = b.column_by_name("RemoteIPLatitude").unwrap().as_primitive::<Float64Type>();
    assert_eq!(latitude.iter().collect::<Vec<_>>(), vec![None, Some(1.5), None, Some(-2.0), None]);
    let at_ten = 1_714_557_600_000_000;
    assert_eq!(
        time_col(&b, "TimeGenerated"),
        vec![Some(RECEIVED), Some(RECEIVED), Some(at_ten), Some(RECEIVED), Some(RECEIVED)]
    );
    assert_eq!(time_col(&b, "_TimeReceived"), vec![Some(RECEIVED); 5]);
    assert_eq!(str_col(&b, "TenantId"), vec![Some("ws-1".into()); 5]);
    assert_eq!(str_col(&b, "_ItemId").iter().filter(|id| id.is_some()).count(), 5);
}
