// SPDX-License-Identifier: GPL-2.0

//! A claimed carve-out: the range, its claim in the iomem tree, its cache attribute, and what
//! may be done with it.

use kernel::{
    device::Device,
    fs::File,
    mm::virt::VmaNew,
    new_mutex, new_spinlock,
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    str::CString,
    sync::{
        Arc,
        Mutex,
        SpinLock, //
    },
};

use crate::{
    abi,
    attr::CacheAttr,
    platform_device::Memory,
    range::{
        PhysRange,
        RangeError,
        WindowError, //
    },
    sys::{
        self,
        IomemClaim,
        MapCounter,
        MemtypeHold,
        PfnSource,
        RamOverlap, //
    },
};

/// The name the claim carries in `/proc/iomem`.
const CLAIM_NAME: &CStr = c"carveout";

/// What may change while the region exists.
struct State {
    attr: CacheAttr,
    /// VMAs mapping the region now (`BUSY`).
    maps: u64,
    /// Open files of the region.
    opens: u64,
    /// File reads and writes in progress (`Transfer`): the attribute cannot change meanwhile.
    transfers: u64,
}

/// A carve-out that this driver holds. Shared by the bound device and every open file, so the
/// claim outlives the last user even if the device goes first.
#[pin_data]
pub(crate) struct Region {
    range: PhysRange,
    /// RAM reserved by `reserve_mem=`: the kernel's direct map covers it write-back, so no
    /// other memory type may be mapped.
    reserved_ram: bool,
    name: CString,
    #[pin]
    state: SpinLock<State>,
    /// The memory type of the whole range, recorded while VMAs filled at fault time (2 MiB
    /// entries) map it: taken by the first such mapping, dropped with the last VMA of the
    /// region. Locked before `state`.
    #[pin]
    memtype: Mutex<Option<MemtypeHold>>,
    /// Released (and the range handed back to the iomem tree) on drop.
    _claim: IomemClaim,
}

impl Region {
    /// Checks that `memory` is reserved memory nobody else holds, and claims it.
    ///
    /// Refusals: `EINVAL` for a range that is empty, unaligned, wraps, or touches System RAM;
    /// `ENODEV` for an unknown `reserve_mem` name; `EBUSY` for memory something else already
    /// claimed; `EOPNOTSUPP` for an attribute the CPU (or the kernel's direct map, for
    /// `reserve_mem` RAM) cannot give. Each says why in one line on `dev`. Nothing reads or
    /// writes the memory.
    pub(crate) fn claim(
        dev: &Device,
        memory: &Memory,
        name: CString,
        attr: CacheAttr,
    ) -> Result<Arc<Self>> {
        let (base, size, reserved_ram) = match memory {
            Memory::Range { base, size } => (*base, *size, false),
            Memory::ReserveMem(mem_name) => {
                let (base, size) = sys::reserve_mem_range(mem_name).ok_or_else(|| {
                    dev_err!(
                        dev,
                        "refusing reserve_mem {}: no such region (boot with reserve_mem=SIZE:ALIGN:{})\n",
                        mem_name.to_str().unwrap_or("?"),
                        mem_name.to_str().unwrap_or("NAME")
                    );
                    ENODEV
                })?;
                (base, size, true)
            }
        };
        let range = PhysRange::new(base, size).map_err(|err: RangeError| {
            dev_err!(dev, "refusing {:#x}+{:#x}: {}\n", base, size, err.reason());
            EINVAL
        })?;
        if range.last() > sys::max_phys_addr() {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: beyond the physical address space (ends at {:#x})\n",
                range.base(),
                range.last(),
                sys::max_phys_addr()
            );
            return Err(EINVAL);
        }
        if let Some(why) = unsupported(attr, reserved_ram) {
            dev_err!(dev, "refusing attribute {}: {}\n", attr.name(), why);
            return Err(EOPNOTSUPP);
        }
        if !reserved_ram && sys::system_ram_overlap(&range)? == RamOverlap::Intersects {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: overlaps System RAM (reserve it first, e.g. memmap=SIZE$BASE)\n",
                range.base(),
                range.last()
            );
            return Err(EINVAL);
        }
        let claim = if reserved_ram {
            sys::claim_reserved_ram(&range, CLAIM_NAME).ok()
        } else {
            sys::claim_iomem(&range, CLAIM_NAME)
        };
        let claim = claim.ok_or_else(|| {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: already claimed by another driver (see /proc/iomem)\n",
                range.base(),
                range.last()
            );
            EBUSY
        })?;
        dev_info!(
            dev,
            "claimed {:#x}-{:#x} ({} KiB, {}) as {}\n",
            range.base(),
            range.last(),
            range.size() / 1024,
            attr.name(),
            name.to_str().unwrap_or("?")
        );
        Arc::pin_init(
            try_pin_init!(Self {
                range,
                reserved_ram,
                name,
                state <- new_spinlock!(State {
                    attr,
                    maps: 0,
                    opens: 0,
                    transfers: 0,
                }),
                memtype <- new_mutex!(None),
                _claim: claim,
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn range(&self) -> &PhysRange {
        &self.range
    }

    pub(crate) fn attr(&self) -> CacheAttr {
        self.state.lock().attr
    }

    /// VMAs mapping the region now.
    pub(crate) fn map_count(&self) -> u64 {
        self.state.lock().maps
    }

    /// Whether a file has the region open (a mapping keeps its file open).
    pub(crate) fn in_use(&self) -> bool {
        self.state.lock().opens > 0
    }

    pub(crate) fn file_opened(&self) {
        self.state.lock().opens += 1;
    }

    pub(crate) fn file_closed(&self) {
        let mut state = self.state.lock();
        state.opens = state.opens.saturating_sub(1);
    }

    /// The `CARVEOUT_MR_*` flags: the attribute bit and the state.
    fn flags(&self) -> u32 {
        let state = self.state.lock();
        let busy = if state.maps > 0 { abi::MR_BUSY } else { 0 };
        state.attr.flag() | abi::MR_FIXBASE | abi::MR_FIXLEN | abi::MR_ACTIVE | busy
    }

    /// What `CARVEOUT_GET_INFO` reports.
    pub(crate) fn info(&self) -> abi::Info {
        let mut info = abi::Info {
            abi_version: abi::ABI_VERSION,
            info_size: core::mem::size_of::<abi::Info>() as u32,
            base: self.range.base(),
            size: self.range.size(),
            flags: self.flags(),
            ..Default::default()
        };
        copy_truncated(&mut info.name[..31], self.name.to_bytes());
        info
    }

    /// What `CARVEOUT_GET_ATTR` reports: the region as a `mem(4)` range descriptor.
    pub(crate) fn range_desc(&self) -> abi::RangeDesc {
        let mut desc = abi::RangeDesc {
            base: self.range.base(),
            len: self.range.size(),
            flags: self.flags(),
            ..Default::default()
        };
        copy_truncated(&mut desc.owner, CLAIM_NAME.to_bytes());
        desc
    }

    /// Changes the cache attribute (`CARVEOUT_SET_ATTR`): `EBUSY` while mapped, since the old
    /// and the new memory type would alias; `EOPNOTSUPP` if the CPU cannot give it.
    pub(crate) fn set_attr(&self, attr: CacheAttr) -> Result {
        if unsupported(attr, self.reserved_ram).is_some() {
            return Err(EOPNOTSUPP);
        }
        let mut state = self.state.lock();
        if state.maps > 0 || state.transfers > 0 {
            return Err(EBUSY);
        }
        state.attr = attr;
        Ok(())
    }

    /// The region's name (its node's name).
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// Starts a file read or write of the region (`file_io.rs`): until the returned value is
    /// dropped, `set_attr` refuses with `EBUSY`, so the memory type the transfer maps the
    /// memory with stays the region's.
    pub(crate) fn start_transfer(&self) -> Transfer<'_> {
        let attr = {
            let mut state = self.state.lock();
            state.transfers += 1;
            state.attr
        };
        Transfer { region: self, attr }
    }

    /// Where to map `len` bytes from page `pgoff` of the region when the caller lets the kernel
    /// choose (`get_unmapped_area`): an address congruent with the physical one modulo 2 MiB,
    /// so that whole 2 MiB blocks get 2 MiB entries without the caller aligning anything.
    pub(crate) fn unmapped_area(
        &self,
        file: &File,
        addr: usize,
        len: usize,
        pgoff: usize,
        flags: usize,
    ) -> usize {
        let (first, _) = self.pfns();
        sys::unmapped_area(file, addr, len, pgoff.wrapping_add(first), flags)
    }

    /// Maps the window of the region that `vma` asks for (its page offset and length), with
    /// the region's cache attribute.
    ///
    /// `EINVAL` for a private mapping or an offset that overflows; `ENXIO` for a window that
    /// does not lie inside the region; `EACCES` for a writable mapping of a write-protected
    /// region.
    pub(crate) fn map(&self, vma: &VmaNew) -> Result {
        if !sys::vma_is_shared(vma) {
            return Err(EINVAL);
        }
        let offset = sys::vma_page_offset(vma)
            .checked_mul(PAGE_SIZE as u64)
            .ok_or(EINVAL)?;
        let len = (vma.end() - vma.start()) as u64;
        let window = self.range.window(offset, len).map_err(|err| match err {
            WindowError::OutOfRange => ENXIO,
            WindowError::Overflow => EINVAL,
        })?;

        // Count the mapping before it exists, so `set_attr` cannot change the type under it.
        let mut memtype = self.memtype.lock();
        let attr = {
            let mut state = self.state.lock();
            if !state.attr.allows_write() && vma.writable() {
                return Err(EACCES);
            }
            state.maps += 1;
            state.attr
        };
        if !attr.allows_write() {
            // No later mprotect(PROT_WRITE) either.
            if let Err(err) = vma.try_clear_maywrite() {
                drop(memtype);
                self.vma_closed();
                return Err(err);
            }
        }
        sys::set_cache_attr(vma, attr);
        // 2 MiB entries, filled at fault time, when the addresses allow it: the memory type is
        // then recorded for the whole range while mapped. Otherwise (and for reserve_mem RAM,
        // which the kernel's direct map already types) every page is mapped now.
        if !self.reserved_ram && sys::can_map_huge(vma, window) {
            if memtype.is_none() {
                *memtype = MemtypeHold::reserve(&self.range, vma).ok();
            }
            if memtype.is_some() {
                drop(memtype);
                // SAFETY: The VMA holds its file, and the file holds an `Arc` of this region
                // until it is released, after the last VMA of it is closed.
                unsafe { sys::map_on_fault(vma, self) };
                return Ok(());
            }
        }
        drop(memtype);
        if let Err(err) = sys::map_window(vma, window) {
            self.vma_closed();
            return Err(err);
        }
        // SAFETY: As above.
        unsafe { sys::count_mappings(vma, self) };
        Ok(())
    }
}

/// A file read or write of a region in progress ([`Region::start_transfer`]).
pub(crate) struct Transfer<'a> {
    region: &'a Region,
    attr: CacheAttr,
}

impl<'a> Transfer<'a> {
    /// The region's attribute, which stays as it is until the transfer ends.
    pub(crate) fn attr(&self) -> CacheAttr {
        self.attr
    }

    /// The region's claim on its memory, which the transfer maps piece by piece.
    pub(crate) fn claim(&self) -> &'a IomemClaim {
        &self.region._claim
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        let mut state = self.region.state.lock();
        state.transfers = state.transfers.saturating_sub(1);
    }
}

impl MapCounter for Region {
    fn vma_opened(&self) {
        self.state.lock().maps += 1;
    }

    fn vma_closed(&self) {
        let mut memtype = self.memtype.lock();
        let mut state = self.state.lock();
        state.maps = state.maps.saturating_sub(1);
        if state.maps == 0 {
            drop(state);
            // The last VMA is gone: the memory type record goes too (and `set_attr` may change
            // the attribute again).
            *memtype = None;
        }
    }
}

impl PfnSource for Region {
    fn pfns(&self) -> (usize, usize) {
        // Physical addresses fit in `usize` on the 64-bit machines PAT and huge entries exist on.
        (
            (self.range.base() >> PAGE_SHIFT) as usize,
            (self.range.size() >> PAGE_SHIFT) as usize,
        )
    }
}

/// Why `attr` cannot be given to a region (`reserved_ram`: memory from `reserve_mem=`), if it
/// cannot: never silently downgraded.
fn unsupported(attr: CacheAttr, reserved_ram: bool) -> Option<&'static str> {
    if reserved_ram && attr != CacheAttr::WriteBack {
        Some("reserve_mem memory is System RAM the kernel maps write-back; only wb")
    } else if attr.needs_pat() && !sys::pat_enabled() {
        Some("this CPU has no PAT in use")
    } else {
        None
    }
}

/// Copies `src` into `dst`, cut to fit; the rest of `dst` stays as it was (zero).
fn copy_truncated(dst: &mut [u8], src: &[u8]) {
    let len = src.len().min(dst.len());
    dst[..len].copy_from_slice(&src[..len]);
}
