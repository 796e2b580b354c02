//! `--as-user`: the tool drops its privileges before it opens the device.

use std::io;

/// Becomes the user `spec` names (`uid:gid[:g1,g2]`), as an unprivileged caller would be.
/// The program is single-threaded here, so the per-thread calls change the whole process.
pub fn become_user(spec: &str) -> io::Result<()> {
    use rustix::thread::{set_thread_gid, set_thread_groups, set_thread_uid};
    let bad = || io::Error::other(format!("{spec:?} is not UID:GID[:GROUPS]"));
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let mut parts = spec.split(':');
    let uid = number(parts.next().ok_or_else(bad)?)?;
    let gid = number(parts.next().ok_or_else(bad)?)?;
    let groups = match parts.next() {
        Some(list) if !list.is_empty() => list
            .split(',')
            .map(|g| number(g).map(rustix::fs::Gid::from_raw))
            .collect::<io::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    set_thread_groups(&groups)?;
    set_thread_gid(rustix::fs::Gid::from_raw(gid))?;
    set_thread_uid(rustix::fs::Uid::from_raw(uid))?;
    Ok(())
}
