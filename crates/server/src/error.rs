/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listening on a non-loopback address without a password.
    #[error("refusing to listen on {addr} without a password (protected mode): set requirepass, or bind 127.0.0.1")]
    ProtectedMode { addr: String },

    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid setting: {0}")]
    InvalidConfig(String),

    #[error(transparent)]
    Cache(#[from] strata::Error),

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
