//! The commands, one file per group as COMMAND DOCS groups them.

pub mod connection;
pub mod keys;
pub mod pubsub;
pub mod server;
pub mod strings;
pub mod transaction;

use crate::exec::{not_integer, Fail};
use crate::frame::parse_i64;

/// An integer argument, with Redis's error for anything else.
pub fn int_arg(b: &[u8]) -> Result<i64, Fail> {
    parse_i64(b).ok_or_else(not_integer)
}

/// Keys strata keeps for itself in L0 (leases, roles, namespace
/// versions) start with a NUL byte; listings leave them out.
pub fn is_internal(key: &[u8]) -> bool {
    key.first() == Some(&0)
}

pub fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}
