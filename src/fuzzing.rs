//! Entry points of the fuzz targets: every parser that sees untrusted bytes or text.
//!
//! The fuzzer (`fuzz/`, cargo-afl on stable Rust: `fuzz/run.sh TARGET SECONDS`) and the
//! normal test suite (`tests/fuzz_corpus.rs`, which replays the committed corpus in
//! `fuzz/corpus/TARGET/` and needs no fuzzer) call the same functions, listed in
//! [`TARGETS`]. Each takes arbitrary bytes and must return without panicking, whatever
//! they are; each also checks the invariants its parser promises (a frame's lengths fit
//! the bytes it was read from, a decoded value round-trips), so a fuzzer finds wrong
//! answers and not only crashes.
//!
//! This module sits at the top of the layers beside `cli`: it reaches into every parser.

use std::path::Path;

use crate::cluster::allow::AllowEntry;
use crate::cluster::wire::{AgentMsg, CoordMsg};
use crate::engine::marker::Marker;
use crate::engine::ws::{
    FrameParse, MAX_RESPONSE_HEAD, UpgradeResponse, close_code, connection_key, parse_frame_header,
    parse_upgrade_response,
};
use crate::plan::payload::{Pattern, parse_payload};
use crate::plan::presets::{self, PresetOptions};
use crate::plan::session::{OpenStep, Reply};
use crate::plan::{Overrides, units};

/// A fuzz target's entry point: arbitrary bytes in, no panic out.
pub type Entry = fn(&[u8]);

/// Every fuzz target: its name (the directory of its corpus) and its entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("upgrade_response", upgrade_response),
    ("frames", frames),
    ("inflate", inflate),
    ("protocol_decoders", protocol_decoders),
    ("wire_messages", wire_messages),
    ("profile", profile),
    ("units", units_and_specs),
];

/// The entry point of target `name`.
pub fn target(name: &str) -> Option<Entry> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The server's answer to the upgrade request (`httparse`, the accept-key check, and the
/// permessage-deflate answer against no offer and against the browser's offer).
pub fn upgrade_response(data: &[u8]) {
    let key = connection_key(0x5eed, 7);
    let browser = crate::plan::compression::DeflateOffer::browser();
    for offer in [None, Some(&browser)] {
        match parse_upgrade_response(data, &key, offer) {
            UpgradeResponse::Accepted { consumed, deflate } => {
                assert!(consumed <= data.len());
                assert!(
                    offer.is_some() || deflate.is_none(),
                    "agreed to what was not offered"
                );
            }
            UpgradeResponse::Partial => assert!(data.len() <= MAX_RESPONSE_HEAD),
            UpgradeResponse::Status(code) => assert_ne!(code, 101),
            UpgradeResponse::TooLarge => {}
            UpgradeResponse::Invalid(_) => {}
        }
    }
}

/// A stream of server frames, as the engine walks it: header after header, each payload
/// skipped (a close payload checked, text checked for UTF-8 across fragments), under
/// several `--max-frame` caps.
pub fn frames(data: &[u8]) {
    use crate::engine::validate;
    for (max, deflate) in [(125u64, false), (64 << 10, true), (1 << 30, false)] {
        let mut rest = data;
        // UTF-8 bytes still due from the previous text fragment (`None`: no text open).
        let mut text: Option<u8> = None;
        while !rest.is_empty() {
            match parse_frame_header(rest, max, deflate) {
                FrameParse::Frame(f) => {
                    assert!(f.payload_len as u64 <= max, "cap enforced");
                    assert!(f.header_len >= 2 && f.header_len <= 14);
                    let end = f.header_len.saturating_add(f.payload_len);
                    if end > rest.len() {
                        break; // the engine waits for the rest
                    }
                    let payload = &rest[f.header_len..end];
                    if f.kind == crate::engine::ws::FrameKind::Close {
                        let _ = close_code(payload);
                        let _ = validate::close_payload_violation(payload);
                    }
                    use crate::engine::ws::FrameKind::{Continuation, Text};
                    let pending = match f.kind {
                        Text => Some(0),
                        Continuation => text,
                        _ => None,
                    };
                    if let Some(p) = pending {
                        text = validate::utf8_fragment(p, payload, f.fin).filter(|_| !f.fin);
                        assert!(text.is_none_or(|p| p <= 3), "at most 3 bytes due");
                    }
                    rest = &rest[end..];
                }
                FrameParse::Partial | FrameParse::Violation(_) => break,
            }
        }
    }
}

/// A compressed message (permessage-deflate) inflated under a cap: never more than the cap
/// plus one byte held, whatever the input (a compression bomb stops at the cap).
pub fn inflate(data: &[u8]) {
    use crate::engine::deflate::{InflateError, inflate, inflater};
    let cap = 64 << 10;
    for bits in [15u8, 9] {
        let mut d = inflater(bits);
        let mut out = Vec::new();
        match inflate(&mut d, data, &mut out, cap) {
            Ok(_) => assert!(out.len() <= cap),
            Err(InflateError::TooLarge) => assert!(out.len() <= cap + 1),
            Err(InflateError::Corrupt) => {}
        }
        assert!(
            out.capacity() <= 2 * (cap + 1) + 4096,
            "bounded: {}",
            out.capacity()
        );
    }
}

/// What the session presets look for in server frames: every preset's open-sequence and
/// auto-reply patterns, the latency marker, and push timestamps.
pub fn protocol_decoders(data: &[u8]) {
    // Built once: compiling every preset's patterns per input would leave the fuzzer at a
    // hundred executions a second.
    static PRESETS: std::sync::OnceLock<Vec<presets::Preset>> = std::sync::OnceLock::new();
    let presets = PRESETS.get_or_init(|| {
        presets::NAMES
            .iter()
            .filter_map(|name| presets::preset(name, &PresetOptions::default()).ok())
            .collect()
    });
    for p in presets {
        for step in &p.session.open {
            if let OpenStep::Expect(pat) = step {
                let _ = pat.matches(data);
            }
        }
        for reply in &p.session.replies {
            let _ = reply.pattern.matches(data);
        }
    }
    if let Some(m) = Marker::find(data) {
        // A marker found is one that can be written back the same.
        let mut out = Vec::new();
        m.write(&mut out);
        assert_eq!(Marker::find(&out), Some(m));
    }
    static STAMPS: std::sync::OnceLock<Vec<crate::plan::push::PushTimestamp>> =
        std::sync::OnceLock::new();
    let stamps = STAMPS.get_or_init(|| {
        [
            "json:ts",
            "json:data.sent_at:ms",
            "re:\"t\":([0-9]+)",
            "re:([0-9]+):s",
        ]
        .iter()
        .filter_map(|spec| crate::plan::push::PushTimestamp::parse(spec).ok())
        .collect()
    });
    for ts in stamps {
        let _ = ts.read_unix_us(data);
    }
}

/// The control link's messages, both directions, and a snapshot's histograms.
pub fn wire_messages(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::cluster::wire::peek_protocol(text);
    if let Ok(msg) = AgentMsg::parse(text) {
        if let AgentMsg::Snapshot { snapshot, .. } = &msg {
            let _ = snapshot.clone().decode();
        }
        assert_eq!(AgentMsg::parse(&msg.to_text()).ok(), Some(msg));
    }
    if let Ok(msg) = CoordMsg::parse(text)
        && let CoordMsg::Assign(a) = &msg
    {
        let _ = a.plan.to_plan(Vec::new(), 1);
    }
}

/// A profile (TOML) through to a validated plan.
pub fn profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = crate::plan::profile::Profile::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = crate::plan::build::build_plan_with(&Overrides::default(), Some(&p));
}

/// The flag-value parsers: units, stages, rates, thresholds, payload notation, patterns,
/// replies, publishers, push timestamps, allow-list entries, fingerprints.
pub fn units_and_specs(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = units::parse_count(s) {
        let _ = n;
    }
    let _ = units::parse_duration(s);
    let _ = units::parse_size(s);
    let _ = units::parse_stage(s);
    if let Ok(r) = units::parse_rate(s) {
        assert!(r.is_finite() && r >= 0.0, "rate {r} from {s:?}");
    }
    let _ = crate::plan::threshold::parse(s);
    let _ = parse_payload(s, true);
    let _ = Pattern::parse(s);
    let _ = Reply::parse(s);
    let _ = crate::plan::push::Publishers::parse(s);
    let _ = crate::plan::push::PushTimestamp::parse(s);
    if let Ok(e) = s.parse::<AllowEntry>() {
        // What is shown parses back to the same entry.
        assert_eq!(e.to_string().parse::<AllowEntry>().ok(), Some(e));
    }
    let _ = crate::cluster::link_tls::parse_fingerprint(s);
}
