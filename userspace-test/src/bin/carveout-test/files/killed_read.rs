//! `file read-killed` and its child, `file read-into`: a read of the whole region ended part
//! way by SIGKILL copies a prefix and changes nothing.

use std::{
    fs::File,
    process::{Command as Process, Stdio},
    time::{Duration, Instant},
};

use carveout::{abi, pattern, Region};
use rustix::{
    io::read,
    mm::{mmap, MapFlags, ProtFlags},
};

use super::{devmem_holds, sys};
use crate::{fail, Failed};

pub fn check_read_killed(
    dev: &str,
    region: &Region,
    info: &abi::Info,
    seed: u64,
    sink: &str,
) -> Result<(), Failed> {
    let size = info.size as usize;
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(sink)
        .map_err(|e| fail(format!("{sink}: {e}")))?;
    file.set_len(info.size)
        .map_err(|e| fail(format!("{sink}: {e}")))?;
    // SAFETY: a fresh shared mapping of our own file; read with volatile loads only.
    let view = unsafe {
        mmap(
            std::ptr::null_mut(),
            size,
            ProtFlags::READ,
            MapFlags::SHARED,
            &file,
            0,
        )
    }
    .map_err(|e| fail(format!("mmap {sink}: {e}")))?
    .cast::<u64>();
    let first = pattern::word(seed, 0);
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let mut child = Process::new(exe)
        .args(["--dev", dev, "file", "read-into", "--sink", sink])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("spawning the reader: {e}")))?;
    let started = Instant::now();
    // SAFETY: inside the mapping (word 0); the child writes it through the kernel.
    while unsafe { view.read_volatile() } != first {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err(fail("the reader never started copying"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!(
                "the reader ended ({status}) before it was killed"
            )));
        }
    }
    child.kill().map_err(|e| fail(format!("SIGKILL: {e}")))?;
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let killed_after = started.elapsed();
    // SAFETY: the mapping is `size` bytes long and nothing writes it any more.
    let copied = unsafe { std::slice::from_raw_parts(view.cast::<u8>(), size) }.to_vec();
    // SAFETY: unmapped once, nothing uses `view` afterwards.
    let _ = unsafe { rustix::mm::munmap(view.cast(), size) };
    use std::os::unix::process::ExitStatusExt;
    if status.signal() != Some(libc::SIGKILL) {
        return Err(fail(format!("the reader was not killed: {status}")));
    }
    let want = pattern::bytes(seed, 0, size);
    let done = copied
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .unwrap_or(size);
    println!(
        "# the reader copied {done:#x} of {size:#x} bytes before SIGKILL ended it ({} ms)",
        killed_after.as_millis()
    );
    if done == size {
        return Err(fail("the read finished: the kill did not end it part way"));
    }
    if let Some(i) = copied[done..].iter().position(|b| *b != 0) {
        return Err(fail(format!(
            "bytes at {:#x}, after the copied prefix, were written",
            done + i
        )));
    }
    // The region itself is as it was.
    let _ = region;
    devmem_holds(info, seed, "/dev/mem", "changed")?;
    Ok(())
}

pub fn read_into(region: &Region, info: &abi::Info, sink: &str) -> Result<(), Failed> {
    let size = info.size as usize;
    let file = File::options()
        .read(true)
        .write(true)
        .open(sink)
        .map_err(|e| fail(format!("{sink}: {e}")))?;
    // SAFETY: a fresh shared mapping of the sink; only the kernel writes it (read()).
    let buf = unsafe {
        mmap(
            std::ptr::null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &file,
            0,
        )
    }
    .map_err(|e| fail(format!("mmap {sink}: {e}")))?;
    // SAFETY: the mapping is `size` bytes, writable, and nothing else in this process uses it.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
    let n = sys("read()", read(region, buf))?;
    println!("read {n}");
    Ok(())
}
