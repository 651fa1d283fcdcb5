//! Mutual proof of the shared token on the control link, without sending it.
//!
//! ```text
//! agent                                              coordinator
//!   ── hello {protocol, nonce_a, agent}        ──►
//!   ◄── challenge {protocol, nonce_c, proof_c}       proof_c = HMAC(token, "coordinator" ‖ nonce_a ‖ nonce_c)
//!   checks proof_c: a coordinator without the token is left here, having learnt nothing
//!   ── proof {proof_a}                         ──►   proof_a = HMAC(token, "agent" ‖ nonce_c ‖ nonce_a)
//!   ◄── welcome … (or refused {reason})              checks proof_a
//! ```
//!
//! HMAC-SHA256 from `ring` (already the TLS provider); both nonces are 32 fresh random
//! bytes, so neither side can replay an earlier exchange, and the role labels keep one
//! side's proof from ever being valid as the other's (a fake agent cannot make the
//! coordinator compute the agent proof for it, and a fake coordinator is left with a
//! nonce and nothing else). The coordinator proves first: the agent reveals nothing
//! derived from the token to a peer that has not shown it holds the token too.
//!
//! What this does not do is hide the plan: after the proofs, messages (the plan included,
//! with any tokens or JWT keys in it) travel as the link carries them — run the link over
//! TLS (`wss://`, see [`super::link_tls`]) whenever it leaves the host.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of randomness in a nonce (sent hex-encoded).
pub const NONCE_BYTES: usize = 32;

/// Which side a proof speaks for (the label is part of the MAC input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    Agent,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Coordinator => b"wsscale-link-v2 coordinator",
            Role::Agent => b"wsscale-link-v2 agent",
        }
    }
}

/// A fresh random nonce, hex-encoded.
pub fn nonce() -> String {
    let mut bytes = [0u8; NONCE_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source is readable");
    hex(&bytes)
}

/// The proof `role` sends: HMAC-SHA256 over the role label, the peer's nonce, then its own.
pub fn prove(token: &str, role: Role, peer_nonce: &str, own_nonce: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    hex(hmac::sign(&key, &message(role, peer_nonce, own_nonce)).as_ref())
}

/// Check a proof that `role` sent (in constant time). `peer_nonce`/`own_nonce` are as the
/// prover saw them: for a coordinator's proof, the agent's nonce then the coordinator's.
pub fn verify(token: &str, role: Role, peer_nonce: &str, own_nonce: &str, proof: &str) -> bool {
    let Some(tag) = unhex(proof) else {
        return false;
    };
    if !well_formed(peer_nonce) || !well_formed(own_nonce) {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    hmac::verify(&key, &message(role, peer_nonce, own_nonce), &tag).is_ok()
}

/// A nonce as [`nonce`] makes them: exactly [`NONCE_BYTES`] bytes in lower-case hex. A
/// peer that sends anything else (empty, short, a replayed constant of another length) is
/// refused before any MAC is computed for it.
pub fn well_formed(nonce: &str) -> bool {
    nonce.len() == NONCE_BYTES * 2
        && nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn message(role: Role, first: &str, second: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + first.len() + second.len());
    m.extend_from_slice(role.label());
    m.push(0);
    m.extend_from_slice(first.as_bytes());
    m.push(0);
    m.extend_from_slice(second.as_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_verify_each_other_with_the_same_token() {
        let (a, c) = (nonce(), nonce());
        assert_ne!(a, c, "nonces are fresh");
        assert!(well_formed(&a) && well_formed(&c));
        let proof_c = prove("tok", Role::Coordinator, &a, &c);
        assert!(verify("tok", Role::Coordinator, &a, &c, &proof_c));
        let proof_a = prove("tok", Role::Agent, &c, &a);
        assert!(verify("tok", Role::Agent, &c, &a, &proof_a));
    }

    #[test]
    fn a_wrong_token_a_swapped_role_or_another_nonce_fails() {
        let (a, c) = (nonce(), nonce());
        let proof_c = prove("tok", Role::Coordinator, &a, &c);
        assert!(!verify("other", Role::Coordinator, &a, &c, &proof_c));
        // A coordinator's proof is never an agent's (a fake agent cannot reflect it).
        assert!(!verify("tok", Role::Agent, &a, &c, &proof_c));
        assert!(!verify("tok", Role::Coordinator, &nonce(), &c, &proof_c));
        assert!(!verify("tok", Role::Coordinator, &a, &nonce(), &proof_c));
        // Malformed input is refused, never panics.
        for bad in ["", "zz", "abc", &"0".repeat(1000)] {
            assert!(!verify("tok", Role::Coordinator, &a, &c, bad));
        }
        assert!(!verify("tok", Role::Coordinator, "", &c, &proof_c));
        assert!(!well_formed(&"A".repeat(64)));
    }
}
