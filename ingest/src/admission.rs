//! Which ingestion requests may be read and decoded now: at most `max_concurrent_requests` at
//! once, and together at most `max_decoding_bytes` of memory for their bodies (as sent, inflated
//! and decoded). A request that cannot start waits, its body unread, up to `queue_timeout`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Memory is counted in KiB: a semaphore takes at most `u32::MAX` permits at once.
const UNIT: usize = 1024;

/// A gzipped body is first counted at this many times its compressed size (records gzip 3 to 10
/// times); one that inflates further takes the rest before it is decoded ([`Admission::top_up`]).
const GZIP_ESTIMATE: usize = 8;

pub struct Admission {
    requests: Arc<Semaphore>,
    max_requests: usize,
    memory: Arc<Semaphore>,
    memory_units: usize,
}

/// Held while a request is read, decoded and appended.
pub struct Admitted {
    _request: OwnedSemaphorePermit,
    memory: OwnedSemaphorePermit,
}

/// Why a request could not start within the queue timeout.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyRequests { max: usize },
    NotEnoughMemory { wanted: usize, max: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooManyRequests { max } => write!(f, "more than {max} ingestion requests at once"),
            Refusal::NotEnoughMemory { wanted, max } => write!(
                f,
                "the request bodies being decoded hold the server's {max} bytes for decoding (this one needs ~{wanted})"
            ),
        }
    }
}

/// What the server knows of a body before reading it.
#[derive(Debug, Clone, Copy)]
pub struct BodyShape {
    pub content_length: Option<usize>,
    pub gzip: bool,
}

impl Admission {
    pub fn new(max_requests: usize, max_decoding_bytes: usize) -> Admission {
        let max_requests = max_requests.max(1);
        let memory_units = (max_decoding_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Admission {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            memory: Arc::new(Semaphore::new(memory_units)),
            memory_units,
        }
    }

    /// Waits up to `timeout` for a request slot and for `bytes` of decoding memory (at most the
    /// whole budget, so that one large request can always run alone).
    pub async fn admit(&self, bytes: usize, timeout: Duration) -> Result<Admitted, Refusal> {
        let deadline = tokio::time::Instant::now() + timeout;
        let request = tokio::time::timeout_at(deadline, self.requests.clone().acquire_owned())
            .await
            .map_err(|_| Refusal::TooManyRequests { max: self.max_requests })?
            .expect("the request semaphore is never closed");
        let units = bytes.div_ceil(UNIT).clamp(1, self.memory_units) as u32;
        let memory = tokio::time::timeout_at(deadline, self.memory.clone().acquire_many_owned(units))
            .await
            .map_err(|_| Refusal::NotEnoughMemory { wanted: bytes, max: self.memory_units * UNIT })?
            .expect("the memory semaphore is never closed");
        Ok(Admitted { _request: request, memory })
    }

    /// Makes `admitted` hold `bytes` (at most the whole budget) once the body's real size is
    /// known: what the estimate took too much goes back at once; what it took too little is
    /// waited for, up to `timeout`.
    pub async fn top_up(&self, admitted: &mut Admitted, bytes: usize, timeout: Duration) -> Result<(), Refusal> {
        let held = admitted.memory.num_permits();
        let wanted = bytes.div_ceil(UNIT).clamp(1, self.memory_units);
        if wanted <= held {
            drop(admitted.memory.split(held - wanted));
            return Ok(());
        }
        let more = tokio::time::timeout(timeout, self.memory.clone().acquire_many_owned((wanted - held) as u32))
            .await
            .map_err(|_| Refusal::NotEnoughMemory { wanted: bytes, max: self.memory_units * UNIT })?
            .expect("the memory semaphore is never closed");
        admitted.memory.merge(more);
        Ok(())
    }
}

/// The memory a request will hold while it is decoded, estimated before its body is read: the
/// body as sent, inflated when gzipped, and the decoded rows with their WAL entry (about the
/// plain size each). Without a `Content-Length` (a chunked body), the largest body the limits
/// allow.
pub fn decoding_bytes(body: BodyShape, max_body_bytes: usize, max_decompressed_bytes: usize) -> usize {
    let wire = body.content_length.unwrap_or(max_body_bytes).min(max_body_bytes);
    let plain = match (body.gzip, body.content_length) {
        (false, _) => wire,
        (true, Some(_)) => wire.saturating_mul(GZIP_ESTIMATE).min(max_decompressed_bytes),
        (true, None) => max_decompressed_bytes,
    };
    held_bytes(wire, plain, body.gzip)
}

/// The memory a request holds once its body of `wire` bytes is read and `plain` bytes long
/// inflated.
pub fn held_bytes(wire: usize, plain: usize, gzip: bool) -> usize {
    let inflated = if gzip { plain } else { 0 };
    wire + inflated + 2 * plain
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_body_is_estimated_by_its_length_and_encoding() {
        let plain = BodyShape { content_length: Some(MIB), gzip: false };
        assert_eq!(decoding_bytes(plain, 4 * MIB, 8 * MIB), 3 * MIB);
        let gzip = BodyShape { content_length: Some(MIB / 4), gzip: true };
        assert_eq!(decoding_bytes(gzip, 4 * MIB, 8 * MIB), MIB / 4 + 3 * 2 * MIB);
        let bomb = BodyShape { content_length: Some(MIB), gzip: true };
        assert_eq!(decoding_bytes(bomb, 4 * MIB, 8 * MIB), MIB + 3 * 8 * MIB, "capped by max_decompressed_bytes");
        let chunked = BodyShape { content_length: None, gzip: true };
        assert_eq!(decoding_bytes(chunked, 4 * MIB, 8 * MIB), 4 * MIB + 3 * 8 * MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_wait_for_memory_and_are_refused_past_the_queue_timeout() {
        let admission = Admission::new(16, 10 * MIB);
        let first = admission.admit(6 * MIB, Duration::from_secs(2)).await.expect("fits");
        let refused = admission.admit(6 * MIB, Duration::from_secs(2)).await.err();
        assert_eq!(refused, Some(Refusal::NotEnoughMemory { wanted: 6 * MIB, max: 10 * MIB }));
        let small = admission.admit(4 * MIB, Duration::from_secs(2)).await;
        assert!(small.is_ok(), "what is left of the budget still admits a smaller request");
        drop(small);
        drop(first);
        let huge = admission.admit(100 * MIB, Duration::from_secs(2)).await;
        assert!(huge.is_ok(), "a request larger than the budget runs alone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_larger_than_its_estimate_takes_the_rest_or_waits() {
        let admission = Admission::new(16, 10 * MIB);
        let mut first = admission.admit(2 * MIB, Duration::from_secs(2)).await.expect("fits");
        admission.top_up(&mut first, 6 * MIB, Duration::from_secs(2)).await.expect("the budget has room");
        let mut second = admission.admit(2 * MIB, Duration::from_secs(2)).await.expect("what is left");
        let refused = admission.top_up(&mut second, 6 * MIB, Duration::from_secs(2)).await.err();
        assert_eq!(refused, Some(Refusal::NotEnoughMemory { wanted: 6 * MIB, max: 10 * MIB }));
        drop(first);
        admission.top_up(&mut second, 6 * MIB, Duration::from_secs(2)).await.expect("freed by the first");
        admission.top_up(&mut second, MIB, Duration::from_secs(2)).await.expect("already held");
        let third = admission.admit(9 * MIB, Duration::from_secs(2)).await;
        assert!(third.is_ok(), "the second gave back what it held beyond its real size");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_requests_run_at_once() {
        let admission = Admission::new(1, 10 * MIB);
        let _first = admission.admit(1, Duration::from_secs(2)).await.expect("a slot");
        let refused = admission.admit(1, Duration::from_secs(2)).await.err();
        assert_eq!(refused, Some(Refusal::TooManyRequests { max: 1 }));
    }
}
