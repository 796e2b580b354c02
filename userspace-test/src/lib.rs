//! Userspace access to carveout regions (`/dev/carveout*`).
//!
//! [`Region`] opens a device and asks it what it is; [`Region::map`] maps a window of it as a
//! [`Mapping`], read and written with volatile accesses only, since a device may DMA into the
//! memory underneath. [`devmem`] reads the same physical memory through `/dev/mem`, to check
//! from outside the driver that a mapping hits the carve-out.

pub mod abi;
pub mod devmem;
pub mod edu;
pub mod pattern;
mod region;

pub use region::{Mapping, Mismatch, Region};
