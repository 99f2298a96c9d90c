//! A webhook receiver on 127.0.0.1 for the alerting tests: answers 200 and records each call.
#![allow(dead_code, reason = "each test uses some of these")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

#[derive(Clone, Default)]
pub struct Hooks {
    received: Arc<Mutex<Vec<(Instant, String, Value)>>>,
    /// While set, every call is answered 503 and only counted.
    refusing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Hooks {
    pub fn len(&self) -> usize {
        self.received.lock().unwrap().len()
    }
    pub fn get(&self, i: usize) -> (Instant, String, Value) {
        self.received.lock().unwrap()[i].clone()
    }
    /// Answer 503 (a receiver that is down) until told otherwise.
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }
    /// Calls answered 503 so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// A webhook receiver on `addr`, answering 200 and recording (when, Idempotency-Key, body).
pub fn receiver(rt: &tokio::runtime::Runtime, addr: &str) -> Hooks {
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    serve_hooks(rt, listener)
}

/// A webhook receiver on a port of its own (no race with other tests for a port), and its address.
pub fn receiver_on_any_port(rt: &tokio::runtime::Runtime) -> (Hooks, String) {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (serve_hooks(rt, listener), addr)
}

fn serve_hooks(rt: &tokio::runtime::Runtime, listener: tokio::net::TcpListener) -> Hooks {
    let hooks = Hooks::default();
    let h = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let h = h.clone();
            async move {
                if h.refusing.load(Ordering::SeqCst) {
                    h.refused.fetch_add(1, Ordering::SeqCst);
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down");
                }
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                h.received.lock().unwrap().push((Instant::now(), key, serde_json::from_str(&body).unwrap()));
                (axum::http::StatusCode::OK, "ok")
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    hooks
}
