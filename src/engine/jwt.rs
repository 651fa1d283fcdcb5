//! Per-connection JWT minting (jsonwebtoken).
//!
//! The claims template is a JSON object from the plan. Per connection, every string value is
//! rendered: `{conn}` becomes the connection's global number; a string that is exactly
//! `{now}`, `{now+N}` or `{now-N}` becomes a number (Unix seconds), so `exp`/`iat`/`nbf` are
//! numeric as RFC 7519 requires. The encoding key is parsed once per shard.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use crate::plan::{Auth, JwtAlg};

/// Mints tokens for one shard.
pub struct JwtMinter {
    header: Header,
    key: EncodingKey,
    claims: Value,
}

/// Why a minter could not be built (bad key material).
#[derive(Debug, thiserror::Error)]
#[error("cannot use the JWT key: {0}")]
pub struct JwtKeyError(String);

impl JwtMinter {
    /// A minter for `auth` when it asks for per-connection JWTs; `Ok(None)` otherwise.
    pub fn from_auth(auth: &Auth) -> Result<Option<JwtMinter>, JwtKeyError> {
        let Auth::Jwt {
            alg, key, claims, ..
        } = auth
        else {
            return Ok(None);
        };
        let (algorithm, key) = match alg {
            JwtAlg::HS256 => (Algorithm::HS256, EncodingKey::from_secret(key.0.as_bytes())),
            JwtAlg::RS256 => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(key.0.as_bytes())
                    .map_err(|e| JwtKeyError(e.to_string()))?,
            ),
            JwtAlg::ES256 => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(key.0.as_bytes())
                    .map_err(|e| JwtKeyError(e.to_string()))?,
            ),
        };
        Ok(Some(JwtMinter {
            header: Header::new(algorithm),
            key,
            claims: claims.clone(),
        }))
    }

    /// A token for connection number `conn` at Unix time `now`.
    pub fn mint(&self, conn: u64, now: i64) -> Result<String, JwtKeyError> {
        self.mint_filled(conn, now, None)
    }

    /// [`Self::mint`] with the `{column}`, `{agent}`, `{process}` values of `fill` (`--data`,
    /// see `plan::data`) filled into the claims' strings.
    pub fn mint_filled(
        &self,
        conn: u64,
        now: i64,
        fill: Option<&crate::plan::data::Fill>,
    ) -> Result<String, JwtKeyError> {
        let mut claims = render(&self.claims, conn, now);
        if let Some(f) = fill {
            fill_strings(&mut claims, &|s| f.apply_str(s, conn));
        }
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| JwtKeyError(e.to_string()))
    }
}

/// Replace every string in `v` (keys stay) with `f` of it.
fn fill_strings(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) if s.contains('{') => *s = f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| fill_strings(x, f)),
        Value::Object(o) => o.values_mut().for_each(|x| fill_strings(x, f)),
        _ => {}
    }
}

/// Render a claims template for one connection.
pub fn render(v: &Value, conn: u64, now: i64) -> Value {
    match v {
        Value::String(s) => {
            if let Some(n) = time_expr(s, now) {
                Value::from(n)
            } else if s.contains("{conn}") {
                Value::String(s.replace("{conn}", &conn.to_string()))
            } else {
                v.clone()
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render(x, conn, now)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render(x, conn, now)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn time_expr(s: &str, now: i64) -> Option<i64> {
    let inner = s.strip_prefix("{now")?.strip_suffix('}')?;
    if inner.is_empty() {
        return Some(now);
    }
    let (sign, num) = inner.split_at(1);
    let n: i64 = num.trim().parse().ok()?;
    match sign {
        "+" => Some(now + n),
        "-" => Some(now - n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{JwtPlacement, Secret};
    use serde_json::json;

    #[test]
    fn renders_placeholders() {
        let t = json!({"sub":"user-{conn}","exp":"{now+3600}","iat":"{now}","nbf":"{now-5}","x":[1,"a{conn}"]});
        let r = render(&t, 42, 1000);
        assert_eq!(
            r,
            json!({"sub":"user-42","exp":4600,"iat":1000,"nbf":995,"x":[1,"a42"]})
        );
    }

    #[test]
    fn hs256_token_verifies() {
        let auth = Auth::Jwt {
            alg: JwtAlg::HS256,
            key: Secret("s3cret".into()),
            claims: json!({"sub":"user-{conn}"}),
            placement: JwtPlacement::Header,
        };
        let m = JwtMinter::from_auth(&auth).unwrap().unwrap();
        let tok = m.mint(7, 1_700_000_000).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let d = jsonwebtoken::decode::<Value>(
            &tok,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &v,
        )
        .unwrap();
        assert_eq!(d.claims["sub"], "user-7");
    }
}
