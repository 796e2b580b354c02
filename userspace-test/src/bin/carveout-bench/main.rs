//! carveout-bench: what a carveout mapping costs, against anonymous memory (the limit) and
//! `/dev/mem` (the old way), in the guest. `all` prints one `@@bench {json}` line per
//! measurement and per ratio, and `@@md` lines of a Markdown table; `huge-check` and `hold`
//! serve the 2 MiB mapping cases of the test suite; `file-io` measures only read()/write() of
//! the node against memcpy through a mapping (also part of `all`).
//!
//! Exit status: 0 done (or the check holds), 1 a check that does not hold, 2 a system error.
//!
//! A module a command: [`all`] (with [`map_costs`], [`bandwidth`] and [`file_io`], the
//! measurements it runs), [`iommu`], [`huge`] (`huge-used`, `huge-matches`, `hold`); what they
//! share: [`maps`] (the mappings measured), [`bench`] (a run: [`clock`] and [`report`]) and
//! [`load`] (`insmod`, `rmmod`). [`zerocopy`]: `O_DIRECT` from a pages-mode mapping, and what
//! pages mode costs at load (issue 22).

mod all;
mod bandwidth;
mod bench;
mod clock;
mod file_io;
mod gib_entries;
mod huge;
mod iommu;
mod load;
mod map_costs;
mod maps;
mod report;
mod zerocopy;

use std::process::ExitCode;

use carveout::parse_u64;
use clap::{Parser, Subcommand};

use crate::bench::Bench;

#[derive(Parser)]
#[command(about = "Benchmark carveout mappings against anonymous memory and /dev/mem")]
struct Cli {
    /// The region's device node.
    #[arg(long, default_value = "/dev/carveout0")]
    dev: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every measurement; needs the module unloaded and a reservation of at least 1 GiB.
    All {
        /// carveout.ko.
        #[arg(long)]
        module: String,
        /// Physical base of the reservation.
        #[arg(long, value_parser = parse_u64)]
        base: u64,
        /// Size of the reservation (the big region), at least 1 GiB.
        #[arg(long, value_parser = parse_u64)]
        size: u64,
        /// Runs of each measurement.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Physical base of a second reservation, of 2 GiB, 1 GiB aligned, for
        /// map_setup_2m_over_1g (0: none, not measured).
        #[arg(long, value_parser = parse_u64, default_value_t = 0)]
        gib_base: u64,
    },
    /// Checks that a 2 MiB-aligned mapping of the whole region uses 2 MiB entries: one fault
    /// per 2 MiB, and no page tables of 4 KiB entries.
    HugeUsed,
    /// Checks that 2 MiB and 4 KiB mappings (and /dev/mem) see the same bytes, also through a
    /// window whose ends are not 2 MiB aligned.
    HugeMatches,
    /// read()/write() of the whole region in 1 MiB calls against memcpy from/to a mapping of
    /// it, with the same 1 MiB buffer (the region must be loaded).
    FileIo {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Attach time (CARVEOUT_ATTACH) of regions of several sizes for PCI device DEVICE, in the
    /// IOMMU bench guest: `iommu_attach_<size>` each, and the ratio of the largest over the one
    /// 16 times smaller. Needs the module unloaded.
    IommuAttach {
        #[arg(long)]
        module: String,
        #[arg(long, value_parser = parse_u64)]
        base: u64,
        /// The largest region (1 GiB); also 256, 64 and 16 MiB.
        #[arg(long, value_parser = parse_u64)]
        size: u64,
        /// The PCI device to attach the regions to (edu).
        #[arg(long)]
        device: String,
        /// The address bits the device decodes, stated with each attach (it has no driver, so
        /// its DMA mask is 32 bits): its IOVAs may then lie above 4 GiB.
        #[arg(long)]
        reach_bits: Option<u32>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Zero copy (issue 22): 256 MiB from a pages-mode mapping to the block device PMEM with
    /// O_DIRECT against buffered writes and fsync, and the load time and memory map of a
    /// 1 GiB region with pages over one without. Needs the module unloaded and 1 GiB at BASE.
    Zerocopy {
        #[arg(long)]
        module: String,
        #[arg(long, value_parser = parse_u64)]
        base: u64,
        /// The block device to write to (the guest's pmem).
        #[arg(long, default_value = "/dev/pmem0")]
        pmem: std::path::PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Maps the whole region 2 MiB aligned, touches it, says "holding", and keeps it.
    Hold {
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        #[arg(long)]
        read_only: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::All {
            module,
            base,
            size,
            runs,
            gib_base,
        } => all::bench_all(&cli.dev, &module, base, size, runs, gib_base).map(|()| true),
        Cmd::IommuAttach {
            module,
            base,
            size,
            device,
            reach_bits,
            runs,
        } => iommu::bench_iommu_attach(&cli.dev, &module, (base, size), &device, reach_bits, runs)
            .map(|()| true),
        Cmd::Zerocopy {
            module,
            base,
            pmem,
            runs,
        } => zerocopy::bench_zerocopy(&cli.dev, &module, base, &pmem, runs).map(|()| true),
        Cmd::HugeUsed => huge::huge_check(&cli.dev, true),
        Cmd::HugeMatches => huge::huge_check(&cli.dev, false),
        Cmd::Hold { seconds, read_only } => huge::hold(&cli.dev, seconds, read_only).map(|()| true),
        Cmd::FileIo { runs } => {
            let mut b = Bench::new(runs);
            file_io::bench_file_io(&mut b, &cli.dev).map(|()| {
                b.report.markdown();
                true
            })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("carveout-bench: {err}");
            ExitCode::from(2)
        }
    }
}
