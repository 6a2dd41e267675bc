//! The registered claims, checked by lastmile itself on the verified claims, whatever
//! the JWT library does. How the library treats odd claim types has changed between
//! releases (9.x accepted a string `nbf`: GHSA-h395-gr6q-cpjc), so the guarantees the
//! README states live here, where a library upgrade cannot weaken them.

use super::IdentityError;
use serde_json::{Map, Value};

/// What the configuration asks of every token.
pub(super) struct Expected<'a> {
    /// When set, `iss` is required and must be exactly this.
    pub issuer: Option<&'a str>,
    /// When set, `aud` is required and must be this, or a list of strings holding it.
    pub audience: Option<&'a str>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

/// Checks `exp` (required), `nbf` and `iat` (JSON numbers when present), `iss` and `aud`
/// against `expected`, at `now` (seconds since the epoch).
pub(super) fn check(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: u64,
) -> Result<(), IdentityError> {
    let exp = numeric_date(claims, "exp")?.ok_or(IdentityError("token lacks the exp claim"))?;
    if exp.saturating_add(expected.leeway) < now {
        return Err(IdentityError("token expired"));
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(expected.leeway)) {
        return Err(IdentityError("token not yet valid"));
    }
    numeric_date(claims, "iat")?;
    if let Some(issuer) = expected.issuer {
        match claims.get("iss") {
            None => return Err(IdentityError("token lacks the iss claim")),
            Some(Value::String(iss)) if iss == issuer => {}
            Some(_) => return Err(IdentityError("token issuer not accepted")),
        }
    }
    if let Some(audience) = expected.audience {
        let accepted = match claims.get("aud") {
            None => return Err(IdentityError("token lacks the aud claim")),
            Some(Value::String(aud)) => aud == audience,
            // RFC 7519 §4.1.3: a list, of which ours must be one; anything but strings
            // in it is a malformed token, not a list to pick from.
            Some(Value::Array(list)) => {
                list.iter().all(Value::is_string) && list.iter().any(|a| a == audience)
            }
            Some(_) => false,
        };
        if !accepted {
            return Err(IdentityError("token audience not accepted"));
        }
    }
    Ok(())
}

/// A NumericDate (RFC 7519 §2) as whole seconds; anything else (a string, a fraction,
/// null, a negative number) refuses the token, so it can never be read as "absent".
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, IdentityError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(IdentityError(
            "token time claims (exp, nbf, iat) must be whole seconds",
        )),
        Some(_) => Err(IdentityError(
            "token time claims (exp, nbf, iat) must be numbers",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const EXPECTED: Expected<'static> = Expected {
        issuer: Some("https://idp"),
        audience: Some("lastmile"),
        leeway: 30,
    };

    fn check_json(claims: Value) -> Result<(), IdentityError> {
        let Value::Object(map) = claims else {
            return Err(IdentityError("test claims are not an object"));
        };
        check(&map, &EXPECTED, NOW)
    }

    fn good() -> Value {
        json!({"iss": "https://idp", "aud": "lastmile", "exp": NOW + 60, "nbf": NOW, "iat": NOW})
    }

    fn with(claim: &str, value: Value) -> Value {
        let mut claims = good();
        claims[claim] = value;
        claims
    }

    fn without(claim: &str) -> Value {
        let mut claims = good();
        claims.as_object_mut().map(|c| c.remove(claim));
        claims
    }

    #[test]
    fn a_complete_token_passes_and_aud_may_be_a_list_holding_ours() {
        assert_eq!(check_json(good()), Ok(()));
        assert_eq!(
            check_json(with("aud", json!(["other", "lastmile"]))),
            Ok(())
        );
        assert_eq!(check_json(without("nbf")), Ok(()));
        assert_eq!(check_json(without("iat")), Ok(()));
    }

    #[test]
    fn iss_and_aud_are_required_when_configured_and_not_otherwise() {
        for claim in ["exp", "iss", "aud"] {
            assert!(check_json(without(claim)).is_err(), "{claim}");
        }
        let open = Expected {
            issuer: None,
            audience: None,
            leeway: 30,
        };
        let Value::Object(bare) = json!({"exp": NOW + 60}) else {
            return;
        };
        assert_eq!(check(&bare, &open, NOW), Ok(()));
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        for (claim, value) in [
            ("iss", json!("https://evil")),
            ("iss", json!(["https://idp"])),
            ("aud", json!("someone-else")),
            ("aud", json!(["someone-else"])),
            ("aud", json!(["lastmile", 7])),
            ("aud", json!({"lastmile": true})),
        ] {
            assert!(
                check_json(with(claim, value.clone())).is_err(),
                "{claim}: {value}"
            );
        }
    }

    #[test]
    fn time_claims_must_be_numbers_whatever_their_value() {
        for claim in ["exp", "nbf", "iat"] {
            for value in [
                json!((NOW + 60).to_string()),
                json!("99999999999"),
                json!(null),
                json!({"n": NOW}),
                json!([NOW]),
                json!(-1),
                json!(NOW as f64 + 0.5),
            ] {
                assert!(
                    check_json(with(claim, value.clone())).is_err(),
                    "{claim}: {value}"
                );
            }
        }
    }

    #[test]
    fn expiry_and_not_before_allow_the_leeway_and_no_more() {
        assert_eq!(check_json(with("exp", json!(NOW - 30))), Ok(()));
        assert_eq!(
            check_json(with("exp", json!(NOW - 31))),
            Err(IdentityError("token expired"))
        );
        assert_eq!(check_json(with("nbf", json!(NOW + 30))), Ok(()));
        assert_eq!(
            check_json(with("nbf", json!(NOW + 31))),
            Err(IdentityError("token not yet valid"))
        );
    }
}
