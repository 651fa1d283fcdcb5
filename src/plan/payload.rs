//! Payload notation, templates and frame patterns: how a user writes the bytes of a message
//! (first messages, `--send`, heartbeats, replies, message templates) and what a server frame
//! must look like (`--expect`, `--reply`).
//!
//! # Payloads ([`parse_payload`])
//!
//! | form | frame | bytes |
//! |---|---|---|
//! | `TEXT` | text | `TEXT` with escapes `\r \n \t \\ \0 \xNN \u{…} \@` and placeholders |
//! | `text:TEXT` / `binary:TEXT` | text / binary | the same, frame type chosen |
//! | `hex:0a 1b…` | binary | hex digits (spaces allowed) |
//! | `base64:…` | binary | standard base64 |
//! | `@FILE` | binary | the file's bytes as they are (`text:@FILE` for a text frame) |
//!
//! Placeholders in text forms: `{conn}` (connection number), `{seq}`, `{ts}` (Unix ms of the
//! intended send), `{marker}` (the 32-byte latency marker), and in a reply `{1}`…`{9}` (groups
//! of the `re:` pattern that matched). Any other `{…}` is literal text, so JSON needs no
//! escaping. A text frame must be UTF-8: `\xNN` above `\x7f` needs `binary:`.
//!
//! # Patterns ([`Pattern::parse`])
//!
//! `TEXT` matches a frame that is exactly `TEXT`; `^TEXT` one that starts with it; `*TEXT` one
//! that contains it; `re:REGEX` a regular expression (bytes, unanchored — write `^…$` to
//! anchor). Escapes as for payloads. Text and binary frames are matched alike, as bytes.
//!
//! Everything here keeps its source text, so a plan travels to agents as text and is
//! compiled again there (a regex has no serialized form).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The frame type of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FrameType {
    #[default]
    Text,
    Binary,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Lit(Vec<u8>),
    /// The connection number.
    Conn,
    /// The timed message's sequence number.
    Seq,
    /// Unix ms of the intended send.
    Ts,
    /// The 32-byte latency marker.
    Marker,
    /// Group `n` (1–9) of the regex that matched (replies only).
    Group(u8),
    /// Where the padding to `--message-size` goes (message templates only).
    Pad,
}

impl Part {
    /// The placeholder as written (`{conn}`, `{1}`, …); `None` for literal bytes.
    pub fn placeholder(&self) -> Option<String> {
        Some(match self {
            Part::Lit(_) => return None,
            Part::Conn => "{conn}".into(),
            Part::Seq => "{seq}".into(),
            Part::Ts => "{ts}".into(),
            Part::Marker => "{marker}".into(),
            Part::Pad => "{pad}".into(),
            Part::Group(n) => format!("{{{n}}}"),
        })
    }
}

/// A `--message-text` template: split on `{conn}`, `{seq}`, `{ts}`, `{marker}` and `{pad}`,
/// with no escapes resolved (a JSON template may hold `\"`); a marker part is appended when the
/// template has none (the echo must be recognisable).
pub fn message_template(t: &str) -> Vec<Part> {
    let mut parts = template(t, false, false).expect("a template without escapes cannot fail");
    if !parts.contains(&Part::Marker) {
        parts.push(Part::Marker);
    }
    parts
}

/// Bytes with placeholders, and the frame type they go out in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Payload {
    pub frame: FrameType,
    pub parts: Vec<Part>,
}

impl Payload {
    /// A literal text payload.
    pub fn text(bytes: impl Into<Vec<u8>>) -> Payload {
        Payload {
            frame: FrameType::Text,
            parts: vec![Part::Lit(bytes.into())],
        }
    }

    /// A literal binary payload.
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Payload {
        Payload {
            frame: FrameType::Binary,
            parts: vec![Part::Lit(bytes.into())],
        }
    }

    /// The bytes when the payload has no placeholder.
    pub fn literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [Part::Lit(b)] => Some(b),
            [] => Some(&[]),
            _ => None,
        }
    }

    /// True when the payload uses `p`.
    pub fn has(&self, p: &Part) -> bool {
        self.parts.contains(p)
    }

    /// Render with `conn` and the regex groups of a match (no message placeholders).
    pub fn render(&self, conn: u64, groups: &[&[u8]], out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Lit(b) => out.extend_from_slice(b),
                Part::Conn => out.extend_from_slice(conn.to_string().as_bytes()),
                Part::Group(n) => {
                    if let Some(g) = groups.get(*n as usize) {
                        out.extend_from_slice(g);
                    }
                }
                Part::Seq | Part::Ts | Part::Marker | Part::Pad => {}
            }
        }
    }
}

/// Parse the payload notation (see the module docs). `allow_groups`: `{1}`…`{9}` are
/// placeholders (replies); elsewhere they are literal text.
pub fn parse_payload(s: &str, allow_groups: bool) -> Result<Payload, String> {
    let (forced, rest) = if let Some(r) = s.strip_prefix("text:") {
        (Some(FrameType::Text), r)
    } else if let Some(r) = s.strip_prefix("binary:") {
        (Some(FrameType::Binary), r)
    } else {
        (None, s)
    };
    if let Some(h) = rest.strip_prefix("hex:") {
        let bytes = decode_hex(h)?;
        return finish(forced.unwrap_or(FrameType::Binary), vec![Part::Lit(bytes)]);
    }
    if let Some(b) = rest.strip_prefix("base64:") {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| format!("{s:?}: not valid base64 ({e})"))?;
        return finish(forced.unwrap_or(FrameType::Binary), vec![Part::Lit(bytes)]);
    }
    if let Some(path) = rest.strip_prefix('@') {
        let bytes = std::fs::read(path).map_err(|e| {
            format!("cannot read {path}: {e} (write \\@ for a text that starts with @)")
        })?;
        return finish(forced.unwrap_or(FrameType::Binary), vec![Part::Lit(bytes)]);
    }
    let parts = template(rest, allow_groups, true)?;
    finish(forced.unwrap_or(FrameType::Text), parts)
}

fn finish(frame: FrameType, parts: Vec<Part>) -> Result<Payload, String> {
    if frame == FrameType::Text {
        for p in &parts {
            if let Part::Lit(b) = p
                && std::str::from_utf8(b).is_err()
            {
                return Err(
                    "a text frame must be UTF-8, and these bytes are not; prefix the payload \
                     with binary: to send a binary frame"
                        .into(),
                );
            }
        }
    }
    Ok(Payload { frame, parts })
}

/// Resolve escapes and split on placeholders.
/// Split on placeholders; with `escapes`, resolve the escapes of the payload notation (a
/// message template has none, and only it knows `{pad}`).
fn template(s: &str, allow_groups: bool, escapes: bool) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let mut rest = s;
    let push_lit = |lit: &mut Vec<u8>, parts: &mut Vec<Part>| {
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(lit)));
        }
    };
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let named = [
                ("{conn}", Part::Conn),
                ("{seq}", Part::Seq),
                ("{ts}", Part::Ts),
                ("{marker}", Part::Marker),
                ("{pad}", Part::Pad),
            ]
            .into_iter()
            .filter(|(_, part)| !escapes || *part != Part::Pad)
            .find(|(p, _)| rest.starts_with(p));
            if let Some((p, part)) = named {
                push_lit(&mut lit, &mut parts);
                parts.push(part);
                rest = &rest[p.len()..];
                continue;
            }
            let b = rest.as_bytes();
            if allow_groups && b.len() >= 3 && b[1].is_ascii_digit() && b[1] != b'0' && b[2] == b'}'
            {
                push_lit(&mut lit, &mut parts);
                parts.push(Part::Group(b[1] - b'0'));
                rest = &rest[3..];
                continue;
            }
        }
        if c == '\\' && escapes {
            let (bytes, used) = escape(rest)?;
            lit.extend_from_slice(&bytes);
            rest = &rest[used..];
            continue;
        }
        let mut buf = [0u8; 4];
        lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        rest = &rest[c.len_utf8()..];
    }
    push_lit(&mut lit, &mut parts);
    Ok(parts)
}

/// One escape at the start of `s` (which starts with `\`): its bytes and the length used.
fn escape(s: &str) -> Result<(Vec<u8>, usize), String> {
    let b = s.as_bytes();
    let one = |c: u8| Ok((vec![c], 2));
    match b.get(1) {
        Some(b'r') => one(b'\r'),
        Some(b'n') => one(b'\n'),
        Some(b't') => one(b'\t'),
        Some(b'0') => one(0),
        Some(b'\\') => one(b'\\'),
        Some(b'@') => one(b'@'),
        Some(b'x') => {
            let hex = s.get(2..4).ok_or("\\x needs two hex digits, e.g. \\x1e")?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| format!("\\x{hex} is not two hex digits (e.g. \\x1e)"))?;
            Ok((vec![v], 4))
        }
        Some(b'u') => {
            let end = s
                .find('}')
                .filter(|_| s[2..].starts_with('{'))
                .ok_or("\\u needs braces, e.g. \\u{1e} or \\u{20ac}")?;
            let code = u32::from_str_radix(&s[3..end], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("{} is not a Unicode scalar value", &s[..=end]))?;
            let mut buf = [0u8; 4];
            Ok((code.encode_utf8(&mut buf).as_bytes().to_vec(), end + 1))
        }
        Some(_) => {
            let c = s[1..].chars().next().unwrap_or(' ');
            Err(format!(
                "unknown escape \"\\{c}\"; the escapes are \\r \\n \\t \\0 \\\\ \\@ \\xNN \\u{{…}} \
                 (write \\\\ for a backslash)"
            ))
        }
        None => Err("ends with a lone backslash; write \\\\ for a backslash".into()),
    }
}

fn decode_hex(h: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = h.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex:{h}: an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "hex:{h}: {:?} is not a hex byte",
                        String::from_utf8_lossy(p)
                    )
                })
        })
        .collect()
}

/// How a server frame is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Contains(Vec<u8>),
    Regex(regex::bytes::Regex),
}

/// A frame pattern with its source text (see the module docs).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub src: String,
    pub matcher: Matcher,
}

impl PartialEq for Pattern {
    fn eq(&self, o: &Pattern) -> bool {
        self.src == o.src
    }
}

impl Eq for Pattern {}

impl Pattern {
    /// Parse `TEXT` (exact), `^TEXT` (prefix), `*TEXT` (contains) or `re:REGEX`.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let bytes = |t: &str| -> Result<Vec<u8>, String> {
            let parts = template(t, false, true)?;
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Part::Lit(b) => out.extend(b),
                    _ => {
                        return Err(format!(
                            "{s:?}: a pattern has no placeholders ({{conn}}, {{seq}}, …); use re: for \
                             variable parts"
                        ));
                    }
                }
            }
            Ok(out)
        };
        let matcher = if let Some(r) = s.strip_prefix("re:") {
            Matcher::Regex(
                regex::bytes::Regex::new(r)
                    .map_err(|e| format!("{s:?}: not a valid regex: {e}"))?,
            )
        } else if let Some(t) = s.strip_prefix('^') {
            Matcher::Prefix(bytes(t)?)
        } else if let Some(t) = s.strip_prefix('*') {
            Matcher::Contains(bytes(t)?)
        } else {
            Matcher::Exact(bytes(s)?)
        };
        if let Matcher::Exact(b) | Matcher::Prefix(b) | Matcher::Contains(b) = &matcher
            && b.is_empty()
            && !s.is_empty()
        {
            return Err(format!("{s:?}: the pattern is empty"));
        }
        Ok(Pattern {
            src: s.to_string(),
            matcher,
        })
    }

    /// A pattern matching frames that contain `bytes` (the `--first-message-expect` rule).
    pub fn contains(bytes: &[u8]) -> Pattern {
        let mut src = String::from("*");
        for &b in bytes {
            match b {
                b'\\' => src.push_str("\\\\"),
                b'{' => src.push_str("\\x7b"),
                0x20..=0x7e => src.push(b as char),
                _ => src.push_str(&format!("\\x{b:02x}")),
            }
        }
        Pattern {
            src,
            matcher: Matcher::Contains(bytes.to_vec()),
        }
    }

    /// Does `frame` match?
    pub fn matches(&self, frame: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Exact(b) => frame == b.as_slice(),
            Matcher::Prefix(b) => frame.starts_with(b),
            Matcher::Contains(b) => memchr::memmem::find(frame, b).is_some(),
            Matcher::Regex(r) => r.is_match(frame),
        }
    }

    /// Does `frame` match, and with which groups (group 0 is the whole match)?
    pub fn captures<'a>(&self, frame: &'a [u8], groups: &mut Vec<&'a [u8]>) -> bool {
        groups.clear();
        match &self.matcher {
            Matcher::Regex(r) => match r.captures(frame) {
                Some(c) => {
                    groups.extend(c.iter().map(|m| m.map_or(&b""[..], |m| m.as_bytes())));
                    true
                }
                None => false,
            },
            _ => {
                let m = self.matches(frame);
                if m {
                    groups.push(frame);
                }
                m
            }
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.src)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation() {
        let p = parse_payload("CONNECT\\n\\n\\0", false).unwrap();
        assert_eq!(p.frame, FrameType::Text);
        assert_eq!(p.literal(), Some(&b"CONNECT\n\n\0"[..]));
        let p = parse_payload("hex:c0 00", false).unwrap();
        assert_eq!(
            (p.frame, p.literal()),
            (FrameType::Binary, Some(&[0xc0u8, 0][..]))
        );
        let p = parse_payload("base64:wAA=", false).unwrap();
        assert_eq!(p.literal(), Some(&[0xc0u8, 0][..]));
        let p = parse_payload("{\"protocol\":\"json\",\"version\":1}\\x1e", false).unwrap();
        assert_eq!(
            p.literal(),
            Some(&b"{\"protocol\":\"json\",\"version\":1}\x1e"[..])
        );
        let p = parse_payload("text:\\u{20ac}", false).unwrap();
        assert_eq!(p.literal(), Some("€".as_bytes()));
        assert!(
            parse_payload("\\xff", false)
                .unwrap_err()
                .contains("binary:")
        );
        assert_eq!(
            parse_payload("binary:\\xff", false).unwrap().literal(),
            Some(&[0xffu8][..])
        );
        let p = parse_payload("id-{conn} {1}", true).unwrap();
        assert_eq!(
            p.parts,
            vec![
                Part::Lit(b"id-".to_vec()),
                Part::Conn,
                Part::Lit(b" ".to_vec()),
                Part::Group(1)
            ]
        );
        assert_eq!(
            parse_payload("{1}", false).unwrap().literal(),
            Some(&b"{1}"[..])
        );
        assert!(
            parse_payload("\\q", false)
                .unwrap_err()
                .contains("unknown escape")
        );
        assert!(parse_payload("hex:abc", false).is_err());
    }

    #[test]
    fn patterns() {
        assert!(Pattern::parse("2").unwrap().matches(b"2"));
        assert!(!Pattern::parse("2").unwrap().matches(b"20"));
        assert!(Pattern::parse("^40").unwrap().matches(b"40{\"sid\":1}"));
        assert!(Pattern::parse("*pong").unwrap().matches(b"{\"pong\":1}"));
        assert!(Pattern::parse("hex:d0 00").is_ok()); // exact "hex:d0 00" text, not bytes
        let r = Pattern::parse("re:^\\[\"(\\d+)\"").unwrap();
        let mut g = Vec::new();
        assert!(r.captures(b"[\"17\",\"x\"]", &mut g));
        assert_eq!(g[1], b"17");
        let json = serde_json::to_string(&r).unwrap();
        let back: Pattern = serde_json::from_str(&json).unwrap();
        assert!(back.matches(b"[\"3\"]"));
        let c = Pattern::contains(b"ok\r\n\\\xff");
        let back: Pattern = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(back.matches(b"x ok\r\n\\\xff y"));
        let c = Pattern::contains(b"welcome");
        let back: Pattern = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(back.matches(b"ok welcome!"));
        assert!(Pattern::parse("re:(").is_err());
    }
}
