//! The console's static files, embedded in the binary: the vendored uPlot (its sha256 checked
//! by `scripts/vendor-ui --check`) and the console's own CSS, script and icon.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript",
        bytes: include_bytes!("../assets/vendor/uPlot.iife.min.js"),
    },
    Asset { name: "uPlot.min.css", content_type: "text/css", bytes: include_bytes!("../assets/vendor/uPlot.min.css") },
    Asset { name: "console.css", content_type: "text/css", bytes: include_bytes!("../assets/console.css") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", bytes: include_bytes!("../assets/favicon.svg") },
    Asset { name: "console.js", content_type: "text/javascript", bytes: include_bytes!("../assets/console.js") },
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => ([(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, "public, max-age=3600")], a.bytes)
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
