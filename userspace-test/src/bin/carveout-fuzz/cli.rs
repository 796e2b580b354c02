//! carveout-fuzz's command line, and how the run is cut into rounds.

use carveout::parse_u64;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Fuzz /dev/carveout* with hostile ioctls, mappings and file operations")]
pub struct Cli {
    /// The region's device node (the only file the fuzzer operates on).
    #[arg(long, default_value = "/dev/carveout0")]
    pub dev: String,
    /// Seed of the run (default: from the clock; printed either way).
    #[arg(long, value_parser = parse_u64)]
    pub seed: Option<u64>,
    /// The pattern the region holds (carveout-test fill --seed).
    #[arg(long, value_parser = parse_u64)]
    pub pattern_seed: u64,
    /// Operations in all, shared among the workers.
    #[arg(long, default_value_t = 200_000)]
    pub ops: u64,
    /// Worker processes running at once.
    #[arg(long, default_value_t = 4)]
    pub procs: u64,
    /// The module, for insmod attempts.
    #[arg(long, default_value = "/lib/modules/carveout.ko")]
    pub module: String,
    /// Probability of an rmmod or insmod attempt, per million operations.
    #[arg(long, default_value_t = 300)]
    pub reload_ppm: u64,
    /// Probability of a fork with the mappings alive, per million of the rare operations (4 in
    /// 100 operations).
    #[arg(long, default_value_t = 4_000)]
    pub fork_ppm: u64,
    /// The region has pages (loaded with pages=1; issue 22): every insmod passes pages=1,
    /// SET_ATTR to a type other than WB must be refused, and a pin of a mapping (vmsplice)
    /// must see the pattern. Without it, such a pin must fail EFAULT.
    #[arg(long)]
    pub pages: bool,
    /// Run as worker N (internal).
    #[arg(long, hide = true)]
    pub worker: Option<u64>,
    /// The region's base and size (internal: handed to workers).
    #[arg(long, hide = true, value_parser = parse_u64)]
    pub base: Option<u64>,
    #[arg(long, hide = true, value_parser = parse_u64)]
    pub size: Option<u64>,
}

/// Rounds of `--procs` workers; the module is unloaded and loaded again after each.
pub const ROUNDS: u64 = 4;
