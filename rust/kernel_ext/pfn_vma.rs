// SPDX-License-Identifier: GPL-2.0

//! VMAs that map physical page frames (`VM_PFNMAP`) of a source the VMA keeps alive: mapped
//! whole at `mmap` time (`remap_pfn_range`, 4 KiB entries) or filled at fault time (1 GiB and
//! 2 MiB entries where the block fits, 4 KiB elsewhere), with `open`/`close` operations that let
//! the source count the VMAs (and every copy by fork or split) that map it.
//!
//! Each VMA owns a reference to the source (an [`Arc`] in `vm_private_data`): `open` takes one
//! for a copy, `close` drops it, so the source outlives every VMA whatever its owner does.
//!
//! The abstraction decides everything soundness rests on by itself: the frames come only from
//! the source's claim ([`Claimed`], sealed: made only by [`super::iomem`]) and every window is
//! checked against it here; the VMA must be shared (a copy-on-write `VM_PFNMAP` VMA makes
//! `vmf_insert_pfn*` `BUG`), not `VM_MIXEDMAP` and not set up already; the source counts the
//! VMA before anything is mapped; 2 MiB and 1 GiB entries are used only for a type such an
//! entry can give, and 1 GiB entries only on a CPU that has them (`X86_FEATURE_GBPAGES`: without
//! it the kernel would still write one, which the CPU rejects as a reserved bit).

use kernel::{
    bindings,
    fs::File,
    mm::virt::{
        flags,
        VmaNew, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::Arc,
    types::ForeignOwnable, //
};

use crate::{
    kernel_ext::{
        iomem::Claimed,
        memtype::{
            CacheMode,
            MemtypeHold,
            PTE_CACHE_MASK, //
        },
        ratelimit,
    },
    range::{
        PhysRange,
        Window,
        WindowError, //
    },
};

/// Something that owns a claim of physical memory whose pages VMAs map.
///
/// The frames come from [`PfnSource::claim`], a claim only [`super::iomem`] can make: an
/// implementation decides which of its claims is mapped, never which frames. The VMA keeps the
/// source (and so the claim) alive, and the abstraction checks every window against the claim
/// itself.
pub(crate) trait PfnSource: Send + Sync + 'static {
    /// The kind of claim the source owns.
    type Claim: Claimed;

    /// The claim whose memory VMAs of this source map; page `vm_pgoff` of a VMA is page
    /// `vm_pgoff` of the claim.
    fn claim(&self) -> &Self::Claim;

    /// A VMA now maps it (a new mapping, or a copy by fork or a split). Called by
    /// [`map_now`] and [`map_on_fault`] before they map anything, and by the VMA's `open`.
    fn vma_opened(&self);

    /// A VMA that mapped it is gone, or a [`map_now`] or [`map_on_fault`] that counted one
    /// failed.
    fn vma_closed(&self);
}

/// Whether the mapping is `MAP_SHARED` (`VM_MAYSHARE`: the kernel clears `VM_SHARED` on a
/// shared mapping of a file opened read-only).
pub(crate) fn is_shared(vma: &VmaNew) -> bool {
    vma.flags() & flags::MAYSHARE != 0
}

/// Gives the VMA's future page-table entries the memory type `mode` (as `pgprot_noncached`
/// and its kin do to `vm_page_prot`).
pub(crate) fn set_cache_mode(vma: &VmaNew, mode: CacheMode) {
    let bits = mode.pte_bits();
    let vma = vma.as_ptr();
    // SAFETY: `vma` is being set up by `mmap` under the mmap lock (the `VmaNew` contract), so
    // nothing else reads or writes its `vm_page_prot` now.
    unsafe {
        let prot = &mut (*vma).vm_page_prot.pgprot;
        *prot = (*prot & !PTE_CACHE_MASK) | bits;
    }
}

/// Why a VMA could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapError {
    /// The kernel gave the entries another memory type than asked for (`Some`), or refused the
    /// one asked for (`None`): another mapping recorded the range first.
    Conflict(Option<CacheMode>),
    /// A private (copy-on-write) mapping: only `MAP_SHARED` maps physical frames. `EINVAL`.
    Private,
    /// The VMA asks for pages outside the claim (`ENXIO`), or its offset overflows (`EINVAL`).
    Window(WindowError),
    /// Anything else.
    Failed(Error),
}

impl MapError {
    /// The errno for the `mmap` call.
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::Conflict(_) => EBUSY,
            Self::Private => EINVAL,
            Self::Window(WindowError::OutOfRange) => ENXIO,
            Self::Window(WindowError::Overflow) => EINVAL,
            Self::Failed(err) => err,
        }
    }
}

/// The window of `claim` that a VMA of `len` bytes at page offset `pgoff` maps: pure
/// arithmetic, refused when any page lies outside the claim.
pub(crate) fn claim_window(claim: &PhysRange, pgoff: u64, len: u64) -> Result<Window, WindowError> {
    let offset = pgoff
        .checked_mul(PAGE_SIZE as u64)
        .ok_or(WindowError::Overflow)?;
    claim.window(offset, len)
}

/// What a VMA being set up already has: its flags, its private data (null unless something set
/// it up before) and its page offset.
pub(crate) fn setup_fields(vma: &VmaNew) -> (bindings::vm_flags_t, *mut core::ffi::c_void, usize) {
    let raw = vma.as_ptr();
    // SAFETY: `vma` is valid and being set up under the mmap lock (the `VmaNew` contract);
    // these are plain fields.
    unsafe {
        (
            (*raw).__bindgen_anon_2.vm_flags,
            (*raw).vm_private_data,
            (*raw).vm_pgoff,
        )
    }
}

/// Checks that `vma` may be set up as a PFN map of `claim`, and gives the window it maps.
///
/// Refuses what `remap_pfn_range` and `vmf_insert_pfn*` would `BUG_ON` or misuse: a private
/// (copy-on-write) mapping, a VMA already set up as a PFN or mixed map (or given a source
/// before), and a window that is not wholly inside the claim.
fn check_vma<C: Claimed>(vma: &VmaNew, claim: &C) -> Result<Window, MapError> {
    if !is_shared(vma) {
        if ratelimit::refusal_may_print() {
            pr_err!(
                "pfn_vma: refusing a private mapping: physical frames are mapped shared only (MAP_SHARED)\n"
            );
        }
        return Err(MapError::Private);
    }
    let (vm_flags, private, pgoff) = setup_fields(vma);
    if vm_flags & (bindings::VM_PFNMAP | bindings::VM_MIXEDMAP) != 0 || !private.is_null() {
        return Err(MapError::Failed(EINVAL));
    }
    let len = (vma.end() - vma.start()) as u64;
    claim_window(&claim.claimed_range(), pgoff as u64, len).map_err(MapError::Window)
}

/// The type the kernel gave the page-table entry that maps `vma.start()`.
fn first_entry_mode(vma: &VmaNew) -> Option<CacheMode> {
    let mut args = bindings::follow_pfnmap_args {
        vma: vma.as_ptr(),
        address: vma.start() as c_ulong,
        ..pin_init::zeroed()
    };
    // SAFETY: `vma` is valid and its mm's lock is held (the `VmaNew` contract); the call locks
    // the entry it finds, which `follow_pfnmap_end` unlocks.
    if unsafe { bindings::follow_pfnmap_start(&mut args) } != 0 {
        return None;
    }
    let bits = args.pgprot.pgprot;
    // SAFETY: `follow_pfnmap_start` succeeded for `args`.
    unsafe { bindings::follow_pfnmap_end(&mut args) };
    CacheMode::from_pte_bits(bits)
}

/// What a VMA owns: its source and, for a VMA filled at fault time, the memory-type record
/// its entries take their type from.
struct VmaData<T> {
    source: Arc<T>,
    hold: Option<Arc<MemtypeHold>>,
}

/// Maps the part of `source`'s claim that `vma` asks for (its page offset and length) over all
/// of `vma` now (`remap_pfn_range`: the kernel records the memory type for the VMA and frees
/// the record with its last piece), with the VMA's page protection, and makes `source` count
/// the VMA and its copies. Sets `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`.
///
/// Refuses a private mapping ([`MapError::Private`]), a window not inside the claim
/// ([`MapError::Window`]) and a VMA already set up. If the kernel gives the entries another
/// type than the VMA's (a compatible type recorded earlier by another mapping), it fails with
/// [`MapError::Conflict`]; the mmap core then removes the entries.
pub(crate) fn map_now<T: PfnSource>(vma: &VmaNew, source: Arc<T>) -> Result<(), MapError> {
    let window = check_vma(vma, source.claim())?;
    let len = usize::try_from(window.len).map_err(|_| MapError::Failed(EINVAL))?;
    let pfn = usize::try_from(window.phys >> PAGE_SHIFT).map_err(|_| MapError::Failed(EINVAL))?;
    let data = Arc::new(
        VmaData {
            source: source.clone(),
            hold: None,
        },
        GFP_KERNEL,
    )
    .map_err(|_| MapError::Failed(ENOMEM))?;
    source.vma_opened();
    let raw = vma.as_ptr();
    // SAFETY: `vma` is valid and being set up under the mmap lock (the `VmaNew` contract).
    let wanted_bits = unsafe { (*raw).vm_page_prot.pgprot } & PTE_CACHE_MASK;
    // SAFETY: As above; the target `[vm_start, vm_start + len)` is exactly the VMA, a shared
    // VMA not yet mapped (checked above), and `pfn..pfn + len / PAGE_SIZE` lies inside the
    // claim, which the VMA keeps alive through `data`. A PFN mapping touches no kernel object.
    let ret = unsafe { bindings::remap_pfn_range(raw, vma.start(), pfn, len, (*raw).vm_page_prot) };
    let result = match ret {
        0 => {
            let got = first_entry_mode(vma);
            if got.map(CacheMode::pte_bits) == Some(wanted_bits) {
                Ok(())
            } else {
                Err(MapError::Conflict(got))
            }
        }
        ret if ret == EINVAL.to_errno() => Err(MapError::Conflict(None)),
        ret => Err(MapError::Failed(Error::from_errno(ret))),
    };
    match result {
        Ok(()) => {
            set_ops(vma, const { &VmOps::<T>::COUNTING }, data);
            Ok(())
        }
        Err(err) => {
            source.vma_closed();
            Err(err)
        }
    }
}

/// Sets `vma` up to be filled at fault time from the part of `source`'s claim it asks for,
/// with the memory type `hold` keeps in force for the claim: 1 GiB or 2 MiB entries where a
/// whole aligned block of the claim lies inside the VMA and the type can be given by a large
/// entry, 4 KiB entries elsewhere (WT and WP always: their PAT index needs the bit a large
/// entry keeps elsewhere). Makes `source` count the VMA and its copies. Sets
/// `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`, as `remap_pfn_range` does.
///
/// The VMA owns a reference to `hold`, so the type its entries take (from the kernel's record,
/// `pfnmap_setup_cachemode`) is the hold's for as long as the VMA exists. Refuses as
/// [`map_now`] does, and with `EINVAL` a hold that is not for all of the source's claim.
pub(crate) fn map_on_fault<T: PfnSource>(
    vma: &VmaNew,
    source: Arc<T>,
    hold: Arc<MemtypeHold>,
) -> Result<(), MapError> {
    check_vma(vma, source.claim())?;
    if hold.range() != source.claim().claimed_range() {
        return Err(MapError::Failed(EINVAL));
    }
    let data = Arc::new(
        VmaData {
            source: source.clone(),
            hold: Some(hold),
        },
        GFP_KERNEL,
    )
    .map_err(|_| MapError::Failed(ENOMEM))?;
    source.vma_opened();
    vma.set_io();
    vma.set_dontexpand();
    vma.set_dontdump();
    // No kernel crate method sets VM_PFNMAP (it is set by remap_pfn_range in C).
    // SAFETY: `vma` is being set up under the mmap lock and not yet visible to anyone else; a
    // shared VMA (checked above, and not `VM_MIXEDMAP`) whose entries are only inserted by
    // `vmf_insert_pfn*` is a PFN map.
    unsafe { (*vma.as_ptr()).__bindgen_anon_2.vm_flags |= bindings::VM_PFNMAP };
    set_ops(vma, const { &VmOps::<T>::FAULTING }, data);
    Ok(())
}

/// Installs `ops` and hands the VMA its data.
fn set_ops<T: PfnSource>(
    vma: &VmaNew,
    ops: &'static bindings::vm_operations_struct,
    data: Arc<VmaData<T>>,
) {
    let vma = vma.as_ptr();
    // SAFETY: `vma` is being set up under the mmap lock; the ops are a `'static` constant whose
    // callbacks expect a `VmaData<T>` reference in the private data, which the VMA now owns.
    unsafe {
        (*vma).vm_ops = ops;
        (*vma).vm_private_data = data.into_foreign();
    }
}

/// The `vm_operations_struct`s for VMAs of a `T`.
struct VmOps<T>(core::marker::PhantomData<T>);

const FALLBACK: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_FALLBACK as bindings::vm_fault_t;
const SIGBUS: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_SIGBUS as bindings::vm_fault_t;

/// Bytes one PMD entry maps: 2 MiB.
pub(crate) const PMD_SIZE: usize = 1 << bindings::PMD_SHIFT;

/// Bytes one PUD entry maps: 1 GiB.
pub(crate) const PUD_SIZE: usize = 1 << bindings::PUD_SHIFT;

// Defined in `helpers.c`.
extern "C" {
    fn carveout_cpu_has_gbpages() -> bool;
}

/// A page-table entry larger than 4 KiB that a VMA filled at fault time may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LargeEntry {
    /// A PMD entry: 2 MiB.
    Pmd,
    /// A PUD entry: 1 GiB.
    Pud,
}

impl LargeEntry {
    /// The entry a `huge_fault` of `order` asks for.
    fn of_order(order: c_uint) -> Option<Self> {
        match order {
            bindings::PMD_ORDER => Some(Self::Pmd),
            bindings::PUD_ORDER => Some(Self::Pud),
            _ => None,
        }
    }

    /// Bytes it maps.
    fn size(self) -> usize {
        match self {
            Self::Pmd => PMD_SIZE,
            Self::Pud => PUD_SIZE,
        }
    }

    /// Whether the CPU walks such entries: 2 MiB ones always on x86-64, 1 GiB ones only with
    /// `X86_FEATURE_GBPAGES` (which `vmf_insert_pfn_pud` does not check).
    fn cpu_has(self) -> bool {
        match self {
            Self::Pmd => true,
            // SAFETY: `boot_cpu_has` only reads the boot CPU's feature words, set up at boot.
            Self::Pud => unsafe { carveout_cpu_has_gbpages() },
        }
    }
}

/// The page offset (in the VMA's source) of the first page of the `size`-byte block that holds
/// user address `address`, when the block lies wholly inside the VMA `vm_start..vm_end`;
/// `pgoff` is the page offset of `address`. Pure arithmetic.
pub(crate) fn large_block_pgoff(
    address: usize,
    pgoff: usize,
    vm_start: usize,
    vm_end: usize,
    size: usize,
) -> Option<usize> {
    let block = address & !(size - 1);
    if block < vm_start || block.checked_add(size).is_none_or(|end| end > vm_end) {
        return None;
    }
    pgoff.checked_sub((address - block) >> PAGE_SHIFT)
}

impl<T: PfnSource> VmOps<T> {
    const COUNTING: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        ..pin_init::zeroed()
    };

    const FAULTING: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        fault: Some(Self::fault),
        huge_fault: Some(Self::huge_fault),
        ..pin_init::zeroed()
    };

    /// The data of a VMA set up by [`set_ops`].
    ///
    /// # Safety
    ///
    /// `vma` is such a VMA, alive for `'a`.
    unsafe fn data<'a>(vma: *const bindings::vm_area_struct) -> &'a VmaData<T> {
        // SAFETY: By the function's safety requirement the private data is an
        // `Arc<VmaData<T>>` the VMA owns until `close`, after every other callback.
        let data = unsafe { Arc::<VmaData<T>>::borrow((*vma).vm_private_data) };
        // SAFETY: The reference stays valid while the VMA owns the `Arc` (for `'a`).
        unsafe { &*core::ptr::from_ref(&*data) }
    }

    /// # Safety
    ///
    /// Called by the mm core for a copy of a VMA set up by [`set_ops`] (fork, split), whose
    /// private data the copy shares.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: By the function's safety requirement.
        let data = unsafe { Arc::<VmaData<T>>::borrow((*vma).vm_private_data) };
        let data: Arc<VmaData<T>> = data.into();
        data.source.vma_opened();
        // SAFETY: The copy owns the reference just taken; its `close` drops it.
        unsafe { (*vma).vm_private_data = data.into_foreign() };
    }

    /// # Safety
    ///
    /// Called by the mm core once for each VMA set up by [`set_ops`] or copied by `open`.
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: The VMA owns one reference in its private data, given back here.
        let data = unsafe { Arc::<VmaData<T>>::from_foreign((*vma).vm_private_data) };
        // The VMA's hold on the memory type goes before the source hears of it, so that a
        // source that drops its own hold with its last VMA leaves no record behind.
        let source = data.source.clone();
        drop(data);
        source.vma_closed();
    }

    /// The frame of page `pgoff` of the source's claim, if the claim has that page.
    fn frame(source: &T, pgoff: usize) -> Option<usize> {
        let range = source.claim().claimed_range();
        let first = usize::try_from(range.base() >> PAGE_SHIFT).ok()?;
        let count = usize::try_from(range.size() >> PAGE_SHIFT).ok()?;
        (pgoff < count).then(|| first + pgoff)
    }

    /// A 4 KiB entry for the faulting page.
    ///
    /// # Safety
    ///
    /// `vmf` is a fault on a VMA set up by [`map_on_fault`], under its lock.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: By the function's safety requirement `vmf` and its VMA are valid.
        let (vma, pgoff, address) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            (fault.vma, fault.pgoff, fault.address)
        };
        // SAFETY: The VMA was set up by `map_on_fault` and is alive during its fault.
        let data = unsafe { Self::data(vma) };
        let Some(pfn) = Self::frame(&data.source, pgoff) else {
            return SIGBUS;
        };
        // SAFETY: `vma` is a shared `VM_PFNMAP` VMA (not `VM_MIXEDMAP`: `check_vma`) faulting
        // at `address` under its lock; `pfn` is a page of the claim the VMA keeps alive.
        unsafe { bindings::vmf_insert_pfn(vma, address, pfn) }
    }

    /// A 2 MiB or 1 GiB entry (as `order` asks) for the block around the faulting address,
    /// when the block lies wholly inside the VMA and the claim, is aligned to its size in
    /// physical memory, the memory type in force fits a large entry ([`huge_entry_fits`]) and
    /// the CPU has such entries; otherwise the core falls back to a smaller entry (a 1 GiB
    /// fault to a 2 MiB one, that to [`Self::fault`]).
    ///
    /// # Safety
    ///
    /// As for [`Self::fault`].
    unsafe extern "C" fn huge_fault(
        vmf: *mut bindings::vm_fault,
        order: c_uint,
    ) -> bindings::vm_fault_t {
        let Some(entry) = LargeEntry::of_order(order) else {
            return FALLBACK;
        };
        if !entry.cpu_has() {
            return FALLBACK;
        }
        // SAFETY: As in `fault`.
        let (vma, pgoff, address, fault_flags) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            (fault.vma, fault.pgoff, fault.address, (*vmf).flags)
        };
        // SAFETY: As in `fault`.
        let data = unsafe { Self::data(vma) };
        let source = &*data.source;
        if !huge_entry_fits(data.hold.as_deref(), &source.claim().claimed_range()) {
            return FALLBACK;
        }
        // SAFETY: The VMA's bounds do not change while it faults under its lock.
        let (vm_start, vm_end) = unsafe {
            let bounds = &(*vma).__bindgen_anon_1.__bindgen_anon_1;
            (bounds.vm_start, bounds.vm_end)
        };
        let size = entry.size();
        let pages = size >> PAGE_SHIFT;
        let Some(first) = large_block_pgoff(address, pgoff, vm_start, vm_end, size) else {
            return FALLBACK;
        };
        let (Some(pfn), Some(_)) = (
            Self::frame(source, first),
            first
                .checked_add(pages - 1)
                .and_then(|last| Self::frame(source, last)),
        ) else {
            return FALLBACK;
        };
        if pfn % pages != 0 {
            return FALLBACK;
        }
        let write = fault_flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        match entry {
            // SAFETY: `vmf` is a fault on a shared `VM_PFNMAP` VMA (not `VM_MIXEDMAP`) under
            // its lock; the 2 MiB block lies inside the VMA and `pfn..pfn + 512` inside the
            // claim the VMA keeps alive.
            LargeEntry::Pmd => unsafe { bindings::vmf_insert_pfn_pmd(vmf, pfn, write) },
            // SAFETY: As for the 2 MiB entry, for the 1 GiB block and `pfn..pfn + 262144`; the
            // CPU walks 1 GiB entries (`cpu_has`).
            LargeEntry::Pud => unsafe { bindings::vmf_insert_pfn_pud(vmf, pfn, write) },
        }
    }
}

/// A user address for a mapping of `len` bytes of physical memory from page frame `pfn`:
/// congruent with the physical address modulo 1 GiB whenever the range holds a whole aligned
/// 1 GiB block (so the mapping can use 1 GiB entries), else modulo 2 MiB whenever it holds a
/// whole aligned 2 MiB block, else wherever the kernel would put it (`thp_get_unmapped_area`,
/// as for a file at offset `pfn`). An address hint (or `MAP_FIXED`) is left to
/// `thp_get_unmapped_area`, which keeps it where it is free.
pub(crate) fn unmapped_area(
    file: &File,
    addr: usize,
    len: usize,
    pfn: usize,
    flags: usize,
) -> usize {
    if addr == 0 {
        if let Some(padded) = padded_len(pfn, len, PUD_SIZE) {
            // SAFETY: `file` is a live file being mapped by the current task; the function
            // only picks a free area of the current task's address space.
            let area =
                unsafe { bindings::mm_get_unmapped_area(file.as_ptr(), 0, padded, pfn, flags) };
            if let Some(placed) = place_in_padded(area, pfn, PUD_SIZE) {
                return placed;
            }
        }
    }
    // SAFETY: As above.
    unsafe { bindings::thp_get_unmapped_area(file.as_ptr(), addr, len, pfn, flags) }
}

/// The length of a free area to look for, so that a mapping of `len` bytes from page frame
/// `pfn` can be placed in it congruent with the physical address modulo `size`: `len + size`,
/// when the range holds a whole `size`-aligned block. Pure arithmetic.
pub(crate) fn padded_len(pfn: usize, len: usize, size: usize) -> Option<usize> {
    let phys = pfn.checked_mul(PAGE_SIZE)?;
    let end = phys.checked_add(len)?;
    let first_block = phys.checked_next_multiple_of(size)?;
    if first_block.checked_add(size)? > end {
        return None;
    }
    len.checked_add(size)
}

/// Where in a free area at `area` of [`padded_len`] bytes (or an error value from the kernel)
/// the mapping from page frame `pfn` goes: the first address congruent with the physical one
/// modulo `size`, which leaves the mapping inside the area. `None` for an error value, or an
/// area at 0 (returned only for `MAP_FIXED` at 0: left as it is). Pure arithmetic.
pub(crate) fn place_in_padded(area: usize, pfn: usize, size: usize) -> Option<usize> {
    // IS_ERR_VALUE: the last page of the address space holds the errnos.
    if area == 0 || area > usize::MAX - PAGE_SIZE {
        return None;
    }
    let phys = pfn.wrapping_mul(PAGE_SIZE);
    area.checked_add(phys.wrapping_sub(area) & (size - 1))
}

/// Whether the entries of a VMA filled at fault time may be 2 MiB ones under `hold` for
/// `claim` (and, where the CPU has them, 1 GiB ones): only with a record for all of the claim
/// (the type the kernel then gives the entries is the record's) whose type a large entry can
/// give ([`CacheMode::fits_large_entry`]: not WT or WP; `vmf_insert_pfn_pmd` and
/// `vmf_insert_pfn_pud` both leave the PAT bit where a 4 KiB entry has it). Otherwise 4 KiB
/// entries, whatever the driver asked for.
pub(crate) fn huge_entry_fits(hold: Option<&MemtypeHold>, claim: &PhysRange) -> bool {
    hold.is_some_and(|hold| hold.range() == *claim && hold.mode().fits_large_entry())
}

/// Whether the part of `claim` that `vma` asks for, mapped at the start of `vma`, can use
/// 2 MiB entries: the user address and the physical address agree modulo 2 MiB, and at least
/// one whole aligned 2 MiB block lies inside it. The pages before the first and after the last
/// such block are mapped with 4 KiB entries; whole aligned 1 GiB blocks, where the addresses
/// also agree modulo 1 GiB, with 1 GiB entries. `false` for a window not inside the claim.
pub(crate) fn can_map_huge<C: Claimed>(vma: &VmaNew, claim: &C) -> bool {
    // SAFETY: `vma` is valid and being set up under the mmap lock; `vm_pgoff` is a plain
    // integer set by the mmap core before calling the driver.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
    let len = (vma.end() - vma.start()) as u64;
    let Ok(window) = claim_window(&claim.claimed_range(), pgoff, len) else {
        return false;
    };
    let pmd = PMD_SIZE as u64;
    let start = vma.start() as u64;
    if (start ^ window.phys) & (pmd - 1) != 0 {
        return false;
    }
    let first_block = start.checked_next_multiple_of(pmd);
    match (first_block, start.checked_add(window.len)) {
        (Some(block), Some(end)) => block.checked_add(pmd).is_some_and(|b| b <= end),
        _ => false,
    }
}
