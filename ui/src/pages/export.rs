//! CSV downloads, streamed: batches are turned into CSV as the engine produces them, so an
//! export of millions of rows holds one batch in memory at a time. `/changes.csv` exports the
//! whole filtered set of the changes page (in storage order: sorting would hold it all);
//! `/hunt.csv` a hunting query's whole result.

use std::time::Duration;

use arrow::array::RecordBatch;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fimlake_kql::PlanOptions;
use fimlake_kusto::KustoType;
use fimlake_query::Cell;
use futures::StreamExt;

use super::changes::ChangeFilter;
use super::{now_us, query_failed, range_of};
use crate::UiState;
use crate::session::Viewer;

/// Planning and starting an export may take this long; the download itself is not limited.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn csv(
    State(st): State<UiState>,
    Extension(viewer): Extension<Viewer>,
    Query(f): Query<ChangeFilter>,
) -> Response {
    let range = match range_of(&viewer, &f.range, "Changes", "/changes") {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    stream_csv(&st, &viewer, &f.kql(), Some((range.start_us, range.end_us)), "changes.csv").await
}

/// Runs `text` and answers its rows as a streamed CSV attachment named `file`.
pub async fn stream_csv(st: &UiState, viewer: &Viewer, text: &str, range: Option<(i64, i64)>, file: &str) -> Response {
    let options = PlanOptions { time_range: range, now_us: now_us(), ..PlanOptions::default() };
    let (schema, stream) = match st.engine.export(text, options, START_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => return query_failed(viewer, "Export", "/changes", &e),
    };
    let header_line = csv_line(schema.fields().iter().map(|f| f.name().to_string()));
    let engine = st.engine.clone();
    let body = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(header_line)) }).chain(
        stream.map(move |batch| match batch {
            Ok(b) => Ok(Bytes::from(batch_csv(&b))),
            // The download breaks off: a partial file must not look complete.
            Err(e) => Err(std::io::Error::other(engine.stream_error(e).to_string())),
        }),
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn csv_line(cells: impl Iterator<Item = String>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells).expect("writing to memory");
    w.into_inner().expect("writing to memory")
}

/// One batch as CSV lines, each cell in the Log Analytics encoding (datetimes ISO 8601).
fn batch_csv(b: &RecordBatch) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(b.num_rows() * 256));
    let types: Vec<KustoType> = b.schema().fields().iter().map(|field| KustoType::of_field(field)).collect();
    for r in 0..b.num_rows() {
        let cells =
            b.columns().iter().zip(&types).map(|(c, t)| crate::data::text(&Cell::of(c.as_ref(), r, *t).to_json()));
        w.write_record(cells).expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn cells_are_quoted_when_needed() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "p",
            arrow::datatypes::DataType::Utf8,
            true,
        )]));
        let col = arrow::array::StringArray::from(vec![Some("a,b"), Some("q\"x"), None, Some("plain")]);
        let b = RecordBatch::try_new(schema, vec![Arc::new(col)]).unwrap();
        assert_eq!(String::from_utf8(batch_csv(&b)).unwrap(), "\"a,b\"\n\"q\"\"x\"\n\"\"\nplain\n");
    }
}
