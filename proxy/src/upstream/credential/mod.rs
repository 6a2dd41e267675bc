//! The upstream credential a route injects. The agent never holds it. Three modes:
//! [`fixed`] (`static`: one service credential from a file or environment variable),
//! [`per_user`] (a file per acting user) and [`exchange`] (RFC 8693 token exchange of
//! the user's verified token). The user modes never fall back to a service credential:
//! a user without one is refused.

mod cache;
pub mod exchange;
pub mod fixed;
pub mod per_user;

use crate::config::CredentialConfig;
use crate::identity::User;
use crate::refusal::Refusal;
use anyhow::Result;
use exchange::{ExchangeMetrics, TokenExchange};
use fixed::StaticCredential;
use http::{HeaderName, HeaderValue};
use per_user::PerUser;
use regorus::Value;

/// One route's credential, ready.
pub enum Credential {
    Static(StaticCredential),
    PerUser(PerUser),
    TokenExchange(Box<TokenExchange>),
}

/// Why no credential could be injected; nothing is sent upstream then.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The static credential's file or variable is missing or empty.
    #[error("the route's upstream credential is unavailable")]
    Unavailable,
    /// The acting user has no credential of their own on this route.
    #[error("the acting user has no credential for this route")]
    NoUserCredential,
    /// The token endpoint could not be asked or refused; the reason never holds a token.
    #[error("{0}")]
    Exchange(String),
}

impl From<CredentialError> for Refusal {
    fn from(e: CredentialError) -> Refusal {
        match e {
            CredentialError::Unavailable => Refusal::CredentialUnavailable,
            CredentialError::NoUserCredential => Refusal::NoUserCredential,
            CredentialError::Exchange(reason) => Refusal::CredentialExchange(reason),
        }
    }
}

/// Who the credential acts for, as the policy input and the trace show it (never the
/// credential itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Acting {
    pub mode: &'static str,
    /// The claim value that chose the credential; `None` for `static`.
    pub subject: Option<String>,
}

impl Acting {
    /// `input.credential`.
    pub fn input(&self) -> Value {
        let mut map = std::collections::BTreeMap::new();
        map.insert(Value::from("mode"), Value::from(self.mode));
        map.insert(
            Value::from("subject"),
            self.subject.as_deref().map_or(Value::Null, Value::from),
        );
        Value::from(map)
    }
}

impl Credential {
    /// Builds the route's credential; `route` labels the exchange metrics.
    pub fn build(
        config: &CredentialConfig,
        route: &str,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Credential> {
        Ok(match config {
            CredentialConfig::Static(c) => Credential::Static(StaticCredential::new(c)),
            CredentialConfig::PerUser(c) => Credential::PerUser(PerUser::new(c)),
            CredentialConfig::TokenExchange(c) => {
                let metrics = ExchangeMetrics {
                    outcomes: metrics.credential_exchanges.clone(),
                    cache_entries: metrics.credential_cache_entries.with_label_values(&[route]),
                };
                Credential::TokenExchange(Box::new(TokenExchange::new(c, route, metrics)?))
            }
        })
    }

    pub fn header(&self) -> &HeaderName {
        match self {
            Credential::Static(c) => c.header(),
            Credential::PerUser(c) => c.header(),
            Credential::TokenExchange(c) => c.header(),
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            Credential::Static(_) => "static",
            Credential::PerUser(_) => "per_user",
            Credential::TokenExchange(_) => "token_exchange",
        }
    }

    /// The user the credential acts for: `per_user`'s claim, `token_exchange`'s `sub`.
    pub fn acting(&self, sub: Option<&str>, claims: Option<&Value>) -> Acting {
        let subject = match self {
            Credential::Static(_) => None,
            Credential::PerUser(c) if c.claim() == "sub" => sub.map(str::to_string),
            Credential::PerUser(c) => claims.and_then(|claims| claim(claims, c.claim())),
            Credential::TokenExchange(_) => sub.map(str::to_string),
        };
        Acting {
            mode: self.mode(),
            subject,
        }
    }

    /// The header value for a live request by `user`.
    pub async fn value(&self, user: Option<&User>) -> Result<HeaderValue, CredentialError> {
        match self {
            Credential::TokenExchange(c) => {
                let (Some(sub), Some(token)) = (
                    user.and_then(|u| u.sub.as_deref()),
                    user.and_then(|u| u.token.as_ref()),
                ) else {
                    return Err(CredentialError::NoUserCredential);
                };
                c.value(sub, token).await
            }
            Credential::Static(_) | Credential::PerUser(_) => self.stored_value(user),
        }
    }

    /// The header value for an approved execution, which holds the user's claims but
    /// not their token: `per_user` reads the user's file now; `token_exchange` uses
    /// only a cached, unexpired token of that user.
    pub fn stored_value(&self, user: Option<&User>) -> Result<HeaderValue, CredentialError> {
        let acting = self.acting(user.and_then(|u| u.sub.as_deref()), user.map(|u| &u.claims));
        match self {
            Credential::Static(c) => c.value().map_err(|_| CredentialError::Unavailable),
            Credential::PerUser(c) => {
                let subject = acting.subject.ok_or(CredentialError::NoUserCredential)?;
                c.value(&subject)
            }
            Credential::TokenExchange(c) => {
                let subject = acting.subject.ok_or(CredentialError::NoUserCredential)?;
                c.cached(&subject)
            }
        }
    }
}

/// A claim's value when it is a string (or a number, written as text).
fn claim(claims: &Value, name: &str) -> Option<String> {
    match &claims[name] {
        Value::String(s) => Some(s.to_string()),
        Value::Number(n) => Some(n.format_decimal()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PerUserConfig;

    fn per_user(claim: &str) -> Credential {
        Credential::PerUser(PerUser::new(&PerUserConfig {
            header: http::header::AUTHORIZATION,
            prefix: "Bearer ".into(),
            dir: std::env::temp_dir().join("lastmile-no-such-dir"),
            claim: claim.into(),
        }))
    }

    #[test]
    fn the_subject_is_the_claim_that_names_the_users_credential() {
        let claims =
            Value::from(serde_json::json!({"sub": "u_1", "email": "a@example.com", "n": 7}));
        let acting = |c: &Credential| c.acting(Some("u_1"), Some(&claims));
        assert_eq!(acting(&per_user("sub")).subject.as_deref(), Some("u_1"));
        assert_eq!(
            acting(&per_user("email")).subject.as_deref(),
            Some("a@example.com")
        );
        assert_eq!(acting(&per_user("n")).subject.as_deref(), Some("7"));
        assert_eq!(acting(&per_user("missing")).subject, None);
        assert_eq!(acting(&per_user("sub")).mode, "per_user");
    }

    #[test]
    fn a_user_mode_without_a_user_has_no_credential() {
        assert!(matches!(
            per_user("sub").stored_value(None),
            Err(CredentialError::NoUserCredential)
        ));
    }
}
