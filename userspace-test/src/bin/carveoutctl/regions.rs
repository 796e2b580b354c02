//! Which region a command works on, and which part of it; every region there is.

use std::path::{Path, PathBuf};

use carveout::{
    abi,
    check::RegionView,
    discover,
    memmap::{format_addr, format_size, Span},
    resolve, Access, Failure, Region,
};
use rustix::io::Errno;

use crate::output::{fail, Res};

/// The region named on the command line, else /dev/carveout0, else the only region.
pub fn region_path(spec: Option<&str>) -> Res<PathBuf> {
    if let Some(spec) = spec {
        return Ok(resolve(spec));
    }
    let default = PathBuf::from("/dev/carveout0");
    if default.exists() {
        return Ok(default);
    }
    let mut found = discover();
    match found.len() {
        0 => Err(Failure::new(
            Errno::NOENT,
            "no carveout region: /dev/carveout0 and /dev/carveout/ are absent (is the module \
             loaded? `carveoutctl load` makes regions for memmap= entries)",
        )),
        1 => Ok(found.remove(0)),
        n => Err(fail(format!(
            "{n} regions ({}): name one",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The part of the region a command works on, checked against its size.
pub fn window(region: &Region, range: Option<Span>, words: bool) -> Res<(abi::Info, Span)> {
    let info = region.info()?;
    let whole = Span::new(0, info.size).map_err(fail)?;
    let span = range.unwrap_or(whole);
    if !whole.contains(&span) {
        return Err(fail(format!(
            "{}: {} at offset {} is outside the region ({} long)",
            region.path().display(),
            format_size(span.size),
            format_addr(span.base),
            format_size(info.size)
        )));
    }
    if words && (span.base % 8 != 0 || span.size % 8 != 0) {
        return Err(fail(format!(
            "the pattern is made of 64-bit words: offset {} and size {} must be multiples of 8",
            format_addr(span.base),
            format_size(span.size)
        )));
    }
    Ok((info, span))
}

/// Opens a region to map it read-only. Opened for writing when allowed: the kernel clears
/// `VM_SHARED` on a shared mapping of a read-only open file, and the driver (which tests
/// `VM_SHARED`, not `VM_MAYSHARE`) then refuses it as private (`EINVAL`). Read-only when
/// writing is not permitted.
pub fn open_to_read(path: &Path) -> carveout::Result<Region> {
    match Region::open_with(path, Access::ReadWrite) {
        Err(err) if matches!(err.errno(), Some(Errno::ACCESS | Errno::PERM | Errno::ROFS)) => {
            Region::open_with(path, Access::Read)
        }
        other => other,
    }
}

/// Every region node, asked what it holds; the ones that cannot be asked, and why.
pub fn region_views() -> (Vec<RegionView>, Vec<Failure>) {
    let mut views = Vec::new();
    let mut errors = Vec::new();
    for path in discover() {
        let opened = Region::open_with(&path, Access::Read);
        match opened.and_then(|region| region.info().map(|info| (region, info))) {
            Ok((region, info)) => match Span::new(info.base, info.size) {
                Ok(span) => views.push(RegionView {
                    path,
                    name: info.name().to_string(),
                    span,
                    pages: info.flags & abi::MR_PAGES != 0,
                    pages_align: region.pages_align(),
                }),
                Err(why) => errors.push(Failure::new(
                    Errno::IO,
                    format!("{}: reports {why}", path.display()),
                )),
            },
            Err(err) => errors.push(err.into()),
        }
    }
    (views, errors)
}
