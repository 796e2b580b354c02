//! A bench run: its clock, how many runs each measurement gets, and the report the
//! measurements go to.

use crate::{
    clock::Clock,
    report::{Report, Stat},
};

pub struct Bench {
    pub clock: Clock,
    pub runs: usize,
    pub report: Report,
}

impl Bench {
    /// A run of `runs` runs a measurement, its clock calibrated now (half a second).
    pub fn new(runs: usize) -> Self {
        Self {
            clock: Clock::calibrate(),
            runs,
            report: Report::default(),
        }
    }

    /// Reports the samples of measurement `name`.
    pub fn add(&mut self, name: &str, unit: &'static str, samples: Vec<f64>) {
        self.report.add(Stat::of(name, unit, samples));
    }
}
