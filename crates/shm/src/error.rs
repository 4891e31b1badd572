use std::path::PathBuf;

/// Everything that can go wrong with a segment, by kind a caller can match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid size {input:?}: {reason}")]
    InvalidSize { input: String, reason: String },

    #[error("invalid option: {0}")]
    InvalidConfig(String),

    #[error("segment {name:?} does not exist (looked for {})", path.display())]
    NotFound { name: String, path: PathBuf },

    #[error("segment {name:?} already exists ({})", path.display())]
    AlreadyExists { name: String, path: PathBuf },

    #[error(
        "{} has {} free but the segment needs {}; \
         make the shared-memory file system larger (docker: --shm-size=SIZE or --ipc=host; \
         Kubernetes: an emptyDir with medium: Memory and a sizeLimit; \
         a host: mount -o remount,size=SIZE {}) or ask for less memory",
        dir.display(), crate::size::format_size(*available), crate::size::format_size(*needed),
        dir.display()
    )]
    ShmTooSmall {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },

    #[error("segment {} is corrupt: {reason}; remove it with `strata drop` and create it again", path.display())]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "segment {} was made by an incompatible strata ({reason}); \
         stop the processes using it, then `strata drop` it",
        path.display()
    )]
    Incompatible { path: PathBuf, reason: String },

    #[error(
        "segment {} {reason}: refusing to use it, since whoever can write it could feed this \
         process data or read what it stores; `strata drop` it if it is not yours, or attach \
         with trust_foreign (`--trust-foreign`) to share a segment between users on purpose",
        path.display()
    )]
    Foreign { path: PathBuf, reason: String },

    #[error("segment {} is not ready: its creator did not finish setting it up; `strata drop` it", path.display())]
    NotReady { path: PathBuf },

    #[error("key of {len} bytes is too long (the limit is {max})")]
    KeyTooLarge { len: usize, max: usize },

    #[error("type tag of {len} bytes is too long (the limit is {max})")]
    TagTooLarge { len: usize, max: usize },

    #[error(
        "a value of {} is too large for this segment (the limit is {} bytes, {})",
        crate::size::format_size(*len), max, crate::size::format_size(*max)
    )]
    ValueTooLarge { len: u64, max: u64 },

    #[error("segment is full: {0}")]
    Full(String),

    #[error("no free reader slot: {0} threads already read this segment")]
    TooManyReaders(u64),

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
