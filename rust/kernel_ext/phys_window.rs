// SPDX-License-Identifier: GPL-2.0

//! A kernel mapping of all of a claim of physical memory, with one memory type, for copying
//! between that memory and an I/O vector (`read_iter`/`write_iter`).
//!
//! Memory that is not System RAM is mapped with `ioremap_prot` and the page protection of the
//! memory type asked for; x86 PAT records the type for the range while it is mapped (and
//! refuses a type that conflicts with one already recorded, so the mapping never aliases a
//! mapping of another type). `ioremap` uses 2 MiB and 1 GiB entries where the range allows.
//! System RAM that the kernel set aside (`reserve_mem=`) is covered by the kernel's direct map,
//! which is write-back: it is reached through `memremap` with `MEMREMAP_WB` (the direct map
//! itself), and no other type is given.
//!
//! A [`ClaimWindow`] owns the claim and makes the mapping on first use, then keeps it for the
//! transfers that follow until [`ClaimWindow::release`]: a file read in 1 MiB calls would
//! otherwise map and unmap a piece per call (a vmap area, page-table entries, a PAT record
//! and, on unmap, a flush of the whole TLB). The mapping is made for the claim it owns and is
//! unmapped before the claim is released.
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
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

use crate::kernel_ext::{
    iomem::Claimed,
    memtype::CacheMode, //
};

/// How a [`Mapping`] was made, which says how it is unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// `ioremap_prot`: undone by `iounmap`.
    Ioremap,
    /// `memremap(MEMREMAP_WB)` of RAM: undone by `memunmap`.
    Memremap,
}

/// A kernel mapping of a whole claim, unmapped on drop.
///
/// # Invariants
///
/// `addr` is the start of a live kernel mapping of `len > 0` bytes, made as `how` says with
/// memory type `mode`, of all the memory of the claim of the [`ClaimWindow`] that made it;
/// it is unmapped only by `Drop`, which runs before that claim is released (see
/// [`ClaimWindow`]).
struct Mapping {
    addr: NonNull<c_void>,
    len: usize,
    how: How,
    mode: CacheMode,
}

// SAFETY: A kernel mapping is not tied to the thread that made it: any thread may copy through
// it and unmap it.
unsafe impl Send for Mapping {}

// SAFETY: Shared use only copies through the pointer with the kernel's copy routines, which
// any number of threads may do at once.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps all of `claim` with memory type `mode`.
    ///
    /// `EINVAL` for a type other than write-back for RAM, or a claim too large to map;
    /// `ENOMEM` when the kernel cannot map it (no address space, or PAT refuses the type
    /// because part of the memory is recorded with another one).
    fn new<C: Claimed>(claim: &C, mode: CacheMode) -> Result<Self> {
        let range = claim.claimed_range();
        let len = usize::try_from(range.size()).map_err(|_| EINVAL)?;
        let (addr, how) = if claim.is_ram() {
            if mode != CacheMode::WriteBack {
                return Err(EINVAL);
            }
            // SAFETY: `[base, base + len)` is the RAM of the claim; `memremap` with
            // `MEMREMAP_WB` hands back its direct-map address (or maps it write-back).
            let addr =
                unsafe { bindings::memremap(range.base(), len, bindings::MEMREMAP_WB as c_ulong) };
            (addr, How::Memremap)
        } else {
            let size = c_ulong::try_from(len).map_err(|_| EINVAL)?;
            // SAFETY: `[base, base + len)` is the claim, reserved memory that is not System
            // RAM; `ioremap_prot` may map any such range and records the memory type with PAT
            // (refusing a conflicting one).
            let addr = unsafe { bindings::ioremap_prot(range.base(), size, mode.pgprot()) };
            (addr, How::Ioremap)
        };
        let addr = NonNull::new(addr).ok_or(ENOMEM)?;
        // INVARIANT: a non-NULL result is a live mapping of the `len > 0` bytes of the claim
        // (a claim is never empty).
        Ok(Self {
            addr,
            len,
            how,
            mode,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.how {
            // SAFETY: A live ioremap by the type invariant, unmapped only here.
            How::Ioremap => unsafe { bindings::iounmap(self.addr.as_ptr()) },
            // SAFETY: A live memremap by the type invariant, unmapped only here.
            How::Memremap => unsafe { bindings::memunmap(self.addr.as_ptr()) },
        }
    }
}

/// A claim on physical memory together with a kernel mapping of all of it, made on demand by
/// [`ClaimWindow::window`] and kept until [`ClaimWindow::release`] or drop.
///
/// # Invariants
///
/// Every [`Mapping`] in `cached`, and every one a [`PhysWindow`] borrowing `self` holds, maps
/// the memory of `claim`. `cached` is declared before `claim`, so it drops first; a
/// `PhysWindow` cannot outlive the borrow of `self` it was made from. So no mapping outlives
/// the claim.
#[pin_data]
pub(crate) struct ClaimWindow<C: Claimed> {
    #[pin]
    cached: Mutex<Option<Arc<Mapping>>>,
    claim: C,
}

impl<C: Claimed> ClaimWindow<C> {
    /// Owns `claim`; nothing is mapped yet.
    pub(crate) fn new(claim: C) -> impl PinInit<Self> {
        pin_init!(Self {
            cached <- new_mutex!(None),
            claim,
        })
    }

    /// The claim.
    pub(crate) fn claim(&self) -> &C {
        &self.claim
    }

    /// A window on all of the claim with memory type `mode`: the kept mapping if it has that
    /// type, else a new one, kept in its place (the old one is unmapped once no window uses
    /// it). Errors as for the mapping: `EINVAL` (a type RAM cannot have), `ENOMEM`.
    pub(crate) fn window(&self, mode: CacheMode) -> Result<PhysWindow<'_>> {
        let mut cached = self.cached.lock();
        let mapping = match &*cached {
            Some(mapping) if mapping.mode == mode => mapping.clone(),
            _ => {
                // Unmapped first: the old type's PAT record would refuse the new type.
                let old = cached.take();
                drop(old);
                let mapping = Arc::new(Mapping::new(&self.claim, mode)?, GFP_KERNEL)?;
                *cached = Some(mapping.clone());
                mapping
            }
        };
        Ok(PhysWindow {
            mapping,
            _claim: PhantomData,
        })
    }

    /// Unmaps the kept mapping, if any (windows still in use keep theirs until dropped).
    pub(crate) fn release(&self) {
        // Taken under the lock, unmapped after it.
        let old = self.cached.lock().take();
        drop(old);
    }

    /// Runs `change` with no window being made meanwhile and, if it succeeds, unmaps the kept
    /// mapping before returning: for a change of what memory type the claim's users will ask
    /// for, after which no mapping of the old type may stay behind.
    pub(crate) fn release_after(&self, change: impl FnOnce() -> Result) -> Result {
        let mut cached = self.cached.lock();
        change()?;
        let old = cached.take();
        drop(cached);
        drop(old);
        Ok(())
    }
}

/// A kernel mapping of all of a [`ClaimWindow`]'s claim, valid while the borrow `'a` of it
/// lasts.
pub(crate) struct PhysWindow<'a> {
    mapping: Arc<Mapping>,
    _claim: PhantomData<&'a ()>,
}

impl PhysWindow<'_> {
    /// The address of bytes `[at, at + len)` of the window, if they lie inside it.
    fn bytes(&self, at: usize, len: usize) -> Option<*mut c_void> {
        let (start, size) = (self.mapping.addr.as_ptr().cast::<u8>(), self.mapping.len);
        (at <= size && len <= size - at).then(|| start.wrapping_add(at).cast())
    }

    /// Copies bytes `[at, at + len)` of the window to `dest`. Returns the bytes copied: fewer
    /// than `len` when `dest` is shorter or faults, none when the bytes are not all inside the
    /// window.
    pub(crate) fn copy_to_iter(&self, at: usize, len: usize, dest: &mut IovIterDest<'_>) -> usize {
        let Some(src) = self.bytes(at, len) else {
            return 0;
        };
        // SAFETY: By the invariants of `Mapping` and `ClaimWindow` the mapping is live and
        // readable while `self` lives, and `[at, at + len)` lies inside it. The kernel's copy
        // reads it through the pointer (no Rust reference is formed over memory that others
        // may change); `dest` is valid for writes by its own invariant.
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
        // SAFETY: By the invariants of `Mapping` and `ClaimWindow` the mapping is live and
        // writable while `self` lives (a kernel mapping of memory the claim holds), and
        // `[at, at + len)` lies inside it. The kernel's copy writes it through the pointer;
        // `src` is valid for reads by its own invariant.
        unsafe { bindings::_copy_from_iter(dst, len, src.as_raw()) }
    }
}
