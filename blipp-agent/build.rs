//! Builds the kernel programs of `blipp-ebpf` for the BPF target so that
//! `blippd` can embed the object (see `source::ebpf`).
use anyhow::{Context as _, anyhow};

/// Keep in step with `xtask/src/setup.rs`.
const PINNED_NIGHTLY: &str = "nightly-2026-05-20";

fn installed(toolchain: &str) -> bool {
    std::process::Command::new("rustup")
        .args(["run", toolchain, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("agent crate has no parent directory"))?
        .join("blipp-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    // The kernel crate needs a nightly compiler (build-std) whose LLVM
    // bpf-linker can read: the pinned one when installed (`cargo xtask
    // setup` installs it where no nightly is), else `nightly`, unless
    // BLIPP_EBPF_TOOLCHAIN names another.
    println!("cargo:rerun-if-env-changed=BLIPP_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("BLIPP_EBPF_TOOLCHAIN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| installed(PINNED_NIGHTLY).then(|| PINNED_NIGHTLY.to_owned()));
    let toolchain = match toolchain.as_deref() {
        Some(name) => aya_build::Toolchain::Custom(name),
        None => aya_build::Toolchain::Nightly,
    };
    let features: &[&str] = if std::env::var_os("CARGO_FEATURE_FAULT_INJECTION").is_some() {
        &["fault-injection"]
    } else {
        &[]
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "blipp-ebpf",
            root_dir: root,
            features,
            ..Default::default()
        }],
        toolchain,
    )
}
