//! Upgrade-time JWT check (HS256).
//!
//! The token may arrive as `Authorization: Bearer <jwt>` or as the query parameter `token`
//! or `access_token` (percent-encoding allowed); the upgrade is accepted when *any* of the
//! offered tokens validates. Claims are not required (a token without `exp` is fine), but
//! `exp` and `nbf` are checked when present, with jsonwebtoken's default 60 s leeway. The
//! audience is not checked: the reference gateway has none. The decoding key and
//! [`Validation`] are built once per gateway; claims are decoded into
//! [`serde::de::IgnoredAny`] so a check allocates nothing beyond jsonwebtoken's own work.

use std::borrow::Cow;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tungstenite::handshake::server::Request;

use crate::plan::Secret;

/// Why an upgrade request failed authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer header and no `token` / `access_token` query parameter.
    #[error("missing token (send `Authorization: Bearer <jwt>` or `?token=<jwt>`)")]
    Missing,
    /// A token was offered but none validated (bad signature, expired, malformed…).
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Validates HS256 tokens against one shared secret.
pub(super) struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("Authenticator(HS256, ***)")
    }
}

impl Authenticator {
    pub(super) fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Self {
            key: DecodingKey::from_secret(secret.0.as_bytes()),
            validation,
        }
    }

    /// Accept the request when any offered token validates.
    pub(super) fn check(&self, request: &Request) -> Result<(), AuthError> {
        let mut last_error = AuthError::Missing;
        for token in offered_tokens(request) {
            match jsonwebtoken::decode::<serde::de::IgnoredAny>(
                token.as_bytes(),
                &self.key,
                &self.validation,
            ) {
                Ok(_) => return Ok(()),
                Err(e) => last_error = AuthError::Invalid(e),
            }
        }
        Err(last_error)
    }
}

/// Every token the request offers: bearer headers first, then query parameters.
fn offered_tokens(request: &Request) -> impl Iterator<Item = Cow<'_, str>> {
    let from_headers = request
        .headers()
        .get_all(tungstenite::http::header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(bearer_token)
        .map(Cow::Borrowed);
    let from_query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "token" || *key == "access_token")
        .map(|(_, value)| percent_decode(value));
    from_headers.chain(from_query).filter(|t| !t.is_empty())
}

/// `Bearer <token>` (scheme case-insensitive) → `<token>`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Decode `%XX` escapes and `+` (as space); borrows when there is nothing to decode.
/// Malformed escapes are kept literally (the token then simply fails validation).
fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '+']) {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_pair) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Two ASCII hex digits → their byte.
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    let (hi, lo) = (digit(pair[0])?, digit(pair[1])?);
    u8::try_from(hi * 16 + lo).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, auth: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header("Authorization", auth);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn tokens_from_header_and_query() {
        let req = request("/ws?a=1&token=abc&access_token=d%2Ee", Some("bearer xyz"));
        let tokens: Vec<_> = offered_tokens(&req).collect();
        assert_eq!(tokens, ["xyz", "abc", "d.e"]);
    }

    #[test]
    fn no_tokens() {
        let req = request("/?token=", Some("Basic Zm9vOmJhcg=="));
        assert_eq!(offered_tokens(&req).count(), 0);
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("a%+1"), "a% 1");
        assert_eq!(percent_decode("a%41+b"), "aA b");
    }
}
