// SPDX-License-Identifier: GPL-2.0

//! The character device `/dev/carveout*`: open, mmap and ioctl on a claimed region.

use kernel::{
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceRegistration, //
    },
    mm::virt::VmaNew,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
    uaccess::UserSlice,
};

use crate::{
    abi,
    driver::BoundRegion,
    region::Region, //
};

/// An open `/dev/carveout*`: it holds the region, so the claim stays while the file (or a
/// mapping made through it) exists.
pub(crate) struct RegionFile;

#[vtable]
impl MiscDevice for RegionFile {
    type Ptr = Arc<Region>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Region>> {
        Ok(BoundRegion::of_misc(misc).region().clone())
    }

    fn mmap(region: ArcBorrow<'_, Region>, _file: &File, vma: &VmaNew) -> Result {
        region.map(vma)
    }

    fn ioctl(region: ArcBorrow<'_, Region>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            abi::CARVEOUT_GET_INFO => {
                let info = region.info();
                let mut writer =
                    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of_val(&info)).writer();
                writer.write(&info)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}
