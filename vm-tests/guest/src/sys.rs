//! What an init has to do itself: mounts, module loading, bringing up an
//! interface, raw traffic and direct disk I/O, powering off.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(io::Error::other)
}

fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// The wall clock, µs since the epoch (blippd's sample `ts` unit).
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `mount -t fstype none target`, creating `target` first.
pub fn mount(fstype: &str, target: &str) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    let (src, t, ty) = (cstr("none")?, cstr(target)?, cstr(fstype)?);
    // SAFETY: valid NUL-terminated strings, no data argument.
    let ret = unsafe { libc::mount(src.as_ptr(), t.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    check(ret, &format!("mount {fstype} on {target}"))
}

/// Loads a kernel module from a file; one that is already loaded is fine.
pub fn load_module(path: &Path) -> io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = cstr("")?;
    // SAFETY: finit_module(fd, params, flags) with a valid fd and string.
    let ret =
        unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(io::Error::new(
            e.kind(),
            format!("finit_module {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Sends `count` empty-ish UDP datagrams to 127.0.0.1:`port` (nothing
/// listens: the kernel answers each with an ICMP error, not UDP).
pub fn send_datagrams(port: u16, count: u64) -> io::Result<()> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    for i in 0..count {
        socket.send_to(&i.to_be_bytes(), ("127.0.0.1", port))?;
    }
    Ok(())
}

/// Sets IFF_UP on an interface.
pub fn link_up(name: &str) -> io::Result<()> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "socket")?;
    // SAFETY: fd was just returned by socket(2) and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq passed.
    unsafe {
        check(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req),
            "SIOCGIFFLAGS",
        )?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req),
            "SIOCSIFFLAGS",
        )?;
    }
    Ok(())
}

/// Sends `count` broadcast Ethernet frames of `len` bytes (header
/// included) out of `ifname` through a packet socket: traffic whose size
/// the interface counters must show exactly, with no IP stack involved.
pub fn send_frames(ifname: &str, count: u32, len: usize) -> io::Result<()> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    check(fd, "socket(AF_PACKET)")?;
    // SAFETY: fd was just returned by socket(2) and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = cstr(ifname)?;
    // SAFETY: valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = i32::try_from(index).map_err(io::Error::other)?;
    addr.sll_halen = 6;
    addr.sll_addr[..6].fill(0xff);
    let mut frame = vec![0u8; len];
    frame[..6].fill(0xff); // broadcast destination
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]); // locally administered source
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
    for _ in 0..count {
        // SAFETY: frame and addr outlive the call; sizes are theirs.
        let sent = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A page-aligned buffer for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> io::Result<Self> {
        let layout = std::alloc::Layout::from_size_align(len, 4096).map_err(io::Error::other)?;
        // SAFETY: non-zero size layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::other("out of memory"));
        }
        Ok(Self { ptr, layout })
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Writes `writes` then reads `reads` blocks of `block` bytes with O_DIRECT,
/// one request each, at spread-out offsets (so the block layer merges none).
pub fn direct_io(device: &str, block: usize, writes: u32, reads: u32) -> io::Result<()> {
    use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)?;
    let buf = Aligned::new(block)?;
    // SAFETY: the allocation is `block` bytes and lives until the end.
    let data = unsafe { std::slice::from_raw_parts_mut(buf.ptr, block) };
    data.fill(0x5a);
    let offset = |i: u32| u64::from(i) * 2 * block as u64;
    for i in 0..writes {
        file.write_all_at(data, offset(i))?;
    }
    for i in 0..reads {
        file.read_exact_at(data, offset(i))?;
    }
    Ok(())
}

/// Flushes file systems and powers the machine off.
pub fn power_off() -> ! {
    // SAFETY: plain syscalls; reboot(2) does not return on success.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // If powering off failed, PID 1 exiting panics the kernel, and
    // `panic=-1` with QEMU's -no-reboot ends the VM all the same.
    std::process::exit(1)
}
