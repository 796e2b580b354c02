// SPDX-License-Identifier: GPL-2.0

//! configfs items and dependencies (moving to `kernel_ext/`).

use core::ptr::NonNull;

use kernel::{
    bindings,
    prelude::*, //
};

/// A configfs directory (`config_item`) of this module's subsystem, which open files of its
/// region make `rmdir` refuse (`configfs_depend_item`).
///
/// # Invariants
///
/// `item` is a directory directly under the subsystem `subsys`, which stays registered while
/// the module is loaded. The memory of `item` stays while this value is used: the caller of
/// [`ConfigItem::new`] sees to it.
#[derive(Clone, Copy)]
pub(crate) struct ConfigItem {
    item: NonNull<bindings::config_item>,
    subsys: NonNull<bindings::configfs_subsystem>,
}

impl ConfigItem {
    /// The directory whose `config_group` is `group`.
    ///
    /// # Safety
    ///
    /// `group` must be a live directory directly under a registered subsystem (as in one of its
    /// attribute callbacks), and must stay alive for as long as [`ConfigItem::get`] is called.
    pub(crate) unsafe fn new(group: NonNull<bindings::config_group>) -> Self {
        let group = group.as_ptr();
        // SAFETY: `group` is live by the function's safety requirement; a linked directory's
        // `ci_group` is its parent, here the subsystem's own group.
        let (item, parent) = unsafe { (&raw mut (*group).cg_item, (*group).cg_item.ci_group) };
        // SAFETY: The parent is the `su_group` of a `configfs_subsystem`.
        let subsys =
            unsafe { kernel::container_of!(parent, bindings::configfs_subsystem, su_group) };
        // INVARIANT: By the function's safety requirement.
        Self {
            // SAFETY: Field projections of a non-null pointer.
            item: unsafe { NonNull::new_unchecked(item) },
            // SAFETY: As above.
            subsys: unsafe { NonNull::new_unchecked(subsys) },
        }
    }

    /// Takes a reference to the directory, so its memory stays until the reference is dropped
    /// even if it is removed meanwhile; `None` once its last reference is gone (it is being
    /// freed).
    pub(crate) fn get(&self) -> Option<ConfigItemRef> {
        // SAFETY: The item's memory is alive by the type invariant.
        let item = unsafe { bindings::config_item_get_unless_zero(self.item.as_ptr()) };
        if item.is_null() {
            return None;
        }
        // INVARIANT: A reference to `self.item` (what was returned) is held.
        Some(ConfigItemRef(*self))
    }
}

// SAFETY: The pointers are only used through configfs' own locking.
unsafe impl Send for ConfigItem {}
// SAFETY: As above.
unsafe impl Sync for ConfigItem {}

/// A counted reference to a configfs directory (`config_item_get`), put on drop. Dropping the
/// last one frees the directory, which may run its `release` (and drop its region): drop it
/// with no lock held that freeing a region takes.
///
/// # Invariants
///
/// One reference to the directory is held.
pub(crate) struct ConfigItemRef(ConfigItem);

impl ConfigItemRef {
    /// Makes `rmdir` of the directory fail with `EBUSY` until the returned value is dropped.
    /// `ENOENT` if the directory is being (or has been) removed.
    pub(crate) fn depend(&self) -> Result<ConfigItemDependency> {
        // SAFETY: The subsystem is registered and the item's memory alive by the type
        // invariant. `configfs_depend_item` takes the configfs root's lock; it is not called
        // from a configfs callback (it is called from `open`).
        kernel::error::to_result(unsafe {
            bindings::configfs_depend_item(self.0.subsys.as_ptr(), self.0.item.as_ptr())
        })?;
        Ok(ConfigItemDependency { item: self.0.item })
    }
}

impl Drop for ConfigItemRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant one reference is held; it is given back here.
        unsafe { bindings::config_item_put(self.0.item.as_ptr()) };
    }
}

/// A dependency on a configfs directory (`configfs_depend_item`): `rmdir` of it fails with
/// `EBUSY` until this is dropped (`configfs_undepend_item`).
///
/// # Invariants
///
/// One dependency on `item` is held; while it is, the directory cannot be removed (so its
/// memory stays).
pub(crate) struct ConfigItemDependency {
    item: NonNull<bindings::config_item>,
}

impl Drop for ConfigItemDependency {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the item is alive and one dependency on it is held;
        // it is given back here and the item not touched again.
        unsafe { bindings::configfs_undepend_item(self.item.as_ptr()) };
    }
}

// SAFETY: The dependency may be dropped from any thread.
unsafe impl Send for ConfigItemDependency {}
// SAFETY: `&ConfigItemDependency` gives no access to anything.
unsafe impl Sync for ConfigItemDependency {}
