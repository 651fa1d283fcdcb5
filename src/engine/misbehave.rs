//! What a misbehaving connection sends (`--misbehave`, see `plan::misbehave`), sans I/O: the
//! bytes of each bad frame, the invalid token, and the upgrade templates without credentials.
//! The shard side (when to send, how the answer is read) is `shard::misbehave`.

use super::ws::{self, RequestTemplate};
use crate::plan::misbehave::MisbehaveKind;
use crate::plan::{Auth, JwtPlacement, Plan, Target};

/// The token a `bad-token` connection offers: shaped like an HS256 JWT
/// (`{"alg":"HS256","typ":"JWT"}`, `{"sub":"wsscale-misbehave"}`) with a signature that
/// cannot validate.
pub const BAD_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3c3NjYWxlLW1pc2JlaGF2ZSJ9.aW52YWxpZC1zaWduYXR1cmU";

/// The payload length an `oversize-frame` header announces: 1 GiB.
pub const OVERSIZE_LEN: u64 = 1 << 30;
/// Bytes of that payload actually sent.
pub const OVERSIZE_SENT: usize = 1024;
/// `slow-reader`: frames of this size …
pub const SLOW_FRAME: usize = 16 * 1024;
/// … this many of them (256 KiB in all), sent at once and never read back.
pub const SLOW_FRAMES: usize = 16;

/// The upgrade requests of the two auth kinds for one target: `bad-token` (the plan's token
/// placement, [`BAD_TOKEN`] as the token) and `no-auth` (no credentials). Both drop any
/// `Authorization` header the plan adds.
#[derive(Debug, Clone)]
pub struct AuthTemplates {
    pub bad_token: RequestTemplate,
    pub no_auth: RequestTemplate,
}

impl AuthTemplates {
    pub fn for_target(plan: &Plan, target: &Target) -> AuthTemplates {
        let mut spec = plan.handshake.clone();
        spec.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        let query = match &plan.handshake.auth {
            Auth::Jwt {
                placement: JwtPlacement::Query(name),
                ..
            } => Some(name.as_str()),
            _ => None,
        };
        AuthTemplates {
            bad_token: ws::request_template(target, &spec, None, query),
            no_auth: ws::request_template(target, &spec, None, None),
        }
    }

    /// Append the upgrade request of `kind` (an auth kind) with `key` to `out`.
    pub fn write(&self, kind: MisbehaveKind, key: &[u8; 24], out: &mut Vec<u8>) {
        match kind {
            MisbehaveKind::NoAuth => self.no_auth.write(key, None, out),
            _ => self.bad_token.write(key, Some(BAD_TOKEN), out),
        }
    }
}

/// Append what a connection of `kind` sends once upgraded (nothing for the auth kinds) to
/// `out`, masked with `mask` where a client frame is masked.
pub fn write_misbehaviour(kind: MisbehaveKind, mask: [u8; 4], out: &mut Vec<u8>) {
    match kind {
        MisbehaveKind::BadToken | MisbehaveKind::NoAuth => {}
        MisbehaveKind::OversizeFrame => {
            out.push(0x80 | ws::opcode::BINARY);
            out.push(0x80 | 127);
            out.extend_from_slice(&OVERSIZE_LEN.to_be_bytes());
            out.extend_from_slice(&mask);
            // Zeros, masked.
            out.extend((0..OVERSIZE_SENT).map(|i| mask[i & 3]));
        }
        MisbehaveKind::MalformedFrame => {
            // FIN, RSV1-3 set, reserved opcode 0x3.
            let start = out.len();
            ws::write_client_frame(out, 0x3, b"hello", mask);
            out[start] = 0x80 | 0x70 | 0x3;
        }
        MisbehaveKind::UnmaskedFrame => {
            out.push(0x80 | ws::opcode::TEXT);
            out.push(5);
            out.extend_from_slice(b"hello");
        }
        MisbehaveKind::InvalidUtf8 => {
            ws::write_client_frame(out, ws::opcode::TEXT, &[0xff, 0xfe, 0xfd, 0xfc], mask);
        }
        MisbehaveKind::SlowReader => {
            let payload = vec![b'x'; SLOW_FRAME];
            for _ in 0..SLOW_FRAMES {
                ws::write_client_frame(out, ws::opcode::BINARY, &payload, mask);
            }
        }
        MisbehaveKind::AbruptClose => {
            // A header announcing 1 KiB and half of it: the connection is reset mid-frame.
            ws::write_client_frame(out, ws::opcode::BINARY, &[0; 1024], mask);
            out.truncate(out.len() - 512);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::FrameHeader;

    fn header(bytes: &[u8]) -> (FrameHeader, u64) {
        FrameHeader::parse(&mut std::io::Cursor::new(bytes))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn frames_break_exactly_one_rule() {
        let mask = [1, 2, 3, 4];
        let mut out = Vec::new();
        write_misbehaviour(MisbehaveKind::OversizeFrame, mask, &mut out);
        let (h, len) = header(&out);
        assert_eq!(len, OVERSIZE_LEN);
        assert!(h.mask.is_some());
        assert_eq!(out.len(), 14 + OVERSIZE_SENT);

        out.clear();
        write_misbehaviour(MisbehaveKind::UnmaskedFrame, mask, &mut out);
        let (h, len) = header(&out);
        assert!(h.mask.is_none());
        assert_eq!(len, 5);

        out.clear();
        write_misbehaviour(MisbehaveKind::MalformedFrame, mask, &mut out);
        // FIN, the three reserved bits, reserved opcode 3 (a parser refuses it).
        assert_eq!(out[0], 0xF3);
        assert_eq!(out[1], 0x80 | 5);

        out.clear();
        write_misbehaviour(MisbehaveKind::InvalidUtf8, mask, &mut out);
        let (h, len) = header(&out);
        let m = h.mask.unwrap();
        let payload: Vec<u8> = out[6..6 + len as usize]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ m[i & 3])
            .collect();
        assert!(std::str::from_utf8(&payload).is_err());

        out.clear();
        write_misbehaviour(MisbehaveKind::AbruptClose, mask, &mut out);
        let (_, len) = header(&out);
        assert_eq!(len, 1024);
        assert!(out.len() < 1024);

        out.clear();
        write_misbehaviour(MisbehaveKind::SlowReader, mask, &mut out);
        assert!(out.len() > SLOW_FRAME * SLOW_FRAMES);
    }
}
