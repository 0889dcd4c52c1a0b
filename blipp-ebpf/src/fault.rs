//! A program that no verifier accepts, built only with the
//! `fault-injection` feature: the VM test loads it in place of a real
//! program to prove that a rejected program costs its probe a fallback to
//! /proc, with the verifier's reason, and nothing else.

use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};

/// Reads the context directly far past the end of any tracepoint record:
/// every verifier refuses the access (5.10 to 7.x say "dereference of
/// modified ctx ptr R1 off=32768 disallowed").
#[tracepoint]
pub fn verifier_reject(ctx: TracePointContext) -> u32 {
    let record = ctx.as_ptr().cast::<u64>();
    // SAFETY: never runs: the verifier rejects the program at load time,
    // which is its purpose.
    let value = unsafe { core::ptr::read_volatile(record.wrapping_add(4096)) };
    value as u32
}
