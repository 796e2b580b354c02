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
    kernel_ext::{
        iomem::Claimed,
        memtype::CacheMode, //
    },
    range::WindowError,
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
    /// Maps `[phys, phys + len)`, part of a claim ([`write_back_invalidate`] checks it), with
    /// `mode`.
    fn new(phys: u64, len: usize, mode: CacheMode) -> Result<Self> {
        let flags = match mode {
            CacheMode::WriteBack => bindings::MEMREMAP_WB,
            CacheMode::WriteThrough => bindings::MEMREMAP_WT,
            _ => return Err(EINVAL),
        };
        // SAFETY: The range is part of a claim (memory that holds no kernel object and no
        // device registers: reserved memory, or `reserve_mem` RAM); `memremap` maps it with
        // that type (the direct map for RAM) or refuses. Nothing is read or written through the
        // mapping, only flushed.
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

/// Makes bytes `[offset, offset + len)` of `claim`, memory with type `mode`, coherent with
/// memory for a device that does not snoop: cached types (WB, WT) have their lines written back
/// and invalidated; the others (UC-, UC, WC, which the CPU does not cache but may buffer) get a
/// full memory barrier, which also drains the write-combining buffers. `ENXIO` for bytes not
/// all inside the claim, `EINVAL` for an empty piece or an overflow.
pub(crate) fn write_back_invalidate<C: Claimed>(
    claim: &C,
    offset: u64,
    len: u64,
    mode: CacheMode,
) -> Result {
    let window = claim
        .claimed_range()
        .window(offset, len)
        .map_err(|err| match err {
            WindowError::OutOfRange => ENXIO,
            WindowError::Overflow => EINVAL,
        })?;
    if !matches!(mode, CacheMode::WriteBack | CacheMode::WriteThrough) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        return Ok(());
    }
    let mut done = 0;
    while done < window.len {
        let piece = (window.len - done).min(PIECE);
        // `piece` is at most `PIECE`; `window.phys + window.len` fits (inside the claim).
        Memremap::new(window.phys + done, piece as usize, mode)?.flush();
        done += piece;
    }
    Ok(())
}
