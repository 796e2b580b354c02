//! The region's ioctls as the suites send them: `info`, `attr-get`, `attr-set` (bad input
//! included) and `sync-raw`.

use std::io;

use carveout::{abi, parse_u64, Attr, Region};

/// [`crate::cli::Command::Info`]: what CARVEOUT_GET_INFO reports.
pub fn cmd_info(info: &abi::Info) {
    println!(
        "base={:#x} size={:#x} flags={:#x} name={}",
        info.base,
        info.size,
        info.flags,
        info.name()
    );
}

/// [`crate::cli::Command::AttrGet`]: what CARVEOUT_GET_ATTR reports.
pub fn cmd_attr_get(region: &Region) -> io::Result<()> {
    let desc = region.range_desc()?;
    println!(
        "base={:#x} len={:#x} flags={:#x} attr={} busy={} owner={}",
        desc.base,
        desc.len,
        desc.flags,
        Attr::from_flags(desc.flags).map_or("?", Attr::name),
        u8::from(desc.flags & abi::MR_BUSY != 0),
        desc.owner()
    );
    Ok(())
}

/// [`crate::cli::Command::AttrSet`]: CARVEOUT_SET_ATTR with every field as given.
pub fn cmd_attr_set(
    region: &Region,
    name: &str,
    raw: bool,
    pad0: u64,
    base: u64,
    len: u64,
    owner: &str,
) -> io::Result<()> {
    let flags = if raw {
        parse_u64(name)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| io::Error::other(format!("{name:?} is not a 32-bit number")))?
    } else {
        name.parse::<Attr>().map_err(io::Error::other)?.bit()
    };
    let mut desc = abi::RangeDesc {
        base,
        len,
        flags,
        pad0: u32::try_from(pad0)
            .map_err(|_| io::Error::other(format!("--pad0 {pad0:#x}: over 32 bits")))?,
        owner: [0; 8],
    };
    if owner.len() > desc.owner.len() {
        return Err(io::Error::other(format!("--owner {owner:?}: over 8 bytes")));
    }
    desc.owner[..owner.len()].copy_from_slice(owner.as_bytes());
    region.set_attr_desc(desc).map_err(|errno| {
        io::Error::other(format!(
            "CARVEOUT_SET_ATTR {flags:#x} (base {base:#x}, len {len:#x}, __pad0 \
             {pad0:#x}, owner {owner:?}): {}: {errno}",
            carveout::errno_name(errno)
        ))
    })?;
    Ok(())
}

/// [`crate::cli::Command::SyncRaw`]: prints "ok" or the errno's name.
pub fn cmd_sync_raw(
    region: &Region,
    offset: u64,
    len: u64,
    direction: u64,
    pad0: u64,
) -> io::Result<()> {
    let field =
        |v: u64| u32::try_from(v).map_err(|_| io::Error::other(format!("{v:#x} is not 32-bit")));
    let req = abi::Sync {
        offset,
        len,
        direction: field(direction)?,
        pad0: field(pad0)?,
    };
    match region.sync_request(req) {
        Ok(()) => println!("ok"),
        Err(errno) => println!("{}", carveout::errno_name(errno)),
    }
    Ok(())
}
