//! `${NAME}` in a profile: replaced by the environment variable's value before the TOML is
//! parsed, so one profile serves every pod (`target = "ws://${GATEWAY_HOST}/ws"`). An unset
//! variable is an error naming it, the file and the line; `$${` writes a literal `${`. The
//! value goes in as it is (inside a TOML string, a `"` in it would end the string).

use std::borrow::Cow;
use std::path::Path;

use crate::plan::PlanError;

/// `text` with every `${NAME}` replaced by the variable's value (see the module docs).
pub fn expand<'a>(text: &'a str, path: &Path) -> Result<Cow<'a, str>, PlanError> {
    expand_with(text, path, |name| std::env::var(name).ok())
}

/// [`expand`] with the variables looked up by `var`.
pub fn expand_with<'a>(
    text: &'a str,
    path: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Cow<'a, str>, PlanError> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            // `$${` is a literal `${`.
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let offset = text.len() - rest.len() + at;
        let (line, col) = line_col(text, offset);
        let at_str = format!("{}:{line}:{col}", path.display());
        let Some((name, tail)) = body.split_once('}') else {
            return Err(PlanError::Profile {
                at: at_str,
                message: "`${` without a closing `}`; write ${NAME} for an environment \
                          variable, or $${ for the text ${"
                    .into(),
            });
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(PlanError::Profile {
                at: at_str,
                message: format!(
                    "${{{name}}} is not an environment variable name (letters, digits and `_`, \
                     not starting with a digit); write $${{ for the text ${{"
                ),
            });
        }
        match var(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(PlanError::Profile {
                    at: at_str,
                    message: format!(
                        "environment variable {name} is not set (used as ${{{name}}}); set it \
                         before the run (`export {name}=…`), or write $${{{name}}} for the text \
                         ${{{name}}}"
                    ),
                });
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST").then(|| "gw.example".to_string())
    }

    #[test]
    fn expands_escapes_and_names_the_unset_variable() {
        let p = Path::new("p.toml");
        let got = expand_with("a = \"ws://${HOST}/x $${HOST} $5\"", p, env).unwrap();
        assert_eq!(got, "a = \"ws://gw.example/x ${HOST} $5\"");
        let e = expand_with("x = 1\ny = \"${NOPE}\"\n", p, env)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2:6:"), "{e}");
        assert!(e.contains("environment variable NOPE is not set"), "{e}");
        assert!(expand_with("${HOST", p, env).is_err());
        assert!(expand_with("${1X}", p, env).is_err());
        assert!(matches!(expand_with("plain", p, env), Ok(Cow::Borrowed(_))));
    }
}
