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

use std::fs;
use std::io;
use std::path::PathBuf;

/// Where the kernel exposes sysctls.
const PROC_SYS: &str = "/proc/sys";

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

/// Reads a sysctl, e.g. `read_sysctl("net.ipv4.ip_local_port_range")` → `"32768\t60999"`
/// (surrounding whitespace trimmed).
pub fn read_sysctl(name: &str) -> io::Result<String> {
    let path = sysctl_path(name)?;
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
