/// Where a write goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WritePolicy {
    /// Redis first, then L0. An error from Redis is the caller's, and L0
    /// never holds a value newer than Redis's (the key is dropped from L0
    /// when Redis may or may not have taken the write). The default with
    /// Redis.
    #[default]
    Through,
    /// L0 now; Redis in the background, in batches, from a bounded queue
    /// that coalesces writes to one key. A full queue makes writers wait.
    /// `flush()` and `close()` drain it. What a killed process loses: the
    /// writes it had queued and not yet sent.
    Back,
    /// L0 only: Redis is read, never written.
    None,
}

impl std::str::FromStr for WritePolicy {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "through" => Ok(WritePolicy::Through),
            "back" => Ok(WritePolicy::Back),
            "none" => Ok(WritePolicy::None),
            other => Err(crate::Error::InvalidConfig(format!(
                "write policy {other:?}: expected \"through\", \"back\" or \"none\""
            ))),
        }
    }
}
