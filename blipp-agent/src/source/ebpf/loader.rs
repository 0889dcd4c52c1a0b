//! An aya loader made without parsing the kernel's BTF.
//!
//! `EbpfLoader::new` parses `/sys/kernel/btf/vmlinux` whatever the loader is
//! told afterwards (aya#1172): 30 ms of blippd's start-up and some 17 MB on a
//! 6.18 kernel. blippd's object needs none of it: aya uses the kernel's BTF
//! only for CO-RE relocations, which aya-ebpf programs do not have (the
//! agent hands the programs their struct offsets as globals, see
//! [`btf`](super::btf), and a test checks that the object has no
//! relocations), and the BTF tracepoints are attached with
//! [`attach_btf`](super::attach_btf). So the loader is made on a thread of
//! its own under a one-rule seccomp filter that fails every `open` with
//! `ENOENT`: aya's read of the file fails at once, and the loader carries
//! no BTF. The filter is the thread's alone (no `TSYNC`) and ends with it.
//! Where the filter cannot be installed, the loader is made as aya makes it,
//! and its parse is dropped.

use aya::EbpfLoader;

/// `AUDIT_ARCH_*` of this build's architecture (linux/audit.h): the
/// filter fails opens only for system calls of this ABI.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The system calls that open a file by name on this architecture.
#[cfg(target_arch = "x86_64")]
const OPENS: [libc::c_long; 3] = [libc::SYS_open, libc::SYS_openat, libc::SYS_openat2];
#[cfg(target_arch = "aarch64")]
const OPENS: [libc::c_long; 2] = [libc::SYS_openat, libc::SYS_openat2];

/// A loader that holds no kernel BTF.
pub fn without_kernel_btf() -> EbpfLoader<'static> {
    let made = std::thread::Builder::new()
        .name("blipp-loader".to_owned())
        .spawn(|| {
            if let Err(e) = refuse_opens() {
                tracing::debug!(error = %e, "no seccomp filter for the eBPF loader: aya parses the kernel's BTF");
            }
            EbpfLoader::new()
        })
        .ok()
        .and_then(|t| t.join().ok());
    let mut loader = made.unwrap_or_default();
    loader.btf(None);
    loader
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn stmt(code: u32, k: u32) -> libc::sock_filter {
    jump(code, k, 0, 0)
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The classic BPF program: `ENOENT` for an open of this ABI, everything
/// else allowed.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn filter() -> Vec<libc::sock_filter> {
    const ARCH_AT: u32 = 4; // offsetof(struct seccomp_data, arch)
    const NR_AT: u32 = 0; // offsetof(struct seccomp_data, nr)
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let equal = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let n = OPENS.len() as u8;
    let mut prog = vec![
        stmt(load, ARCH_AT),
        // Another ABI: to the allow at the end.
        jump(equal, AUDIT_ARCH, 0, n + 1),
        stmt(load, NR_AT),
    ];
    for (i, nr) in OPENS.iter().enumerate() {
        // A match jumps over the remaining tests and the allow.
        prog.push(jump(equal, *nr as u32, n - i as u8, 0));
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::ENOENT as u32,
    ));
    prog
}

/// Elsewhere the loader is made as aya makes it.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn refuse_opens() -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Installs [`filter`] on the calling thread.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn refuse_opens() -> std::io::Result<()> {
    let prog = filter();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `fprog` points at `prog`, alive for the
    // call. No new privileges is a flag of this thread only, which ends
    // once the loader is made: without it, the filter needs CAP_SYS_ADMIN.
    let ok = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &raw const fprog,
            ) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn the_filtered_thread_opens_nothing_and_others_open_as_before() {
        let opened = std::thread::spawn(|| {
            refuse_opens().unwrap();
            std::fs::File::open("/proc/self/stat").map_err(|e| e.kind())
        })
        .join()
        .unwrap();
        assert_eq!(opened.unwrap_err(), std::io::ErrorKind::NotFound);
        assert!(std::fs::File::open("/proc/self/stat").is_ok());
    }

    #[test]
    fn the_loader_holds_no_btf() {
        assert!(format!("{:?}", without_kernel_btf()).contains("btf: None"));
    }

    /// What makes a loader without BTF right: with relocations to apply,
    /// aya would load the programs unrelocated.
    #[test]
    fn the_object_has_no_co_re_relocations() {
        let object = super::super::object::loadable(super::super::OBJECT).unwrap();
        let parsed = aya_obj::Object::parse(&object).unwrap();
        assert!(!parsed.has_btf_relocations());
    }
}
