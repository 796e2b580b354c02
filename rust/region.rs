// SPDX-License-Identifier: GPL-2.0

//! A claimed carve-out: the range, its claim in the iomem tree (with struct pages in pages
//! mode), its cache attribute, and what may be done with it. The checks and the claim are in
//! `region/claim.rs`, how it is mapped into processes in `region/mapping.rs`.

mod claim;
mod mapping;

use kernel::{
    page::PAGE_SIZE,
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
    attachment::Attachments,
    attr::CacheAttr,
    kernel_ext::{
        cache,
        dax_space::DaxSpace,
        dev_pagemap::{
            DevPagemap,
            FolioSize, //
        },
        dma_attachment::{
            Reach,
            Status,
            Translation, //
        },
        iomem::Claim,
        memtype::MemtypeHold,
        phys_window::{
            ClaimWindow,
            PhysWindow, //
        },
        ratelimit,
    },
    range::PhysRange,
};

use self::claim::unsupported;

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
    /// Open files that have read or written the region: the kernel mapping those transfers
    /// copy through is kept until the last of them closes.
    copiers: u64,
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
    /// and 1 GiB entries) map it: taken by the first such mapping, dropped with the last VMA of the
    /// region (each such VMA holds it too). Locked before `state`.
    #[pin]
    memtype: Mutex<Option<Arc<MemtypeHold>>>,
    /// The range is not listed as reserved memory: claimed because the creator opted in
    /// (`allow_unlisted`).
    unlisted: bool,
    /// The PCI devices the region is mapped for (`CARVEOUT_ATTACH`, configfs `attach`).
    /// Unmapped (dropped) before the claim goes.
    #[pin]
    attachments: Attachments,
    /// The claim, released (and the range handed back to the iomem tree) on drop, with the
    /// kernel mapping of it that file reads and writes copy through (made by the first, kept
    /// while files that copied are open, dropped when the attribute changes).
    #[pin]
    claim: ClaimWindow<Claim>,
}

impl Region {
    /// Whether the range is not listed as reserved memory (claimed with `allow_unlisted`).
    pub(crate) fn unlisted(&self) -> bool {
        self.unlisted
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

    /// Whether the region has struct pages (pages mode).
    pub(crate) fn pages(&self) -> bool {
        self.claim.claim().pagemap().is_some()
    }

    /// The size of a pages-mode region's folios (and of every entry that maps them).
    pub(crate) fn folio_size(&self) -> Option<FolioSize> {
        self.claim.claim().pagemap().map(DevPagemap::folio_size)
    }

    /// The DAX address space the files of a region of large folios map through.
    pub(crate) fn dax_space(&self) -> Option<Arc<DaxSpace>> {
        self.claim.claim().pagemap()?.dax_space().cloned()
    }

    /// How many of a pages-mode region's pages are mapped or pinned now (an io_uring's
    /// registered buffers and an `O_DIRECT` in flight hold pages after their mapping is gone);
    /// 0 for a region without pages. Dropping the region waits for them.
    pub(crate) fn pages_held(&self) -> usize {
        self.claim
            .claim()
            .pagemap()
            .map_or(0, DevPagemap::busy_pages)
    }

    pub(crate) fn file_opened(&self) {
        self.state.lock().opens += 1;
    }

    pub(crate) fn file_closed(&self) {
        let mut state = self.state.lock();
        state.opens = state.opens.saturating_sub(1);
    }

    /// An open file read or wrote the region for the first time.
    pub(crate) fn copier_opened(&self) {
        self.state.lock().copiers += 1;
    }

    /// An open file that read or wrote the region closed: the last one takes the kernel
    /// mapping the transfers copied through with it, and with it its PAT record.
    pub(crate) fn copier_closed(&self) {
        let last = {
            let mut state = self.state.lock();
            state.copiers = state.copiers.saturating_sub(1);
            state.copiers == 0
        };
        if last {
            self.claim.release();
        }
    }

    /// The `CARVEOUT_MR_*` flags: the attribute bit and the state.
    fn flags(&self) -> u32 {
        let state = self.state.lock();
        let busy = if state.maps > 0 { abi::MR_BUSY } else { 0 };
        let unlisted = if self.unlisted { abi::MR_UNLISTED } else { 0 };
        let pages = if self.pages() { abi::MR_PAGES } else { 0 };
        state.attr.flag()
            | abi::MR_FIXBASE
            | abi::MR_FIXLEN
            | abi::MR_ACTIVE
            | busy
            | unlisted
            | pages
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
    /// and the new memory type would alias; `EOPNOTSUPP` if the CPU cannot give it, or for
    /// anything but write-back in pages mode (the kernel's direct map of the pages is
    /// write-back), with a line saying so.
    pub(crate) fn set_attr(&self, attr: CacheAttr) -> Result {
        if self.pages() && attr != CacheAttr::WriteBack {
            if ratelimit::refusal_may_print() {
                pr_err!(
                    "{}: refusing attribute {}: a region with struct pages (pages=1) is write-back only\n",
                    self.display_name(),
                    attr.name()
                );
            }
            return Err(EOPNOTSUPP);
        }
        if unsupported(attr, self.reserved_ram).is_some() {
            return Err(EOPNOTSUPP);
        }
        // The kernel mapping file transfers copy through has the old type: it goes with it,
        // and no transfer maps the old type meanwhile.
        self.claim.release_after(|| {
            let mut state = self.state.lock();
            if state.maps > 0 || state.transfers > 0 {
                return Err(EBUSY);
            }
            state.attr = attr;
            Ok(())
        })
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

    /// Maps the whole region for the PCI device `device` (`0000:00:03.0`), which can address
    /// what `reach` says, and returns the address the device must use for its first byte, and
    /// whether an IOMMU translates it.
    ///
    /// `EINVAL` for a name that is not one or a reach outside 12 to 64 bits, `ENODEV` for no
    /// such PCI device, `EEXIST` for a device already attached, `EBUSY` for a reach stated
    /// for a device with a driver, or while a device of its IOMMU group is bound to a driver
    /// that may hand the group to userspace (vfio-pci) or a user driver owns the group,
    /// `ERANGE` for a device that cannot reach the region (its DMA mask or stated reach, with
    /// no IOMMU translating) or whose transfers would be bounced, `EIO` for a reach the DMA API
    /// refuses, `ENOMEM` when the DMA API refuses to map. Each says why in one line.
    pub(crate) fn attach(&self, device: &CStr, reach: Reach) -> Result<(u64, Translation)> {
        self.attachments.attach(
            self.display_name(),
            &self.range,
            self.claim.claim(),
            device,
            reach,
        )
    }

    /// Unmaps the region for `device` and drops the reference to it; `ENOENT` if it is not
    /// attached.
    pub(crate) fn detach(&self, device: &CStr) -> Result {
        self.attachments.detach(self.display_name(), device)
    }

    /// The bus address and translation of the region for `device`: `ENOENT` if not attached,
    /// `ENODEV` if the device has been removed since, or the mapping revoked.
    pub(crate) fn attachment(&self, device: &CStr) -> Result<(u64, Translation)> {
        match self.attachments.status(device)? {
            Status::Mapped { bus, translation } => Ok((bus, translation)),
            Status::Removed | Status::Revoked => Err(ENODEV),
        }
    }

    /// Calls `line` for each attached device: its name and where it stands.
    pub(crate) fn each_attachment(
        &self,
        line: impl FnMut(&CStr, Status) -> core::fmt::Result,
    ) -> core::fmt::Result {
        self.attachments.each(line)
    }

    /// Writes back and invalidates the CPU's cache lines of `[offset, offset + len)` of the
    /// region (WB, WT), or orders the CPU's memory accesses (UC, WC), for a device that does
    /// not snoop. `EINVAL` for an unaligned or empty piece, `ENXIO` beyond the region.
    pub(crate) fn sync(&self, offset: u64, len: u64) -> Result {
        let page = PAGE_SIZE as u64;
        if len == 0 || offset % page != 0 || len % page != 0 {
            return Err(EINVAL);
        }
        // The attribute cannot change meanwhile only while mapped; a flush of the old type's
        // lines is harmless either way.
        cache::write_back_invalidate(self.claim.claim(), offset, len, self.attr().cache_mode())
    }

    fn display_name(&self) -> &str {
        self.name.to_str().unwrap_or("?")
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

    /// A kernel mapping of the whole region with its attribute's memory type, to copy
    /// through (the one kept since an earlier transfer, or a new one).
    pub(crate) fn window(&self) -> Result<PhysWindow<'a>> {
        self.region.claim.window(self.attr.cache_mode())
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        let mut state = self.region.state.lock();
        state.transfers = state.transfers.saturating_sub(1);
    }
}

/// Copies `src` into `dst`, cut to fit; the rest of `dst` stays as it was (zero).
fn copy_truncated(dst: &mut [u8], src: &[u8]) {
    let len = src.len().min(dst.len());
    dst[..len].copy_from_slice(&src[..len]);
}
