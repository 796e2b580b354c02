//! The man page and the shell completions, generated from the clap definition.

use std::{io, process::ExitCode};

use carveout::Failure;
use clap::CommandFactory;

use crate::{cli::Cli, output::report};

/// What the man page says beyond the clap definition (roff).
const MAN_EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
0
the command did what it says, or the check holds
.TP
1
a check does not hold: a \fBverify\fR mismatch, a \fBcheck\fR problem, a \fBload\fR or \fBplan\fR
that could not do all it was asked
.TP
2
a usage or system error
.SH JSON
With \fB\-\-json\fR every command prints one JSON value on standard output, and a failure too,
with the same exit status:
.PP
.nf
{"op":"attr set","errno":16,"error":"EBUSY","reason":"/dev/carveout0: CARVEOUT_SET_ATTR to uc refused with EBUSY ..."}
.fi
.PP
\fBop\fR is the subcommand, \fBerrno\fR the number and \fBerror\fR the name of the errno that
names the failure (the kernel's, when the kernel refused), \fBreason\fR the sentence the text
output prints.
.SH FILES
.TP
/dev/carveout0, /dev/carveout/NAME
the region nodes
.TP
/sys/kernel/config/carveout/NAME
regions made at run time (\fBload\fR)
.TP
/proc/cmdline, /proc/iomem, /sys/firmware/memmap
what \fBcheck\fR, \fBload\fR and \fBplan\fR read
"#;

/// Each command under `parent` (depth first, as `attr set`): its synopsis, description and
/// options.
fn man_commands(out: &mut dyn io::Write, prefix: &str, parent: &clap::Command) -> io::Result<()> {
    for sub in parent.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            man_commands(out, &format!("{name} "), sub)?;
            continue;
        }
        // The global --json and --help are the page's own options, not each command's.
        let sub = sub
            .clone()
            .bin_name(format!("carveoutctl {name}"))
            .mut_arg("json", |a| a.hide(true))
            .mut_arg("help", |a| a.hide(true));
        let sub_man = clap_mangen::Man::new(sub.clone());
        let mut synopsis = Vec::new();
        let mut description = Vec::new();
        let mut options = Vec::new();
        sub_man.render_synopsis_section(&mut synopsis)?;
        sub_man.render_description_section(&mut description)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            sub_man.render_options_section(&mut options)?;
        }
        writeln!(out, ".SS \"{name}\"")?;
        for (i, part) in [synopsis, description, options].iter().enumerate() {
            if i > 0 {
                writeln!(out, ".PP")?;
            }
            for line in String::from_utf8_lossy(part).lines() {
                if !line.starts_with(".SH ") {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    Ok(())
}

/// The man page: clap_mangen's sections for carveoutctl, then every subcommand's synopsis,
/// description and options under COMMANDS.
fn man_page(out: &mut dyn io::Write) -> io::Result<()> {
    let mut page = Vec::new();
    man_sections(&mut page)?;
    // Each clap_mangen render starts with the same two lines (the Aq string): once is enough.
    let page = String::from_utf8_lossy(&page);
    let mut seen = Vec::new();
    for line in page.lines() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            if seen.contains(&line) {
                continue;
            }
            seen.push(line);
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn man_sections(out: &mut dyn io::Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    man_commands(out, "", &cmd)?;
    let mut extra = Vec::new();
    man.render_extra_section(&mut extra)?;
    let extra = String::from_utf8_lossy(&extra).replacen(
        ".SH EXTRA",
        ".SH \"REGIONS, SIZES AND ADDRESSES\"",
        1,
    );
    out.write_all(extra.as_bytes())?;
    out.write_all(MAN_EXIT_STATUS.as_bytes())?;
    man.render_version_section(out)
}

/// `CARVEOUTCTL_GENERATE=man|bash|zsh|fish carveoutctl`: the man page or a shell's
/// completions on standard output, generated from the clap definition (for `make install`).
/// An environment variable rather than a subcommand, so that neither lists it.
pub fn generate(what: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    let shell = match what {
        "man" => {
            return match man_page(&mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => report("generate", &Failure::io("the man page", &err), false),
            };
        }
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        _ => {
            let failure = Failure::invalid(format!(
                "CARVEOUTCTL_GENERATE={what:?}: man, bash, zsh or fish"
            ));
            return report("generate", &failure, false);
        }
    };
    clap_complete::generate(shell, &mut Cli::command(), "carveoutctl", &mut out);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_and_completions_cover_every_subcommand() {
        let mut man = Vec::new();
        man_page(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH carveoutctl 1"), "{man}");
        // Each command's own options are on the page, once each.
        for option in [r"\-\-seed", r"\-\-dry\-run", r"\-\-below"] {
            assert!(man.contains(option), "man: no {option}");
        }
        assert!(man.contains(".SS \"attr set\""), "{man}");
        // --json: the synopsis, the options and the JSON section; no command repeats it.
        assert_eq!(man.matches(r"\fB\-\-json\fR").count(), 3, "{man}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "carveoutctl", &mut out);
            let out = String::from_utf8(out).unwrap();
            assert!(
                out.contains("--json") || out.contains("-l json"),
                "{shell}: no --json"
            );
            for sub in Cli::command().get_subcommands() {
                let name = sub.get_name();
                assert!(out.contains(name), "{shell}: no {name}");
                assert!(man.contains(&format!(".SS \"{name}")), "man: no {name}");
            }
        }
    }
}
