//! RFC 6455 rules on what a server sends inside frames (the frame header rules are in
//! [`super::ws`]): close payloads (§5.5.1, §7.4) and UTF-8 text (§8.1), checked without a
//! per-connection buffer. A violation fails the connection as `protocol`.

/// What is wrong with a close frame's payload, if anything (RFC 6455 §5.5.1, §7.4): a
/// one-byte payload, a code that must never be sent (< 1000, 1004–1006, 1015, 1016–2999,
/// ≥ 5000), or a reason that is not UTF-8. An empty payload (no code) is fine.
pub fn close_payload_violation(payload: &[u8]) -> Option<&'static str> {
    match payload.len() {
        0 => return None,
        1 => return Some("close frame with a one-byte payload"),
        _ => {}
    }
    let code = super::ws::close_code(payload);
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        return Some("close frame with a reserved or invalid code");
    }
    if std::str::from_utf8(&payload[2..]).is_err() {
        return Some("close reason is not valid UTF-8");
    }
    None
}

/// UTF-8 check of one fragment of a text message, carried across fragments in two bits:
/// `pending` is how many continuation bytes the previous fragment's last (incomplete)
/// character still needs. Returns the count this fragment leaves pending (always 0 when
/// `fin`), or `None` if the text is not UTF-8. A character split across fragments is checked
/// for its length, not for the ranges of its continuation bytes (that needs the lead byte,
/// which is not kept).
pub fn utf8_fragment(pending: u8, payload: &[u8], fin: bool) -> Option<u8> {
    let skip = pending as usize;
    if payload.len() < skip {
        // The character continues in a later fragment still.
        if payload.iter().any(|b| b & 0xC0 != 0x80) || fin {
            return None;
        }
        return Some(pending - payload.len() as u8);
    }
    if payload[..skip].iter().any(|b| b & 0xC0 != 0x80) {
        return None;
    }
    let rest = &payload[skip..];
    match std::str::from_utf8(rest) {
        Ok(_) => Some(0),
        Err(e) if e.error_len().is_none() && !fin => {
            // An incomplete character at the end: how many bytes it still needs.
            let tail = &rest[e.valid_up_to()..];
            let need = match tail[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            Some((need - tail.len()) as u8)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_payload_rules() {
        assert_eq!(close_payload_violation(b""), None);
        assert_eq!(close_payload_violation(&1000u16.to_be_bytes()), None);
        assert_eq!(close_payload_violation(&4000u16.to_be_bytes()), None);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(
                close_payload_violation(&code.to_be_bytes()).is_some(),
                "{code}"
            );
        }
        assert!(close_payload_violation(&[3]).is_some());
        assert!(close_payload_violation(&[0x03, 0xE8, 0xFF]).is_some());
        assert_eq!(close_payload_violation(&[0x03, 0xE8, b'o', b'k']), None);
    }

    #[test]
    fn utf8_across_fragments() {
        let euro = "€".as_bytes(); // E2 82 AC
        assert_eq!(utf8_fragment(0, b"abc", true), Some(0));
        assert_eq!(utf8_fragment(0, &[0xFF], true), None);
        assert_eq!(utf8_fragment(0, &euro[..1], false), Some(2));
        assert_eq!(utf8_fragment(0, &euro[..1], true), None);
        assert_eq!(utf8_fragment(2, &euro[1..2], false), Some(1));
        assert_eq!(utf8_fragment(1, &euro[2..], true), Some(0));
        assert_eq!(utf8_fragment(2, &[0x82, 0xAC, b'x'], true), Some(0));
        assert_eq!(utf8_fragment(2, b"xy", true), None);
        assert_eq!(utf8_fragment(0, &[b'a', 0xF0, 0x9F], false), Some(2));
    }
}
