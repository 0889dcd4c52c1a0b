//! The architectures blipp is built and proven for: this machine's
//! (x86_64) and arm64, cross-built here. Everything that differs between
//! them — the Rust target, the C cross tools, Debian's name for the
//! architecture, how QEMU boots it — is answered here, once.

use std::process::Command;

/// A CPU architecture blippd is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// x86_64 (Debian's amd64).
    #[value(name = "x86_64", alias = "amd64")]
    X86_64,
    /// 64-bit ARM (Debian's arm64, Rust's aarch64).
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl Arch {
    /// Both, in the order `cargo xtask test` runs them.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// The static (musl) Rust target of blippd.
    pub fn musl_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// Debian's name (package architecture, kernel flavour suffix).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Debian packages that build C and assembly (ring's) for the target
    /// and link the static binary. x86_64 has musl-gcc (musl-tools); for
    /// arm64, Debian's cross gcc compiles ring's freestanding C and
    /// assembly and links against the musl that the Rust target ships
    /// (self-contained crt objects and libc.a), so no musl cross
    /// toolchain is needed.
    pub fn build_packages(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["musl-tools"],
            Arch::Arm64 => &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
        }
    }

    /// Sets the C compiler, archiver and linker of a cross build on
    /// `cargo` (the cc crate and rustc pick these variables up).
    pub fn cross_env(self, cargo: &mut Command) -> &mut Command {
        match self {
            Arch::X86_64 => cargo,
            Arch::Arm64 => cargo
                .env("CC_aarch64_unknown_linux_musl", "aarch64-linux-gnu-gcc")
                .env("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar")
                .env(
                    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
                    "aarch64-linux-gnu-gcc",
                ),
        }
    }

    /// The Debian package with QEMU's system emulator for guests of this
    /// architecture.
    pub fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Arm64 => "qemu-system-arm",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn names() {
        assert_eq!(Arch::from_str("arm64", false), Ok(Arch::Arm64));
        assert_eq!(Arch::from_str("aarch64", false), Ok(Arch::Arm64));
        assert_eq!(Arch::from_str("amd64", false), Ok(Arch::X86_64));
        assert_eq!(Arch::Arm64.to_string(), "arm64");
        assert!(Arch::Arm64.musl_target().starts_with("aarch64-"));
        let mut cargo = Command::new("cargo");
        Arch::Arm64.cross_env(&mut cargo);
        assert!(
            cargo
                .get_envs()
                .any(|(k, v)| k == "CC_aarch64_unknown_linux_musl" && v.is_some())
        );
    }
}
