use strata_shm::{TypeTag, View};

/// A value read through the cache: a pinned view into L0 (no copy), or,
/// when L0 did not admit a value fetched from Redis, the fetched bytes.
pub enum Value {
    Shared(View),
    Owned {
        bytes: Vec<u8>,
        tag: Option<TypeTag>,
    },
}

impl Value {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Shared(v) => v,
            Value::Owned { bytes, .. } => bytes,
        }
    }

    pub fn type_tag(&self) -> Option<TypeTag> {
        match self {
            Value::Shared(v) => v.type_tag(),
            Value::Owned { tag, .. } => tag.clone(),
        }
    }

    /// Whether the bytes are L0's shared memory.
    pub fn is_shared(&self) -> bool {
        matches!(self, Value::Shared(_))
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value")
            .field("shared", &self.is_shared())
            .field("len", &self.bytes().len())
            .field("tag", &self.type_tag())
            .finish()
    }
}
