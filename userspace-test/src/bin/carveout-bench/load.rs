//! Loading and unloading the module (`insmod`, `rmmod`).

use std::process::Command;

fn run(cmd: &str, args: &[String]) -> Result<(), String> {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .map_err(|e| format!("{cmd}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{cmd} {}: {status}", args.join(" ")))
}

pub fn insmod(module: &str, base: u64, size: u64) -> Result<(), String> {
    run(
        "insmod",
        &[
            module.to_string(),
            format!("base={base:#x}"),
            format!("size={size:#x}"),
        ],
    )
}

/// `insmod` of a region with (`pages=1`) or without `struct page`s (pages mode, issue 22).
pub fn insmod_pages(module: &str, base: u64, size: u64, pages: bool) -> Result<(), String> {
    run(
        "insmod",
        &[
            module.to_string(),
            format!("base={base:#x}"),
            format!("size={size:#x}"),
            format!("pages={}", u8::from(pages)),
        ],
    )
}

pub fn rmmod() -> Result<(), String> {
    run("rmmod", &["carveout".to_string()])
}
