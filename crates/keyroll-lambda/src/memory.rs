//! Keeping the resident set small.
//!
//! Most of `bootstrap`'s resident memory is not heap but the binary's own pages: code, the
//! read-only data, and the dynamic relocation table the loader reads once at start-up
//! (about 1 MiB for a position-independent Rust binary of this size) and never again.
//! [`release_clean_file_pages`] tells the kernel to drop the process's *clean* file-backed
//! pages of the executable (those that are byte-for-byte the file's, so nothing is lost);
//! what an event needs again is mapped back from the page cache on first touch, a minor
//! fault costing well under a microsecond per page. `bootstrap` calls
//! [`release_between_events`] (which also trims the allocator) before each event: the first
//! one returns the relocation table and the set-up-only code, and the resident peak of a warm
//! container is that of its largest event rather than of everything it ever ran.
//!
//! In Lambda, the function's "Max Memory Used" also counts the page cache its files occupy;
//! the figure this lowers is the process's own resident set (`VmHWM`).
//!
//! Only mappings of the executable that are readable, not writable, and hold no anonymous
//! (copied-on-write) page are touched: a relocated read-only page (`.data.rel.ro` after the
//! loader wrote it) is anonymous and is never dropped.

/// What [`release_clean_file_pages`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Mappings advised.
    pub mappings: usize,
    /// Resident KiB they held before.
    pub resident_kib: u64,
}

/// Drops the resident clean pages of the executable's read-only mappings (see the module
/// documentation). Best effort: on any error (no `/proc`, an unexpected format) nothing is
/// done.
#[cfg(target_os = "linux")]
pub fn release_clean_file_pages() -> Released {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return Released::default();
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return Released::default();
    };
    let mut released = Released::default();
    for m in clean_mappings(&smaps, &exe.to_string_lossy()) {
        let Ok(len) = usize::try_from(m.end - m.start) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of the executable that is not writable and
        // holds no anonymous page, so every resident page equals the file's content and
        // MADV_DONTNEED only drops it from this process's page tables; the next access maps
        // the same bytes again from the page cache. No Rust object lives in it as mutable
        // data.
        let r = unsafe {
            libc::madvise(
                m.start as usize as *mut libc::c_void,
                len,
                libc::MADV_DONTNEED,
            )
        };
        if r == 0 {
            released.mappings += 1;
            released.resident_kib += m.rss_kib;
        }
    }
    released
}

#[cfg(not(target_os = "linux"))]
pub fn release_clean_file_pages() -> Released {
    Released::default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    rss_kib: u64,
}

/// The mappings of `path` in `/proc/self/smaps` text that are readable, not writable, and
/// without anonymous pages.
/// Before an event: the executable's clean pages (as [`release_clean_file_pages`]) and the
/// allocator's free memory (`malloc_trim`, glibc) go back to the kernel, so an event's peak
/// is what that event maps and allocates, not the sum of every earlier event's.
pub fn release_between_events() -> Released {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's allocator to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    release_clean_file_pages()
}

fn clean_mappings(smaps: &str, path: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    let mut current: Option<(Mapping, bool)> = None;
    let mut anon_free = false;
    let flush = |c: Option<(Mapping, bool)>, anon_free: bool, out: &mut Vec<Mapping>| {
        if let Some((m, eligible)) = c
            && eligible
            && anon_free
        {
            out.push(m);
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            flush(current.take(), anon_free, &mut out);
            let perms = fields.next().unwrap_or_default();
            // offset, device, inode, then the path (which may contain spaces).
            let name = fields.skip(3).collect::<Vec<_>>().join(" ");
            let eligible = name == path
                && perms.starts_with('r')
                && perms.as_bytes().get(1) == Some(&b'-')
                && perms.ends_with('p');
            current = Some((
                Mapping {
                    start,
                    end,
                    rss_kib: 0,
                },
                eligible,
            ));
            // Unknown until the `Anonymous:` line is seen.
            anon_free = false;
            continue;
        }
        let kib = || -> Option<u64> { line.split_whitespace().nth(1).and_then(|v| v.parse().ok()) };
        if line.starts_with("Rss:") {
            if let (Some((m, _)), Some(v)) = (current.as_mut(), kib()) {
                m.rss_kib = v;
            }
        } else if line.starts_with("Anonymous:") {
            anon_free = kib() == Some(0);
        }
    }
    flush(current, anon_free, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55930d000000-55930d100000 r--p 00000000 00:20 123 /opt/fn/bootstrap
Rss:                2076 kB
Anonymous:             0 kB
55930d100000-55930d900000 r-xp 00100000 00:20 123 /opt/fn/bootstrap
Rss:                8840 kB
Anonymous:             0 kB
55930d900000-55930d9c4000 r--p 00900000 00:20 123 /opt/fn/bootstrap
Rss:                 784 kB
Anonymous:           784 kB
55930d9c4000-55930d9ca000 rw-p 009c4000 00:20 123 /opt/fn/bootstrap
Rss:                  24 kB
Anonymous:            24 kB
7fe69ae00000-7fe69ae40000 r-xp 00000000 00:20 77 /usr/lib/libc.so.6
Rss:                 908 kB
Anonymous:             0 kB
7fe69af00000-7fe69af40000 r--p 00000000 00:00 0 
Rss:                   8 kB
Anonymous:             0 kB
55930e000000-55930e100000 r--p 00000000 00:20 124 /opt/fn/bootstrap
Rss:                   4 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_executable() {
        let m = clean_mappings(SMAPS, "/opt/fn/bootstrap");
        assert_eq!(
            m,
            vec![
                Mapping {
                    start: 0x55930d000000,
                    end: 0x55930d100000,
                    rss_kib: 2076
                },
                Mapping {
                    start: 0x55930d100000,
                    end: 0x55930d900000,
                    rss_kib: 8840
                },
            ],
            "never the relocated read-only data, the writable data, libraries, or a \
             mapping whose Anonymous line is missing"
        );
        assert!(clean_mappings(SMAPS, "/other").is_empty());
        assert!(clean_mappings("", "/opt/fn/bootstrap").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_keeps_the_process_working() {
        let before = std::fs::read_to_string("/proc/self/status").unwrap();
        let r = release_clean_file_pages();
        assert!(
            r.mappings > 0,
            "the test binary has read-only mappings: {r:?}"
        );
        // Code and constants are mapped back on use.
        let v: Vec<String> = (0..100).map(|i| format!("{i:>4}")).collect();
        assert_eq!(v[42], "  42");
        assert!(before.contains("VmRSS"));
    }
}
