//! The kernel matrix file (`vm-tests/kernels.txt`) and the guest's result
//! lines: the two texts the host side reads.

use anyhow::{Result, bail};

use clap::ValueEnum as _;

use crate::arch::Arch;

/// One row of the matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// What `--kernel` selects (`5.10`, `6.1`, `newest`...).
    pub id: String,
    /// Debian suite.
    pub suite: String,
    /// Package to resolve in the suite; `{arch}` stands for Debian's name
    /// of the architecture (see [`Row::for_arch`]).
    pub package: String,
    /// The one architecture the row is for (a flavour only it has), or
    /// `None` for every architecture.
    pub only: Option<Arch>,
}

impl Row {
    /// The row for `arch`, `None` when it is another architecture's:
    /// `{arch}` in the package name becomes Debian's name of it
    /// (`linux-image-cloud-{arch}` -> `linux-image-cloud-arm64`).
    pub fn for_arch(self, arch: Arch) -> Option<Row> {
        if self.only.is_some_and(|a| a != arch) {
            return None;
        }
        Some(Row {
            package: self.package.replace("{arch}", arch.debian()),
            ..self
        })
    }
}

/// Parses the matrix: `<id> <suite> <package> [<arch>]` per line, `#`
/// comments.
pub fn parse(text: &str) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (id, suite, package, only) = match words[..] {
            [id, suite, package] => (id, suite, package, None),
            [id, suite, package, arch] => match Arch::from_str(arch, false) {
                Ok(a) => (id, suite, package, Some(a)),
                Err(_) => bail!("kernels.txt:{}: unknown architecture {arch:?}", i + 1),
            },
            _ => bail!(
                "kernels.txt:{}: expected `<id> <suite> <package> [<arch>]`, got {line:?}",
                i + 1
            ),
        };
        if rows.iter().any(|r| r.id == id) {
            bail!("kernels.txt:{}: kernel id {id} appears twice", i + 1);
        }
        rows.push(Row {
            id: id.to_owned(),
            suite: suite.to_owned(),
            package: package.to_owned(),
            only,
        });
    }
    if rows.is_empty() {
        bail!("kernels.txt lists no kernel");
    }
    Ok(rows)
}

/// The number after `key` among the words of `text`.
fn number<T: std::str::FromStr>(text: &str, key: &str) -> Option<T> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

/// What the guest reported on its console (see `vm-tests/guest`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// `CHECK PASS|FAIL <run>/<name>: <detail>`: (passed, text).
    pub checks: Vec<(bool, String)>,
    /// `MODE <run> <probe>=<source>...`: (run, [(probe, source)]).
    pub modes: Vec<(String, Vec<(String, String)>)>,
    /// `DONE passed=<n> failed=<m>`: the guest finished its checks.
    pub done: Option<(u32, u32)>,
    /// `BOOT uptime=<s>`: the guest's uptime when init started.
    pub kernel_boot: Option<f64>,
    /// `RSS run=default rss_kb=<k> hwm_kb=<k>`: blippd's resident memory
    /// (now, peak) with the built-in configuration, kB.
    pub rss_kb: Option<(u64, u64)>,
}

impl Report {
    /// Reads the tagged lines of one boot.
    pub fn parse(lines: &[String]) -> Report {
        let mut r = Report::default();
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "CHECK" => {
                    if let Some(text) = rest.strip_prefix("PASS ") {
                        r.checks.push((true, text.to_owned()));
                    } else if let Some(text) = rest.strip_prefix("FAIL ") {
                        r.checks.push((false, text.to_owned()));
                    }
                }
                "MODE" => {
                    let mut words = rest.split_whitespace();
                    let run = words.next().unwrap_or_default().to_owned();
                    let probes = words
                        .filter_map(|w| w.split_once('='))
                        .map(|(p, s)| (p.to_owned(), s.to_owned()))
                        .collect();
                    r.modes.push((run, probes));
                }
                "RSS" => {
                    if let (Some(rss), Some(hwm)) =
                        (number(rest, "rss_kb="), number(rest, "hwm_kb="))
                    {
                        r.rss_kb = Some((rss, hwm));
                    }
                }
                "BOOT" => {
                    r.kernel_boot = rest
                        .strip_prefix("uptime=")
                        .and_then(|v| v.trim().parse().ok());
                }
                "DONE" => {
                    if let (Some(p), Some(f)) = (number(rest, "passed="), number(rest, "failed=")) {
                        r.done = Some((p, f));
                    }
                }
                _ => {}
            }
        }
        r
    }

    /// Every check passed, there was at least one, and the guest said it
    /// finished with the same counts.
    pub fn passed(&self) -> bool {
        let passed = self.checks.iter().filter(|(ok, _)| *ok).count();
        let failed = self.checks.len() - passed;
        failed == 0
            && passed > 0
            && self
                .done
                .is_some_and(|(p, f)| f == 0 && p as usize == passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_rows() {
        let rows = parse("# c\n5.10 bullseye linux-image-cloud-{arch} # x\n\n").unwrap();
        assert_eq!(rows[0].suite, "bullseye");
        let package = |r: &Row, a| r.clone().for_arch(a).map(|r| r.package);
        assert_eq!(
            package(&rows[0], Arch::Arm64).as_deref(),
            Some("linux-image-cloud-arm64")
        );
        assert_eq!(
            package(&rows[0], Arch::X86_64).as_deref(),
            Some("linux-image-cloud-amd64")
        );
        let one = parse("16k trixie-backports linux-image-arm64-16k arm64\n").unwrap();
        assert_eq!(package(&one[0], Arch::X86_64), None);
        assert_eq!(
            package(&one[0], Arch::Arm64).as_deref(),
            Some("linux-image-arm64-16k")
        );
        assert!(parse("16k trixie linux-image-x sparc\n").is_err());
        assert!(parse("5.10 bullseye\n").is_err());
        assert!(parse("a s p\na s p\n").is_err());
        assert!(parse("# nothing\n").is_err());
        let real = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../vm-tests/kernels.txt"
        ))
        .unwrap();
        assert!(parse(&real).unwrap().len() >= 4);
    }

    #[test]
    fn guest_report() {
        let lines: Vec<String> = [
            "BOOT uptime=1.5",
            "CHECK PASS root/disk-ebpf: 64 = 64",
            "MODE root disk=ebpf cpu=proc",
            "RSS run=default rss_kb=7600 hwm_kb=7700",
            "DONE passed=1 failed=0",
        ]
        .map(str::to_owned)
        .to_vec();
        let r = Report::parse(&lines);
        assert!(r.passed());
        assert_eq!(r.kernel_boot, Some(1.5));
        assert_eq!(r.rss_kb, Some((7600, 7700)));
        assert_eq!(r.modes[0].1[0], ("disk".to_owned(), "ebpf".to_owned()));
        let mut failing = lines.clone();
        failing.insert(1, "CHECK FAIL user/disk-proc: 3 != 4".to_owned());
        assert!(!Report::parse(&failing).passed());
        // A guest that died before DONE has not passed.
        assert!(!Report::parse(&lines[..3]).passed());
    }
}
