//! A connection's state, and the registry of connections that CLIENT
//! LIST, CLIENT KILL, INFO and `maxclients` read.

use crate::pubsub::Subscriber;
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// What other connections may see of a connection, or do to it.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    /// When it last ran a command, on the server's coarse clock.
    pub last_active_ms: AtomicU64,
    /// The table index of the last command.
    pub last_cmd: AtomicUsize,
    pub resp: AtomicU8,
    pub subs: AtomicUsize,
    pub psubs: AtomicUsize,
    pub killed: AtomicBool,
    pub kill: Notify,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.kill.notify_one();
    }

    pub fn name(&self) -> Option<Bytes> {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One line of CLIENT LIST, in Redis's format (the fields strata has).
    /// `now_ms` is the server's coarse clock.
    pub fn info_line(&self, now_ms: u64) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = now_ms.saturating_sub(self.last_active_ms.load(Relaxed)) / 1000;
        let name = self
            .name()
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .unwrap_or_default();
        let subs = self.subs.load(Relaxed);
        let psubs = self.psubs.load(Relaxed);
        let flags = if subs + psubs > 0 { "P" } else { "N" };
        let cmd = crate::command::name_of(self.last_cmd.load(Relaxed));
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            name,
            age,
            idle,
            flags,
            subs,
            psubs,
            cmd,
            self.resp.load(Relaxed)
        )
    }
}

/// Every live connection, by id.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// Registers a connection, unless `max` are already connected.
    pub fn add(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        max: usize,
        now_ms: u64,
    ) -> Option<Arc<ClientHandle>> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let h = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            last_active_ms: AtomicU64::new(now_ms),
            last_cmd: AtomicUsize::new(usize::MAX),
            resp: AtomicU8::new(2),
            subs: AtomicUsize::new(0),
            psubs: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        });
        map.insert(id, h.clone());
        Some(h)
    }

    pub fn remove(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection's own state, touched only by the task serving it.
pub struct ClientState {
    pub handle: Arc<ClientHandle>,
    pub authenticated: bool,
    /// The connection closes once the replies so far are written (QUIT).
    pub close_after_reply: bool,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    pub subscriber: Subscriber,
    /// Commands queued since MULTI.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command was refused: EXEC aborts.
    pub multi_dirty: bool,
    /// WATCHed keys and the version each had (None: absent).
    pub watched: Vec<(Bytes, Option<u64>)>,
}

impl ClientState {
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool, subscriber: Subscriber) -> Self {
        ClientState {
            handle,
            authenticated,
            close_after_reply: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            subscriber,
            multi: None,
            multi_dirty: false,
            watched: Vec::new(),
        }
    }

    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands.
    pub fn in_pubsub_context(&self) -> bool {
        self.subscriptions() > 0
    }
}
