//! `/proc/[pid]/status`: the few lines the process probe reports that no
//! other per-process file has. (The procfs crate parses the whole file into
//! a map of owned strings on every read; blipp reads it on every tick, so it
//! picks its lines out of a reused buffer instead.)

use super::{ParseError, kilobytes, number};

/// The status lines blipp reports. Kernel threads have no `Vm*` lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidStatus {
    /// `VmRSS`, kB.
    pub vm_rss: Option<u64>,
    /// `VmSwap`, kB (2.6.34+).
    pub vm_swap: Option<u64>,
    /// `voluntary_ctxt_switches` (2.6.23+).
    pub voluntary_ctxt_switches: Option<u64>,
    /// `nonvoluntary_ctxt_switches` (2.6.23+).
    pub nonvoluntary_ctxt_switches: Option<u64>,
}

/// Parses the whole file.
pub fn parse(text: &str) -> Result<PidStatus, ParseError> {
    let mut s = PidStatus::default();
    for (i, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "VmRSS" => &mut s.vm_rss,
            "VmSwap" => &mut s.vm_swap,
            "voluntary_ctxt_switches" => &mut s.voluntary_ctxt_switches,
            "nonvoluntary_ctxt_switches" => &mut s.nonvoluntary_ctxt_switches,
            _ => continue,
        };
        let token = rest
            .split_ascii_whitespace()
            .next()
            .ok_or(ParseError::Missing {
                file: "status",
                what: "a value after a key",
            })?;
        *slot = Some(if key.starts_with("Vm") {
            kilobytes("status", i + 1, key, token)?
        } else {
            number("status", i + 1, token)?
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_process_and_kernel_thread() {
        let user = "Name:\tsleep\nState:\tS (sleeping)\nVmRSS:\t    1792 kB\nVmSwap:\t       0 kB\nvoluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t1\n";
        assert_eq!(
            parse(user).unwrap(),
            PidStatus {
                vm_rss: Some(1792),
                vm_swap: Some(0),
                voluntary_ctxt_switches: Some(3),
                nonvoluntary_ctxt_switches: Some(1),
            }
        );
        let kthread = "Name:\tkthreadd\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t120\n";
        assert_eq!(parse(kthread).unwrap().vm_rss, None);
        assert!(parse("VmRSS:\tlots kB\n").is_err());
        assert!(matches!(
            parse("VmRSS:\t18446744073709551615 kB\n"),
            Err(ParseError::Implausible { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }
    }
}
