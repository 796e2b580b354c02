//! `attach-fail-nth` and `attach-rounds`: CARVEOUT_ATTACH under fault injection, and against
//! the device's removal.

use std::io;

use carveout::Region;
use rustix::io::Errno;

use crate::Failed;

/// [`crate::cli::Command::AttachFailNth`]: fail-nth is opened before it is armed, so that only
/// the ioctl counts towards it, and disarmed after.
pub fn cmd_attach_fail_nth(
    region: &Region,
    device: &str,
    nth: u32,
    reach_bits: Option<u32>,
) -> io::Result<Result<(), Failed>> {
    // (The outer Result is the system's, the inner the check's: this one has no check.)
    use std::os::unix::fs::FileExt;
    let fail_nth = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/thread-self/fail-nth")?;
    fail_nth.write_at(nth.to_string().as_bytes(), 0)?;
    let result = region.attach(device, reach_bits);
    let mut left = [0u8; 16];
    let n = fail_nth.read_at(&mut left, 0)?;
    fail_nth.write_at(b"0", 0)?;
    let injected = std::str::from_utf8(&left[..n]).map(str::trim) == Ok("0");
    let injected = if injected { "injected" } else { "not-injected" };
    match result {
        Ok(attach) => println!("attached {:#x} {injected}", attach.bus_addr),
        Err(errno) => println!("{} {injected}", carveout::errno_name(errno)),
    }
    Ok(Ok(()))
}

/// [`crate::cli::Command::AttachRounds`].
pub fn cmd_attach_rounds(
    region: &Region,
    device: &str,
    rounds: u32,
    reach_bits: Option<u32>,
    pause_ms: u64,
) -> Result<(), Failed> {
    let (mut attached, mut gone, mut removed) = (0u32, 0u32, 0u32);
    for round in 1..=rounds {
        match region.attach(device, reach_bits) {
            Ok(_) => attached += 1,
            Err(Errno::NODEV) => gone += 1,
            Err(errno) => {
                return Err(Failed(format!(
                    "round {round}: attach: {}",
                    carveout::errno_name(errno)
                )))
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        if region.bus_addr(device) == Err(Errno::NODEV) {
            removed += 1;
        }
        match region.detach(device) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => {
                return Err(Failed(format!(
                    "round {round}: detach: {}",
                    carveout::errno_name(errno)
                )))
            }
        }
    }
    println!("{attached} attached, {gone} found the device gone, {removed} removed while attached");
    Ok(())
}
