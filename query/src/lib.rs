//! fimlake's query side: KQL text to rows, over the storage tables ([`QueryEngine`]), and the
//! HTTP API shaped like the Log Analytics Query API ([`api`]).

pub mod api;
pub mod encode;
pub mod timespan;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::prelude::SessionContext;
use fimlake_kql::{KqlError, PlanOptions, TableList};
use fimlake_storage::Storage;
use futures::StreamExt;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Kql(KqlError),
    #[error("the query ran longer than {0:?} and was cancelled")]
    Timeout(Duration),
    #[error("query execution failed: {0}")]
    Execution(String),
}

/// Rows of a result, and whether the row limit cut them.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
}

pub struct QueryEngine {
    storage: Arc<Storage>,
    /// Results stop after this many rows (and say so).
    pub max_rows: usize,
}

impl QueryEngine {
    pub fn new(storage: Arc<Storage>) -> Self {
        QueryEngine { storage, max_rows: 500_000 }
    }

    /// Parses and plans `text` against the storage's tables, with one `now()` for the query.
    fn plan(
        &self,
        text: &str,
        time_range: Option<(i64, i64)>,
    ) -> Result<datafusion::logical_expr::LogicalPlan, QueryError> {
        let query = fimlake_kql::parse(text).map_err(QueryError::Kql)?;
        let catalog =
            TableList(self.storage.providers().into_iter().map(|(n, p)| (n, p as Arc<dyn TableProvider>)).collect());
        let options = PlanOptions { now_us: chrono::Utc::now().timestamp_micros(), time_range };
        fimlake_kql::plan_query_with(&query, text, &catalog, &options).map_err(QueryError::Kql)
    }

    /// The physical plan of `text`, indented: which files each scan reads, and the filters
    /// pushed into it.
    pub async fn explain(&self, text: &str, time_range: Option<(i64, i64)>) -> Result<String, QueryError> {
        let plan = self.plan(text, time_range)?;
        let ctx = SessionContext::new();
        let physical =
            ctx.state().create_physical_plan(&plan).await.map_err(|e| QueryError::Execution(e.to_string()))?;
        Ok(datafusion::physical_plan::displayable(physical.as_ref()).indent(true).to_string())
    }

    /// Runs `text`, optionally restricted to `[start, end)` of `TimeGenerated`, cancelled after
    /// `timeout`.
    pub async fn run(
        &self,
        text: &str,
        time_range: Option<(i64, i64)>,
        timeout: Duration,
    ) -> Result<QueryResult, QueryError> {
        let plan = self.plan(text, time_range)?;
        let ctx = SessionContext::new();
        let max_rows = self.max_rows;
        let work = async move {
            let df = ctx.execute_logical_plan(plan).await.map_err(|e| QueryError::Execution(e.to_string()))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(|e| QueryError::Execution(e.to_string()))?;
            let mut batches = Vec::new();
            let mut rows = 0;
            let mut truncated = false;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|e| QueryError::Execution(e.to_string()))?;
                if rows + b.num_rows() > max_rows {
                    batches.push(b.slice(0, max_rows - rows));
                    truncated = true;
                    break;
                }
                rows += b.num_rows();
                batches.push(b);
            }
            Ok(QueryResult { schema, batches, truncated })
        };
        // Dropping the future on timeout drops the stream, which cancels the execution.
        tokio::time::timeout(timeout, work).await.map_err(|_| QueryError::Timeout(timeout))?
    }
}
