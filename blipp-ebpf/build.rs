//! Rebuild the kernel programs when the BPF linker changes, and fail early with
//! a hint when it is missing (the README's commands install it).
use std::process::ExitCode;

fn main() -> ExitCode {
    match which::which("bpf-linker") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!(
                "cargo:warning=bpf-linker not found ({err}); run `cargo xtask setup` to install it"
            );
            ExitCode::FAILURE
        }
    }
}
