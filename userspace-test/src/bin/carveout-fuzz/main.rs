//! carveout-fuzz: a bounded, seeded fuzzer for `/dev/carveout*`.
//!
//! It runs four rounds of `--procs` worker processes at once, unloading and loading the
//! module between rounds. Each worker runs its share of `--ops` random operations, on the
//! device only: open/close/read/write/lseek, ioctls with random numbers and hostile arguments
//! (NULL, kernel addresses, inaccessible pages, buffers cut short by a guard page), mmap with
//! random offset/length/prot/flags (MAP_PRIVATE, MAP_FIXED over a live mapping), munmap,
//! mremap, mprotect, fork with mappings alive, and now and then `rmmod` / `insmod`.
//! `CARVEOUT_SYNC` with random offsets, lengths, directions and padding, each answer checked
//! against the header's rules; `CARVEOUT_ATTACH` / `DETACH` / `BUS_ADDR` with names of no
//! device (malformed, unterminated, or well formed but absent), which must be refused.
//!
//! The region must hold the pattern for `--pattern-seed` (`carveout-test fill`): that is the
//! model of its contents. Every read through a mapping checks the pattern word for its region
//! offset, and every write stores that same word: the fuzzer itself never changes the
//! contents, so a changed word afterwards (`carveout-test verify`) is a bug, and so is a
//! mapping that shows the wrong memory. The file interface is held to the same model: every
//! byte that read/pread/readv/preadv returns must be the pattern's, write/pwrite/writev/pwritev
//! store the pattern's own bytes, and each call at a random offset (inside, at or past the end,
//! across 2 MiB pieces, negative, near 2^63) must return the count or errno the bounds give,
//! with the file position (random lseek whence values included) where the model puts it.
//!
//! It also checks what must be refused: private or out-of-range mappings, growing a device
//! mapping, unknown ioctls, ioctls and reads/writes with kernel pointers. A violation is
//! printed as `finding:` with the worker, its seed and the operation number.
//!
//! Reproducible: worker `i` (numbered across rounds) runs the sequence of seed
//! `pattern::word(seed, i)`; the interleaving of workers is up to the scheduler.
//! Exit status: 0 clean, 1 findings, 2 error.
//!
//! With `--pages` the region has pages (issue 22): the module is loaded with `pages=1`, a
//! SET_ATTR to another type than WB must be refused, and pins of a mapping (`vmsplice`) must
//! see the pattern; without, such a pin must fail `EFAULT`.
//!
//! [`cli`] is the command line; [`worker`] a worker process and its operations; here the run:
//! rounds of workers, with the module unloaded and loaded between them.

mod cli;
mod rng;
mod worker;

use std::{
    io,
    process::{Command, ExitCode},
    time::Instant,
};

use carveout::pattern;
use clap::Parser;

use crate::cli::{Cli, ROUNDS};

fn run(cli: &Cli) -> io::Result<bool> {
    let seed = cli.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64
    });
    if let Some(id) = cli.worker {
        return Ok(worker::run(cli, id, pattern::word(seed, id))? == 0);
    }
    let region = carveout::Region::open(&cli.dev)?;
    let info = region.info()?;
    drop(region);
    if cli.pages != (info.flags & carveout::abi::MR_PAGES != 0) {
        return Err(io::Error::other(format!(
            "--pages {} but the region's flags {:#x} say it has {}pages",
            if cli.pages { "given" } else { "not given" },
            info.flags,
            if cli.pages { "no " } else { "" }
        )));
    }
    println!(
        "# carveout-fuzz: seed {seed:#x}, {} operations, {} processes, region {:#x}+{:#x}",
        cli.ops, cli.procs, info.base, info.size
    );
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let mut clean = true;
    // Workers hold the device almost all the time, so their own rmmods rarely find it idle:
    // between rounds, with every worker gone, the module is unloaded and loaded for real.
    for round in 0..ROUNDS {
        let mut children = Vec::new();
        for n in 0..cli.procs {
            let id = round * cli.procs + n;
            let child = Command::new(&exe)
                .args(["--dev", &cli.dev, "--module", &cli.module])
                .arg(format!("--seed={seed:#x}"))
                .arg(format!("--pattern-seed={:#x}", cli.pattern_seed))
                .arg(format!("--ops={}", cli.ops))
                .arg(format!("--procs={}", cli.procs))
                .arg(format!("--reload-ppm={}", cli.reload_ppm))
                .arg(format!("--fork-ppm={}", cli.fork_ppm))
                .args(cli.pages.then_some("--pages"))
                .arg(format!("--worker={id}"))
                .arg(format!("--base={:#x}", info.base))
                .arg(format!("--size={:#x}", info.size))
                .spawn()?;
            children.push((id, child));
        }
        for (id, mut child) in children {
            let status = child.wait()?;
            if !status.success() {
                println!(
                    "finding: worker {id} (seed {:#x}) ended with {status}",
                    pattern::word(seed, id)
                );
                clean = false;
            }
        }
        // A worker's own rmmod may have left it unloaded; then there is nothing to remove.
        if std::path::Path::new(&cli.dev).exists() {
            let out = Command::new("rmmod").arg("carveout").output()?;
            if !out.status.success() {
                println!(
                    "finding: rmmod with no user failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                clean = false;
            }
        }
        let out = Command::new("insmod")
            .arg(&cli.module)
            .arg(format!("base={:#x}", info.base))
            .arg(format!("size={:#x}", info.size))
            .args(cli.pages.then_some("pages=1"))
            .output()?;
        if !out.status.success() {
            println!(
                "finding: insmod after round {round} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return Ok(false);
        }
    }
    println!(
        "# carveout-fuzz: seed {seed:#x}: {} operations, module unloaded and loaded {ROUNDS} \
         times, in {:.1}s, {}",
        cli.ops,
        start.elapsed().as_secs_f64(),
        if clean { "no findings" } else { "FINDINGS" }
    );
    Ok(clean)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("carveout-fuzz: {err}");
            ExitCode::from(2)
        }
    }
}
