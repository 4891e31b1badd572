//! Pub/sub between the server's clients: channels and glob patterns.
//! Each subscriber has a queue whose bytes are bounded: a subscriber that
//! stops reading is disconnected once its queue passes the limit, as
//! Redis's `client-output-buffer-limit pubsub` does, rather than growing
//! the server's memory.

use crate::client::ClientHandle;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub enum Message {
    Message {
        channel: Bytes,
        payload: Bytes,
    },
    PMessage {
        pattern: Bytes,
        channel: Bytes,
        payload: Bytes,
    },
}

impl Message {
    fn size(&self) -> usize {
        match self {
            Message::Message { channel, payload } => channel.len() + payload.len() + 32,
            Message::PMessage {
                pattern,
                channel,
                payload,
            } => pattern.len() + channel.len() + payload.len() + 48,
        }
    }
}

/// The sending half of a client's queue.
#[derive(Clone)]
pub struct Subscriber {
    tx: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicUsize>,
    client: Arc<ClientHandle>,
}

/// The receiving half, owned by the connection's task.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<AtomicUsize>,
}

impl Inbox {
    pub async fn recv(&mut self) -> Option<Message> {
        let m = self.rx.recv().await?;
        self.queued.fetch_sub(m.size(), Relaxed);
        Some(m)
    }

    pub fn try_recv(&mut self) -> Option<Message> {
        let m = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(m.size(), Relaxed);
        Some(m)
    }
}

pub fn queue(client: Arc<ClientHandle>) -> (Subscriber, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Subscriber {
            tx,
            queued: queued.clone(),
            client,
        },
        Inbox { rx, queued },
    )
}

impl Subscriber {
    pub fn id(&self) -> u64 {
        self.client.id
    }

    /// Queues a message; a subscriber over `limit` bytes is disconnected.
    fn send(&self, m: Message, limit: usize) -> bool {
        let size = m.size();
        if limit > 0 && self.queued.load(Relaxed) + size > limit {
            self.client.kill();
            return false;
        }
        self.queued.fetch_add(size, Relaxed);
        self.tx.send(m).is_ok()
    }
}

#[derive(Default)]
struct Subscriptions {
    channels: HashMap<Bytes, HashMap<u64, Subscriber>>,
    patterns: HashMap<Bytes, HashMap<u64, Subscriber>>,
}

#[derive(Default)]
pub struct Broker {
    subs: Mutex<Subscriptions>,
}

impl Broker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self, channel: &Bytes, sub: &Subscriber, pattern: bool) {
        let mut s = self.lock();
        let map = if pattern {
            &mut s.patterns
        } else {
            &mut s.channels
        };
        map.entry(channel.clone())
            .or_default()
            .insert(sub.id(), sub.clone());
    }

    pub fn unsubscribe(&self, channel: &[u8], id: u64, pattern: bool) {
        let mut s = self.lock();
        let map = if pattern {
            &mut s.patterns
        } else {
            &mut s.channels
        };
        if let Some(m) = map.get_mut(channel) {
            m.remove(&id);
            if m.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Delivers to every subscriber of the channel and of every matching
    /// pattern; returns how many received it.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes, limit: usize) -> usize {
        let s = self.lock();
        let mut n = 0;
        if let Some(m) = s.channels.get(channel) {
            for sub in m.values() {
                let msg = Message::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                n += sub.send(msg, limit) as usize;
            }
        }
        for (pattern, m) in &s.patterns {
            if strata_shm::glob_match(pattern, channel) {
                for sub in m.values() {
                    let msg = Message::PMessage {
                        pattern: pattern.clone(),
                        channel: channel.clone(),
                        payload: payload.clone(),
                    };
                    n += sub.send(msg, limit) as usize;
                }
            }
        }
        n
    }

    /// Channels with at least one subscriber, matching `pattern` if given.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.lock()
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| strata_shm::glob_match(p, c)))
            .cloned()
            .collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.lock().channels.get(channel).map_or(0, |m| m.len())
    }

    pub fn numpat(&self) -> usize {
        self.lock().patterns.len()
    }
}
