// SPDX-License-Identifier: GPL-2.0

//! CPU cache maintenance of physical memory, for devices that do not snoop the CPU's caches
//! (PCIe No-Snoop, FPGA fabric ports): write back and invalidate the lines of a range.
//!
//! x86 flushes by virtual address (`clflush`), so each piece of the range is mapped into the
//! kernel for the moment of the flush (`memremap` with the range's own type: the direct map for
//! RAM, `ioremap_cache`/`ioremap_wt` otherwise), then unmapped again.

use core::ptr::NonNull;

use kernel::{
    bindings,
    prelude::*, //
};

use crate::{
    kernel_ext::memtype::CacheMode,
    range::PhysRange, //
};

/// The most one flush maps at a time.
const PIECE: u64 = 2 << 20;

/// A `memremap` of a piece of physical memory; unmapped on drop.
///
/// # Invariants
///
/// `addr` was returned by `memremap` for `len` bytes and is not yet unmapped.
struct Memremap {
    addr: NonNull<c_void>,
    len: usize,
}

impl Memremap {
    fn new(phys: u64, len: usize, mode: CacheMode) -> Result<Self> {
        let flags = match mode {
            CacheMode::WriteBack => bindings::MEMREMAP_WB,
            CacheMode::WriteThrough => bindings::MEMREMAP_WT,
            _ => return Err(EINVAL),
        };
        // SAFETY: `memremap` may map any physical range; it refuses what it cannot map with
        // that type. Nothing is read or written through the mapping, only flushed.
        let addr = unsafe { bindings::memremap(phys, len, flags as c_ulong) };
        // INVARIANT: A non-NULL result is a live mapping of `len` bytes.
        NonNull::new(addr)
            .map(|addr| Self { addr, len })
            .ok_or(ENOMEM)
    }

    fn flush(&self) {
        // `len` is at most `PIECE`, which fits.
        let len = self.len as c_uint;
        // SAFETY: The mapping is live by the type invariant and `len` bytes long; `clflush`
        // changes no memory contents.
        unsafe { bindings::clflush_cache_range(self.addr.as_ptr(), len) };
    }
}

impl Drop for Memremap {
    fn drop(&mut self) {
        // SAFETY: Live by the type invariant, unmapped only here.
        unsafe { bindings::memunmap(self.addr.as_ptr()) };
    }
}

/// Makes `range`, of memory with type `mode`, coherent with memory for a device that does not
/// snoop: cached types (WB, WT) have their lines written back and invalidated; the others (UC-,
/// UC, WC, which the CPU does not cache but may buffer) get a full memory barrier, which also
/// drains the write-combining buffers. The caller has claimed `range`.
pub(crate) fn write_back_invalidate(range: &PhysRange, mode: CacheMode) -> Result {
    if !matches!(mode, CacheMode::WriteBack | CacheMode::WriteThrough) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        return Ok(());
    }
    let mut offset = 0;
    while offset < range.size() {
        let len = (range.size() - offset).min(PIECE);
        // `len` is at most `PIECE`.
        Memremap::new(range.base() + offset, len as usize, mode)?.flush();
        offset += len;
    }
    Ok(())
}
