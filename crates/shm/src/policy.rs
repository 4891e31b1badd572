//! The admission seam. When space is short, L0 must choose between a new
//! key and a resident victim (the coldest of the key's 16 index candidates,
//! or the clock's pick); the shared frequency sketch estimates both, and an
//! [`Admission`] policy decides.

/// Decides whether a new key may displace a resident one.
pub trait Admission: Send + Sync + 'static {
    fn admit(&self, candidate_frequency: u32, victim_frequency: u32) -> bool;
}

/// TinyLFU: the newcomer must be at least as frequent as the victim.
/// (Ties go to the newcomer, so a cache of equally cold keys still turns
/// over.)
#[derive(Clone, Copy, Debug, Default)]
pub struct TinyLfu;

impl Admission for TinyLfu {
    fn admit(&self, candidate: u32, victim: u32) -> bool {
        candidate >= victim
    }
}

/// Admits everything: pure clock eviction.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAdmit;

impl Admission for AlwaysAdmit {
    fn admit(&self, _: u32, _: u32) -> bool {
        true
    }
}
