//! Struct member offsets from the kernel's own BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The BTF-enabled tracepoint programs read kernel structs (`struct request`,
//! `struct net_device`, `struct task_struct`...) whose layout changes with
//! every kernel version and configuration. aya-ebpf has no CO-RE
//! relocations, so the agent does the relocation itself: it looks the
//! members up here at start-up and hands the byte offsets to the programs as
//! read-only globals, which the verifier sees as constants (so the programs'
//! loads are checked against the kernel's BTF like any direct access).
//!
//! Only what offset lookups need is parsed: the header, the string section
//! and the type records (their kind-specific tails are skipped by size).

use std::collections::HashMap;

use super::blob::Blob;

/// Why BTF could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read (no BTF in this kernel).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data is not BTF as this parser knows it.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A struct the programs need does not exist in this kernel.
    #[error("no struct {0} in the kernel's BTF")]
    NoStruct(String),
    /// A member the programs need does not exist in this kernel.
    #[error("no member {member} in struct {within} (kernel BTF)")]
    NoMember {
        /// The struct searched.
        within: String,
        /// The member's name.
        member: String,
    },
    /// The member is a bitfield or of an unexpected shape.
    #[error("member {0} is a bitfield or not addressable")]
    Unaddressable(String),
}

/// Where the kernel's BTF lives.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One type record: where it starts in the type section and its header.
#[derive(Clone, Copy)]
struct TypeRec {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
    /// Offset of the kind-specific tail in the type section.
    tail: usize,
}

/// A member found by [`Btf::member`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Byte offset from the start of the outermost struct.
    pub offset: u32,
    /// Byte size of the member's type.
    pub size: u32,
}

/// The parsed type graph of one BTF blob.
pub struct Btf {
    data: Blob,
    str_start: usize,
    str_len: usize,
    type_start: usize,
    /// Index 0 is the implicit `void`.
    types: Vec<TypeRec>,
    /// Struct and union names to their type ids (first definition wins).
    structs: HashMap<String, u32>,
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let data = Blob::of_kernel_file(
            std::path::Path::new(VMLINUX),
            crate::limits::KERNEL_FILE_MAX,
        )
        .map_err(|source| BtfError::Read {
            path: VMLINUX.to_owned(),
            source,
        })?;
        Self::parse_blob(data)
    }

    /// Parses a little-endian BTF blob. Pure.
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        Self::parse_blob(Blob::Read(data))
    }

    fn parse_blob(data: Blob) -> Result<Self, BtfError> {
        let bad = BtfError::Malformed;
        if u16_at(&data, 0) != Some(MAGIC) {
            return Err(bad("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(&data, 4).ok_or(bad("short header"))? as usize;
        let field = |i: usize| u32_at(&data, 8 + 4 * i).map(|v| v as usize);
        let (type_off, type_len, str_off, str_len) = match (field(0), field(1), field(2), field(3))
        {
            (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
            _ => return Err(bad("short header")),
        };
        let type_start = hdr_len + type_off;
        let str_start = hdr_len + str_off;
        if type_start + type_len > data.len() || str_start + str_len > data.len() {
            return Err(bad("sections beyond the end of the data"));
        }
        let mut btf = Btf {
            data,
            str_start,
            str_len,
            type_start,
            types: vec![TypeRec {
                name_off: 0,
                kind: 0,
                vlen: 0,
                kind_flag: false,
                size_or_type: 0,
                tail: 0,
            }],
            structs: HashMap::new(),
        };
        let mut at = 0usize;
        while at < type_len {
            let base = type_start + at;
            let (Some(name_off), Some(info), Some(size_or_type)) = (
                u32_at(&btf.data, base),
                u32_at(&btf.data, base + 4),
                u32_at(&btf.data, base + 8),
            ) else {
                return Err(bad("truncated type record"));
            };
            let vlen = info & 0xffff;
            let kind = (info >> 24) & 0x1f;
            let tail_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen as usize,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                _ => return Err(bad("unknown type kind")),
            };
            let id = btf.types.len() as u32;
            btf.types.push(TypeRec {
                name_off,
                kind,
                vlen,
                kind_flag: info >> 31 == 1,
                size_or_type,
                tail: at + 12,
            });
            if matches!(kind, KIND_STRUCT | KIND_UNION) && name_off != 0 {
                let name = btf.name(name_off).to_owned();
                btf.structs.entry(name).or_insert(id);
            }
            at += 12 + tail_len;
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let off = off as usize;
        if off >= self.str_len {
            return "";
        }
        let bytes = &self.data[self.str_start + off..self.str_start + self.str_len];
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&TypeRec> {
        self.types.get(id as usize)
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// Byte size of a type.
    fn size_of(&self, id: u32) -> Option<u32> {
        let id = self.resolve(id)?;
        let t = self.ty(id)?;
        match t.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                Some(t.size_or_type)
            }
            KIND_PTR => Some(8),
            KIND_ARRAY => {
                let base = self.type_start + t.tail;
                let elem = u32_at(&self.data, base)?;
                let n = u32_at(&self.data, base + 8)?;
                self.size_of(elem)?.checked_mul(n)
            }
            _ => None,
        }
    }

    /// Members of a struct or union: (name, type id, bit offset, bitfield?).
    fn members(&self, id: u32) -> impl Iterator<Item = (&str, u32, u32, bool)> + '_ {
        let t = self.ty(id).copied();
        let (vlen, tail, kind_flag) = match t {
            Some(t) if matches!(t.kind, KIND_STRUCT | KIND_UNION) => {
                (t.vlen as usize, t.tail, t.kind_flag)
            }
            _ => (0, 0, false),
        };
        (0..vlen).filter_map(move |i| {
            let base = self.type_start + tail + 12 * i;
            let name_off = u32_at(&self.data, base)?;
            let ty = u32_at(&self.data, base + 4)?;
            let raw = u32_at(&self.data, base + 8)?;
            let (bit_off, bitfield) = if kind_flag {
                (raw & 0x00ff_ffff, raw >> 24 != 0)
            } else {
                (raw, false)
            };
            Some((self.name(name_off), ty, bit_off, bitfield))
        })
    }

    /// Finds `name` in struct/union `id`, descending into anonymous members.
    /// Returns (type id, byte offset).
    fn find(&self, id: u32, name: &str, depth: u32) -> Result<Option<(u32, u32)>, BtfError> {
        if depth > 8 {
            return Ok(None);
        }
        for (m_name, m_ty, bit_off, bitfield) in self.members(id) {
            if m_name == name {
                if bitfield || bit_off % 8 != 0 {
                    return Err(BtfError::Unaddressable(name.to_owned()));
                }
                return Ok(Some((m_ty, bit_off / 8)));
            }
            if m_name.is_empty()
                && let Some(inner) = self.resolve(m_ty)
                && let Some((ty, off)) = self.find(inner, name, depth + 1)?
            {
                return Ok(Some((ty, bit_off / 8 + off)));
            }
        }
        Ok(None)
    }

    /// The type ids of the typedefs named in `names` (the first of each
    /// name); names this BTF lacks are left out.
    pub fn typedef_ids<'n>(&self, names: &[&'n str]) -> Vec<(u32, &'n str)> {
        let mut found: Vec<(u32, &'n str)> = Vec::new();
        for (id, t) in self.types.iter().enumerate() {
            if t.kind != KIND_TYPEDEF {
                continue;
            }
            let name = self.name(t.name_off);
            if let Some(n) = names.iter().find(|n| **n == name)
                && !found.iter().any(|(_, f)| f == n)
            {
                found.push((id as u32, n));
            }
        }
        found
    }

    /// Whether struct `within` exists and has a member `name` (possibly in
    /// an anonymous struct or union).
    pub fn has_member(&self, within: &str, name: &str) -> bool {
        self.member(within, &[name]).is_ok()
    }

    /// The offset and size of `path` inside struct `within`: `["nd_net",
    /// "net"]` is `within.nd_net.net` (each step but the last must be an
    /// embedded struct or union, not a pointer).
    pub fn member(&self, within: &str, path: &[&str]) -> Result<Member, BtfError> {
        let mut id = *self
            .structs
            .get(within)
            .ok_or_else(|| BtfError::NoStruct(within.to_owned()))?;
        let mut offset = 0u32;
        let mut outer = within.to_owned();
        let mut ty = id;
        for name in path {
            let (m_ty, m_off) = self.find(id, name, 0)?.ok_or_else(|| BtfError::NoMember {
                within: outer.clone(),
                member: (*name).to_owned(),
            })?;
            offset += m_off;
            ty = m_ty;
            id = self.resolve(m_ty).unwrap_or(m_ty);
            outer = (*name).to_owned();
        }
        let size = self
            .size_of(ty)
            .ok_or_else(|| BtfError::Unaddressable(outer.clone()))?;
        Ok(Member { offset, size })
    }

    /// The byte size of struct `name`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs
            .get(name)
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))?;
        self.size_of(id)
            .ok_or_else(|| BtfError::Unaddressable(name.to_owned()))
    }
}

/// Makes every struct, union, enum, typedef, forward, function and
/// variable name of a BTF blob a C identifier, in place, by replacing other
/// bytes with `_`; returns how many names changed.
///
/// The kernel rejects a whole BTF blob over one invalid name, and Rust's
/// debug info has some (`MaybeUninit<u8>`, a union from aya-log-ebpf, which
/// bpf-linker leaves as is); without the object's BTF, aya refuses to load
/// BTF tracepoint programs. Names only label types: changing them changes
/// nothing the verifier checks.
pub fn sanitize_identifiers(blob: &mut [u8]) -> Result<usize, BtfError> {
    let btf = Btf::parse(blob.to_vec())?;
    let mut changed = 0;
    let mut seen = std::collections::HashSet::new();
    for t in &btf.types[1..] {
        let named = matches!(
            t.kind,
            KIND_STRUCT
                | KIND_UNION
                | KIND_ENUM
                | KIND_ENUM64
                | KIND_TYPEDEF
                | KIND_FWD
                | KIND_FUNC
                | KIND_VAR
        );
        if !named || t.name_off == 0 || !seen.insert(t.name_off) {
            continue;
        }
        let start = btf.str_start + t.name_off as usize;
        let end = blob[start..btf.str_start + btf.str_len]
            .iter()
            .position(|&b| b == 0)
            .map_or(btf.str_start + btf.str_len, |n| start + n);
        let mut fixed = false;
        for (i, b) in blob[start..end].iter_mut().enumerate() {
            let ok = b.is_ascii_alphabetic() || *b == b'_' || (i > 0 && b.is_ascii_digit());
            if !ok {
                *b = b'_';
                fixed = true;
            }
        }
        changed += usize::from(fixed);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob from type records (12-byte header + tail words).
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }
        fn ty(&mut self, name: &str, kind: u32, vlen: u32, flag: bool, st: u32, tail: &[u32]) {
            let name = self.s(name);
            let info = (u32::from(flag) << 31) | (kind << 24) | vlen;
            for w in [name, info, st].iter().chain(tail) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }
        fn finish(self) -> Vec<u8> {
            let mut d = Vec::new();
            d.extend_from_slice(&MAGIC.to_le_bytes());
            d.push(1); // version
            d.push(0); // flags
            d.extend_from_slice(&24u32.to_le_bytes());
            let tl = self.types.len() as u32;
            for w in [0, tl, tl, self.strings.len() as u32] {
                d.extend_from_slice(&w.to_le_bytes());
            }
            d.extend_from_slice(&self.types);
            d.extend_from_slice(&self.strings);
            d
        }
    }

    /// `struct inner { u32 a; u64 b; }`, `struct outer { u64 x; union {
    /// u32 y; struct inner in; }; struct inner *p; u32 bits:3; typedef'd
    /// u64 t; }`.
    fn sample() -> Btf {
        let mut b = Builder::new();
        // 1: u32, 2: u64
        b.ty("unsigned int", KIND_INT, 0, false, 4, &[32]);
        b.ty("u64", KIND_INT, 0, false, 8, &[64]);
        // 3: struct inner
        let a = b.s("a");
        let bb = b.s("b");
        b.ty("inner", KIND_STRUCT, 2, false, 16, &[a, 1, 0, bb, 2, 64]);
        // 4: anonymous union { u32 y; struct inner in; }
        let y = b.s("y");
        let inn = b.s("in");
        b.ty("", KIND_UNION, 2, false, 16, &[y, 1, 0, inn, 3, 0]);
        // 5: pointer to inner; 6: typedef u64 t_t
        b.ty("", KIND_PTR, 0, false, 3, &[]);
        b.ty("t_t", KIND_TYPEDEF, 0, false, 2, &[]);
        // 7: struct outer (kind_flag: bitfield encoding)
        let x = b.s("x");
        let p = b.s("p");
        let bits = b.s("bits");
        let t = b.s("t");
        b.ty(
            "outer",
            KIND_STRUCT,
            5,
            true,
            48,
            &[
                x,
                2,
                0,
                0,
                4,
                64,
                p,
                5,
                192,
                bits,
                1,
                (3 << 24) | 256,
                t,
                6,
                320,
            ],
        );
        Btf::parse(b.finish()).unwrap()
    }

    #[test]
    fn offsets_through_anonymous_unions_and_embedded_structs() {
        let btf = sample();
        assert_eq!(
            btf.member("outer", &["x"]).unwrap(),
            Member { offset: 0, size: 8 }
        );
        assert_eq!(
            btf.member("outer", &["y"]).unwrap(),
            Member { offset: 8, size: 4 }
        );
        assert_eq!(
            btf.member("outer", &["in", "b"]).unwrap(),
            Member {
                offset: 16,
                size: 8
            }
        );
        assert_eq!(
            btf.member("outer", &["p"]).unwrap(),
            Member {
                offset: 24,
                size: 8
            }
        );
        assert_eq!(
            btf.member("outer", &["t"]).unwrap(),
            Member {
                offset: 40,
                size: 8
            }
        );
        assert_eq!(btf.struct_size("inner").unwrap(), 16);
        assert!(btf.has_member("outer", "y"));
        assert!(!btf.has_member("outer", "z"));
    }

    #[test]
    fn missing_and_unaddressable_members_are_errors() {
        let btf = sample();
        assert!(matches!(
            btf.member("outer", &["nope"]),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member("nostruct", &["x"]),
            Err(BtfError::NoStruct(_))
        ));
        assert!(matches!(
            btf.member("outer", &["bits"]),
            Err(BtfError::Unaddressable(_))
        ));
    }

    #[test]
    fn garbage_is_rejected_not_a_panic() {
        assert!(Btf::parse(vec![]).is_err());
        assert!(Btf::parse(vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0xff, 0xff]).is_err());
        let mut d = sample_bytes();
        d.truncate(d.len() - 10);
        assert!(Btf::parse(d).is_err());
    }

    #[test]
    fn invalid_names_become_identifiers() {
        let mut b = Builder::new();
        b.ty("unsigned int", KIND_INT, 0, false, 4, &[32]);
        let v = b.s("value");
        b.ty("MaybeUninit<u8>", KIND_UNION, 1, false, 4, &[v, 1, 0]);
        b.ty("fine_name", KIND_STRUCT, 0, false, 0, &[]);
        let mut blob = b.finish();
        assert_eq!(sanitize_identifiers(&mut blob).unwrap(), 1);
        let btf = Btf::parse(blob.clone()).unwrap();
        assert!(btf.structs.contains_key("MaybeUninit_u8_"));
        assert!(btf.structs.contains_key("fine_name"));
        // INT names are not identifiers in C either, and the kernel does
        // not ask them to be.
        assert_eq!(sanitize_identifiers(&mut blob).unwrap(), 0);
    }

    fn sample_bytes() -> Vec<u8> {
        let mut b = Builder::new();
        b.ty("unsigned int", KIND_INT, 0, false, 4, &[32]);
        b.finish()
    }
}

/// The running kernel's BTF for a test that needs it, or `None` after
/// saying the test was skipped.
#[cfg(test)]
pub(crate) fn host_btf(test: &str) -> Option<Btf> {
    if !std::path::Path::new(VMLINUX).exists() {
        // The test suite's skip policy (tests/src/skip.rs), which this
        // crate cannot depend on: its variable makes a skip a failure.
        assert!(
            std::env::var("BLIPP_NO_SKIP").as_deref() != Ok("1"),
            "{test}: no {VMLINUX}; BLIPP_NO_SKIP=1 forbids skipping"
        );
        eprintln!("SKIPPED: {test} needs {VMLINUX}, which is missing here");
        return None;
    }
    Some(Btf::from_sys_fs().unwrap())
}

#[cfg(test)]
mod host_tests {
    use super::*;

    /// The running kernel's BTF, when it has one, agrees with what bpftool
    /// and pahole print for structs the programs read.
    #[test]
    fn host_vmlinux_offsets() {
        let Some(btf) = host_btf("host_vmlinux_offsets") else {
            return;
        };
        for (s, p) in [
            ("request", vec!["q"]),
            ("request", vec!["cmd_flags"]),
            ("request", vec!["start_time_ns"]),
            ("request", vec!["io_start_time_ns"]),
            ("request_queue", vec!["disk"]),
            ("gendisk", vec!["major"]),
            ("net_device", vec!["ifindex"]),
            ("net_device", vec!["nd_net", "net"]),
            ("net", vec!["ns", "inum"]),
            ("sk_buff", vec!["len"]),
            ("sk_buff", vec!["mac_header"]),
            ("task_struct", vec!["exit_code"]),
            ("task_struct", vec!["tgid"]),
        ] {
            let m = btf.member(s, &p).unwrap();
            eprintln!("{s}.{}: {m:?}", p.join("."));
        }
        assert_eq!(btf.member("request", &["q"]).unwrap().offset, 0);
        assert_eq!(btf.member("gendisk", &["major"]).unwrap().size, 4);
    }
}
