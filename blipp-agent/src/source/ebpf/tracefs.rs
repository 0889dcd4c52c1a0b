//! tracefs: where tracepoints are found, and the field layout of each one.
//!
//! Field offsets of a tracepoint's record differ between kernels, so the
//! programs do not hard-code them: the agent reads
//! `events/<category>/<name>/format` and passes offsets in as globals.

use std::path::{Path, PathBuf};

use super::EbpfError;

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name (`rwbs`, `nr_sector`...).
    pub name: String,
    /// C declaration before the name (`unsigned int`, `char`...).
    pub ctype: String,
    /// Byte offset in the record.
    pub offset: u32,
    /// Byte size.
    pub size: u32,
}

/// Parses a tracepoint `format` file. Pure: tested on fixtures of several
/// kernels.
pub fn parse_format(text: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';').map(str::trim);
        let Some(decl) = parts.next() else { continue };
        let mut offset = None;
        let mut size = None;
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        // `char rwbs[10]` -> `rwbs`; `__data_loc char[] cmd` -> `cmd`;
        // `const char * name` -> `name`.
        let Some((ctype, last)) = decl.trim().rsplit_once(char::is_whitespace) else {
            continue;
        };
        let name = last.trim_start_matches('*');
        let name = name.split('[').next().unwrap_or(name);
        if let (Some(offset), Some(size)) = (offset, size) {
            fields.push(Field {
                name: name.to_owned(),
                ctype: ctype.trim().to_owned(),
                offset,
                size,
            });
        }
    }
    fields
}

/// Finds a field by name, checking it is at least `min_size` bytes.
pub fn field<'a>(
    fields: &'a [Field],
    tracepoint: &str,
    name: &str,
    min_size: u32,
) -> Result<&'a Field, EbpfError> {
    let f = fields
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| EbpfError::Format {
            tracepoint: tracepoint.to_owned(),
            problem: format!("no field {name}"),
        })?;
    if f.size < min_size {
        return Err(EbpfError::Format {
            tracepoint: tracepoint.to_owned(),
            problem: format!(
                "field {name} is {} bytes, expected at least {min_size}",
                f.size
            ),
        });
    }
    Ok(f)
}

/// Returns the tracefs root, mounting tracefs at /sys/kernel/tracing when
/// no one has (minimal hosts and VMs boot without it).
pub fn root() -> Result<PathBuf, EbpfError> {
    // A tracefs that is mounted but closed to this user (mode 0700 for an
    // unprivileged agent) is reported as such, not as "not mounted".
    let mut closed: Option<String> = None;
    for candidate in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let events = Path::new(candidate).join("events");
        match std::fs::metadata(&events) {
            Ok(m) if m.is_dir() => return Ok(PathBuf::from(candidate)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                closed.get_or_insert_with(|| format!("{}: {e}", events.display()));
            }
            _ => {}
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings or null.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(EbpfError::Tracefs(format!(
            "{}, and mount(tracefs, /sys/kernel/tracing): {}",
            closed.as_deref().unwrap_or("not mounted"),
            std::io::Error::last_os_error()
        )));
    }
    tracing::info!("mounted tracefs at /sys/kernel/tracing");
    Ok(PathBuf::from("/sys/kernel/tracing"))
}

/// Reads and parses `events/<category>/<name>/format`.
pub fn format(root: &Path, category: &str, name: &str) -> Result<Vec<Field>, EbpfError> {
    let path = root.join("events").join(category).join(name).join("format");
    let text =
        crate::bounded::read_to_string(&path, crate::limits::SMALL_FILE_MAX).map_err(|e| {
            EbpfError::Format {
                tracepoint: format!("{category}/{name}"),
                problem: format!("{}: {e}", path.display()),
            }
        })?;
    Ok(parse_format(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6.18's block_rq_complete (ioprio field, rwbs at 34).
    const RQ_COMPLETE_6_18: &str = "name: block_rq_complete
ID: 2107
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;
\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;
\tfield:int error;\toffset:28;\tsize:4;\tsigned:1;
\tfield:unsigned short ioprio;\toffset:32;\tsize:2;\tsigned:0;
\tfield:char rwbs[10];\toffset:34;\tsize:10;\tsigned:0;
\tfield:__data_loc char[] cmd;\toffset:44;\tsize:4;\tsigned:0;

print fmt: \"%d,%d %s (%s) %llu + %u [%d]\"
";

    /// 5.10's block_rq_complete (no ioprio, rwbs at 32, 8 bytes).
    const RQ_COMPLETE_5_10: &str = "name: block_rq_complete
ID: 1142
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;
\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;
\tfield:int error;\toffset:28;\tsize:4;\tsigned:1;
\tfield:char rwbs[8];\toffset:32;\tsize:8;\tsigned:1;
\tfield:__data_loc char[] cmd;\toffset:40;\tsize:4;\tsigned:1;
";

    #[test]
    fn offsets_differ_by_kernel() {
        let new = parse_format(RQ_COMPLETE_6_18);
        let old = parse_format(RQ_COMPLETE_5_10);
        assert_eq!(field(&new, "t", "rwbs", 4).unwrap().offset, 34);
        assert_eq!(field(&old, "t", "rwbs", 4).unwrap().offset, 32);
        assert_eq!(field(&new, "t", "nr_sector", 4).unwrap().offset, 24);
        assert_eq!(field(&new, "t", "dev", 4).unwrap().ctype, "dev_t");
        assert_eq!(field(&new, "t", "cmd", 4).unwrap().offset, 44);
        assert!(field(&old, "t", "ioprio", 2).is_err());
        assert!(field(&new, "t", "ioprio", 4).is_err(), "too small");
    }
}
