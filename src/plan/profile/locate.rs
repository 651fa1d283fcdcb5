//! Where in a profile an error is: byte offsets to `line:col`, and serde/toml error messages
//! turned into `file:line:col: what (did you mean …)` form.

use std::path::Path;

use crate::plan::error::PlanError;
use crate::plan::suggest::edit_distance;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The key a value at `offset` belongs to, guessed from the text before it on its line
/// (`key = value`, `{ a = 1, key = value }`, `key = [1, value]`).
fn key_before(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let eq = line.rfind('=')?;
    let lhs = &line[..eq];
    let key = lhs[lhs.rfind(['{', ',']).map_or(0, |i| i + 1)..]
        .trim()
        .trim_matches(['"', '\'']);
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    valid.then(|| key.to_string())
}

/// serde says "unknown field `x`, expected one of `a`, `b`"; turn that into a friendlier
/// message with a suggestion.
fn unknown_key_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let suggestion = expected
        .iter()
        .map(|e| (edit_distance(key, e), *e))
        .filter(|(d, e)| *d <= 2.max(e.len() / 4))
        .min()
        .map(|(_, e)| format!(" (did you mean '{e}'?)"))
        .unwrap_or_default();
    let valid = if expected.is_empty() {
        "none".to_string()
    } else {
        expected.join(", ")
    };
    Some(format!(
        "unknown key '{key}'{suggestion}; valid keys here: {valid}"
    ))
}

/// A toml/serde error as `path:line:col: message`. Only the message and span are used:
/// toml's own `Display` quotes the source line, which could hold a token.
pub(super) fn toml_error(e: &toml::de::Error, text: &str, path: &Path) -> PlanError {
    let msg = e.message().trim_end();
    let (at, message) = match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            let at = format!("{}:{line}:{col}", path.display());
            let message = if let Some(m) = unknown_key_message(msg) {
                m
            } else if let Some(rest) = msg.strip_prefix("missing field `") {
                let key = rest.split('`').next().unwrap_or_default();
                format!(
                    "missing key '{key}' in this table; add it (e.g. [[stages]] needs both duration and target)"
                )
            } else if msg == "duplicate key" {
                let key = text.get(span.clone()).unwrap_or_default().trim();
                format!("duplicate key '{key}'; each key may be set once, remove one of them")
            } else if msg.starts_with("invalid ") {
                match key_before(text, span.start) {
                    Some(key) => format!("invalid value for '{key}': {msg}"),
                    None => msg.to_string(),
                }
            } else {
                msg.to_string()
            };
            (at, message)
        }
        None => (
            path.display().to_string(),
            unknown_key_message(msg).unwrap_or_else(|| msg.to_string()),
        ),
    };
    PlanError::Profile { at, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("a\nbé=x", 5), (2, 3));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn key_guess() {
        let t = "x = 1\nramp = [1, 5]\n";
        assert_eq!(key_before(t, t.find('5').unwrap()).as_deref(), Some("ramp"));
        let t = "r = { initial = 5 }";
        assert_eq!(
            key_before(t, t.find('5').unwrap()).as_deref(),
            Some("initial")
        );
    }

    #[test]
    fn suggestion() {
        let m =
            unknown_key_message("unknown field `rmap`, expected one of `ramp`, `hold`").unwrap();
        assert!(m.contains("did you mean 'ramp'"), "{m}");
    }
}
