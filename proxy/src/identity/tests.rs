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
        jwks_url: None,
        jwks_ca_file: None,
        jwks_refresh: Duration::from_secs(300),
        jwks_min_refresh: Duration::from_secs(30),
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
        &EncodingKey::from_secret(secret)?,
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

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `ED_PUBLIC` as a JWK: the raw key is the last 32 bytes of the SPKI DER.
fn ed_jwk(kid: &str) -> anyhow::Result<serde_json::Value> {
    use base64::Engine;
    let body: String = ED_PUBLIC
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body)?;
    let raw = der.get(der.len().saturating_sub(32)..).unwrap_or_default();
    Ok(json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(raw)}))
}

fn oct_jwk(kid: &str, secret: &str) -> serde_json::Value {
    json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": b64(secret.as_bytes())})
}

fn kids(keys: &[keys::Key]) -> Vec<Option<&str>> {
    keys.iter().map(|k| k.kid.as_deref()).collect()
}

#[test]
fn the_verifier_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Verifier>();
}

#[test]
fn tokens_lacking_configured_claims_or_with_string_times_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let v = verifier(&dir, None, true)?;
    for claim in ["iss", "aud", "exp"] {
        let mut c = claims(600);
        c.as_object_mut().map(|c| c.remove(claim));
        let refused = identify(&v, &hs256(&c, SECRET.as_bytes())?).err();
        assert!(refused.is_some_and(|e| e.0.contains(claim)), "{claim}");
    }
    for claim in ["exp", "nbf", "iat"] {
        let mut c = claims(600);
        c[claim] = json!((now() + 99_999).to_string());
        assert!(
            identify(&v, &hs256(&c, SECRET.as_bytes())?).is_err(),
            "{claim}"
        );
    }
    Ok(())
}

#[test]
fn a_published_key_set_never_supplies_symmetric_or_encryption_keys() -> anyhow::Result<()> {
    let mut enc = ed_jwk("enc")?;
    enc["use"] = json!("enc");
    let mut mislabelled = ed_jwk("rs")?;
    mislabelled["alg"] = json!("RS256");
    let document = json!({"keys": [oct_jwk("hs", SECRET), enc, mislabelled, ed_jwk("ed")?,
                                   {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"}]});
    let bytes = document.to_string().into_bytes();
    let published = keys::parse(&bytes, keys::Origin::Url)?;
    assert_eq!(kids(&published.keys), [Some("ed")]);
    assert_eq!(published.skipped.len(), 4, "{:?}", published.skipped);
    // The operator's own file may hold an HMAC key.
    let file = keys::parse(&bytes, keys::Origin::File)?;
    assert_eq!(kids(&file.keys), [Some("hs"), Some("ed")]);
    // Nothing usable at all is an error, and PEM is for files only.
    assert!(keys::parse(br#"{"keys": []}"#, keys::Origin::Url).is_err());
    assert!(keys::parse(ED_PUBLIC.as_bytes(), keys::Origin::Url).is_err());
    Ok(())
}

#[test]
fn the_keys_file_is_reread_on_change_and_a_bad_version_keeps_the_last_good() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys.json");
    let replace = |text: String| -> anyhow::Result<()> {
        let temp = dir.path().join(".keys.json.tmp");
        std::fs::write(&temp, text)?;
        Ok(std::fs::rename(&temp, &path)?)
    };
    replace(json!({"keys": [ed_jwk("first")?]}).to_string())?;
    let keys = file::FileKeys::load(&path, Duration::ZERO)?;
    assert_eq!(kids(&keys.current()), [Some("first")]);

    replace(json!({"keys": [oct_jwk("second", SECRET)]}).to_string())?;
    assert_eq!(kids(&keys.current()), [Some("second")]);

    replace("{ not json".into())?;
    assert_eq!(kids(&keys.current()), [Some("second")]);
    std::fs::remove_file(&path)?;
    assert_eq!(kids(&keys.current()), [Some("second")]);
    Ok(())
}

#[test]
fn a_jwks_url_needs_a_runtime_and_a_usable_ca_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = |ca_file| IdentityConfig {
        header: http::HeaderName::from_static("x-lastmile-user"),
        keys_file: None,
        hs256_secret_file: None,
        issuer: None,
        audience: None,
        leeway: Duration::from_secs(5),
        jwks_url: Some(http::Uri::from_static("https://idp.example/jwks.json")),
        jwks_ca_file: ca_file,
        jwks_refresh: Duration::from_secs(300),
        jwks_min_refresh: Duration::from_secs(30),
    };
    assert!(Verifier::new(&config(None)).is_err(), "no runtime");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _inside = runtime.enter();
    let missing = dir.path().join("missing-ca.pem");
    let error = Verifier::new(&config(Some(missing))).err();
    assert!(error.is_some_and(|e| format!("{e:#}").contains("jwks_ca_file")));
    // Before any fetch, a token only the key set could verify fails closed.
    let v = Verifier::new(&config(None))?;
    let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes())?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let token = encode(&header, &claims(600), &key)?;
    assert_eq!(
        v.verify_token(&token).err(),
        Some(IdentityError(
            "the identity provider's key set has not been fetched yet"
        ))
    );
    Ok(())
}

#[test]
fn a_derived_verifier_shares_the_keys_and_checks_its_own_claims() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let users = verifier(&dir, None, true)?;
    let approvers = users.expecting(Some("https://idp".into()), Some("approvals".into()));
    let user_token = hs256(&claims(600), SECRET.as_bytes())?;
    let mut approver_claims = claims(600);
    approver_claims["aud"] = json!("approvals");
    let approver_token = hs256(&approver_claims, SECRET.as_bytes())?;

    assert!(users.verify_token(&user_token).is_ok());
    assert!(users.verify_token(&approver_token).is_err());
    assert!(approvers.verify_token(&approver_token).is_ok());
    assert_eq!(
        approvers.verify_token(&user_token).err(),
        Some(IdentityError("token audience not accepted"))
    );
    Ok(())
}
