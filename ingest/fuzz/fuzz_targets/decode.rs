//! The record decoder on arbitrary bodies, for every table: it must return one batch or a
//! `DecodeError`, never panic, hang or exhaust memory; a batch it returns has the table's
//! schema. The first byte picks the table; a gzip body (as the API inflates it) is inflated
//! first, capped like the API. Run with `scripts/fuzz` (see README, "Tests").

#![no_main]

use std::io::Read;

use std::sync::{Arc, OnceLock};

use fimlake_ingest::sizing::Sizing;
use libfuzzer_sys::fuzz_target;

/// One [`Sizing`] per table, kept from one input to the next.
fn sizing(tables: &[Arc<fimlake_storage::TableDef>]) -> &'static [Arc<Sizing>] {
    static SIZING: OnceLock<Vec<Arc<Sizing>>> = OnceLock::new();
    SIZING.get_or_init(|| tables.iter().map(|t| Arc::new(Sizing::new(t.columns().len()))).collect())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let registry = fimlake_storage::TableRegistry::builtin();
    let tables = registry.tables();
    let def = &tables[pick as usize % tables.len()];
    let plain: Vec<u8> = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        if flate2::read::MultiGzDecoder::new(body).take(1 << 20).read_to_end(&mut out).is_err() {
            return;
        }
        out
    } else {
        body.to_vec()
    };
    let ctx = fimlake_ingest::decode::DecodeContext {
        received: chrono::Utc::now(),
        tenant_id: "fuzz".into(),
        max_records: 1000,
        // Sized by the inputs before it, as the server sizes a table's bodies.
        sizing: Some(sizing(&tables)[pick as usize % tables.len()].clone()),
    };
    if let Ok(decoded) = fimlake_ingest::decode::decode(def, &plain, &ctx) {
        assert_eq!(decoded.batch.schema().fields().len(), def.schema().fields().len());
        assert!(decoded.batch.num_rows() >= 1 && decoded.batch.num_rows() <= 1000);
    }
});
