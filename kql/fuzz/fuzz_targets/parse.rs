//! The KQL parser on arbitrary input: it must answer `Ok` or an error, never panic or hang.
//! Run with `cargo +nightly fuzz run parse` from `kql/` (see README, "KQL").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(query) = fimlake_kql::parse(text) {
            // What parses prints back as a syntax tree without panicking too.
            let _ = fimlake_kql::sexpr::query(&query);
        }
    }
});
