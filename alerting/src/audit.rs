//! The audit trail: rows appended to fimlake's own tables (`AlertEvaluation`, `AlertEvent`,
//! `AlertDelivery`), durable like any ingested record and queryable with KQL.

use std::sync::Arc;

use fimlake_storage::Storage;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Audit {
    storage: Arc<Storage>,
    tenant_id: String,
    metrics: crate::metrics::Metrics,
}

impl Audit {
    pub fn new(storage: Arc<Storage>, tenant_id: String, metrics: crate::metrics::Metrics) -> Self {
        Audit { storage, tenant_id, metrics }
    }

    /// Appends `rows` (objects by column name) to `table`. The server's columns are filled here;
    /// dynamic columns may be given as JSON values. A failure is logged and counted, never
    /// returned: the audit trail must not stop alerting.
    pub async fn record(&self, table: &str, rows: Vec<Value>) {
        if rows.is_empty() {
            return;
        }
        if let Err(e) = self.append(table, rows).await {
            self.metrics.audit_failures.inc();
            tracing::error!(table, error = %e, "cannot append to the alerting audit trail");
        }
    }

    async fn append(&self, table: &str, rows: Vec<Value>) -> Result<(), String> {
        let t = self.storage.table(table).map_err(|e| e.to_string())?;
        let def = t.def().clone();
        let received = self.storage.stamp_received();
        let now = crate::notify::datetime(received.time().timestamp_micros());
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|mut r| {
                let obj = r.as_object_mut().expect("audit rows are objects");
                for c in def.columns() {
                    if c.ty == fimlake_storage::KustoType::Dynamic
                        && let Some(v) = obj.get_mut(&c.name)
                        && !v.is_null()
                        && !v.is_string()
                    {
                        *v = Value::String(v.to_string());
                    }
                }
                obj.entry("TimeGenerated").or_insert_with(|| json!(now));
                obj.insert("_TimeReceived".into(), json!(now));
                obj.insert("TenantId".into(), json!(self.tenant_id));
                obj.insert("Type".into(), json!(def.name()));
                obj.insert("_ItemId".into(), json!(uuid::Uuid::new_v4().to_string()));
                r
            })
            .collect();
        let mut decoder =
            arrow::json::ReaderBuilder::new(def.schema().clone()).build_decoder().map_err(|e| e.to_string())?;
        decoder.serialize(&rows).map_err(|e| e.to_string())?;
        let batch = decoder.flush().map_err(|e| e.to_string())?.ok_or("no rows")?;
        t.append(batch).await.map_err(|e| e.to_string())?;
        drop(received);
        Ok(())
    }
}
