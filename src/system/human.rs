//! Number formatting for the people reading preflight and tune output: `100,000`,
//! `3.9 GiB`, `unlimited`. Machine output (JSON, sysctl lines) uses plain digits.

/// `1234567` → `"1,234,567"`; `u64::MAX` (`RLIM_INFINITY`) → `"unlimited"`.
pub fn count(n: u64) -> String {
    if n == u64::MAX {
        return "unlimited".to_owned();
    }
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes with a binary unit and one decimal: `4198` → `"4.1 KiB"`, `419_800_000` →
/// `"400.4 MiB"`; below 1 KiB in bytes (`"512 B"`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(20_000), "20,000");
        assert_eq!(count(1_048_576), "1,048,576");
        assert_eq!(count(u64::MAX), "unlimited");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4198), "4.1 KiB");
        assert_eq!(bytes(4 << 30), "4.0 GiB");
    }
}
