use super::*;
use crate::config::IdentityConfig;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::Duration;

// Test-only keys, generated for these tests and used nowhere else.
const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICsB+NGN9r+8gGtf4batN+78QdG7rXwB3LI72GQpv3n8
-----END PRIVATE KEY-----
";
const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAw/WlJ6Gsqijw8Onaee8RSeqGWynQUskHILWQN43HHlg=
-----END PUBLIC KEY-----
";
const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwd6ovDRS1o3EYlM3RI9H
HQYeC3F/tDTZhaDT06rrhWqt/aBFIDwnPOpnUI0ncE5yHO9Xh3n/MN+3P3X7EIBy
IBnQBnxqxlroxrYXlslsISUtFff8CUKHN+cvtRRAI0ikxXOo/SHGVgrw//+NyQQQ
ueNYd30Li1GCWr3p5cC4XjmdiKPxLASt2UcdVNHP5wVczdj6V+kGBvdgzEKU/CRT
C0DvNKu6Z3Rwvh+QBPEMo5OZbXgQxiHa37pxkxauj588kmpDoxJdUeBD8R40a91G
aoTqaoqbum2Y21XNheNDCUXWkfP+T7T4B6AuNqLl67JCYNMj+fHOrfxDFJNHBfja
GwIDAQAB
-----END PUBLIC KEY-----
";
const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn verifier(dir: &tempfile::TempDir, keys: Option<&str>, secret: bool) -> anyhow::Result<Verifier> {
    let keys_file = keys
        .map(|_| dir.path().join("keys"))
        .filter(|p| std::fs::write(p, keys.unwrap_or("")).is_ok());
    let hs256_secret_file = secret
        .then(|| dir.path().join("secret"))
        .filter(|p| std::fs::write(p, SECRET).is_ok());
    Verifier::new(&IdentityConfig {
        header: http::HeaderName::from_static("x-lastmile-user"),
        keys_file,
        hs256_secret_file,
        issuer: Some("https://idp".into()),
        audience: Some("lastmile".into()),
        leeway: Duration::from_secs(5),
    })
}

fn claims(exp_offset: i64) -> serde_json::Value {
    json!({"sub": "u_1", "scope": "account:acme account:globex", "iss": "https://idp", "aud": "lastmile",
           "exp": (now() as i64 + exp_offset)})
}

fn hs256(claims: &serde_json::Value, secret: &[u8]) -> anyhow::Result<String> {
    Ok(encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )?)
}

fn identify(v: &Verifier, token: &str) -> Result<Option<User>, IdentityError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-lastmile-user",
        http::HeaderValue::from_str(token).map_err(|_| IdentityError("bad"))?,
    );
    v.identify(&headers)
}

#[test]
fn a_valid_hs256_token_becomes_the_user_with_scope_as_a_list() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let v = verifier(&dir, None, true)?;
    let user = identify(&v, &hs256(&claims(600), SECRET.as_bytes())?)?
        .ok_or(anyhow::anyhow!("no user"))?;
    assert_eq!(user.sub.as_deref(), Some("u_1"));
    assert_eq!(user.claims["scope"][1], Value::from("account:globex"));
    assert!(v.identify(&HeaderMap::new())?.is_none());
    Ok(())
}

#[test]
fn expired_forged_and_misissued_tokens_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let v = verifier(&dir, None, true)?;
    assert_eq!(
        identify(&v, &hs256(&claims(-600), SECRET.as_bytes())?).err(),
        Some(IdentityError("token expired"))
    );
    let forged = hs256(&claims(600), b"some-other-secret-of-32-bytes-or-more")?;
    assert_eq!(
        identify(&v, &forged).err(),
        Some(IdentityError("token signature invalid"))
    );
    let mut wrong_aud = claims(600);
    wrong_aud["aud"] = json!("someone-else");
    assert!(identify(&v, &hs256(&wrong_aud, SECRET.as_bytes())?).is_err());
    let mut no_exp = claims(600);
    no_exp.as_object_mut().map(|c| c.remove("exp"));
    assert!(identify(&v, &hs256(&no_exp, SECRET.as_bytes())?).is_err());
    assert!(identify(&v, "not.a.token").is_err());
    Ok(())
}

#[test]
fn alg_none_is_refused() -> anyhow::Result<()> {
    use base64::Engine;
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let dir = tempfile::tempdir()?;
    let v = verifier(&dir, None, true)?;
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims(600).to_string())
    );
    assert!(identify(&v, &token).is_err());
    Ok(())
}

#[test]
fn an_rsa_public_key_cannot_be_used_as_an_hmac_secret() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let v = verifier(&dir, Some(RSA_PUBLIC), false)?;
    let confused = hs256(&claims(600), RSA_PUBLIC.as_bytes())?;
    assert!(identify(&v, &confused).is_err());
    Ok(())
}

#[test]
fn asymmetric_keys_from_pem_verify_their_own_tokens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let v = verifier(&dir, Some(ED_PUBLIC), false)?;
    let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes())?;
    let token = encode(&Header::new(Algorithm::EdDSA), &claims(600), &key)?;
    assert!(identify(&v, &token)?.is_some());
    Ok(())
}
