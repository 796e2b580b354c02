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

pub fn rmmod() -> Result<(), String> {
    run("rmmod", &["carveout".to_string()])
}
