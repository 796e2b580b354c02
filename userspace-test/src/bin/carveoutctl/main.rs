//! carveoutctl: list, inspect, fill, verify and plan carveout regions.
//!
//! Exit status: 0 when the command did what it says (or the check holds), 1 when a check does
//! not hold (`verify` mismatch, `check` problems, `load` or `plan` could not do all it was
//! asked), 2 on a usage or system error.
//!
//! Every command prints JSON under `--json`, its failure too: a command returns its exit status
//! or a [`Failure`], and `main` alone renders the failure (text on standard error, or the JSON
//! object `{"op","errno","error","reason"}` on standard output), whatever the command.
//!
//! The modules: [`cli`], the command line; one a command or a family of commands
//! ([`inspect`]: `list`, `info`, `attr`; [`contents`]: `fill`, `verify`, `dump`, `save`,
//! `restore`; [`load`]; [`check`]; [`plan`]; `attach`, `detach` and `sync` are the library's
//! [`carveout::attach`]); what they read, [`regions`] and [`boot`]; how they answer,
//! [`output`]; the man page and completions, [`man`].

mod boot;
mod check;
mod cli;
mod contents;
mod inspect;
mod load;
mod man;
mod output;
mod plan;
mod regions;

use std::process::ExitCode;

use carveout::{configfs, Failure, Region};
use clap::{CommandFactory, FromArgMatches};

use crate::{
    cli::{op_from_args, op_name, Cli, Command},
    output::{print_or_json, report, Res},
    regions::region_path,
};

fn run(cli: &Cli) -> Res<ExitCode> {
    let json = cli.json;
    match &cli.command {
        Command::List => inspect::cmd_list(json),
        Command::Info { region } => inspect::cmd_info(region.as_deref(), json),
        Command::Attr { op } => inspect::cmd_attr(op, json),
        Command::Fill {
            seed,
            range,
            region,
        } => contents::cmd_fill(*seed, *range, region.as_deref(), json),
        Command::Verify {
            seed,
            range,
            region,
        } => contents::cmd_verify(*seed, *range, region.as_deref(), json),
        Command::Dump {
            offset,
            len,
            raw: false,
            region,
        } => contents::cmd_dump(*offset, len.unwrap_or(256), region.as_deref(), json),
        Command::Dump {
            offset,
            len,
            raw: true,
            region,
        } => contents::cmd_save(None, *offset, *len, region.as_deref(), json),
        Command::Save {
            file,
            offset,
            len,
            region,
        } => contents::cmd_save(Some(file), *offset, *len, region.as_deref(), json),
        Command::Restore {
            file,
            offset,
            region,
        } => contents::cmd_restore(file, *offset, region.as_deref(), json),
        Command::Load {
            cmdline,
            dry_run,
            attr,
            mode,
            gid,
            force,
            pages,
            pages_align,
        } => load::cmd_load(
            cmdline.as_deref(),
            *dry_run,
            *force,
            &configfs::Options {
                attr: *attr,
                mode: *mode,
                gid: *gid,
                pages: *pages,
                pages_align: *pages_align,
            },
            json,
        ),
        Command::Check {
            cmdline,
            iomem,
            pci,
        } => check::cmd_check(cmdline.as_deref(), iomem.as_deref(), pci, json),
        Command::Plan {
            range,
            size,
            align,
            below,
            from,
        } => plan::cmd_plan(*range, *size, *align, *below, from.as_deref(), json),
        Command::Attach {
            device,
            region,
            reach_bits,
        } => {
            let region = Region::open(region_path(region.as_deref())?)?;
            let done = carveout::attach::attach(&region, device, *reach_bits)?;
            print_or_json(&done, json)
        }
        Command::Detach { device, region } => {
            let done =
                carveout::attach::detach(&Region::open(region_path(region.as_deref())?)?, device)?;
            print_or_json(&done, json)
        }
        Command::Sync {
            for_,
            offset,
            len,
            region,
        } => {
            let region = Region::open(region_path(region.as_deref())?)?;
            print_or_json(
                &carveout::attach::sync(&region, *offset, *len, *for_)?,
                json,
            )
        }
    }
}

fn main() -> ExitCode {
    if let Some(what) = std::env::var_os("CARVEOUTCTL_GENERATE") {
        return man::generate(&what.to_string_lossy());
    }
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let parsed = Cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, op_name(&m))));
    let (cli, op) = match parsed {
        Ok(parsed) => parsed,
        Err(err) if !json || !err.use_stderr() => err.exit(),
        Err(err) => {
            // clap's message without its "error: " and its hints.
            let text = err.render().to_string();
            let reason = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            let status = u8::try_from(err.exit_code()).unwrap_or(2);
            let failure = Failure::invalid(reason).with_status(status);
            return report(&op_from_args(&args), &failure, true);
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(failure) => report(&op, &failure, cli.json),
    }
}
