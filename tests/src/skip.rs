//! The one skip policy of the test suite. A test whose prerequisite is
//! missing (root, a tool, `../shared`, kernel BTF, a dynamic loader) calls
//! [`skip`], which says so on stderr, written past libtest's output
//! capture so that a passing run shows it too, and lets the test return,
//! unless
//! [`NO_SKIP`] is `1`: `cargo xtask test` (and so CI) sets it after
//! `cargo xtask setup` installed everything, and there a skip is a
//! failure. The agent's own unit tests that need the host (BTF) read the
//! same variable.

use std::io::Write as _;

/// The variable that turns every skip into a failure.
pub const NO_SKIP: &str = "BLIPP_NO_SKIP";

/// Skips `what`, which needs `missing`, or fails under [`NO_SKIP`].
/// Returns `false`, for `if !require_x(..) { return; }` callers.
pub fn skip(what: &str, missing: &str) -> bool {
    assert!(
        std::env::var(NO_SKIP).as_deref() != Ok("1"),
        "{what} needs {missing}; {NO_SKIP}=1 (cargo xtask test, CI) forbids skipping it"
    );
    // `eprintln!` goes to libtest's capture, which a passing test never
    // shows; the process's stderr itself is not captured.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} needs {missing}, which is missing here; this test did not run"
    );
    false
}
