//! One connection: read what the client sent, apply every whole request
//! in it, write all the replies at once. Pipelined requests thus cost one
//! read and one write per batch. A command that must wait for the
//! upstream Redis moves, with the rest of its batch, to a blocking thread.

use crate::client::{ClientHandle, ClientState};
use crate::exec::{self, Exec, Fail};
use crate::frame::{self, Limits, Parsed, ProtocolError};
use crate::pubsub::{self, Message};
use crate::reply::Out;
use crate::server::Shared;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Buffers bigger than this are not kept between batches.
const KEEP_BUFFER: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;
/// Replies held back while the rest of a pipeline that was cut mid-request
/// is read: one write answers the whole batch.
const COALESCE: usize = 256 * 1024;

/// How a round of applying requests ended.
enum Round {
    /// No whole request is left in the buffer.
    Drained,
    /// This request must run where blocking on the upstream is allowed.
    Defer(Vec<Bytes>),
    /// The output is full: write it before reading more.
    OutputFull,
    Malformed(ProtocolError),
}

struct Conn {
    shared: Arc<Shared>,
    state: ClientState,
    out: Out,
    buf: BytesMut,
}

/// After applying what was buffered: go on, go on without reading
/// (the output filled up first), or close once the replies are written.
#[derive(PartialEq, Eq)]
enum Next {
    Read,
    More,
    Close,
}

pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, handle: Arc<ClientHandle>) {
    let (sub, mut inbox) = pubsub::queue(handle.clone());
    let authenticated = shared.settings.requirepass().is_none();
    let mut shutdown = shared.shutdown.subscribe();
    let mut conn = Some(Conn {
        state: ClientState::new(handle.clone(), authenticated, sub),
        shared: shared.clone(),
        out: Out::new(),
        buf: BytesMut::with_capacity(READ_CHUNK),
    });
    let mut next = Next::Read;
    'serve: while let Some(mut c) = conn.take() {
        if handle.killed.load(Relaxed) || *shutdown.borrow() {
            conn = Some(c);
            break;
        }
        if next == Next::Read {
            let idle = match shared.settings.timeout_secs.load(Relaxed) {
                0 => Duration::MAX,
                _ if c.state.subscriptions() > 0 => Duration::MAX,
                s => Duration::from_secs(s),
            };
            if c.buf.capacity() - c.buf.len() < 1024 {
                c.buf.reserve(READ_CHUNK);
            }
            let subscribed = c.state.subscriptions() > 0;
            let timed = idle != Duration::MAX;
            let read = tokio::select! {
                biased;
                _ = handle.kill.notified() => Err(()),
                _ = shutdown.changed() => Err(()),
                m = inbox.recv(), if subscribed => {
                    if let Some(m) = m {
                        write_message(&mut c.out, m);
                        while let Some(m) = inbox.try_recv() {
                            write_message(&mut c.out, m);
                        }
                    }
                    Ok(0)
                }
                r = read_some(&mut stream, &mut c.buf, timed.then_some(idle)) => r,
            };
            match read {
                Err(()) => {
                    conn = Some(c);
                    break;
                }
                Ok(0) => {
                    let ok = flush(&shared, &handle, &mut stream, &mut c.out)
                        .await
                        .is_ok();
                    conn = Some(c);
                    if !ok {
                        break;
                    }
                    continue;
                }
                Ok(n) => {
                    shared.stats.net_input_bytes.fetch_add(n as u64, Relaxed);
                }
            }
        }
        let Some((mut c, mut n)) = apply_all(c).await else {
            break;
        };
        // The read ended inside a request: the rest of the pipeline is
        // likely in the socket already. Apply it before answering, so that
        // the client gets one write, not one per read.
        while n == Next::Read && !c.buf.is_empty() && c.out.buf.len() < COALESCE {
            if c.buf.capacity() - c.buf.len() < 1024 {
                c.buf.reserve(READ_CHUNK);
            }
            match stream.try_read_buf(&mut c.buf) {
                Ok(read) if read > 0 => {
                    shared.stats.net_input_bytes.fetch_add(read as u64, Relaxed);
                }
                _ => break,
            }
            let Some((back, again)) = apply_all(c).await else {
                break 'serve;
            };
            c = back;
            n = again;
        }
        next = n;
        let limit = shared.settings.client_query_buffer_limit.load(Relaxed);
        if next == Next::Read && c.buf.len() as u64 > limit {
            tracing::warn!(
                client = handle.id,
                "closing a client over the query buffer limit"
            );
            next = Next::Close;
        }
        let written = flush(&shared, &handle, &mut stream, &mut c.out)
            .await
            .is_ok();
        if c.buf.is_empty() && c.buf.capacity() > KEEP_BUFFER {
            c.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        conn = Some(c);
        if !written || next == Next::Close {
            break;
        }
    }
    if let Some(c) = conn {
        for ch in &c.state.channels {
            shared.broker.unsubscribe(ch, handle.id, false);
        }
        for p in &c.state.patterns {
            shared.broker.unsubscribe(p, handle.id, true);
        }
    }
    shared.clients.remove(handle.id);
    let _ = stream.shutdown().await;
}

/// Writes the pending replies. A client killed meanwhile (CLIENT KILL, or
/// a subscriber over its output limit, which is likely not reading) is
/// not waited for.
/// Reads what the client sent; Err at end of stream, on an error, or
/// after `idle` without a byte. Without an idle limit no timer is set.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    idle: Option<Duration>,
) -> Result<usize, ()> {
    let n = match idle {
        Some(t) => tokio::time::timeout(t, stream.read_buf(buf))
            .await
            .map_err(|_| ())?,
        None => stream.read_buf(buf).await,
    };
    match n {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(()),
    }
}

async fn flush(
    shared: &Shared,
    handle: &ClientHandle,
    stream: &mut TcpStream,
    out: &mut Out,
) -> std::io::Result<()> {
    if out.buf.is_empty() {
        return Ok(());
    }
    tokio::select! {
        r = stream.write_all(&out.buf) => r?,
        _ = handle.kill.notified() => {
            return Err(std::io::Error::other("client killed"));
        }
    }
    shared
        .stats
        .net_output_bytes
        .fetch_add(out.buf.len() as u64, Relaxed);
    out.buf.clear();
    if out.buf.capacity() > KEEP_BUFFER {
        out.buf = BytesMut::with_capacity(16 * 1024);
    }
    Ok(())
}

/// Applies every whole request in the buffer, moving to a blocking thread
/// when one must wait for the upstream. None if that thread panicked (the
/// connection's state went with it).
async fn apply_all(mut c: Conn) -> Option<(Conn, Next)> {
    let mut r = round(&mut c, false);
    if let Round::Defer(args) = r {
        let (back, again) = tokio::task::spawn_blocking(move || {
            c.shared.stats.upstream_commands.fetch_add(1, Relaxed);
            apply_one(&mut c, &args, true);
            let r = round(&mut c, true);
            (c, r)
        })
        .await
        .ok()?;
        c = back;
        r = again;
    }
    let next = match r {
        Round::Malformed(e) => {
            c.shared.stats.protocol_errors.fetch_add(1, Relaxed);
            c.out.err(&e.reply_text());
            Next::Close
        }
        _ if c.state.close_after_reply => Next::Close,
        Round::OutputFull => Next::More,
        Round::Drained | Round::Defer(_) => Next::Read,
    };
    Some((c, next))
}

/// Parses and applies requests until the buffer holds no whole one, the
/// output is full, or one must be deferred.
fn round(c: &mut Conn, upstream_ok: bool) -> Round {
    let shared = c.shared.clone();
    let started = Instant::now();
    let mut applied = 0;
    let r = round_timed(c, &shared, upstream_ok, &mut applied);
    shared.stats.record_batch(started.elapsed(), applied);
    if applied > 0 {
        let h = &c.state.handle;
        h.last_active_ms.store(shared.clock.now_ms(), Relaxed);
    }
    r
}

fn round_timed(c: &mut Conn, shared: &Shared, upstream_ok: bool, applied: &mut u64) -> Round {
    let out_limit = shared.settings.client_output_buffer_limit.load(Relaxed) as usize;
    let max_bulk = shared.settings.proto_max_bulk_len.load(Relaxed);
    // Every command of the round runs under the exec lock's read side;
    // EXEC, which takes the write side, lets go of it first.
    let read = || shared.exec_lock.read().unwrap_or_else(|p| p.into_inner());
    let mut serial = Some(read());
    loop {
        if c.state.close_after_reply {
            return Round::Drained;
        }
        if c.out.buf.len() >= out_limit.max(1) {
            return Round::OutputFull;
        }
        let limits = Limits::for_client(c.state.authenticated, max_bulk);
        let args = match frame::parse(&c.buf, limits) {
            Ok(Parsed::Request { len, args }) => frame::take(&mut c.buf, len, &args),
            Ok(Parsed::Inline { len, args }) => {
                c.buf.advance(len);
                args.into_iter().map(Bytes::from).collect()
            }
            Ok(Parsed::Empty(len)) => {
                c.buf.advance(len);
                continue;
            }
            Ok(Parsed::Incomplete { need }) => {
                if let Some(n) = need {
                    // A large bulk is on its way: make room for all of it
                    // once (its length was checked against the limits).
                    c.buf.reserve(n.saturating_sub(c.buf.len()));
                }
                return Round::Drained;
            }
            Err(e) => return Round::Malformed(e),
        };
        let exec = args[0].eq_ignore_ascii_case(b"exec");
        if exec {
            serial = None;
        }
        let done = apply_one(c, &args, upstream_ok);
        if exec {
            serial = Some(read());
        }
        if !done {
            drop(serial);
            return Round::Defer(args);
        }
        *applied += 1;
    }
}

/// Applies one request; false if it must be deferred (nothing was done).
fn apply_one(c: &mut Conn, args: &[Bytes], upstream_ok: bool) -> bool {
    let mut ex = Exec {
        srv: &c.shared,
        client: &mut c.state,
        out: &mut c.out,
        upstream_ok,
    };
    !matches!(exec::apply(&mut ex, args), Err(Fail::Defer))
}

fn write_message(out: &mut Out, m: Message) {
    match m {
        Message::Message { channel, payload } => {
            out.push(3);
            out.bulk(b"message");
            out.bulk(&channel);
            out.bulk(&payload);
        }
        Message::PMessage {
            pattern,
            channel,
            payload,
        } => {
            out.push(4);
            out.bulk(b"pmessage");
            out.bulk(&pattern);
            out.bulk(&channel);
            out.bulk(&payload);
        }
    }
}
