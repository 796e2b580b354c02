// SPDX-License-Identifier: GPL-2.0

//! The character device `/dev/carveout*`: open, mmap and ioctl on a claimed region.

use kernel::{
    fs::{
        file,
        File, //
    },
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
    attr::CacheAttr,
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
        let region = BoundRegion::of_misc(misc).region().clone();
        region.file_opened();
        Ok(region)
    }

    fn release(region: Arc<Region>, _file: &File) {
        region.file_closed();
    }

    fn mmap(region: ArcBorrow<'_, Region>, _file: &File, vma: &VmaNew) -> Result {
        region.map(vma)
    }

    fn ioctl(region: ArcBorrow<'_, Region>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserPtr::from_addr(arg);
        match cmd {
            abi::CARVEOUT_GET_INFO => {
                let info = region.info();
                UserSlice::new(user, core::mem::size_of_val(&info))
                    .writer()
                    .write(&info)?;
            }
            abi::CARVEOUT_GET_ATTR => {
                let desc = region.range_desc();
                UserSlice::new(user, core::mem::size_of_val(&desc))
                    .writer()
                    .write(&desc)?;
            }
            abi::CARVEOUT_SET_ATTR => {
                if file.flags() & file::flags::O_ACCMODE == file::flags::O_RDONLY {
                    return Err(EBADF);
                }
                let desc: abi::RangeDesc =
                    UserSlice::new(user, core::mem::size_of::<abi::RangeDesc>())
                        .reader()
                        .read()?;
                let attr = CacheAttr::from_flags(desc.flags).ok_or(EINVAL)?;
                region.set_attr(attr)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}
