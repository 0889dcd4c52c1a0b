//! One kernel of the matrix, made bootable: its image and the modules the
//! guest needs to see its virtio disk and network card, in load order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::debian::{self, AptRoot, Kernel};
use crate::sh;

/// Drivers the guest needs. Each kernel has them built in or as modules;
/// their dependencies (virtio, virtio_ring, failover...) are found through
/// depmod.
pub const WANTED_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "virtio_net"];

/// A kernel ready to boot.
pub struct Bootable {
    /// What the matrix and apt said about it.
    pub kernel: Kernel,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// Uncompressed modules to load, in dependency order.
    pub modules: Vec<PathBuf>,
}

/// Downloads and unpacks `kernel` once into `cache/kernels/<release>` and
/// returns what booting it needs.
pub fn prepare(apt: &AptRoot, kernel: Kernel, cache: &Path) -> Result<Bootable> {
    let dir = cache.join("kernels").join(&kernel.release);
    let order_file = dir.join("load-order");
    if !order_file.exists() {
        let debs = apt.download(&kernel, &cache.join("debs"))?;
        let unpacked = cache.join("unpacked").join(&kernel.release);
        if unpacked.exists() {
            std::fs::remove_dir_all(&unpacked)?;
        }
        for deb in &debs {
            debian::extract(deb, &unpacked)?;
        }
        let result = gather(&unpacked, &kernel.release, &dir);
        std::fs::remove_dir_all(&unpacked)?;
        let order = result?;
        std::fs::write(&order_file, order.join("\n"))?;
    }
    let order = std::fs::read_to_string(&order_file)?;
    let vmlinuz = dir.join("vmlinuz");
    debian::expect_file(&vmlinuz, "kernel image")?;
    Ok(Bootable {
        modules: order
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| dir.join(l))
            .collect(),
        vmlinuz,
        kernel,
    })
}

/// Copies the image and the wanted modules (decompressed) out of an
/// unpacked kernel into `dir`; returns the module file names in load order.
fn gather(unpacked: &Path, release: &str, dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    // Older packages install /boot/vmlinuz-<release>; newer ones keep it
    // beside the modules.
    let image = [
        unpacked.join("boot").join(format!("vmlinuz-{release}")),
        unpacked
            .join("usr/lib/modules")
            .join(release)
            .join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .with_context(|| format!("{release}: no vmlinuz in /boot or /usr/lib/modules"))?;
    std::fs::copy(&image, dir.join("vmlinuz"))?;
    // Merged-/usr packages ship /usr/lib/modules; depmod -b looks in
    // <base>/lib/modules.
    let lib_modules = unpacked.join("lib/modules").join(release);
    if !lib_modules.exists() {
        let usr = unpacked.join("usr/lib/modules").join(release);
        debian::expect_file(&usr, "modules in the package")?;
        std::fs::create_dir_all(unpacked.join("lib/modules"))?;
        std::os::unix::fs::symlink(&usr, &lib_modules)?;
    }
    sh::run(Command::new("depmod").arg("-b").arg(unpacked).arg(release))?;
    let read = |name: &str| {
        std::fs::read_to_string(lib_modules.join(name))
            .with_context(|| format!("reading {name} of {release}"))
    };
    let deps = parse_modules_dep(&read("modules.dep")?);
    let builtin: Vec<String> = read("modules.builtin")?.lines().map(module_name).collect();
    let mut order = Vec::new();
    for wanted in WANTED_MODULES {
        if builtin.iter().any(|b| b == wanted) {
            continue;
        }
        if !deps.contains_key(*wanted) {
            bail!("{release}: module {wanted} is neither built in nor in modules.dep");
        }
        visit(wanted, &deps, &mut order);
    }
    let mut names = Vec::new();
    for path in order {
        let src = lib_modules.join(&path);
        let name = format!("{}.ko", module_name(&path));
        decompress(&src, &dir.join(&name))?;
        names.push(name);
    }
    Ok(names)
}

/// Adds `module`'s dependencies, then `module`, to `order` (by path).
fn visit(module: &str, deps: &HashMap<String, (String, Vec<String>)>, order: &mut Vec<String>) {
    let Some((path, needs)) = deps.get(module) else {
        return;
    };
    if order.contains(path) {
        return;
    }
    for dep in needs {
        visit(&module_name(dep), deps, order);
    }
    if !order.contains(path) {
        order.push(path.clone());
    }
}

/// `kernel/drivers/net/virtio_net.ko.xz` -> `virtio_net` (dashes become
/// underscores, as the kernel names modules).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// modules.dep: `path: dep-path dep-path...` -> name -> (path, dep paths).
fn parse_modules_dep(text: &str) -> HashMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (path, deps) = line.split_once(':')?;
            let path = path.trim();
            Some((
                module_name(path),
                (
                    path.to_owned(),
                    deps.split_whitespace().map(str::to_owned).collect(),
                ),
            ))
        })
        .collect()
}

/// Copies a module, decompressing `.xz`/`.zst`/`.gz` with the usual tools
/// (the guest loads plain ELF with `finit_module`).
fn decompress(src: &Path, dest: &Path) -> Result<()> {
    let name = src.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        std::fs::copy(src, dest)?;
        return Ok(());
    };
    let out = Command::new(tool)
        .args(["-d", "-c"])
        .arg(src)
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} -d {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(dest, out.stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_puts_dependencies_first() {
        let dep = "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz\n\
                   kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz\n\
                   kernel/net/core/failover.ko.xz:\n\
                   kernel/drivers/block/virtio_blk.ko.xz:\n";
        let deps = parse_modules_dep(dep);
        let mut order = Vec::new();
        visit("virtio_net", &deps, &mut order);
        visit("virtio_blk", &deps, &mut order);
        assert_eq!(
            order,
            [
                "kernel/net/core/failover.ko.xz",
                "kernel/drivers/net/net_failover.ko.xz",
                "kernel/drivers/net/virtio_net.ko.xz",
                "kernel/drivers/block/virtio_blk.ko.xz",
            ]
        );
        assert_eq!(
            module_name("kernel/drivers/x/virtio-pci.ko.zst"),
            "virtio_pci"
        );
    }
}
