//! `hog`: memory pressure, for the contents' survival of it.

use std::io;

use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};

/// Touches anonymous memory 1 MiB at a time until mmap fails, the OOM killer strikes, or
/// `max_mib` is reached.
pub fn cmd_hog(max_mib: u64) -> io::Result<()> {
    use std::io::Write;
    const MIB: usize = 1 << 20;
    std::fs::write("/proc/self/oom_score_adj", "1000")?;
    let mut chunks = Vec::new();
    let mut out = io::stdout();
    while (chunks.len() as u64) < max_mib {
        // SAFETY: a fresh anonymous mapping aliases nothing; it is never unmapped (the process
        // exits or is killed holding it).
        let chunk = match unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                MIB,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        } {
            Ok(chunk) => chunk.cast::<u8>(),
            Err(err) => {
                println!("hog: allocation failed after {} MiB: {err}", chunks.len());
                return Ok(());
            }
        };
        for page in (0..MIB).step_by(4096) {
            // SAFETY: inside the mapping just made; volatile so the store is not elided.
            unsafe { chunk.add(page).write_volatile(1) };
        }
        chunks.push(chunk as usize);
        if chunks.len() % 16 == 0 {
            // One line per 16 MiB: the last one printed is how far it got before a kill.
            let _ = writeln!(out, "hog: {} MiB", chunks.len());
            let _ = out.flush();
        }
    }
    println!("hog: stopped at the limit of {max_mib} MiB");
    Ok(())
}
