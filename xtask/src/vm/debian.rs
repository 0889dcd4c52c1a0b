//! Kernel packages from Debian's archive, through apt itself: a private apt
//! root under the cache directory holds the suites of the matrix, so apt
//! checks the archive's signatures and resolves metapackages, and the
//! host's own apt configuration is left alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::arch::Arch;
use crate::{setup, sh};

/// A private apt root for downloading packages of other suites.
pub struct AptRoot {
    dir: PathBuf,
    /// Debian's name of the packages' architecture.
    arch: &'static str,
}

/// The keyring that signs every Debian suite of the matrix.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

impl AptRoot {
    /// Sets up (or reuses) the apt root in `dir` for `suites` of the host's
    /// Debian mirror and `arch`'s packages, and refreshes its package
    /// lists when the suites changed or the lists are older than a day.
    pub fn open(dir: &Path, arch: Arch, suites: &[&str]) -> Result<Self> {
        let root = Self {
            dir: dir.to_owned(),
            arch: arch.debian(),
        };
        for sub in ["state/lists/partial", "cache/archives/partial", "parts"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let status = dir.join("status");
        if !status.exists() {
            std::fs::write(&status, "").context("creating the apt root's status file")?;
        }
        let mirror = setup::debian_mirror()?;
        let mut sources = String::new();
        for suite in suites {
            sources.push_str(&format!(
                "deb [signed-by={KEYRING}] {mirror} {suite} main\n"
            ));
        }
        let list = dir.join("sources.list");
        let same = std::fs::read_to_string(&list).is_ok_and(|old| old == sources);
        let stamp = dir.join("updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() < 24 * 3600);
        if !same || !fresh {
            std::fs::write(&list, sources).context("writing the apt root's sources.list")?;
            sh::run(root.apt("apt-get").args(["-q", "update"]))
                .context("apt-get update of the kernel suites")?;
            std::fs::write(&stamp, "").context("stamping the apt root")?;
        }
        Ok(root)
    }

    /// `apt-get`/`apt-cache` confined to this root.
    fn apt(&self, tool: &str) -> Command {
        let d = self.dir.display();
        let mut cmd = Command::new(tool);
        for (key, value) in [
            ("Dir::Etc::SourceList", format!("{d}/sources.list")),
            ("Dir::Etc::SourceParts", format!("{d}/parts")),
            ("Dir::Etc::Preferences", format!("{d}/preferences")),
            ("Dir::Etc::PreferencesParts", format!("{d}/parts")),
            ("Dir::State", format!("{d}/state")),
            ("Dir::State::status", format!("{d}/status")),
            ("Dir::Cache", format!("{d}/cache")),
            ("APT::Architecture", self.arch.to_owned()),
            ("APT::Architectures", self.arch.to_owned()),
            ("Acquire::Languages", "none".to_owned()),
            ("Debug::NoLocking", "1".to_owned()),
            // The cache is root's own directory: no need to drop to _apt.
            ("APT::Sandbox::User", "root".to_owned()),
        ] {
            cmd.arg("-o").arg(format!("{key}={value}"));
        }
        cmd
    }

    /// One field of `package`'s record in `suite` (`package/suite` when a
    /// suite is given).
    fn field(&self, package: &str, suite: Option<&str>, field: &str) -> Result<String> {
        let spec = match suite {
            Some(s) => format!("{package}/{s}"),
            None => package.to_owned(),
        };
        let out = sh::output(
            self.apt("apt-cache")
                .args(["show", "--no-all-versions", &spec]),
        )
        .with_context(|| format!("apt-cache show {spec}: no such package"))?;
        record_field(&out, field).with_context(|| format!("{spec} has no {field} field"))
    }

    /// Resolves `package` in `suite` to the kernel packages to download:
    /// the versioned `linux-image-<release>` (through the metapackage when
    /// `package` is one) and its companions of the same release (newer
    /// kernels split the image into linux-binary/linux-modules packages).
    pub fn resolve(&self, package: &str, suite: &str) -> Result<Kernel> {
        let mut image = package.to_owned();
        let mut version = self.field(package, Some(suite), "Version")?;
        if !is_versioned_image(&image) {
            let depends = self.field(package, Some(suite), "Depends")?;
            let (name, v) = dependencies(&depends)
                .into_iter()
                .find(|(n, _)| is_versioned_image(n))
                .with_context(|| {
                    format!("{package}/{suite} depends on no linux-image-<release>")
                })?;
            image = name;
            version = v.unwrap_or(version);
        }
        let release = image
            .strip_prefix("linux-image-")
            .context("not a linux-image package")?
            .to_owned();
        let depends = self.field(&image, None, "Depends").unwrap_or_default();
        let mut packages = vec![(image, version.clone())];
        for (name, v) in dependencies(&depends) {
            if name.ends_with(&format!("-{release}")) {
                packages.push((name, v.unwrap_or_else(|| version.clone())));
            }
        }
        Ok(Kernel {
            release,
            version,
            packages,
        })
    }

    /// Downloads the kernel's packages into `dest` (skipping those already
    /// there) and returns their paths.
    pub fn download(&self, kernel: &Kernel, dest: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dest)?;
        let mut debs = Vec::new();
        for (name, version) in &kernel.packages {
            let prefix = format!("{name}_{}_", version.replace(':', "%3a"));
            let find = || -> Option<PathBuf> {
                std::fs::read_dir(dest)
                    .ok()?
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
                    })
            };
            if find().is_none() {
                sh::run(
                    self.apt("apt-get")
                        .args(["-q", "download", &format!("{name}={version}")])
                        .current_dir(dest),
                )?;
            }
            debs.push(find().with_context(|| format!("apt-get download left no {prefix}*.deb"))?);
        }
        Ok(debs)
    }
}

/// A kernel resolved from the matrix.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-50-cloud-amd64`.
    pub release: String,
    /// Debian package version, e.g. `6.1.176-1`.
    pub version: String,
    /// Packages (name, version) that together hold the image and modules.
    pub packages: Vec<(String, String)>,
}

/// `linux-image-<release>` as opposed to the metapackage
/// `linux-image-<flavour>`: a release starts with a digit.
fn is_versioned_image(name: &str) -> bool {
    name.strip_prefix("linux-image-")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// The value of `field` in an apt record (first record only).
fn record_field(record: &str, field: &str) -> Option<String> {
    let prefix = format!("{field}:");
    record
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
}

/// Parses a Depends field into (name, exact version) pairs; alternatives
/// (`a | b`) contribute their first choice.
fn dependencies(depends: &str) -> Vec<(String, Option<String>)> {
    depends
        .split(',')
        .filter_map(|d| {
            let first = d.split('|').next()?.trim();
            let (name, rest) = match first.split_once('(') {
                Some((n, r)) => (n.trim(), Some(r)),
                None => (first, None),
            };
            let version = rest
                .and_then(|r| r.trim().strip_prefix('='))
                .map(|v| v.trim_end_matches(')').trim().to_owned());
            (!name.is_empty()).then(|| (name.to_owned(), version))
        })
        .collect()
}

/// Unpacks a .deb into `dir`.
pub fn extract(deb: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    sh::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))
}

/// Fails unless `path` exists, naming what it should have been.
pub fn expect_file(path: &Path, what: &str) -> Result<()> {
    if !path.exists() {
        bail!("{what}: {} does not exist", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_fields() {
        let d = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), kmod";
        assert_eq!(
            dependencies(d),
            vec![
                ("dracut".to_owned(), None),
                (
                    "linux-base-7.3.4+deb13-cloud-amd64".to_owned(),
                    Some("7.3.4-1~bpo13+1".to_owned())
                ),
                ("kmod".to_owned(), None),
            ]
        );
        assert!(is_versioned_image("linux-image-6.1.0-50-cloud-amd64"));
        assert!(!is_versioned_image("linux-image-cloud-amd64"));
        let record = "Package: x\nVersion: 1.2\nDepends: a\n\nPackage: x\nVersion: 9\n";
        assert_eq!(record_field(record, "Version").as_deref(), Some("1.2"));
        assert_eq!(record_field(record, "Size"), None);
    }
}
