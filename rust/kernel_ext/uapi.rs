// SPDX-License-Identifier: GPL-2.0

//! Structures shared with userspace through ioctls: plain integers and byte arrays, `repr(C)`,
//! with no padding, copied from and to a user's buffer field by field.
//!
//! [`uapi_struct!`] declares such a structure and implements [`UapiStruct`] for it: each field
//! is read from and written to its own bytes (`offset_of!`), with no transmute and no `unsafe`,
//! so the macro puts no `unsafe` into the driver file that uses it. It also checks, when the
//! module builds, that every field's type is a [`UapiField`] and that the structure's size is
//! the sum of its fields' sizes (no padding anywhere, so every byte userspace sees is a
//! field's), or the build fails.

use kernel::{
    prelude::*,
    uaccess::{
        UserSliceReader,
        UserSliceWriter, //
    },
};

/// A field type of an ioctl structure: its bytes in native order.
pub(crate) trait UapiField: Copy {
    /// The field's size in bytes.
    const SIZE: usize;

    /// The value held in the first [`Self::SIZE`] bytes of `bytes` (zero where `bytes` is
    /// shorter).
    fn get(bytes: &[u8]) -> Self;

    /// Writes the value to the first [`Self::SIZE`] bytes of `bytes` (those there are).
    fn put(self, bytes: &mut [u8]);
}

/// The first `N` bytes of `bytes`, zero-filled where it is shorter.
fn take<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (to, from) in out.iter_mut().zip(bytes) {
        *to = *from;
    }
    out
}

/// Copies `from` to the start of `to`, as far as both go.
fn give(from: &[u8], to: &mut [u8]) {
    for (to, from) in to.iter_mut().zip(from) {
        *to = *from;
    }
}

macro_rules! integer_field {
    ($($ty:ty),*) => {$(
        impl UapiField for $ty {
            const SIZE: usize = core::mem::size_of::<$ty>();

            fn get(bytes: &[u8]) -> Self {
                <$ty>::from_ne_bytes(take(bytes))
            }

            fn put(self, bytes: &mut [u8]) {
                give(&self.to_ne_bytes(), bytes);
            }
        }
    )*};
}

integer_field!(u8, u16, u32, u64, i32, i64);

impl<T: UapiField, const N: usize> UapiField for [T; N] {
    const SIZE: usize = T::SIZE * N;

    fn get(bytes: &[u8]) -> Self {
        core::array::from_fn(|index| T::get(bytes.get(index * T::SIZE..).unwrap_or(&[])))
    }

    fn put(self, bytes: &mut [u8]) {
        for (index, item) in self.into_iter().enumerate() {
            if let Some(out) = bytes.get_mut(index * T::SIZE..) {
                item.put(out);
            }
        }
    }
}

/// The largest ioctl structure [`read`] and [`write`] copy.
pub(crate) const MAX_SIZE: usize = 256;

/// An ioctl structure declared with [`uapi_struct!`].
pub(crate) trait UapiStruct: Sized {
    /// The structure's size, its fields' sizes added up (at most [`MAX_SIZE`]).
    const SIZE: usize;

    /// The structure held in the first [`Self::SIZE`] bytes of `bytes`.
    fn decode(bytes: &[u8]) -> Self;

    /// Writes the structure to the first [`Self::SIZE`] bytes of `bytes`.
    fn encode(&self, bytes: &mut [u8]);
}

/// Reads a `T` from the user's buffer: `EFAULT` if it cannot be read whole.
pub(crate) fn read<T: UapiStruct>(reader: &mut UserSliceReader) -> Result<T> {
    let mut buf = [0u8; MAX_SIZE];
    let bytes = buf.get_mut(..T::SIZE).ok_or(EINVAL)?;
    reader.read_slice(bytes)?;
    Ok(T::decode(bytes))
}

/// Writes `value` to the user's buffer: `EFAULT` if it cannot be written whole.
pub(crate) fn write<T: UapiStruct>(writer: &mut UserSliceWriter, value: &T) -> Result {
    let mut buf = [0u8; MAX_SIZE];
    let bytes = buf.get_mut(..T::SIZE).ok_or(EINVAL)?;
    value.encode(bytes);
    writer.write_slice(bytes)
}

/// Declares a `repr(C)` structure of plain fields for the ioctl ABI and implements
/// [`UapiStruct`] for it, checked as the module's docs say.
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
            const fn plain<T: $crate::kernel_ext::uapi::UapiField>() {}
            $(plain::<$ty>();)*
            ::core::assert!(
                core::mem::size_of::<$name>() == 0
                    $(+ <$ty as $crate::kernel_ext::uapi::UapiField>::SIZE)*,
                "an ioctl structure must have no padding"
            );
            ::core::assert!(
                core::mem::size_of::<$name>() <= $crate::kernel_ext::uapi::MAX_SIZE,
                "an ioctl structure larger than uapi::MAX_SIZE"
            );
        };

        impl $crate::kernel_ext::uapi::UapiStruct for $name {
            const SIZE: usize = core::mem::size_of::<$name>();

            fn decode(bytes: &[u8]) -> Self {
                Self {
                    $($field: $crate::kernel_ext::uapi::UapiField::get(
                        bytes.get(core::mem::offset_of!($name, $field)..).unwrap_or(&[]),
                    ),)*
                }
            }

            fn encode(&self, bytes: &mut [u8]) {
                $(if let Some(out) = bytes.get_mut(core::mem::offset_of!($name, $field)..) {
                    $crate::kernel_ext::uapi::UapiField::put(self.$field, out);
                })*
            }
        }
    };
}

pub(crate) use uapi_struct;
