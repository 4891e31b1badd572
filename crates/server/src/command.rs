//! The command table: every command the server knows, its arity, flags
//! and keys as COMMAND reports them, and the function that applies it.

use crate::cmd::{connection, keys, pubsub, server, strings, transaction};
use crate::exec::{CmdResult, Exec};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::OnceLock;

pub type Handler = fn(&mut Exec<'_>, &[Bytes]) -> CmdResult;

pub struct Spec {
    /// Lower case, as COMMAND and error messages give it.
    pub name: &'static str,
    /// Redis's convention: N exactly, or -N for at least N (with the name).
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// First key, last key (-1: the last argument), step; 0s for none.
    pub keys: (i32, i32, i32),
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub run: Handler,
}

impl Spec {
    pub fn index(&self) -> usize {
        (self as *const Spec as usize - TABLE.as_ptr() as usize) / std::mem::size_of::<Spec>()
    }

    /// Allowed to a RESP2 client that has subscriptions.
    pub fn pubsub_ok(&self) -> bool {
        matches!(
            self.name,
            "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
        )
    }
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const D: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const C: &[&str] = &["fast", "noscript", "loading", "stale"];
const P: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const A: &[&str] = &["admin", "noscript", "loading", "stale"];
const K1: (i32, i32, i32) = (1, 1, 1);
const KALL: (i32, i32, i32) = (1, -1, 1);
const KPAIRS: (i32, i32, i32) = (1, -1, 2);
const NOKEY: (i32, i32, i32) = (0, 0, 0);

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $group:literal, $since:literal, $run:path, $summary:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            group: $group,
            since: $since,
            summary: $summary,
            run: $run,
        }
    };
}

pub static TABLE: &[Spec] = &[
    // Strings
    spec!("get", 2, RF, K1, "string", "1.0.0", strings::get, "Returns the string value of a key."),
    spec!("set", -3, W, K1, "string", "1.0.0", strings::set, "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    spec!("setnx", 3, WF, K1, "string", "1.0.0", strings::setnx, "Set the string value of a key only when the key doesn't exist."),
    spec!("setex", 4, W, K1, "string", "2.0.0", strings::setex, "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    spec!("psetex", 4, W, K1, "string", "2.6.0", strings::psetex, "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    spec!("getex", -2, D, K1, "string", "6.2.0", strings::getex, "Returns the string value of a key after setting its expiration time."),
    spec!("getdel", 2, D, K1, "string", "6.2.0", strings::getdel, "Returns the string value of a key after deleting the key."),
    spec!("getset", 3, WF, K1, "string", "1.0.0", strings::getset, "Returns the previous string value of a key after setting it to a new value."),
    spec!("mget", -2, RF, KALL, "string", "1.0.0", strings::mget, "Atomically returns the string values of one or more keys."),
    spec!("mset", -3, W, KPAIRS, "string", "1.0.1", strings::mset, "Atomically creates or modifies the string values of one or more keys."),
    spec!("msetnx", -3, W, KPAIRS, "string", "1.0.1", strings::msetnx, "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    spec!("append", 3, WF, K1, "string", "2.0.0", strings::append, "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec!("strlen", 2, RF, K1, "string", "2.2.0", strings::strlen, "Returns the length of a string value."),
    spec!("incr", 2, WF, K1, "string", "1.0.0", strings::incr, "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("decr", 2, WF, K1, "string", "1.0.0", strings::decr, "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("incrby", 3, WF, K1, "string", "1.0.0", strings::incrby, "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec!("decrby", 3, WF, K1, "string", "1.0.0", strings::decrby, "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    spec!("incrbyfloat", 3, WF, K1, "string", "2.6.0", strings::incrbyfloat, "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    // Keys
    spec!("del", -2, D, KALL, "generic", "1.0.0", keys::del, "Deletes one or more keys."),
    spec!("unlink", -2, D, KALL, "generic", "4.0.0", keys::del, "Asynchronously deletes one or more keys."),
    spec!("exists", -2, RF, KALL, "generic", "1.0.0", keys::exists, "Determines whether one or more keys exist."),
    spec!("touch", -2, RF, KALL, "generic", "3.2.1", keys::exists, "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    spec!("expire", -3, D, K1, "generic", "1.0.0", keys::expire, "Sets the expiration time of a key in seconds."),
    spec!("pexpire", -3, D, K1, "generic", "2.6.0", keys::pexpire, "Sets the expiration time of a key in milliseconds."),
    spec!("expireat", -3, D, K1, "generic", "1.2.0", keys::expireat, "Sets the expiration time of a key to a Unix timestamp."),
    spec!("pexpireat", -3, D, K1, "generic", "2.6.0", keys::pexpireat, "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("ttl", 2, RF, K1, "generic", "1.0.0", keys::ttl, "Returns the expiration time in seconds of a key."),
    spec!("pttl", 2, RF, K1, "generic", "2.6.0", keys::pttl, "Returns the expiration time in milliseconds of a key."),
    spec!("expiretime", 2, RF, K1, "generic", "7.0.0", keys::expiretime, "Returns the expiration time of a key as a Unix timestamp."),
    spec!("pexpiretime", 2, RF, K1, "generic", "7.0.0", keys::pexpiretime, "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("persist", 2, D, K1, "generic", "2.2.0", keys::persist, "Removes the expiration time of a key."),
    spec!("type", 2, RF, K1, "generic", "1.0.0", keys::type_, "Determines the type of value stored at a key."),
    spec!("scan", -2, R, NOKEY, "generic", "2.8.0", keys::scan, "Iterates over the key names in the database."),
    spec!("keys", 2, R, NOKEY, "generic", "1.0.0", keys::keys, "Returns all key names that match a pattern."),
    spec!("dbsize", 1, RF, NOKEY, "server", "1.0.0", keys::dbsize, "Returns the number of keys in the database."),
    spec!("flushdb", -1, W, NOKEY, "server", "1.0.0", keys::flushdb, "Remove all keys from the current database."),
    spec!("flushall", -1, W, NOKEY, "server", "1.0.0", keys::flushdb, "Removes all keys from all databases."),
    spec!("randomkey", 1, R, NOKEY, "generic", "1.0.0", keys::randomkey, "Returns a random key name from the database."),
    // Connection
    spec!("ping", -1, C, NOKEY, "connection", "1.0.0", connection::ping, "Returns the server's liveliness response."),
    spec!("echo", 2, C, NOKEY, "connection", "1.0.0", connection::echo, "Returns the given string."),
    spec!("hello", -1, C, NOKEY, "connection", "6.0.0", connection::hello, "Handshakes with the Redis server."),
    spec!("auth", -2, C, NOKEY, "connection", "1.0.0", connection::auth, "Authenticates the connection."),
    spec!("select", 2, C, NOKEY, "connection", "1.0.0", connection::select, "Changes the selected database."),
    spec!("client", -2, A, NOKEY, "connection", "2.4.0", connection::client, "A container for client connection commands."),
    spec!("reset", 1, C, NOKEY, "connection", "6.2.0", connection::reset, "Resets the connection."),
    spec!("quit", -1, C, NOKEY, "connection", "1.0.0", connection::quit, "Closes the connection."),
    // Server
    spec!("command", -1, C, NOKEY, "server", "2.8.13", server::command, "Returns detailed information about all commands."),
    spec!("info", -1, C, NOKEY, "server", "1.0.0", server::info, "Returns information and statistics about the server."),
    spec!("config", -2, A, NOKEY, "server", "2.0.0", server::config, "A container for server configuration commands."),
    spec!("debug", -2, A, NOKEY, "server", "1.0.0", server::debug, "A container for debugging commands."),
    spec!("time", 1, C, NOKEY, "server", "2.6.0", server::time, "Returns the server time."),
    // Pub/sub
    spec!("subscribe", -2, P, NOKEY, "pubsub", "2.0.0", pubsub::subscribe, "Listens for messages published to channels."),
    spec!("unsubscribe", -1, P, NOKEY, "pubsub", "2.0.0", pubsub::unsubscribe, "Stops listening to messages posted to channels."),
    spec!("psubscribe", -2, P, NOKEY, "pubsub", "2.0.0", pubsub::psubscribe, "Listens for messages published to channels that match one or more patterns."),
    spec!("punsubscribe", -1, P, NOKEY, "pubsub", "2.0.0", pubsub::punsubscribe, "Stops listening to messages published to channels that match one or more patterns."),
    spec!("publish", 3, P, NOKEY, "pubsub", "2.0.0", pubsub::publish, "Posts a message to a channel."),
    spec!("pubsub", -2, P, NOKEY, "pubsub", "2.8.0", pubsub::pubsub, "A container for Pub/Sub commands."),
    // Transactions
    spec!("multi", 1, C, NOKEY, "transactions", "1.2.0", transaction::multi, "Starts a transaction."),
    spec!("exec", 1, &["noscript", "loading", "stale"], NOKEY, "transactions", "1.2.0", transaction::exec, "Executes all commands in a transaction."),
    spec!("discard", 1, C, NOKEY, "transactions", "2.0.0", transaction::discard, "Discards a transaction."),
    spec!("watch", -2, C, KALL, "transactions", "2.2.0", transaction::watch, "Monitors changes to keys to determine the execution of a transaction."),
    spec!("unwatch", 1, C, NOKEY, "transactions", "2.2.0", transaction::unwatch, "Forgets about watched keys of a transaction."),
];

fn index() -> &'static HashMap<&'static [u8], usize> {
    static INDEX: OnceLock<HashMap<&'static [u8], usize>> = OnceLock::new();
    INDEX.get_or_init(|| {
        TABLE
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_bytes(), i))
            .collect()
    })
}

/// The command named `name`, in any case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut lower = [0u8; 24];
    if name.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    index().get(&lower[..name.len()]).map(|&i| &TABLE[i])
}

/// A command's name by table index, for CLIENT LIST.
pub fn name_of(i: usize) -> &'static str {
    TABLE.get(i).map_or("NULL", |s| s.name)
}
