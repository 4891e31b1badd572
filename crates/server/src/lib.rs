//! strata's Redis-protocol server: RESP2 and RESP3 over the tiered cache.
//!
//! Requests flow frame → command → apply: [`frame`] parses what a client
//! sent (zero-copy, limits checked before allocating), the command table
//! finds the command, and its function applies it to the cache, writing
//! the reply. Values set here are bytes in L0, which every process on the
//! machine reads in place; a miss falls through to the upstream Redis if
//! one is configured.
//!
//! ```no_run
//! # async fn run() -> Result<(), strata_server::Error> {
//! let cache = strata::Cache::builder("default").memory(64 << 20).build()?;
//! let server = strata_server::Server::bind(cache, strata_server::Config::default()).await?;
//! server.run(std::future::pending()).await
//! # }
//! ```

mod client;
mod cmd;
mod command;
mod config;
mod conn;
mod error;
mod exec;
pub mod frame;
mod info;
mod metrics;
mod metrics_http;
mod pubsub;
mod reply;
mod server;
mod size;
mod stats;

pub use config::{Config, DEFAULT_PORT};
pub use error::{Error, Result};
pub use metrics_http::serve_metrics;
pub use reply::format_double;
pub use server::{Server, ServerHandle};
pub use size::parse_memory;
