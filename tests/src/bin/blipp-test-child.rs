//! A process with known behaviour for the eBPF process tests: reads and
//! writes a block device with direct I/O, then exits with status 3.
//!
//! Usage: `blipp-test-child DEVICE READ_BYTES WRITE_BYTES`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dev, read, write] = args.as_slice() else {
        return ExitCode::from(2);
    };
    let (Ok(read), Ok(write)) = (read.parse::<usize>(), write.parse::<usize>()) else {
        return ExitCode::from(2);
    };
    let dev = std::path::Path::new(dev);
    if blipp_tests::loopdev::read_direct(dev, 4096, read / 4096).is_err()
        || blipp_tests::loopdev::write_direct(dev, 4096, write / 4096).is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::from(3)
}
