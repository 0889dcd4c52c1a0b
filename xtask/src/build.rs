//! `cargo xtask build`: the static release binaries, for this machine or
//! cross-built for arm64, with their sizes.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::arch::Arch;
use crate::{setup, sh};

/// The binaries a release ships.
const BINARIES: [&str; 2] = ["blippd", "blippcmd"];

/// Builds static release `blippd` and `blippcmd` for `arch` (the release
/// profile: optimised for size, fat LTO) and returns their paths.
pub fn release(arch: Arch) -> Result<Vec<PathBuf>> {
    setup::build_chain()?;
    setup::static_build(arch)?;
    let target = arch.musl_target();
    let mut cargo = sh::cargo();
    cargo.args([
        "build",
        "--release",
        "--target",
        target,
        "-p",
        "blipp-agent",
    ]);
    for bin in BINARIES {
        cargo.args(["--bin", bin]);
    }
    sh::run(arch.cross_env(&mut cargo))?;
    let dir = sh::target_dir()?.join(target).join("release");
    BINARIES
        .iter()
        .map(|b| {
            let path = dir.join(b);
            std::fs::metadata(&path)
                .with_context(|| format!("{} was not built", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// Builds and prints each binary's path and size.
#[expect(clippy::print_stdout, reason = "the sizes are the command's output")]
pub fn run(arch: Arch) -> Result<()> {
    for path in release(arch)? {
        let bytes = std::fs::metadata(&path)?.len();
        println!(
            "{} ({arch}, static): {bytes} bytes ({:.1} MiB)",
            path.display(),
            bytes as f64 / f64::from(1 << 20)
        );
    }
    Ok(())
}
