//! Loads from kernel structs reached through the typed pointers of BTF
//! tracepoints.
//!
//! The offsets come from read-only globals that the agent filled in from the
//! kernel's BTF. The verifier sees those globals as constants, checks each
//! load against the kernel's own type information and turns it into a
//! fault-safe direct load (no helper call).

/// Loads a `T` at `base + offset`.
///
/// # Safety
/// `base` must be a BTF pointer argument of the running program (or a
/// pointer loaded from one) and `offset` a member offset of `T`'s size
/// inside its struct, as the verifier checks.
#[inline(always)]
pub unsafe fn load<T: Copy>(base: *const u8, offset: u32) -> T {
    // SAFETY: guaranteed by the caller; a fault reads as zero.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) }
}
