// SPDX-License-Identifier: GPL-2.0

//! The KUnit suite of the abstractions (`kernel_ext`), run when the module loads: each test
//! asks an abstraction for something it must refuse, or checks a decision it makes by itself
//! whatever its caller asks.

#[kernel::prelude::kunit_tests(kernel_ext)]
mod suite {
    use kernel::{
        bindings,
        prelude::*,
        str::CString, //
    };

    use crate::{
        kernel_ext::{
            dev_pagemap::{
                DevPagemap,
                FolioSize,
                PagemapError, //
            },
            iomem::{
                Claimed,
                InsertedClaim,
                RequestedClaim,
                ReserveMemError, //
            },
            memtype::{
                self,
                CacheMode, //
            },
            pfn_vma,
            static_mutex::StaticMutex,
            string_params,
            uapi::{
                self,
                uapi_struct,
                UapiStruct, //
            },
        },
        range::{
            PhysRange,
            Window,
            WindowError, //
        },
    };

    const MIB: u64 = 1 << 20;
    const PAGE: u64 = 4096;

    /// Stores the start of the first System RAM entry that starts at 16 MiB or above (where
    /// the kernel and its allocations live) into the `u64` at `arg`, and stops the walk.
    ///
    /// # Safety
    ///
    /// Called by `walk_iomem_res_desc` with a valid `res` and the `arg` given to it, a `u64`.
    unsafe extern "C" fn first_ram(res: *mut bindings::resource, arg: *mut c_void) -> c_int {
        // SAFETY: By the function's safety requirement.
        unsafe { *arg.cast::<u64>() = (*res).start.next_multiple_of(PAGE) };
        1
    }

    /// A page of System RAM in use by the kernel.
    fn ram_page() -> Option<PhysRange> {
        let mut start: u64 = 0;
        // SAFETY: The walk reads the tree under its own lock and calls `first_ram` with
        // `&mut start`, which outlives the call.
        let _ = unsafe {
            bindings::walk_iomem_res_desc(
                bindings::IORES_DESC_NONE as c_ulong,
                bindings::IORESOURCE_SYSTEM_RAM as c_ulong,
                16 * MIB,
                u64::MAX,
                (&raw mut start).cast(),
                Some(first_ram),
            )
        };
        (start != 0).then(|| PhysRange::new(start, PAGE).ok())?
    }

    #[test]
    fn window_outside_claim_refused() -> Result {
        let claim = PhysRange::new(128 * MIB, 64 * MIB).map_err(|_| EINVAL)?;
        assert_eq!(
            pfn_vma::claim_window(&claim, 0, 64 * MIB),
            Ok(Window {
                phys: 128 * MIB,
                len: 64 * MIB
            })
        );
        assert_eq!(
            pfn_vma::claim_window(&claim, 1, PAGE),
            Ok(Window {
                phys: 128 * MIB + PAGE,
                len: PAGE
            })
        );
        // One page past the end, a window reaching past it, an offset that overflows: all
        // refused.
        assert_eq!(
            pfn_vma::claim_window(&claim, 64 * MIB / PAGE, PAGE),
            Err(WindowError::OutOfRange)
        );
        assert_eq!(
            pfn_vma::claim_window(&claim, 1, 64 * MIB),
            Err(WindowError::OutOfRange)
        );
        assert_eq!(
            pfn_vma::claim_window(&claim, u64::MAX / PAGE, PAGE),
            Err(WindowError::Overflow)
        );
        // An offset whose physical address, base + offset, would wrap to page 0.
        assert!(pfn_vma::claim_window(&claim, (u64::MAX - 128 * MIB) / PAGE + 1, PAGE).is_err());
        Ok(())
    }

    #[test]
    fn huge_entries_only_for_types_they_can_give() -> Result {
        if !memtype::pat_enabled() {
            return Ok(());
        }
        for mode in [CacheMode::WriteThrough, CacheMode::WriteProtect] {
            assert!(!mode.fits_large_entry());
        }
        for mode in [
            CacheMode::Uncached,
            CacheMode::UncachedMinus,
            CacheMode::WriteCombining,
            CacheMode::WriteBack,
        ] {
            assert!(mode.fits_large_entry());
        }
        // Without a record for the claim, the type is not known: 4 KiB entries.
        let claim = PhysRange::new(128 * MIB, 64 * MIB).map_err(|_| EINVAL)?;
        assert!(!pfn_vma::huge_entry_fits(None, &claim));
        Ok(())
    }

    #[test]
    fn large_blocks_only_inside_the_vma() -> Result {
        const GIB: usize = 1 << 30;
        const MB2: usize = 2 << 20;
        let pages = |bytes: usize| bytes / PAGE as usize;
        let (start, end) = (4 * GIB, 6 * GIB);
        // A fault 5 MiB into the second GiB of a VMA at page offset 0: its 1 GiB block starts
        // at page offset 1 GiB, its 2 MiB block at 1 GiB + 4 MiB.
        let address = 5 * GIB + 5 * (1 << 20);
        let pgoff = pages(address - start);
        assert_eq!(
            pfn_vma::large_block_pgoff(address, pgoff, start, end, pfn_vma::PUD_SIZE),
            Some(pages(GIB))
        );
        assert_eq!(
            pfn_vma::large_block_pgoff(address, pgoff, start, end, pfn_vma::PMD_SIZE),
            Some(pages(GIB + 2 * MB2))
        );
        // A VMA ending 4 KiB short of the block, or starting 2 MiB into it: no 1 GiB entry.
        assert_eq!(
            pfn_vma::large_block_pgoff(address, pgoff, start, end - PAGE as usize, GIB),
            None
        );
        assert_eq!(
            pfn_vma::large_block_pgoff(address, pgoff, 5 * GIB + MB2, end, GIB),
            None
        );
        // A page offset too small for the block to start at or after page 0 of the source.
        assert_eq!(
            pfn_vma::large_block_pgoff(address, 2, start, end, GIB),
            None
        );
        Ok(())
    }

    #[test]
    fn unmapped_area_congruent_inside_the_padding() -> Result {
        const GIB: usize = 1 << 30;
        let page = PAGE as usize;
        // 1 GiB from 5 GiB: one whole block; 1 GiB from 5 GiB + 4 KiB: none.
        assert_eq!(pfn_vma::padded_len(5 * GIB / page, GIB, GIB), Some(2 * GIB));
        assert_eq!(pfn_vma::padded_len((5 * GIB + page) / page, GIB, GIB), None);
        // 2 GiB from 5 GiB - 2 MiB: the block at 5 GiB.
        let pfn = (5 * GIB - (2 << 20)) / page;
        assert_eq!(pfn_vma::padded_len(pfn, 2 * GIB, GIB), Some(3 * GIB));
        assert_eq!(pfn_vma::padded_len(usize::MAX / page, 2 * GIB, GIB), None);
        // The placed mapping is congruent and inside the padded area.
        for area in [0x7f00_0000_0000_usize, 0x7f00_1234_5000, 0x7eff_c020_0000] {
            let placed = pfn_vma::place_in_padded(area, pfn, GIB).ok_or(EINVAL)?;
            assert_eq!((placed ^ (pfn * page)) & (GIB - 1), 0);
            assert!(placed >= area && placed + 2 * GIB <= area + 3 * GIB);
        }
        // An errno from the kernel, and MAP_FIXED at 0, are not areas.
        assert_eq!(
            pfn_vma::place_in_padded(ENOMEM.to_errno() as usize, pfn, GIB),
            None
        );
        assert_eq!(pfn_vma::place_in_padded(0, pfn, GIB), None);
        Ok(())
    }

    #[test]
    fn claim_of_system_ram_refused() -> Result {
        let page = ram_page().ok_or(ENODEV)?;
        let name = CString::try_from(c"carveout_kunit")?;
        assert!(RequestedClaim::new(&page, name).is_none());
        Ok(())
    }

    #[test]
    fn reserve_mem_claim_from_the_table_only() -> Result {
        let name = CString::try_from(c"carveout_kunit")?;
        assert_eq!(
            InsertedClaim::reserve_mem(c"carveout_no_such_name", name).err(),
            Some(ReserveMemError::NotFound)
        );
        // The test guests set 4 MiB aside as `cvtest`: claimed, it is that range, RAM, a child
        // of System RAM; or it is already claimed (a region of the module made of it).
        let Some((base, size)) = string_params::find_reserve_mem(c"cvtest") else {
            return Ok(());
        };
        match InsertedClaim::reserve_mem(c"cvtest", CString::try_from(c"carveout_kunit")?) {
            Ok(claim) => {
                let range = claim.claimed_range();
                assert_eq!((range.base(), range.size()), (base, size));
                assert!(claim.is_ram());
            }
            Err(err) => assert_eq!(err, ReserveMemError::Busy),
        }
        Ok(())
    }

    #[test]
    fn pagemap_of_system_ram_refused() -> Result {
        // `reserve_mem` RAM (the test guests' `cvtest`) has struct pages already: refused before
        // `memremap_pages`, which would warn. Skipped where it is absent or already claimed.
        let Ok(claim) =
            InsertedClaim::reserve_mem(c"cvtest", CString::try_from(c"carveout_kunit")?)
        else {
            return Ok(());
        };
        assert_eq!(
            DevPagemap::new(claim, FolioSize::Page).err(),
            Some(PagemapError::Ram)
        );
        assert_eq!(PagemapError::Ram.errno(), EINVAL);
        assert_eq!(PagemapError::Unaligned.errno(), EINVAL);
        assert_eq!(PagemapError::Conflict.errno(), EBUSY);
        assert_eq!(PagemapError::FolioUnaligned.errno(), EINVAL);
        assert_eq!(PagemapError::FolioUnsupported.errno(), EOPNOTSUPP);
        Ok(())
    }

    uapi_struct! {
        struct Sample {
            a: u32,
            b: u32,
            c: u64,
            name: [u8; 8],
            words: [u64; 2],
        }
    }

    #[test]
    fn uapi_fields_copied_at_their_offsets() {
        let value = Sample {
            a: 0x0403_0201,
            b: 0x0807_0605,
            c: 0x100f_0e0d_0c0b_0a09,
            name: *b"carveout",
            words: [1, 2],
        };
        let mut bytes = [0u8; 40];
        value.encode(&mut bytes);
        assert_eq!(
            &bytes[..16],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        assert_eq!(&bytes[16..24], b"carveout");
        assert_eq!(bytes[24], 1);
        assert_eq!(bytes[32], 2);
        let back = Sample::decode(&bytes);
        assert_eq!((back.a, back.b, back.c), (value.a, value.b, value.c));
        assert_eq!((back.name, back.words), (value.name, value.words));
        assert_eq!(<Sample as UapiStruct>::SIZE, 40);
        assert!(<Sample as UapiStruct>::SIZE <= uapi::MAX_SIZE);
    }

    static COUNTER: StaticMutex<u32> = StaticMutex::new(c"carveout_kunit_counter", 0);

    #[test]
    fn static_mutex_initialises_itself() {
        let before = *COUNTER.lock();
        *COUNTER.lock() += 1;
        assert_eq!(*COUNTER.lock(), before + 1);
    }
}
