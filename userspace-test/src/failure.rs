//! How a command-line tool reports that it could not do what it was asked: an errno, one
//! sentence saying why, and the exit status. Rendered as text on standard error, or under
//! `--json` as one object on standard output:
//! `{"op":"fill","errno":22,"error":"EINVAL","reason":"…"}`.

use std::{fmt, io};

use rustix::io::Errno;
use serde_json::{json, Value};

use crate::{errno_name, memmap::ParseError, Error};

/// Exit status of a usage or system error.
pub const STATUS_ERROR: u8 = 2;

/// A command's failure: the errno that best names it, why, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub errno: Errno,
    pub reason: String,
    pub status: u8,
}

impl Failure {
    /// A failure with `errno`, exit status 2.
    pub fn new(errno: Errno, reason: impl Into<String>) -> Self {
        Self {
            errno,
            reason: reason.into(),
            status: STATUS_ERROR,
        }
    }

    /// A request that makes no sense (`EINVAL`).
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::new(Errno::INVAL, reason)
    }

    /// An I/O error on `what` (a path): its errno, and `what: error` as the reason.
    pub fn io(what: impl fmt::Display, err: &io::Error) -> Self {
        let errno = Errno::from_io_error(err).unwrap_or(Errno::IO);
        Self::new(errno, format!("{what}: {err}"))
    }

    /// The same failure with another exit status (1: a check that does not hold, a plan that
    /// cannot be made).
    pub fn with_status(mut self, status: u8) -> Self {
        self.status = status;
        self
    }

    /// The JSON object for `op` (the subcommand, e.g. `"attr set"`).
    pub fn to_json(&self, op: &str) -> Value {
        json!({
            "op": op,
            "errno": self.errno.raw_os_error(),
            "error": errno_name(self.errno),
            "reason": self.reason,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let errno = err.errno().unwrap_or(match err {
            Error::AbiVersion { .. } => Errno::PROTO,
            Error::Unavailable { .. } => Errno::NODEV,
            _ => Errno::INVAL,
        });
        Self::new(errno, err.to_string())
    }
}

impl From<crate::transfer::TransferError> for Failure {
    fn from(err: crate::transfer::TransferError) -> Self {
        match err {
            crate::transfer::TransferError::Region(err) => err.into(),
            crate::transfer::TransferError::File { path, err } => {
                let errno = Errno::from_io_error(&err).unwrap_or(Errno::IO);
                Self::new(errno, format!("{path}: {err}"))
            }
        }
    }
}

impl From<crate::attach::Refusal> for Failure {
    fn from(refusal: crate::attach::Refusal) -> Self {
        Self::new(refusal.errno, refusal.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        let errno = Errno::from_io_error(&err).unwrap_or(Errno::IO);
        Self::new(errno, err.to_string())
    }
}

impl From<ParseError> for Failure {
    fn from(err: ParseError) -> Self {
        Self::invalid(err.0)
    }
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Self::invalid(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Self {
        Self::invalid(reason)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(err: serde_json::Error) -> Self {
        Self::new(Errno::IO, format!("writing JSON: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Op, Region};

    #[test]
    fn a_refusal_keeps_its_errno_and_names_it() {
        let failure = Failure::from(Error::Refused {
            op: Op::GetInfo,
            path: "/dev/carveout0".into(),
            errno: Errno::NOTTY,
        });
        let j = failure.to_json("info");
        assert_eq!(j["op"], "info");
        assert_eq!(j["errno"], 25);
        assert_eq!(j["error"], "ENOTTY");
        assert!(j["reason"]
            .as_str()
            .unwrap()
            .starts_with("/dev/carveout0: CARVEOUT_GET_INFO refused with ENOTTY"));
        assert_eq!(failure.status, STATUS_ERROR);
    }

    #[test]
    fn errors_without_an_errno_get_one_that_fits() {
        let missing = Region::open("/nonexistent/carveout-node").unwrap_err();
        assert_eq!(Failure::from(missing).errno, Errno::NOENT);
        let unavailable = Failure::from(Error::Unavailable { why: "no".into() });
        assert_eq!(unavailable.to_json("load")["error"], "ENODEV");
        let abi = Failure::from(Error::AbiVersion {
            path: "/dev/x".into(),
            driver: 9,
            ours: 1,
        });
        assert_eq!(abi.errno, Errno::PROTO);
        assert_eq!(Failure::from("bad").errno, Errno::INVAL);
        let io = io::Error::from_raw_os_error(Errno::ACCESS.raw_os_error());
        assert_eq!(Failure::from(io).to_json("x")["error"], "EACCES");
        assert_eq!(Failure::invalid("x").with_status(1).status, 1);
        let io = io::Error::from_raw_os_error(Errno::NOENT.raw_os_error());
        let failure = Failure::io("/proc/cmdline", &io);
        assert_eq!(failure.errno, Errno::NOENT);
        assert!(failure.reason.starts_with("/proc/cmdline: "), "{failure}");
    }
}
