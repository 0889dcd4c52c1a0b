//! The embedded object, made loadable: its BTF names are sanitized (see
//! [`btf::sanitize_identifiers`]) before aya sees it.

use super::btf::{self, BtfError};

/// Why the object could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Not the 64-bit little-endian ELF the build produces.
    #[error("the embedded eBPF object is not a 64-bit little-endian ELF file")]
    NotElf,
    /// Its BTF does not parse.
    #[error("the embedded eBPF object's BTF: {0}")]
    Btf(#[from] BtfError),
}

fn u16_at(d: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(d: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn u64_at(d: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?)).ok()
}

/// The byte range of section `name` in an ELF64 little-endian file.
fn section(elf: &[u8], name: &str) -> Option<std::ops::Range<usize>> {
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return None;
    }
    let shoff = u64_at(elf, 0x28)?;
    let shentsize = u16_at(elf, 0x3a)?;
    let shnum = u16_at(elf, 0x3c)?;
    let shstrndx = u16_at(elf, 0x3e)?;
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let strtab = header(shstrndx)?;
    let strtab_off = u64_at(elf, strtab + 0x18)?;
    for i in 0..shnum {
        let h = header(i)?;
        let name_at = strtab_off.checked_add(u32_at(elf, h)?)?;
        let rest = elf.get(name_at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        if &rest[..end] == name.as_bytes() {
            let off = u64_at(elf, h + 0x18)?;
            let size = u64_at(elf, h + 0x20)?;
            let range = off..off.checked_add(size)?;
            return elf.get(range.clone()).map(|_| range);
        }
    }
    None
}

/// A copy of `elf` whose `.BTF` section the kernel accepts.
pub fn loadable(elf: &[u8]) -> Result<Vec<u8>, ObjectError> {
    let mut copy = elf.to_vec();
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err(ObjectError::NotElf);
    }
    if let Some(range) = section(elf, ".BTF") {
        let n = btf::sanitize_identifiers(&mut copy[range])?;
        if n > 0 {
            tracing::debug!(names = n, "renamed BTF types of the eBPF object");
        }
    }
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The object this agent embeds has BTF, and after sanitizing every
    /// type name is one the kernel accepts.
    #[test]
    fn embedded_object_becomes_loadable() {
        let obj = super::super::OBJECT;
        let range = section(obj, ".BTF").expect("the object has BTF");
        let mut copy = loadable(obj).unwrap();
        assert_eq!(copy.len(), obj.len());
        assert_eq!(
            btf::sanitize_identifiers(&mut copy[range]).unwrap(),
            0,
            "nothing left to fix"
        );
    }

    #[test]
    fn not_elf_is_an_error() {
        assert!(matches!(loadable(b"nope"), Err(ObjectError::NotElf)));
        assert!(section(b"\x7fELF\x02\x01", ".BTF").is_none());
    }
}
