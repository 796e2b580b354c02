// SPDX-License-Identifier: GPL-2.0

//! References to a configfs directory from outside configfs: counted references to its
//! `config_item` and dependencies on it (`configfs_depend_item`), which make its `rmdir` fail
//! with `EBUSY`.
//!
//! The kernel crate's [`configfs::Group`] hands a directory's callbacks its data, never the
//! directory itself. A [`GroupAnchor`] in that data, bound once to the [`configfs::Group`] it
//! lies in, lets [`GroupLink`]s (shared, owned handles) take [`ConfigItemRef`]s to the directory
//! for as long as the directory exists, and fail once it is being freed.

use core::{
    marker::PhantomPinned,
    ptr::NonNull, //
};

use kernel::{
    bindings,
    configfs::{
        self,
        HasGroup, //
    },
    new_spinlock,
    prelude::*,
    sync::{
        Arc,
        SpinLock, //
    },
};

/// What a [`GroupAnchor`] and its [`GroupLink`]s share.
struct LinkState {
    /// The address of the anchor (0 once it is dropped).
    anchor: usize,
    /// The directory's item, once bound and until the anchor is dropped.
    item: Option<NonNull<bindings::config_item>>,
    /// configfs has linked the directory (`ci_parent` was seen set): its memory is freed only
    /// by its `release`, once its last reference is put.
    linked: bool,
}

/// A handle to the configfs directory whose [`GroupAnchor`] made it: owned and counted (by
/// [`Arc`]), it keeps nothing alive but itself, and [`GroupLink::get`] fails once the directory
/// is being freed.
///
/// # Invariants
///
/// While `item` is `Some`, the anchor at `anchor` is alive (it clears `item` under the lock on
/// drop), and lies inside the memory of the `configfs::Group` whose item `item` is.
#[derive(Clone)]
pub(crate) struct GroupLink(Arc<SpinLock<LinkState>>);

// SAFETY: The item pointer is only used under the lock, with configfs' own counting.
unsafe impl Send for LinkState {}

impl GroupLink {
    /// A link bound to no directory yet.
    pub(crate) fn new() -> Result<Self> {
        let state = Arc::pin_init(
            new_spinlock!(LinkState {
                anchor: 0,
                item: None,
                linked: false,
            }),
            GFP_KERNEL,
        )?;
        Ok(Self(state))
    }

    /// Binds the link to `group`, which must hold (in its data) the [`GroupAnchor`] made with
    /// this link. `EINVAL` if it does not, or if the link is bound already. Call it last in the
    /// directory's initialiser (`Group::new(..).pin_chain(..)` in `make_group`).
    pub(crate) fn bind<D>(&self, group: &configfs::Group<D>) -> Result {
        let start = core::ptr::from_ref(group).addr();
        let end = start + core::mem::size_of::<configfs::Group<D>>();
        let mut state = self.0.lock();
        let anchor = state.anchor;
        if state.item.is_some()
            || anchor < start
            || anchor + core::mem::size_of::<GroupAnchor>() > end
        {
            return Err(EINVAL);
        }
        // SAFETY: `group` is a live `Group`, so its `config_group` is in bounds.
        let c_group = unsafe { <configfs::Group<D> as HasGroup<D>>::group(group) }.cast_mut();
        // INVARIANT: The anchor is alive (it would have cleared `anchor` on drop) and lies
        // inside `group`, whose item this is.
        // SAFETY: A field projection of the valid `c_group`.
        state.item = NonNull::new(unsafe { &raw mut (*c_group).cg_item });
        Ok(())
    }

    /// A counted reference to the directory, so its memory stays until the reference is
    /// dropped even if it is removed meanwhile; `None` before configfs has the directory and
    /// once its last reference is gone (it is being freed).
    pub(crate) fn get(&self) -> Option<ConfigItemRef> {
        let mut state = self.0.lock();
        let item = state.item?;
        if !state.linked {
            // SAFETY: The item's memory is alive by the type invariant. configfs sets
            // `ci_parent` under its own lock; a racing read sees either value, and only a
            // non-null one is trusted.
            let parent = unsafe { (&raw const (*item.as_ptr()).ci_parent).read_volatile() };
            if parent.is_null() {
                return None;
            }
            state.linked = true;
        }
        // SAFETY: The item's memory is alive by the type invariant, and configfs has the
        // directory, so its count is what frees it.
        let got = unsafe { bindings::config_item_get_unless_zero(item.as_ptr()) };
        // INVARIANT: One reference to the directory's item, linked in configfs, is held.
        NonNull::new(got).map(|item| ConfigItemRef { item })
    }
}

/// The place in a configfs directory's data that [`GroupLink`]s find it through; the directory
/// cannot be found any more once this is dropped (with the directory's data).
///
/// # Invariants
///
/// `link`'s state records this anchor's address while it is alive.
#[pin_data(PinnedDrop)]
pub(crate) struct GroupAnchor {
    link: GroupLink,
    #[pin]
    _pin: PhantomPinned,
}

impl GroupAnchor {
    /// An anchor for `link`, to be placed in the data of the directory `link` is then bound
    /// to ([`GroupLink::bind`]).
    pub(crate) fn new(link: &GroupLink) -> impl PinInit<Self> {
        let link = link.clone();
        let init = move |slot: *mut Self| {
            link.0.lock().anchor = slot.addr();
            // SAFETY: `slot` is valid for writes by the closure's contract.
            unsafe {
                slot.write(Self {
                    link,
                    _pin: PhantomPinned,
                })
            };
            // INVARIANT: The address is recorded above.
            Ok(())
        };
        // SAFETY: The closure initialises the whole slot and never fails; the anchor is pinned
        // there from now on (its address is what `bind` checks).
        unsafe { pin_init::pin_init_from_closure(init) }
    }
}

impl GroupAnchor {
    /// From a callback of the anchor's own directory (an attribute's `store`): makes its `rmdir`
    /// fail with `EBUSY` until the returned value is dropped. `ENODEV` before the directory is
    /// bound. Unlike [`ConfigItemRef::depend`] it takes no configfs lock: configfs and the VFS
    /// hold what keeps the subsystem registered while a callback of one of its directories runs
    /// (`configfs_depend_item_unlocked`), and taking the root's lock there would invert
    /// configfs' own order (`rmdir`: the directory's inode, then its attributes' lock).
    pub(crate) fn depend(&self) -> Result<ConfigItemDependency> {
        let item = self.link.get().ok_or(ENODEV)?;
        let subsys = item.subsystem()?;
        // SAFETY: A `&GroupAnchor` is only reachable through its directory's data, which the
        // kernel crate hands to that directory's callbacks alone: this runs in one, so the
        // subsystem (the caller's own, the target's) stays registered meanwhile, and the item is
        // alive (a reference is held).
        kernel::error::to_result(unsafe {
            bindings::configfs_depend_item_unlocked(subsys, item.item.as_ptr())
        })?;
        // INVARIANT: The dependency is taken above; the reference is kept with it.
        Ok(ConfigItemDependency { item })
    }
}

#[pinned_drop]
impl PinnedDrop for GroupAnchor {
    fn drop(self: Pin<&mut Self>) {
        let mut state = self.link.0.lock();
        state.anchor = 0;
        state.item = None;
    }
}

/// A counted reference to a configfs directory (`config_item_get`), put on drop. Dropping the
/// last one frees the directory, which runs its `release` (and drops its data): drop it with no
/// lock held that dropping the data takes.
///
/// # Invariants
///
/// One reference to `item` is held; `item` is the item of a `config_group` that configfs has
/// linked into a registered subsystem.
pub(crate) struct ConfigItemRef {
    item: NonNull<bindings::config_item>,
}

impl Clone for ConfigItemRef {
    fn clone(&self) -> Self {
        // SAFETY: A reference is held by the type invariant, so the count is not zero.
        unsafe { bindings::config_item_get(self.item.as_ptr()) };
        // INVARIANT: The reference is taken above.
        Self { item: self.item }
    }
}

impl Drop for ConfigItemRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant one reference is held; it is given back here.
        unsafe { bindings::config_item_put(self.item.as_ptr()) };
    }
}

// SAFETY: configfs counts and frees items from any thread.
unsafe impl Send for ConfigItemRef {}
// SAFETY: `&ConfigItemRef` only allows taking more references and dependencies, which configfs
// serialises.
unsafe impl Sync for ConfigItemRef {}

impl ConfigItemRef {
    /// The subsystem the directory is linked in; `ENOENT` once it is unlinked.
    fn subsystem(&self) -> Result<*mut bindings::configfs_subsystem> {
        let item = self.item.as_ptr();
        // SAFETY: The item is alive by the type invariant and is a group's item. configfs sets
        // `cg_subsys` when it links the group and clears it when it unlinks it, under its own
        // lock; a racing read sees either value, and `configfs_depend_item*` refuses an item
        // that is no longer in the tree.
        let subsys = unsafe {
            let group = kernel::container_of!(item, bindings::config_group, cg_item);
            (&raw const (*group).cg_subsys).read_volatile()
        };
        if subsys.is_null() {
            return Err(ENOENT);
        }
        Ok(subsys)
    }

    /// Makes `rmdir` of the directory fail with `EBUSY` until the returned value is dropped.
    /// `ENOENT` if the directory is being (or has been) removed. Takes the configfs root's
    /// lock: from a callback of the directory itself, use [`GroupAnchor::depend`].
    pub(crate) fn depend(&self) -> Result<ConfigItemDependency> {
        let subsys = self.subsystem()?;
        // SAFETY: The subsystem is registered (it holds the linked item) and the item alive.
        kernel::error::to_result(unsafe {
            bindings::configfs_depend_item(subsys, self.item.as_ptr())
        })?;
        // INVARIANT: The dependency is taken above; the reference is kept with it.
        Ok(ConfigItemDependency { item: self.clone() })
    }
}

/// A dependency on a configfs directory (`configfs_depend_item`): `rmdir` of it fails with
/// `EBUSY` until this is dropped (`configfs_undepend_item`).
///
/// # Invariants
///
/// One dependency on `item`'s directory is held.
pub(crate) struct ConfigItemDependency {
    item: ConfigItemRef,
}

impl Drop for ConfigItemDependency {
    fn drop(&mut self) {
        // SAFETY: By the type invariant one dependency on the (alive) item is held; it is
        // given back here. The reference goes after it.
        unsafe { bindings::configfs_undepend_item(self.item.item.as_ptr()) };
    }
}
