//! Hiding credentials in URLs before they are printed or written anywhere.
//!
//! Every message, report or probe line that shows a target (or coordinator) URL passes it
//! through [`redact_url`] first, so a password in the user info or a token in the query never
//! reaches a terminal, a log or a report file.

/// Query parameters whose values are credentials (compared case-insensitively).
pub const SECRET_QUERY_KEYS: &[&str] = &[
    "token",
    "access_token",
    "jwt",
    "auth",
    "password",
    "secret",
    "api_key",
    "apikey",
];

/// `url` with its credentials replaced by `***`: the password of the user info
/// (`ws://user:secret@host/` → `ws://user:***@host/`) and the values of the query parameters
/// in [`SECRET_QUERY_KEYS`] (`?room=1&token=abc` → `?room=1&token=***`). Everything else is
/// kept as given; a string that is not a URL is returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    // The authority ends where the URL parser ends it for ws/wss/http(s): at `/`, `?`, `#`
    // or `\`.
    let auth_len = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..auth_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[auth_len..];
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_query(query));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

/// `a=1&token=x` → `a=1&token=***` (see [`SECRET_QUERY_KEYS`]).
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value))
                if !value.is_empty()
                    && SECRET_QUERY_KEYS
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(name)) =>
            {
                format!("{name}=***")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_the_password() {
        assert_eq!(redact_url("ws://a:b@h:1/x?t=1"), "ws://a:***@h:1/x?t=1");
        assert_eq!(redact_url("ws://a@h/x"), "ws://a@h/x");
        assert_eq!(redact_url("ws://h/x@y"), "ws://h/x@y");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("ws://alice:PW@/x"), "ws://alice:***@/x");
        assert_eq!(redact_url("ws://a:p@ss@h"), "ws://a:***@h");
        assert_eq!(redact_url("wss://a:b@h?x=1#f"), "wss://a:***@h?x=1#f");
    }

    #[test]
    fn redacts_token_query_values() {
        assert_eq!(
            redact_url("ws://h/ws?room=1&token=abc&x=2"),
            "ws://h/ws?room=1&token=***&x=2"
        );
        assert_eq!(
            redact_url("ws://h/?access_token=a&JWT=b#frag"),
            "ws://h/?access_token=***&JWT=***#frag"
        );
        assert_eq!(
            redact_url("ws://h/?tokens=a&token="),
            "ws://h/?tokens=a&token="
        );
        assert_eq!(redact_url("ws://h?token=a"), "ws://h?token=***");
    }
}
