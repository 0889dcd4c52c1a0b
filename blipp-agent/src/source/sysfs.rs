//! sysfs files blipp reads: kernel id lists (`0-3,8,10-11`, as in
//! `/sys/devices/system/cpu/online` and `node/online`) and the device
//! numbers of block devices. Pure parsers, and the reads behind them, so
//! that probes and the host description do not each read sysfs their own
//! way.

use std::path::Path;

use crate::limits::SMALL_FILE_MAX;

/// A kernel CPU or node list (`0-3,8,10-11`), as in
/// `/sys/devices/system/cpu/online`; `None` if malformed.
pub fn id_list(text: &str) -> Option<Vec<u32>> {
    let mut ids = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Some(ids);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                // A list of more than a million CPUs is not a real kernel's.
                if b < a || b - a > 1 << 20 {
                    return None;
                }
                ids.extend(a..=b);
            }
            None => ids.push(part.parse().ok()?),
        }
    }
    Some(ids)
}

/// A `major:minor` device number line, as in `/sys/block/<disk>/dev`.
pub fn device_number(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The device number of whole disk `name` when it is request-based
/// (blk-mq, known by its `mq` directory), from `<sys_dir>/block/<name>`.
pub fn blk_mq_device(sys_dir: &Path, name: &str) -> Option<(u32, u32)> {
    let block = sys_dir.join("block").join(name);
    if !block.join("mq").is_dir() {
        return None;
    }
    let text = crate::bounded::read_to_string(&block.join("dev"), SMALL_FILE_MAX).ok()?;
    device_number(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists() {
        assert_eq!(id_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(id_list("0\n"), Some(vec![0]));
        assert_eq!(id_list("\n"), Some(vec![]));
        assert_eq!(id_list("3-1"), None);
        assert_eq!(id_list("x"), None);
        assert_eq!(id_list("0-4294967295"), None, "no list of billions");
    }

    #[test]
    fn device_numbers() {
        assert_eq!(device_number("259:0\n"), Some((259, 0)));
        assert_eq!(device_number("8:16"), Some((8, 16)));
        assert_eq!(device_number("8"), None);
        assert_eq!(device_number("a:b"), None);
    }

    #[test]
    fn only_request_based_disks_have_a_device_here() {
        let dir = tempfile::tempdir().unwrap();
        let mq = dir.path().join("block/vda");
        std::fs::create_dir_all(mq.join("mq")).unwrap();
        std::fs::write(mq.join("dev"), "254:0\n").unwrap();
        let bio = dir.path().join("block/md0");
        std::fs::create_dir_all(&bio).unwrap();
        std::fs::write(bio.join("dev"), "9:0\n").unwrap();
        assert_eq!(blk_mq_device(dir.path(), "vda"), Some((254, 0)));
        assert_eq!(blk_mq_device(dir.path(), "md0"), None);
        assert_eq!(blk_mq_device(dir.path(), "sdz"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_are_total(text in "\\PC*") {
            let _ = id_list(&text);
            let _ = device_number(&text);
        }
    }
}
