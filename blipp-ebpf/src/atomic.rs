//! Relaxed atomic adds on map values.
//!
//! The BPF target has no compare-and-swap, so `core` offers no `fetch_add` on
//! `AtomicU64`; the intrinsic compiles to the `lock add` instruction that every
//! BPF-capable kernel accepts (the result is discarded, so no BPF_FETCH,
//! which only 5.12+ verifiers know).

use core::intrinsics::{AtomicOrdering, atomic_xadd};

/// Adds `value` to `*dst` atomically.
///
/// # Safety
/// `dst` must point to a live, 8-byte aligned map value.
#[inline(always)]
pub unsafe fn add(dst: *mut u64, value: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(dst, value);
    }
}

/// Adds `value` to the 32-bit `*dst` atomically.
///
/// # Safety
/// `dst` must point to a live, 4-byte aligned map value.
#[inline(always)]
pub unsafe fn add_u32(dst: *mut u32, value: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(dst, value);
    }
}
