//! The BTF aya is handed to attach the BTF tracepoint programs.
//!
//! aya finds a `tp_btf` program's attach point by looking the typedef
//! `btf_trace_<event>` up in a parsed BTF, by name, and passes its type id
//! to the kernel. Parsing the kernel's whole BTF for that costs some 20 ms
//! and 17 MB at start-up, for a handful of ids that blippd's own parse
//! (see [`btf`](super::btf)) already knows. So aya gets a BTF made of only
//! those typedefs, each at the id it has in the kernel's BTF, with a
//! 12-byte placeholder (`void *`) at every other id before them: the ids
//! aya reads are the kernel's.

use super::btf::Btf;

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: u32 = 24;
const KIND_PTR: u32 = 2;
const KIND_TYPEDEF: u32 = 8;

/// A little-endian BTF blob with `typedefs` (id, name) at their ids and
/// placeholders at the other ids up to the largest. Pure.
pub fn blob(typedefs: &[(u32, &str)]) -> Vec<u8> {
    let last = typedefs.iter().map(|(id, _)| *id).max().unwrap_or(0);
    let mut strings = vec![0u8];
    let mut named = vec![None; last as usize + 1];
    for (id, name) in typedefs {
        named[*id as usize] = Some(strings.len() as u32);
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
    }
    let type_len = 12 * last;
    let mut out = Vec::with_capacity((HEADER_LEN + type_len) as usize + strings.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[1, 0]); // version, flags
    for field in [HEADER_LEN, 0, type_len, type_len, strings.len() as u32] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    for name in named.iter().skip(1) {
        let (name_off, kind) = match name {
            Some(off) => (*off, KIND_TYPEDEF),
            None => (0, KIND_PTR),
        };
        // name, info (kind in bits 24-28), type: void.
        for word in [name_off, kind << 24, 0] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    out.extend_from_slice(&strings);
    out
}

/// aya's BTF for attaching the tracepoints `events`, from the kernel's.
pub fn for_events(kernel: &Btf, events: &[&str]) -> Result<aya::Btf, String> {
    let names: Vec<String> = events.iter().map(|e| format!("btf_trace_{e}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let found = kernel.typedef_ids(&names);
    aya::Btf::parse(&blob(&found), aya::Endianness::default())
        .map_err(|e| format!("the BTF for attaching tracepoints: {e}"))
}

#[cfg(test)]
mod tests {
    use aya_obj::btf::BtfKind;

    use super::*;

    #[test]
    fn each_typedef_is_at_its_id_for_aya_and_for_our_parser() {
        let wanted = [(3, "btf_trace_a"), (7, "btf_trace_bb"), (1, "btf_trace_c")];
        let data = blob(&wanted);
        let ours = Btf::parse(data.clone()).unwrap();
        let aya = aya::Btf::parse(&data, aya::Endianness::Little).unwrap();
        let names: Vec<&str> = wanted.iter().map(|(_, n)| *n).collect();
        let mut found = ours.typedef_ids(&names);
        found.sort_unstable();
        let mut want = wanted.to_vec();
        want.sort_unstable();
        assert_eq!(found, want);
        for (id, name) in wanted {
            assert_eq!(
                aya.id_by_type_name_kind(name, BtfKind::Typedef).unwrap(),
                id
            );
        }
        assert!(
            aya.id_by_type_name_kind("btf_trace_d", BtfKind::Typedef)
                .is_err()
        );
    }

    #[test]
    fn no_typedef_is_an_empty_btf() {
        let data = blob(&[]);
        assert_eq!(data.len(), 24 + 1);
        assert!(aya::Btf::parse(&data, aya::Endianness::Little).is_ok());
    }

    /// Against the running kernel's BTF: the ids aya finds in the small
    /// BTF are those it finds in the kernel's own.
    #[test]
    fn the_kernels_ids() {
        let Some(kernel) = super::super::btf::host_btf("the_kernels_ids") else {
            return;
        };
        let full = aya::Btf::from_sys_fs().unwrap();
        let events = ["sched_process_exec", "netif_receive_skb", "no_such_event"];
        let small = for_events(&kernel, &events).unwrap();
        for e in &events[..2] {
            let name = format!("btf_trace_{e}");
            assert_eq!(
                small.id_by_type_name_kind(&name, BtfKind::Typedef).unwrap(),
                full.id_by_type_name_kind(&name, BtfKind::Typedef).unwrap()
            );
        }
        assert!(
            small
                .id_by_type_name_kind("btf_trace_no_such_event", BtfKind::Typedef)
                .is_err()
        );
    }
}
