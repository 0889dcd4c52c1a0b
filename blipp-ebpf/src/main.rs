//! blipp's kernel programs. Each program counts into maps with O(1) work per
//! event; the agent reads the maps on its own schedule.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "atomic_xadd: see atomic.rs")]

mod atomic;
mod count;
mod disk;
mod disk_io;
#[cfg(feature = "fault-injection")]
mod fault;
mod kmem;
mod net;
mod process;
mod tcp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The tracepoint helpers used here are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
