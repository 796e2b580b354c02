// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions over the kernel objects that the kernel crate of Linux 7.3 does not wrap,
//! one file per kernel object, each written as it would be proposed for `rust/kernel/`: types
//! own what they free (`# Invariants` on the type, `// INVARIANT:` where it is built), and no
//! safe function's soundness rests on its caller. `unsafe` and `bindings::` belong here; the
//! driver's own files call only safe code.

pub(crate) mod cache;
pub(crate) mod capability;
pub(crate) mod chrdev;
pub(crate) mod class;
pub(crate) mod class_device;
pub(crate) mod configfs_item;
pub(crate) mod dax_space;
pub(crate) mod dev_pagemap;
mod device;
pub(crate) mod dma_attachment;
mod dma_mapping;
pub(crate) mod file_ops;
pub(crate) mod iomem;
mod iommu_group;
pub(crate) mod memtype;
pub(crate) mod page_vma;
pub(crate) mod pci;
pub(crate) mod pfn_vma;
pub(crate) mod phys_window;
pub(crate) mod platform_device;
pub(crate) mod ratelimit;
pub(crate) mod static_mutex;
pub(crate) mod string_params;
pub(crate) mod task;
mod tests;
pub(crate) mod uapi;
