//! Reading and writing kernel settings under `/proc/sys`, and the ephemeral port range.
//!
//! Names use the `sysctl(8)` dotted form (`net.ipv4.ip_local_port_range`) and are checked
//! before they become a path: only `[a-z0-9_.-]`, no empty components, no leading or
//! trailing dot, no `..`. That keeps a name from ever pointing outside `/proc/sys`.
//! Interface-specific names whose interface contains a dot (`net.ipv4.conf.eth0.100.*`,
//! written with `/` by `sysctl(8)`) and uppercase interface names are therefore not
//! reachable here; wsscale does not need them.
//!
//! Errors are `std::io::Error`: bad names are `InvalidInput`; read/write failures keep the
//! OS error kind and add the path (and, for `PermissionDenied` on write, how to fix it).
//!
//! Values are compared whitespace-normalized ([`normalize_value`]: the kernel separates
//! fields with tabs, sysctl.d files with spaces). [`parse_sysctl_conf`] reads sysctl.d(5)
//! files — the shipped `sysctl/*.conf`, the files `wsscale tune --write` produces, and the
//! backups of `wsscale tune --apply`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the kernel exposes sysctls.
const PROC_SYS: &str = "/proc/sys";

/// Where `/proc` is mounted: the root that [`sysctl_path_at`] and preflight's readers take
/// (tests point them at a fake tree).
pub const PROC: &str = "/proc";

/// Checks that `name` is a plausible dotted sysctl name (`[a-z0-9_.-]`, no empty component).
pub fn validate_sysctl_name(name: &str) -> io::Result<()> {
    let invalid = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid sysctl name {name:?}: {why}; expected a dotted name such as \
                 net.ipv4.ip_local_port_range"
            ),
        ))
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
    {
        return invalid(&format!(
            "character {bad:?} is not allowed (only a-z, 0-9, '_', '.', '-')"
        ));
    }
    if name.contains("..") {
        return invalid("it contains \"..\"");
    }
    if name.starts_with('.') || name.ends_with('.') {
        return invalid("it starts or ends with '.'");
    }
    Ok(())
}

/// The `/proc/sys` path of a validated sysctl name.
pub fn sysctl_path(name: &str) -> io::Result<PathBuf> {
    validate_sysctl_name(name)?;
    Ok(PathBuf::from(PROC_SYS).join(name.replace('.', "/")))
}

/// The path of a validated sysctl name under the `/proc` tree at `proc_root`
/// (`sys/net/ipv4/...`).
pub fn sysctl_path_at(proc_root: &Path, name: &str) -> io::Result<PathBuf> {
    validate_sysctl_name(name)?;
    Ok(proc_root.join("sys").join(name.replace('.', "/")))
}

/// Reads a sysctl, e.g. `read_sysctl("net.ipv4.ip_local_port_range")` → `"32768\t60999"`
/// (surrounding whitespace trimmed).
pub fn read_sysctl(name: &str) -> io::Result<String> {
    read_sysctl_at(Path::new(PROC), name)
}

/// [`read_sysctl`] under the `/proc` tree at `proc_root`.
pub fn read_sysctl_at(proc_root: &Path, name: &str) -> io::Result<String> {
    let path = sysctl_path_at(proc_root, name)?;
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(err) => Err(io::Error::new(
            err.kind(),
            format!("cannot read sysctl {name} ({}): {err}", path.display()),
        )),
    }
}

/// Writes a sysctl, like `sysctl -w name=value`. Needs root (or `CAP_SYS_ADMIN` /
/// `CAP_NET_ADMIN` for `net.*` in the process's own network namespace).
pub fn write_sysctl(name: &str, value: &str) -> io::Result<()> {
    let path = sysctl_path(name)?;
    if value.trim().is_empty() || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid value {value:?} for sysctl {name}: it must be non-empty and on one \
                 line, e.g. \"1024 65535\""
            ),
        ));
    }
    fs::write(&path, format!("{}\n", value.trim())).map_err(|err| {
        let hint = if err.kind() == io::ErrorKind::PermissionDenied {
            format!(
                "; run as root (sudo sysctl -w {name}=\"{}\") or install the sysctl/*.conf \
                 file into /etc/sysctl.d/",
                value.trim()
            )
        } else {
            String::new()
        };
        io::Error::new(
            err.kind(),
            format!(
                "cannot write sysctl {name} ({}): {err}{hint}",
                path.display()
            ),
        )
    })
}

/// Parses the text of `net.ipv4.ip_local_port_range` (`"32768\t60999"`) into `(lo, hi)`.
pub fn parse_port_range(text: &str) -> io::Result<(u16, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot parse port range {text:?}: expected two ports, low then high"),
        )
    };
    let mut fields = text.split_whitespace();
    let lo: u16 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    let hi: u16 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    if fields.next().is_some() || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The ephemeral port range `(lo, hi)` of this network namespace.
pub fn local_port_range() -> io::Result<(u16, u16)> {
    parse_port_range(&read_sysctl("net.ipv4.ip_local_port_range")?)
}

/// How many ephemeral ports there are: the connections one source address can open to one
/// destination `ip:port` (`hi − lo + 1`; 28,232 with the default 32768–60999).
pub fn ephemeral_port_count() -> io::Result<u64> {
    let (lo, hi) = local_port_range()?;
    Ok(u64::from(hi) - u64::from(lo) + 1)
}

/// A sysctl value with runs of whitespace (the kernel prints tabs) collapsed to one space:
/// `"32768\t60999"` → `"32768 60999"`. Values are compared in this form.
pub fn normalize_value(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The whitespace-separated non-negative integers of a sysctl value (`"4096\t131072\t6291456"`
/// → `[4096, 131072, 6291456]`); `None` if any field is not one.
pub fn parse_numbers(text: &str) -> Option<Vec<u64>> {
    let values: Option<Vec<u64>> = text.split_whitespace().map(|f| f.parse().ok()).collect();
    values.filter(|v| !v.is_empty())
}

/// One assignment of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfEntry {
    /// 1-based line number, for messages.
    pub line: usize,
    /// Dotted sysctl name (validated).
    pub key: String,
    /// Value, whitespace-normalized.
    pub value: String,
    /// The line started with `-`: `sysctl --system` ignores a failure to set it.
    pub ignore_failure: bool,
}

/// Parses a sysctl.d(5) file: `key = value` lines; `#` and `;` start comment lines; blank
/// lines are skipped; a leading `-` means "ignore failures"; keys may use `/` instead of `.`
/// as separator (then the whole key must use `/`). Errors name the line and say what a valid
/// line looks like. A key set twice is an error (the file would silently depend on order).
pub fn parse_sysctl_conf(text: &str) -> io::Result<Vec<ConfEntry>> {
    let mut entries: Vec<ConfEntry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {line_no}: {why}; expected `key = value`, e.g. \
                     `net.ipv4.ip_local_port_range = 1024 65535`"
                ),
            )
        };
        let (ignore_failure, line) = match line.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("{raw:?} has no '='")))?;
        let key = key.trim();
        let key = if key.contains('/') && !key.contains('.') {
            key.replace('/', ".")
        } else {
            key.to_owned()
        };
        validate_sysctl_name(&key).map_err(|e| bad(e.to_string()))?;
        let value = normalize_value(value);
        if value.is_empty() {
            return Err(bad(format!("{key} has an empty value")));
        }
        if let Some(first) = entries.iter().find(|e| e.key == key) {
            return Err(bad(format!("{key} was already set on line {}", first.line)));
        }
        entries.push(ConfEntry {
            line: line_no,
            key,
            value,
            ignore_failure,
        });
    }
    Ok(entries)
}
