//! carveout-test: the guest-side test tool for `/dev/carveout*`.
//!
//! Exit status: 0 when the check holds, 1 when it does not, 2 on a usage or system error.
//!
//! The modules: [`cli`], the command line; one a family of subcommands: [`ioctls`] (`info`,
//! `attr-get`, `attr-set`, `sync-raw`), [`contents`] (`fill`, `verify`, `roundtrip`,
//! `devmem-verify`), [`mappings`] (`mmap-bounds`, `hold`, `pin-hold`, `wp-check`,
//! `devmem-hold`), [`pte`], [`attach`] (`attach-fail-nth`, `attach-rounds`), [`files`] (`file
//! …`), [`zerocopy`] (`zerocopy …`), and what needs no region: [`hog`], [`json_check`];
//! `--as-user`, [`user`]. Here: the dispatch, and the exit status.

mod attach;
mod cli;
mod contents;
mod files;
mod hog;
mod ioctls;
mod json_check;
mod mappings;
mod pte;
mod user;
mod zerocopy;

use std::{io, process::ExitCode};

use carveout::Region;
use clap::Parser;

use crate::cli::{Cli, Command};

/// A check that did not hold.
pub struct Failed(pub String);

/// A check that did not hold, for `why`.
pub fn fail(why: impl Into<String>) -> Failed {
    Failed(why.into())
}

/// The outer `Result` is the system's (exit status 2), the inner the check's (1).
fn run(cli: &Cli) -> io::Result<Result<(), Failed>> {
    if let Some(user) = &cli.as_user {
        user::become_user(user)?;
    }
    if let Command::Hog { max_mib } = cli.command {
        return hog::cmd_hog(max_mib.unwrap_or(u64::MAX)).map(Ok);
    }
    if let Command::JsonCheck { has } = &cli.command {
        return json_check::cmd_json_check(has);
    }
    if let Command::DevmemVerify { phys, len, seed } = cli.command {
        return contents::cmd_devmem_verify(phys, len, seed);
    }
    if let Command::DevmemHold {
        phys,
        len,
        sync,
        seconds,
    } = cli.command
    {
        return mappings::cmd_devmem_hold(phys, len, sync, seconds).map(Ok);
    }
    if let Command::File { check } = &cli.command {
        return files::run(&cli.dev, check);
    }
    if let Command::Zerocopy { check } = &cli.command {
        return zerocopy::run(&cli.dev, check);
    }
    let region = Region::open(&cli.dev)?;
    let info = region.info()?;
    Ok(match cli.command {
        Command::Info => {
            ioctls::cmd_info(&info);
            Ok(())
        }
        Command::Fill { seed } => contents::cmd_fill(&region, &info, seed)?,
        Command::Verify { seed, devmem } => contents::cmd_verify(&region, &info, seed, devmem)?,
        Command::Roundtrip { seed } => contents::cmd_roundtrip(&region, &info, seed)?,
        Command::MmapBounds => mappings::cmd_mmap_bounds(&region, info.size),
        Command::FolioMaps => mappings::cmd_folio_maps(&region, info.size),
        Command::Hold { seconds, read_only } => {
            mappings::cmd_hold(region, info.size, seconds, read_only).map(Ok)?
        }
        Command::PinHold { len, seconds } => {
            mappings::cmd_pin_hold(region, len, seconds).map(Ok)?
        }
        Command::AttrGet => ioctls::cmd_attr_get(&region).map(Ok)?,
        Command::SyncRaw {
            offset,
            len,
            direction,
            pad0,
        } => ioctls::cmd_sync_raw(&region, offset, len, direction, pad0).map(Ok)?,
        Command::AttrSet {
            ref name,
            raw,
            pad0,
            base,
            len,
            ref owner,
        } => ioctls::cmd_attr_set(&region, name, raw, pad0, base, len, owner).map(Ok)?,
        Command::Pte(ref args) => pte::cmd_pte(&region, &info, args)?,
        Command::WpCheck => mappings::cmd_wp_check(&region, info.size),
        Command::AttachFailNth {
            ref device,
            nth,
            reach_bits,
        } => attach::cmd_attach_fail_nth(&region, device, nth, reach_bits)?,
        Command::AttachRounds {
            ref device,
            rounds,
            reach_bits,
            pause_ms,
        } => attach::cmd_attach_rounds(&region, device, rounds, reach_bits, pause_ms),
        Command::DevmemVerify { .. }
        | Command::DevmemHold { .. }
        | Command::Hog { .. }
        | Command::File { .. }
        | Command::Zerocopy { .. }
        | Command::JsonCheck { .. } => {
            unreachable!("handled above")
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failed(why))) => {
            eprintln!("carveout-test: {why}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("carveout-test: {err}");
            ExitCode::from(2)
        }
    }
}
