//! `/proc/iomem`: the kernel's tree of physical address ranges and who holds them.

use std::{fs, io};

use crate::memmap::Span;

/// One line of `/proc/iomem`: `  08000000-0bffffff : carveout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Nesting level (two spaces each).
    pub depth: usize,
    pub span: Span,
    pub name: String,
    /// Index of the enclosing resource in the list, if nested.
    pub parent: Option<usize>,
}

/// A parsed `/proc/iomem`.
#[derive(Debug, Clone, Default)]
pub struct Iomem {
    pub resources: Vec<Resource>,
}

/// Whether a text looks like `/proc/iomem` (for `plan --from FILE`).
pub fn looks_like_iomem(text: &str) -> bool {
    text.lines().any(|l| parse_line(l).is_some())
}

fn parse_line(line: &str) -> Option<(usize, u64, u64, &str)> {
    let trimmed = line.trim_start_matches(' ');
    let depth = (line.len() - trimmed.len()) / 2;
    let (range, name) = trimmed.split_once(" : ")?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    (start <= end).then_some((depth, start, end, name.trim_end()))
}

impl Iomem {
    /// Reads `/proc/iomem`. As non-root the kernel shows every address as 0: that is an error
    /// here, since nothing could be checked.
    pub fn read() -> io::Result<Self> {
        let text = fs::read_to_string("/proc/iomem")?;
        Self::parse(&text).map_err(io::Error::other)
    }

    /// Parses the text of `/proc/iomem`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut resources: Vec<Resource> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        let mut all_zero = true;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (depth, start, end, name) = parse_line(line)
                .ok_or_else(|| format!("line {}: {line:?} is not an iomem entry", n + 1))?;
            all_zero &= start == 0 && end == 0;
            stack.truncate(depth);
            let parent = stack.last().copied();
            let span = Span::new(start, end - start + 1).expect("start <= end, so never empty");
            resources.push(Resource {
                depth,
                span,
                name: name.to_string(),
                parent,
            });
            stack.push(resources.len() - 1);
        }
        if resources.len() > 1 && all_zero {
            return Err(
                "every address in /proc/iomem is 0: the kernel hides them from \
                        non-root users; run as root"
                    .into(),
            );
        }
        Ok(Self { resources })
    }

    /// Whether some `Reserved` entry (at any depth) contains `span`.
    pub fn reserved_covering(&self, span: &Span) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.name == "Reserved" && r.span.contains(span))
    }

    /// The entries named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.iter().filter(move |r| r.name == name)
    }

    /// Whether the resource at `index` sits (at any depth) inside an entry named `ancestor`.
    pub fn is_inside(&self, index: usize, ancestor: &str) -> bool {
        let mut cur = self.resources[index].parent;
        while let Some(i) = cur {
            if self.resources[i].name == ancestor {
                return true;
            }
            cur = self.resources[i].parent;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const GUEST: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000a0000-000bffff : PCI Bus 0000:00
00100000-07ffffff : System RAM
  01000000-01ffffff : Kernel code
08000000-0bffffff : Reserved
  08000000-0bffffff : carveout
0c000000-0fffffff : System RAM
10000000-10ffffff : Persistent Memory (legacy)
  10000000-10ffffff : namespace0.0
11000000-1ffdffff : System RAM
";

    #[test]
    fn nesting_and_names() {
        let iomem = Iomem::parse(GUEST).expect("parses");
        assert_eq!(iomem.resources.len(), 11);
        let (i, claim) = iomem
            .resources
            .iter()
            .enumerate()
            .find(|(_, r)| r.name == "carveout")
            .expect("carveout claim");
        assert_eq!(
            claim.span,
            Span {
                base: 0x800_0000,
                size: 0x400_0000
            }
        );
        assert_eq!(claim.depth, 1);
        assert!(iomem.is_inside(i, "Reserved"));
        assert!(!iomem.is_inside(i, "System RAM"));
        assert!(iomem
            .reserved_covering(&Span {
                base: 0x900_0000,
                size: 0x1000
            })
            .is_some());
        assert!(iomem
            .reserved_covering(&Span {
                base: 0xb00_0000,
                size: 0x200_0000
            })
            .is_none());
        assert_eq!(iomem.named("System RAM").count(), 4);
    }

    #[test]
    fn zeroed_addresses_mean_not_root() {
        let err = Iomem::parse("00000000-00000000 : System RAM\n00000000-00000000 : Reserved\n")
            .expect_err("zeros");
        assert!(err.contains("run as root"), "{err}");
    }

    #[test]
    fn garbage_is_rejected() {
        let err = Iomem::parse("hello world\n").expect_err("garbage");
        assert!(err.contains("line 1"), "{err}");
        assert!(!looks_like_iomem("BIOS-e820: nothing"));
        assert!(looks_like_iomem(GUEST));
    }
}
