// SPDX-License-Identifier: GPL-2.0

//! A temporary kernel mapping of a piece of claimed physical memory, with a chosen memory
//! type, for copying between that memory and an I/O vector (`read_iter`/`write_iter`).
//!
//! Memory that is not System RAM is mapped with `ioremap_prot` and the page protection of the
//! memory type asked for; x86 PAT records the type for the piece while it is mapped (and
//! refuses a type that conflicts with one already recorded, so the mapping never aliases a
//! mapping of another type). System RAM that the kernel set aside (`reserve_mem=`) is covered
//! by the kernel's direct map, which is write-back: it is reached through `memremap` with
//! `MEMREMAP_WB` (the direct map itself), and no other type is given.
//!
//! The bytes are only ever copied through the raw pointer by the kernel's `iov_iter` copy
//! routines: no Rust reference to the memory is formed, since a device or another mapping may
//! change it at any time.
//!
//! C: [`include/linux/io.h`] (`ioremap_prot`, `memremap`), [`include/linux/uio.h`].

use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

use kernel::{
    bindings,
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
};

use crate::kernel_ext::{
    dma_attachment::Claimed,
    memtype::CacheMode, //
};

/// How a [`PhysWindow`] was mapped, which says how it is unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// `ioremap_prot`: undone by `iounmap`.
    Ioremap,
    /// `memremap(MEMREMAP_WB)` of RAM: undone by `memunmap`.
    Memremap,
}

/// A kernel mapping of `len` bytes of physical memory that the claim `'a` holds, unmapped on
/// drop.
///
/// # Invariants
///
/// `addr` is the start of a live kernel mapping of `len > 0` bytes made as `how` says, of
/// memory inside a claim that outlives `'a`; it is unmapped only by `Drop`.
pub(crate) struct PhysWindow<'a> {
    addr: NonNull<c_void>,
    len: usize,
    how: How,
    _claim: PhantomData<&'a ()>,
}

impl<'a> PhysWindow<'a> {
    /// Maps `len` bytes at byte `offset` of `claim` with memory type `mode`.
    ///
    /// `EINVAL` for an empty piece, one that does not lie inside the claim, or a type other
    /// than write-back for RAM; `ENOMEM` when the kernel cannot map it (no address space, or
    /// PAT refuses the type because the memory is recorded with another one).
    pub(crate) fn map<C: Claimed>(
        claim: &'a C,
        offset: u64,
        len: usize,
        mode: CacheMode,
    ) -> Result<Self> {
        let range = claim.claimed_range();
        let end = offset.checked_add(len as u64).ok_or(EINVAL)?;
        if len == 0 || end > range.size() {
            return Err(EINVAL);
        }
        // No overflow: `offset < size` and the range does not wrap.
        let phys = range.base() + offset;
        let (addr, how) = if claim.is_ram() {
            if mode != CacheMode::WriteBack {
                return Err(EINVAL);
            }
            // SAFETY: `[phys, phys + len)` is RAM inside the claim; `memremap` with
            // `MEMREMAP_WB` hands back its direct-map address (or maps it write-back).
            let addr = unsafe { bindings::memremap(phys, len, bindings::MEMREMAP_WB as c_ulong) };
            (addr, How::Memremap)
        } else {
            let size = c_ulong::try_from(len).map_err(|_| EINVAL)?;
            // SAFETY: `[phys, phys + len)` lies inside the claim, which is reserved memory
            // that is not System RAM; `ioremap_prot` may map any such range and records the
            // memory type with PAT (refusing a conflicting one).
            let addr = unsafe { bindings::ioremap_prot(phys, size, mode.pgprot()) };
            (addr, How::Ioremap)
        };
        let addr = NonNull::new(addr).ok_or(ENOMEM)?;
        // INVARIANT: a non-NULL result is a live mapping of `len` bytes of the claim.
        Ok(Self {
            addr,
            len,
            how,
            _claim: PhantomData,
        })
    }

    /// The address of bytes `[at, at + len)` of the window, if they lie inside it.
    fn bytes(&self, at: usize, len: usize) -> Option<*mut c_void> {
        (at <= self.len && len <= self.len - at)
            .then(|| self.addr.as_ptr().cast::<u8>().wrapping_add(at).cast())
    }

    /// Copies bytes `[at, at + len)` of the window to `dest`. Returns the bytes copied: fewer
    /// than `len` when `dest` is shorter or faults, none when the bytes are not all inside the
    /// window.
    pub(crate) fn copy_to_iter(&self, at: usize, len: usize, dest: &mut IovIterDest<'_>) -> usize {
        let Some(src) = self.bytes(at, len) else {
            return 0;
        };
        // SAFETY: By the type invariant the window is readable for its length while `self`
        // lives, and `[at, at + len)` lies inside it. The kernel's copy reads it through the
        // pointer (no Rust reference is formed over memory that others may change); `dest` is
        // valid for writes by its own invariant.
        unsafe { bindings::_copy_to_iter(src, len, dest.as_raw()) }
    }

    /// Copies `len` bytes of `src` into the window from byte `at`. Returns the bytes copied:
    /// fewer than `len` when `src` is shorter or faults, none when the bytes are not all inside
    /// the window.
    pub(crate) fn copy_from_iter(
        &self,
        at: usize,
        len: usize,
        src: &mut IovIterSource<'_>,
    ) -> usize {
        let Some(dst) = self.bytes(at, len) else {
            return 0;
        };
        // SAFETY: By the type invariant the window is writable for its length while `self`
        // lives (a kernel mapping of memory the claim holds), and `[at, at + len)` lies inside
        // it. The kernel's copy writes it through the pointer; `src` is valid for reads by its
        // own invariant.
        unsafe { bindings::_copy_from_iter(dst, len, src.as_raw()) }
    }
}

impl Drop for PhysWindow<'_> {
    fn drop(&mut self) {
        match self.how {
            // SAFETY: A live ioremap by the type invariant, unmapped only here.
            How::Ioremap => unsafe { bindings::iounmap(self.addr.as_ptr()) },
            // SAFETY: A live memremap by the type invariant, unmapped only here.
            How::Memremap => unsafe { bindings::memunmap(self.addr.as_ptr()) },
        }
    }
}
