//! The guest's result lines on the serial console, read by the host side
//! (`xtask/src/vm/matrix.rs`):
//!
//! ```text
//! BLIPP-VM BOOT uptime=<seconds>
//! BLIPP-VM CHECK PASS|FAIL <run>/<check>: <detail>
//! BLIPP-VM MODE <run> <probe>=<source> ...
//! BLIPP-VM RSS run=<run> rss_kb=<VmRSS> hwm_kb=<VmHWM>
//! BLIPP-VM DONE passed=<n> failed=<m>
//! ```

use std::fmt::Display;

const TAG: &str = "BLIPP-VM";

/// Counts and prints checks.
#[derive(Default)]
pub struct Checks {
    passed: u32,
    failed: u32,
}

/// Prints one tagged line.
#[expect(clippy::print_stdout, reason = "the console is the guest's report")]
pub fn line(text: &str) {
    // One write per line, so kernel messages do not split it.
    println!("{TAG} {text}");
}

impl Checks {
    /// Records one check.
    pub fn check(&mut self, run: &str, name: &str, ok: bool, detail: impl Display) {
        let verdict = if ok {
            self.passed += 1;
            "PASS"
        } else {
            self.failed += 1;
            "FAIL"
        };
        // A detail may hold a multi-line verifier log: keep one line.
        let detail = detail.to_string().replace('\n', " | ");
        line(&format!("CHECK {verdict} {run}/{name}: {detail}"));
    }

    /// Records an equality of two counters.
    pub fn equal(&mut self, run: &str, name: &str, got: Option<u64>, want: u64, what: &str) {
        match got {
            Some(v) => self.check(run, name, v == want, format!("{what}: {v} (want {want})")),
            None => self.check(run, name, false, format!("{what}: no value (want {want})")),
        }
    }

    /// How many checks failed so far.
    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// Prints the closing line.
    pub fn done(&self) {
        line(&format!(
            "DONE passed={} failed={}",
            self.passed, self.failed
        ));
    }
}

/// Copies what blippd logged in a failing run to the console, untagged,
/// for the kept serial log.
#[expect(clippy::print_stdout, reason = "the console is the guest's report")]
pub fn dump(run: &str, log: &str) {
    for l in log.lines() {
        println!("blippd[{run}]: {l}");
    }
}
