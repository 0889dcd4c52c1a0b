//! Running commands, with the command line echoed so that CI logs show
//! what happened.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// `cargo`, the same binary that runs xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The workspace's target directory, as cargo resolves it.
pub fn target_dir() -> Result<std::path::PathBuf> {
    let out = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))
        .context("cargo metadata")?;
    let meta: serde_json::Value = serde_json::from_str(&out)?;
    meta["target_directory"]
        .as_str()
        .map(std::path::PathBuf::from)
        .context("cargo metadata has no target_directory")
}

/// Runs `cmd`, failing on a non-zero exit.
#[expect(clippy::print_stderr, reason = "xtask narrates what it runs")]
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = show(cmd);
    eprintln!("xtask: {line}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout, or `None` when it cannot start or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `step`, one of `of` phases, between two lines that name it and
/// say how long it took: on a fresh machine a phase can take minutes (the
/// nightly toolchain, bpf-linker, the first release build), and a newcomer
/// must be able to tell progress from a hang.
#[expect(clippy::print_stderr, reason = "xtask narrates what it runs")]
pub fn phase<T>(
    number: usize,
    of: usize,
    what: &str,
    step: impl FnOnce() -> Result<T>,
) -> Result<T> {
    eprintln!("xtask: [{number}/{of}] {what}...");
    let start = std::time::Instant::now();
    let result = step();
    let took = start.elapsed().as_secs_f64();
    match &result {
        Ok(_) => eprintln!("xtask: [{number}/{of}] {what}: done in {took:.1} s"),
        Err(_) => eprintln!("xtask: [{number}/{of}] {what}: failed after {took:.1} s"),
    }
    result
}

/// Runs `cmd` as the last thing xtask does, passing on its exit status.
#[expect(clippy::print_stderr, reason = "xtask narrates what it runs")]
pub fn exec(mut cmd: Command) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let line = show(&cmd);
    eprintln!("xtask: {line}");
    Err(cmd.exec()).with_context(|| format!("exec {line}"))
}
