//! A real storage engine, query engine and alerting engine in a temporary directory, with
//! rows appended at chosen receive times and rules evaluated at chosen instants.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fimlake_alerting::{Alerting, AlertingConfig};
use fimlake_query::{QueryConfig, QueryEngine};
use fimlake_storage::{Storage, StorageConfig, TableRegistry};
use serde_json::{Value, json};

pub struct Env {
    pub dir: PathBuf,
    pub storage: Arc<Storage>,
    pub engine: Arc<QueryEngine>,
    pub alerting: Arc<Alerting>,
}

/// A whole second, one hour ago: the start of the tests' timelines (in the past, so that every
/// window can end where the test says).
pub fn t0() -> i64 {
    (chrono::Utc::now().timestamp() - 3600) * 1_000_000
}

pub const S: i64 = 1_000_000;

pub fn iso(us: i64) -> String {
    fimlake_kusto::datetime::format(us)
}

/// Writes a rules directory: `rules` as (file stem, TOML) and an action group `ops` with
/// `group` as its TOML body.
pub fn rules_dir(dir: &Path, group: &str, rules: &[(&str, &str)]) -> PathBuf {
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    std::fs::write(rules_dir.join("action-groups.toml"), format!("[ops]\n{group}\n")).unwrap();
    for (name, text) in rules {
        std::fs::write(rules_dir.join(format!("{name}.toml")), text).unwrap();
    }
    rules_dir
}

/// Sets a rule's saved state: evaluated up to `watermark_us`, last run then.
pub fn start_rule_at(dir: &Path, rule: &str, watermark_us: i64) {
    let p = dir.join("alerting/state").join(format!("{rule}.json"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, json!({"watermark_us": watermark_us, "last_run_us": watermark_us}).to_string()).unwrap();
}

impl Env {
    pub async fn open(dir: &Path, cfg: AlertingConfig) -> Env {
        let registry = prometheus::Registry::new();
        let storage = Storage::open(
            StorageConfig { data_dir: dir.to_path_buf(), ..StorageConfig::default() },
            TableRegistry::builtin(),
            &registry,
        )
        .await
        .unwrap();
        let engine = Arc::new(QueryEngine::new(storage.clone(), &QueryConfig::default()));
        let cfg = AlertingConfig { rules_dir: Some(dir.join("rules")), ..cfg };
        let alerting = Alerting::open(cfg, dir, storage.clone(), engine.clone(), "ws".into(), &registry).await.unwrap();
        Env { dir: dir.to_path_buf(), storage, engine, alerting }
    }

    pub async fn close(self) {
        self.alerting.stop();
        self.storage.shutdown().await.unwrap();
    }

    /// Appends rows (objects by column) to `table`, each with its own `_TimeReceived`.
    pub async fn append(&self, table: &str, rows: Vec<Value>) {
        let t = self.storage.table(table).unwrap();
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.entry("Type").or_insert(json!(table));
                o.entry("TenantId").or_insert(json!("ws"));
                r
            })
            .collect();
        let mut decoder = arrow::json::ReaderBuilder::new(t.def().schema().clone()).build_decoder().unwrap();
        decoder.serialize(&rows).unwrap();
        t.append(decoder.flush().unwrap().unwrap()).await.unwrap();
    }

    /// A file change received at `received_us`.
    pub async fn change(&self, computer: &str, path: &str, category: &str, generated_us: i64, received_us: i64) {
        self.append(
            "ConfigurationChange",
            vec![json!({
                "Computer": computer, "FileSystemPath": path, "ConfigChangeType": "Files",
                "ChangeCategory": category, "TimeGenerated": iso(generated_us), "_TimeReceived": iso(received_us),
            })],
        )
        .await;
    }

    /// Runs a KQL query, rows as JSON arrays.
    pub async fn query(&self, kql: &str) -> Vec<Value> {
        let r = self.engine.run(kql, None, std::time::Duration::from_secs(30)).await.unwrap();
        let j = fimlake_query::encode::to_json(&r, 100_000);
        j["tables"][0]["rows"].as_array().unwrap().clone()
    }

    /// Runs `kql` until its rows satisfy `done` (bounded: 10 s), then returns them. For what
    /// is recorded after the step a test can wait for (the audit row after the outbox write).
    pub async fn query_until(&self, kql: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..200 {
            let rows = self.query(kql).await;
            if done(&rows) {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.query(kql).await
    }
}
