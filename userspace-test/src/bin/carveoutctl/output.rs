//! How carveoutctl answers: JSON or text, failures, progress, amounts for people.

use std::{
    io::{self, IsTerminal},
    process::ExitCode,
};

use carveout::{memmap::format_size, Failure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

pub type Res<T> = Result<T, Failure>;

/// A request carveoutctl refuses (`EINVAL`).
pub fn fail(msg: impl Into<String>) -> Failure {
    Failure::invalid(msg)
}

pub fn print_json(value: &impl Serialize) -> Res<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Prints `value` as JSON or as its text.
pub fn print_or_json(value: &(impl Serialize + std::fmt::Display), json: bool) -> Res<ExitCode> {
    if json {
        print_json(value)?;
    } else {
        println!("{value}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The failures of a command that went on past them, as JSON (`op` is the command's).
pub fn failures_json(op: &str, failures: &[Failure]) -> Vec<Value> {
    failures.iter().map(|f| f.to_json(op)).collect()
}

/// Prints a failure: `carveoutctl: REASON` on standard error, or under `--json` the object
/// `{"op","errno","error","reason"}` on standard output. Every command's failure ends here.
pub fn report(op: &str, failure: &Failure, json: bool) -> ExitCode {
    if json {
        println!("{}", failure.to_json(op));
    } else {
        eprintln!("carveoutctl: {failure}");
    }
    ExitCode::from(failure.status)
}

/// A progress bar on stdout when it is a terminal and the work is large; nothing otherwise.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn new(len: u64, what: &str, json: bool) -> Self {
        if json || len < 16 << 20 || !io::stdout().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_message(what.to_string());
        Self(Some(bar))
    }

    /// `done` bytes of the work are done.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    /// The work is over: the bar goes.
    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

/// An amount for people: exact (`64M`) when it is, else rounded (`about 15.0G`).
pub fn approx(n: u64) -> String {
    let exact = format_size(n);
    if !exact.starts_with("0x") && exact.len() <= 6 {
        return exact;
    }
    for (shift, suffix) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if n >= 1 << shift {
            return format!("about {:.1}{suffix}", n as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{n} bytes")
}

pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
