// SPDX-License-Identifier: GPL-2.0

//! Structures shared with userspace through ioctls: plain integers and byte arrays, `repr(C)`,
//! with no padding, so that every byte is initialised (`AsBytes`: copied out whole) and every
//! bit pattern is a value (`FromBytes`: read from a user's buffer).
//!
//! [`uapi_struct!`] declares such a structure and proves both properties when the module
//! builds: each field's type must itself be `AsBytes + FromBytes`, and the structure's size
//! must be the sum of its fields' sizes (no padding anywhere), or the build fails. The trait
//! implementations then rest on nothing the caller does.

/// Declares a `repr(C)` structure of plain fields for the ioctl ABI and implements
/// `kernel::transmute::{AsBytes, FromBytes}` for it, checked as the module's docs say.
macro_rules! uapi_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $ty),*
        }

        const _: () = {
            const fn plain<T: kernel::transmute::AsBytes + kernel::transmute::FromBytes>() {}
            $(plain::<$ty>();)*
            assert!(
                core::mem::size_of::<$name>() == 0 $(+ core::mem::size_of::<$ty>())*,
                "an ioctl structure must have no padding"
            );
        };

        // SAFETY: `repr(C)` of fields that are all `AsBytes` (checked above) with no padding
        // between or after them (the size check above), so every byte is initialised.
        unsafe impl kernel::transmute::AsBytes for $name {}
        // SAFETY: As above, every field is `FromBytes` and there is no padding, so any bit
        // pattern of the structure's size is a valid value.
        unsafe impl kernel::transmute::FromBytes for $name {}
    };
}

pub(crate) use uapi_struct;
