//! The metrics endpoint: `GET /metrics` over plain HTTP/1.1, the one
//! request a Prometheus scraper makes. Anything else is a 404.

use crate::server::ServerHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;

pub async fn serve_metrics(handle: ServerHandle, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let h = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(h, stream)).await;
        });
    }
}

async fn answer(handle: ServerHandle, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&c| c == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&c| c == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&c| c == b'?').next().unwrap_or_default();
    let (status, body) = if method == b"GET" && path == b"/metrics" {
        let h = handle.clone();
        let body = tokio::task::spawn_blocking(move || h.render_metrics())
            .await
            .unwrap_or_default();
        ("200 OK", body)
    } else {
        (
            "404 Not Found",
            "not found; metrics are at /metrics\n".to_string(),
        )
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
