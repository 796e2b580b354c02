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
        assert_eq!(DevPagemap::new(claim).err(), Some(PagemapError::Ram));
        assert_eq!(PagemapError::Ram.errno(), EINVAL);
        assert_eq!(PagemapError::Unaligned.errno(), EINVAL);
        assert_eq!(PagemapError::Conflict.errno(), EBUSY);
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
