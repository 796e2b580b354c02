// SPDX-License-Identifier: GPL-2.0

//! IOMMU groups: a counted reference to a device's group, its devices, and a device of it seen
//! with the group's mutex held (`iommu_group_for_each_dev`), where the domain the group is on,
//! its default domain and its owner cannot change. The domain is read with
//! `iommu_driver_get_domain_for_dev`, the call meant for use under that mutex.

use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

use kernel::{
    bindings,
    device::Device,
    prelude::*,
    sync::aref::ARef, //
};

use super::device::as_raw;

/// A reference to an IOMMU group (`iommu_group_get`), put on drop.
///
/// # Invariants
///
/// `ptr` is an IOMMU group this value holds a reference to.
pub(crate) struct IommuGroup {
    ptr: NonNull<bindings::iommu_group>,
}

// SAFETY: A group reference may be put from any task; the group's own mutex guards its state.
unsafe impl Send for IommuGroup {}
// SAFETY: As above; `&IommuGroup` only compares the pointer or locks the group.
unsafe impl Sync for IommuGroup {}

impl IommuGroup {
    /// The IOMMU group of `dev`, `None` if no IOMMU translates for it.
    pub(crate) fn of(dev: &Device) -> Option<Self> {
        // SAFETY: `dev` is a live device; the call returns its group with a reference taken, or
        // NULL.
        let ptr = NonNull::new(unsafe { bindings::iommu_group_get(as_raw(dev)) })?;
        // INVARIANT: The reference was taken above.
        Some(Self { ptr })
    }

    /// Whether `dev` is in this group.
    pub(crate) fn holds(&self, dev: &Device) -> bool {
        // SAFETY: `dev` is a live device; the call returns its group with a reference taken, or
        // NULL.
        let other = unsafe { bindings::iommu_group_get(as_raw(dev)) };
        if other.is_null() {
            return false;
        }
        // SAFETY: Puts the reference just taken.
        unsafe { bindings::iommu_group_put(other) };
        other == self.ptr.as_ptr()
    }

    /// The group's devices now, each referenced.
    pub(crate) fn devices(&self) -> Result<KVec<ARef<Device>>> {
        let mut out: (KVec<ARef<Device>>, Result) = (KVec::new(), Ok(()));
        // SAFETY: The group is referenced; `collect` gets `out` as its data, which lives across
        // the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.ptr.as_ptr(),
                (&raw mut out).cast(),
                Some(collect),
            )
        };
        out.1.map(|()| out.0)
    }

    /// Runs `f` on `dev` with the group's mutex held, if `dev` is (still) in the group.
    pub(crate) fn with_member<F: FnOnce(&Member<'_>) -> R, R>(
        &self,
        dev: &Device,
        f: F,
    ) -> Option<R> {
        let mut visit = Visit {
            dev: as_raw(dev),
            f: Some(f),
            out: None,
        };
        // SAFETY: The group is referenced; `visit_member` gets `visit`, of the same type
        // parameters, as its data, alive across the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.ptr.as_ptr(),
                (&raw mut visit).cast(),
                Some(visit_member::<F, R>),
            )
        };
        visit.out
    }
}

impl Drop for IommuGroup {
    fn drop(&mut self) {
        // SAFETY: The reference is held by the type invariant and put only here.
        unsafe { bindings::iommu_group_put(self.ptr.as_ptr()) };
    }
}

/// `iommu_group_for_each_dev` callback of [`IommuGroup::devices`].
///
/// # Safety
///
/// `data` points to the `(KVec<ARef<Device>>, Result)` of `devices`; `dev` is a device of the
/// group.
unsafe extern "C" fn collect(dev: *mut bindings::device, data: *mut c_void) -> c_int {
    // SAFETY: By the function's safety requirement.
    let out = unsafe { &mut *data.cast::<(KVec<ARef<Device>>, Result)>() };
    // SAFETY: A device of the group is live while the group's mutex is held (which
    // `iommu_group_for_each_dev` does); `ARef::from` takes a reference of its own.
    let dev: &Device = unsafe { Device::from_raw(dev) };
    let dev = ARef::from(dev);
    match out.0.push(dev, GFP_KERNEL) {
        Ok(()) => 0,
        Err(err) => {
            out.1 = Err(err.into());
            1
        }
    }
}

/// What [`IommuGroup::with_member`] hands its callback.
struct Visit<F, R> {
    dev: *mut bindings::device,
    f: Option<F>,
    out: Option<R>,
}

/// `iommu_group_for_each_dev` callback of [`IommuGroup::with_member`].
///
/// # Safety
///
/// `data` points to a `Visit<F, R>`; `dev` is a device of the group, whose mutex is held.
unsafe extern "C" fn visit_member<F: FnOnce(&Member<'_>) -> R, R>(
    dev: *mut bindings::device,
    data: *mut c_void,
) -> c_int {
    // SAFETY: By the function's safety requirement.
    let visit = unsafe { &mut *data.cast::<Visit<F, R>>() };
    if dev != visit.dev {
        return 0;
    }
    if let Some(f) = visit.f.take() {
        // INVARIANT: Called by `iommu_group_for_each_dev`, which holds the group's mutex, for a
        // device of the group.
        let member = Member {
            // SAFETY: A device of the group is live while the group's mutex is held.
            dev: unsafe { Device::from_raw(dev) },
            _locked: PhantomData,
        };
        visit.out = Some(f(&member));
    }
    1
}

/// A device of an IOMMU group whose mutex is held: its domain cannot change, nor its default
/// domain, nor its owner.
///
/// # Invariants
///
/// `dev` is in its group, whose mutex is held for `'a`.
pub(crate) struct Member<'a> {
    dev: &'a Device,
    _locked: PhantomData<&'a ()>,
}

/// Which domain a group was on: compared, never dereferenced (the kernel may free the domain and
/// put another at the same address later).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DomainId(usize);

/// The domain a group is attached to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// A DMA-API (translating) domain: the group's default domain.
    Dma(DomainId),
    /// An identity (passthrough) domain: the group's default domain.
    Identity(DomainId),
    /// Another: a user driver's (or the blocking domain while the group is given to one, or
    /// while the device is reset).
    Other,
}

impl<'a> Member<'a> {
    /// The device.
    pub(crate) fn device(&self) -> &'a Device {
        self.dev
    }

    /// The domain the group is on now, if any.
    fn raw_domain(&self) -> Option<NonNull<bindings::iommu_domain>> {
        // SAFETY: The group's mutex is held (type invariant), as the call requires.
        NonNull::new(unsafe { bindings::iommu_driver_get_domain_for_dev(as_raw(self.dev)) })
    }

    /// The domain the device's group is attached to.
    pub(crate) fn domain(&self) -> Domain {
        let Some(domain) = self.raw_domain() else {
            return Domain::Other;
        };
        // SAFETY: The group's current domain lives while its mutex is held.
        let kind = unsafe { (*domain.as_ptr()).type_ };
        let id = DomainId(domain.as_ptr() as usize);
        if kind & bindings::__IOMMU_DOMAIN_DMA_API != 0 {
            Domain::Dma(id)
        } else if kind == bindings::IOMMU_DOMAIN_IDENTITY {
            Domain::Identity(id)
        } else {
            Domain::Other
        }
    }

    /// The physical address `iova` leads to in the group's current domain's page table (0 where
    /// it leads nowhere, or with no domain).
    pub(crate) fn iova_to_phys(&self, iova: bindings::dma_addr_t) -> u64 {
        let Some(domain) = self.raw_domain() else {
            return 0;
        };
        // SAFETY: `domain` is the group's live domain (its mutex is held); the call only walks
        // its page table.
        unsafe { bindings::iommu_iova_to_phys(domain.as_ptr(), iova) }
    }

    /// Whether the IOMMU core defers attaching the device to its domain until its first DMA
    /// mapping (a kdump kernel): that mapping takes the group's mutex, held here.
    pub(crate) fn attach_deferred(&self) -> bool {
        // SAFETY: A device of a group has its `iommu` data while it is in the group.
        let iommu = unsafe { (*as_raw(self.dev)).iommu };
        // SAFETY: Non-NULL: the device's IOMMU data, alive while it is in the group.
        !iommu.is_null() && unsafe { (*iommu).attach_deferred() } != 0
    }
}
