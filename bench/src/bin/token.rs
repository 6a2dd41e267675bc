//! Prints an HS256 identity token for load tests: `token SECRET_FILE SUB SCOPE`.

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [secret_file, sub, scope] = args.as_slice() else {
        anyhow::bail!("usage: token SECRET_FILE SUB SCOPE");
    };
    let secret = std::fs::read(secret_file).with_context(|| format!("reading {secret_file}"))?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"sub": sub, "scope": scope, "iss": "https://idp.bench", "aud": "lastmile", "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.trim_ascii())?;
    println!(
        "{}",
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)?
    );
    Ok(())
}
