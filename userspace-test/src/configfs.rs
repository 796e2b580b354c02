//! Regions made at run time through configfs: `/sys/kernel/config/carveout/<name>/` with the
//! text attributes `base`, `size`, `attr`, `mode`, `gid` and `enable` (`1` claims the range and
//! makes `/dev/carveout/<name>`, `0` releases it).

use std::{
    fs, io,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use rustix::io::Errno;

use crate::{
    attr::Attr,
    error::{Error, Result},
    memmap::Span,
};

/// Where carveout's configfs directory lives.
pub const ROOT: &str = "/sys/kernel/config/carveout";

/// Optional settings for a new region.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub attr: Option<Attr>,
    /// Node permissions, e.g. `0o660`.
    pub mode: Option<u32>,
    pub gid: Option<u32>,
    /// Pages mode (the attribute `pages`): the region gets `struct page`s.
    pub pages: bool,
    /// The size of the pages' folios in bytes (the attribute `pages_align`); `None`: 4 KiB.
    pub pages_align: Option<u64>,
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new region; its node.
    New(PathBuf),
    /// The item existed and was enabled already.
    AlreadyEnabled(PathBuf),
}

fn errno_of(err: &io::Error) -> Errno {
    Errno::from_io_error(err).unwrap_or(Errno::IO)
}

/// Explains why `root` (carveout's configfs directory) is missing, or `Ok` if it is there.
pub fn available(root: &Path) -> Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    let mount = root.parent().unwrap_or(Path::new("/sys/kernel/config"));
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mounted = mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == mount.to_str() && l.contains(" configfs "));
    let why = if !filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("configfs"))
    {
        "this kernel has no configfs (CONFIG_CONFIGFS_FS), so carveout cannot make regions at \
         run time; load the module with base= and size= instead"
            .to_string()
    } else if !mounted {
        format!(
            "configfs is not mounted on {}: mount -t configfs none {}",
            mount.display(),
            mount.display()
        )
    } else {
        format!(
            "{} is missing: carveout is not loaded (modprobe carveout, or insmod carveout.ko), \
             or this carveout has no configfs support",
            root.display()
        )
    };
    Err(Error::Unavailable { why })
}

fn write_attr(dir: &Path, name: &str, value: &str) -> Result<()> {
    let path = dir.join(name);
    fs::write(&path, format!("{value}\n")).map_err(|err| Error::Configfs {
        action: format!("writing {value:?}"),
        errno: errno_of(&err),
        path,
    })
}

/// Creates (or completes) the region `name` for `span` and enables it; waits up to two
/// seconds for its node `/dev/carveout/<name>`. On failure leaves no item it made behind.
pub fn create(root: &Path, name: &str, span: &Span, opts: &Options) -> Result<Created> {
    available(root)?;
    let dir = root.join(name);
    let node = Path::new("/dev/carveout").join(name);
    let made = match fs::create_dir(&dir) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            if fs::read_to_string(dir.join("enable")).is_ok_and(|v| v.trim() == "1") {
                return Ok(Created::AlreadyEnabled(node));
            }
            false
        }
        Err(err) => {
            return Err(Error::Configfs {
                action: "mkdir".into(),
                errno: errno_of(&err),
                path: dir,
            })
        }
    };
    let result = (|| {
        write_attr(&dir, "base", &format!("{:#x}", span.base))?;
        write_attr(&dir, "size", &format!("{:#x}", span.size))?;
        if let Some(attr) = opts.attr {
            write_attr(&dir, "attr", attr.name())?;
        }
        if let Some(mode) = opts.mode {
            write_attr(&dir, "mode", &format!("{mode:04o}"))?;
        }
        if let Some(gid) = opts.gid {
            write_attr(&dir, "gid", &gid.to_string())?;
        }
        if opts.pages {
            if !dir.join("pages").exists() {
                return Err(Error::Unavailable {
                    why: format!(
                        "{} has no attribute pages: this carveout.ko has no pages mode (update \
                         the module)",
                        dir.display()
                    ),
                });
            }
            write_attr(&dir, "pages", "1")?;
            if let Some(align) = opts.pages_align {
                if !dir.join("pages_align").exists() {
                    return Err(Error::Unavailable {
                        why: format!(
                            "{} has no attribute pages_align: this carveout.ko maps pages 4 KiB \
                             at a time only (update the module)",
                            dir.display()
                        ),
                    });
                }
                write_attr(&dir, "pages_align", &align.to_string())?;
            }
        }
        write_attr(&dir, "enable", "1")
    })();
    if let Err(err) = result {
        if made {
            let _ = fs::remove_dir(&dir);
        }
        return Err(err);
    }
    let start = Instant::now();
    while !node.exists() {
        if start.elapsed() > Duration::from_secs(2) {
            return Err(Error::Unavailable {
                why: format!(
                    "{name} is enabled but {} did not appear within 2 s (is devtmpfs or udev \
                     managing /dev?)",
                    node.display()
                ),
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(Created::New(node))
}

/// Disables and removes the region `name`.
pub fn remove(root: &Path, name: &str) -> Result<()> {
    let dir = root.join(name);
    write_attr(&dir, "enable", "0")?;
    fs::remove_dir(&dir).map_err(|err| Error::Configfs {
        action: "rmdir".into(),
        errno: errno_of(&err),
        path: dir,
    })
}
