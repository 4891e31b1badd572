//! The server's settings: those fixed at start, and those CONFIG SET can
//! change while it runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

pub const DEFAULT_PORT: u16 = 6380;

/// What the server is started with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on. Anything but a loopback address needs
    /// `requirepass` (protected mode).
    pub bind: String,
    /// 0 picks a free port.
    pub port: u16,
    pub requirepass: Option<String>,
    pub maxclients: u64,
    /// Close a client idle this long (not subscribers); zero never.
    pub timeout: Duration,
    /// Largest bulk string a request may carry; never more than L0's
    /// largest value.
    pub proto_max_bulk_len: u64,
    /// Largest request a client may have buffered and unparsed.
    pub client_query_buffer_limit: u64,
    /// Bytes of replies a connection builds before it waits for the
    /// client to read them.
    pub client_output_buffer_limit: u64,
    /// Bytes of messages queued for a subscriber that does not read,
    /// before it is disconnected.
    pub pubsub_output_buffer_limit: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            requirepass: None,
            maxclients: 10_000,
            timeout: Duration::ZERO,
            proto_max_bulk_len: 512 << 20,
            client_query_buffer_limit: 1 << 30,
            client_output_buffer_limit: 64 << 20,
            pubsub_output_buffer_limit: 32 << 20,
        }
    }
}

/// The settings as they are now.
pub struct Settings {
    pub maxclients: AtomicU64,
    pub timeout_secs: AtomicU64,
    pub proto_max_bulk_len: AtomicU64,
    pub client_query_buffer_limit: AtomicU64,
    pub client_output_buffer_limit: AtomicU64,
    pub pubsub_output_buffer_limit: AtomicU64,
    requirepass: Mutex<Option<String>>,
    /// L0's largest value: the ceiling of `proto_max_bulk_len`.
    pub max_value: u64,
    pub bind: String,
    pub port: u16,
}

impl Settings {
    pub fn new(c: &Config, max_value: u64, port: u16) -> Settings {
        Settings {
            maxclients: AtomicU64::new(c.maxclients),
            timeout_secs: AtomicU64::new(c.timeout.as_secs()),
            proto_max_bulk_len: AtomicU64::new(c.proto_max_bulk_len.min(max_value)),
            client_query_buffer_limit: AtomicU64::new(c.client_query_buffer_limit),
            client_output_buffer_limit: AtomicU64::new(c.client_output_buffer_limit),
            pubsub_output_buffer_limit: AtomicU64::new(c.pubsub_output_buffer_limit),
            requirepass: Mutex::new(c.requirepass.clone()),
            max_value,
            bind: c.bind.clone(),
            port,
        }
    }

    pub fn requirepass(&self) -> Option<String> {
        self.requirepass
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_requirepass(&self, p: Option<String>) {
        *self.requirepass.lock().unwrap_or_else(|p| p.into_inner()) = p;
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let v = |a: &AtomicU64| a.load(Relaxed).to_string();
        Some(match name {
            "maxclients" => v(&self.maxclients),
            "timeout" => v(&self.timeout_secs),
            "proto-max-bulk-len" => v(&self.proto_max_bulk_len),
            "client-query-buffer-limit" => v(&self.client_query_buffer_limit),
            "client-output-buffer-limit" => format!(
                "normal {} {} 0 slave 0 0 0 pubsub {} {} 0",
                self.client_output_buffer_limit.load(Relaxed),
                self.client_output_buffer_limit.load(Relaxed),
                self.pubsub_output_buffer_limit.load(Relaxed),
                self.pubsub_output_buffer_limit.load(Relaxed)
            ),
            "requirepass" => self.requirepass().unwrap_or_default(),
            "bind" => self.bind.clone(),
            "port" => self.port.to_string(),
            "protected-mode" => "yes".into(),
            "databases" => "1".into(),
            // redis-benchmark and other tools ask for these.
            "save" => String::new(),
            "appendonly" => "no".into(),
            _ => return None,
        })
    }

    pub const NAMES: &'static [&'static str] = &[
        "maxclients",
        "timeout",
        "proto-max-bulk-len",
        "client-query-buffer-limit",
        "client-output-buffer-limit",
        "requirepass",
        "bind",
        "port",
        "protected-mode",
        "databases",
        "save",
        "appendonly",
    ];

    /// CONFIG SET; the error text is Redis's.
    pub fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let num = || {
            crate::size::parse_memory(value)
                .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
        };
        match name {
            "maxclients" => self.maxclients.store(num()?.max(1), Relaxed),
            "timeout" => self.timeout_secs.store(num()?, Relaxed),
            "proto-max-bulk-len" => {
                let n = num()?;
                if n < 1024 * 1024 && n != 0 {
                    return Err("argument must be a memory value of at least 1mb".into());
                }
                self.proto_max_bulk_len
                    .store(n.min(self.max_value), Relaxed)
            }
            "client-query-buffer-limit" => self.client_query_buffer_limit.store(num()?, Relaxed),
            "requirepass" => self.set_requirepass((!value.is_empty()).then(|| value.to_string())),
            "bind" | "port" | "databases" | "protected-mode" => {
                return Err("can't set immutable config".into())
            }
            "save" | "appendonly" => {}
            _ => return Err("Unknown option or number of arguments for CONFIG SET".into()),
        }
        Ok(())
    }
}
