//! Bridges between async request/response bodies and the sync, disk-bound store: bytes flow
//! through bounded channels, so an archive is never held whole in memory.

use std::io::{self, Read};

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use super::error::ApiError;

/// Chunks in flight per body. Hyper hands over frames of up to a few hundred KiB, so with 64
/// uploads at once every extra slot costs tens of MiB of peak memory; 2 keeps the disk writer
/// busy while the next frame arrives.
const CHANNEL_DEPTH: usize = 2;

/// A blocking reader over chunks sent from the async side.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// How a body ended, as seen by the async side.
enum Feed {
    Complete,
    OverLimit,
    Failed(String),
}

/// Streams `body` (at most `limit` bytes) into `sink`, which runs on a blocking thread and
/// reads it as a `std::io::Read`. A body over the limit fails with 413 whatever `sink` says;
/// a body the client broke off fails `sink`'s read with `ConnectionAborted`.
pub async fn stream_into<T, F>(body: Body, limit: u64, sink: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> Result<T, ApiError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        let result = sink(&mut reader);
        // Drain nothing more: dropping the receiver tells the feeder to stop.
        drop(reader);
        result
    });
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let mut feed = Feed::Complete;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                let reason = err.to_string();
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        reason.clone(),
                    )))
                    .await;
                feed = Feed::Failed(reason);
                break;
            }
        };
        received = received.saturating_add(chunk.len() as u64);
        if received > limit {
            let _ = tx
                .send(Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    "request body over the limit",
                )))
                .await;
            feed = Feed::OverLimit;
            break;
        }
        if tx.send(Ok(chunk)).await.is_err() {
            // The sink stopped reading (it failed); its result says why.
            break;
        }
    }
    drop(tx);
    let result = task
        .await
        .map_err(|err| ApiError::internal(&err))
        .and_then(|r| r);
    match feed {
        Feed::OverLimit => Err(ApiError::too_large(format!(
            "request body is over the {limit}-byte limit; nothing was stored"
        ))),
        Feed::Failed(reason) => Err(ApiError::invalid(format!(
            "the request body broke off ({reason}); nothing was stored"
        ))),
        Feed::Complete => result,
    }
}

/// Bytes per download chunk: big enough that per-chunk costs (a channel hop, a hyper frame, a
/// wakeup) vanish next to the copy, small enough that a download holds a few MiB at most.
const DOWNLOAD_CHUNK: usize = 1024 * 1024;
/// Download chunks in flight per body.
const DOWNLOAD_DEPTH: usize = 2;

/// A response body that reads `reader` on a blocking thread and sends at most `take` bytes. A
/// read error ends the body early, so the client sees a short body against `Content-Length`.
pub fn reader_body(mut reader: Box<dyn Read + Send>, take: u64) -> Body {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DOWNLOAD_DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut left = take;
        while left > 0 {
            let want = usize::try_from(left.min(DOWNLOAD_CHUNK as u64)).unwrap_or(DOWNLOAD_CHUNK);
            // Each chunk is its own allocation, handed to hyper without another copy.
            let mut chunk = Vec::with_capacity(want);
            let n = match (&mut reader).take(want as u64).read_to_end(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %err, "download stopped");
                    let _ = tx.blocking_send(Err(err));
                    return;
                }
            };
            left = left.saturating_sub(n as u64);
            if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}
