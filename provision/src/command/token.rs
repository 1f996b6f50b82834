//! `provision token --name N --scope read|write [--expires-in 90d]`: mints an access token for
//! the Worker (a JWT signed with HS256 under `TOKEN_SECRET` from the environment) and prints
//! it with the `netrc` line that makes Nix send it.
//!
//! With `--s3` it prints S3 credentials instead, as two lines ready for `export`:
//! `AWS_ACCESS_KEY_ID=…` (carrying the name, scope and expiry) and `AWS_SECRET_ACCESS_KEY=…`
//! (derived from the id under `TOKEN_SECRET`), for `nix copy --to 's3://…'` through the Worker.
//!
//! The secret is read from the environment only and never printed; errors name what is
//! missing, not its value.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use nix_spaces_cache::landing::netrc_line;
use nix_spaces_cache::s3::S3Credential;
use nix_spaces_cache::token::{self, Claims, Scope, TokenSecret};
use zeroize::Zeroizing;

/// The shortest `TOKEN_SECRET` accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Who holds the token (its `sub`, shown in the Worker's log), e.g. `ci`.
    #[arg(long)]
    pub name: String,
    /// `read` (a private cache's readers) or `write` (pushers; they may also read).
    #[arg(long)]
    pub scope: Scope,
    /// How long it is valid: a number and s, m, h, d or w, e.g. 90d.
    #[arg(long, default_value = "90d")]
    pub expires_in: String,
    /// Print only the token.
    #[arg(long)]
    pub quiet: bool,
    /// Print S3 credentials (`AWS_ACCESS_KEY_ID=…`, `AWS_SECRET_ACCESS_KEY=…`) for the
    /// Worker's S3 endpoint instead of a token; the name must be letters and digits.
    #[arg(long)]
    pub s3: bool,
}

/// The token for `args` under `secret`, issued at `now` (Unix seconds).
pub fn mint(args: &TokenArgs, secret: &TokenSecret, now: u64) -> anyhow::Result<String> {
    let name = args.name.trim();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("token: --name must be 1 to 64 printable characters without spaces");
    }
    let Some(valid_for) = token::parse_duration(&args.expires_in) else {
        bail!(
            "token: --expires-in {:?} is not a duration like 90d, 12h, 30m or 2w",
            args.expires_in
        );
    };
    let claims = Claims {
        sub: name.to_string(),
        scope: args.scope,
        exp: now
            .checked_add(valid_for)
            .context("token: --expires-in is too long")?,
        nbf: None,
        iat: Some(now),
    };
    Ok(token::mint(&claims, secret))
}

/// The S3 credential for `args` under `secret`, issued at `now`: the two `export` lines.
pub fn mint_s3(
    args: &TokenArgs,
    secret: &TokenSecret,
    now: u64,
) -> anyhow::Result<Zeroizing<String>> {
    let Some(valid_for) = token::parse_duration(&args.expires_in) else {
        bail!(
            "token: --expires-in {:?} is not a duration like 90d, 12h, 30m or 2w",
            args.expires_in
        );
    };
    let expires = now
        .checked_add(valid_for)
        .context("token: --expires-in is too long")?;
    let credential = S3Credential::new(args.name.trim(), args.scope, expires)
        .map_err(|e| anyhow::anyhow!("token --s3: {e} (the name travels in the access key id)"))?;
    let key = credential.secret(secret);
    Ok(Zeroizing::new(format!(
        "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n",
        credential.access_key_id(),
        key.expose()
    )))
}

/// `TOKEN_SECRET` from `value` (the environment's), checked.
pub fn secret_from(value: Option<String>) -> anyhow::Result<TokenSecret> {
    let value = Zeroizing::new(value.unwrap_or_default());
    let value = value.trim();
    if value.is_empty() {
        bail!(
            "token: TOKEN_SECRET is not set: put the Worker's TOKEN_SECRET in the environment \
             (the same value as `npx wrangler secret put TOKEN_SECRET`)"
        );
    }
    if value.len() < MIN_SECRET_BYTES {
        bail!(
            "token: TOKEN_SECRET is shorter than {MIN_SECRET_BYTES} bytes: use a long random \
             value, e.g. from `openssl rand -base64 48`"
        );
    }
    Ok(TokenSecret::new(value))
}

pub fn run(args: &TokenArgs, hostname: Option<&str>) -> anyhow::Result<ExitCode> {
    let secret = secret_from(std::env::var("TOKEN_SECRET").ok())?;
    let now = u64::try_from(super::now()?).context("token: the clock is before 1970")?;
    if args.s3 {
        let lines = mint_s3(args, &secret, now)?;
        print!("{}", lines.as_str());
        eprintln!(
            "S3 credentials ({} scope) for {:?}, valid for {}. Export both lines, then push with \
             nix copy --to 's3://<SPACES_BUCKET>?endpoint=https://{}&multipart-upload=true&\
             multipart-chunk-size=67108864&multipart-threshold=67108864' (Nix 2.33 or later).",
            args.scope.as_str(),
            args.name.trim(),
            args.expires_in,
            hostname.unwrap_or("cache.example.com")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let token = Zeroizing::new(mint(args, &secret, now)?);
    if args.quiet {
        println!("{}", token.as_str());
        return Ok(ExitCode::SUCCESS);
    }
    let host = hostname.unwrap_or("cache.example.com");
    println!("{}", token.as_str());
    println!();
    println!(
        "A {} token for {:?}, valid for {}. For Nix, add this line to a netrc file (mode 0600) \
         and name that file in nix.conf with `netrc-file = /path/to/netrc`:",
        args.scope.as_str(),
        args.name.trim(),
        args.expires_in
    );
    println!();
    println!("{}", netrc_line(host, &token));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(scope: Scope, expires_in: &str) -> TokenArgs {
        TokenArgs {
            name: "ci".into(),
            scope,
            expires_in: expires_in.into(),
            quiet: false,
            s3: false,
        }
    }

    #[test]
    fn s3_credentials_carry_name_scope_expiry_and_a_derived_secret() {
        let secret = secret_from(Some("s".repeat(40))).unwrap();
        let now = 1_800_000_000;
        let lines = mint_s3(&args(Scope::Write, "90d"), &secret, now).unwrap();
        let mut it = lines.lines();
        let id = it
            .next()
            .unwrap()
            .strip_prefix("AWS_ACCESS_KEY_ID=")
            .unwrap();
        let key = it
            .next()
            .unwrap()
            .strip_prefix("AWS_SECRET_ACCESS_KEY=")
            .unwrap();
        assert_eq!(it.next(), None);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        let c = S3Credential::parse(id).unwrap();
        assert_eq!(c.name, "ci");
        assert_eq!(c.scope, Scope::Write);
        assert_eq!(c.expires, now + 90 * 86_400);
        assert_eq!(c.secret(&secret).expose(), key);
        let mut dashed = args(Scope::Read, "1d");
        dashed.name = "ci-runner".into();
        let err = mint_s3(&dashed, &secret, now).unwrap_err().to_string();
        assert!(err.contains("letters and digits"), "{err}");
        assert!(mint_s3(&args(Scope::Read, "never"), &secret, now).is_err());
    }

    #[test]
    fn minted_tokens_verify_with_the_worker_s_code() {
        let secret = secret_from(Some("s".repeat(40))).unwrap();
        let now = 1_800_000_000;
        let t = mint(&args(Scope::Write, "90d"), &secret, now).unwrap();
        let claims = token::verify(&t, &secret, now + 1).unwrap();
        assert_eq!(claims.scope, Scope::Write);
        assert_eq!(claims.sub, "ci");
        assert_eq!(claims.exp, now + 90 * 86_400);
        assert_eq!(
            token::verify(&t, &secret, now + 90 * 86_400),
            Err(token::TokenError::Expired)
        );
    }

    #[test]
    fn refusals_name_what_is_wrong_and_never_the_secret() {
        let short = "tooshort-secret-value";
        let err = secret_from(Some(short.into())).unwrap_err().to_string();
        assert!(err.contains("shorter than 32 bytes"), "{err}");
        assert!(!err.contains(short));
        let err = secret_from(None).unwrap_err().to_string();
        assert!(err.contains("TOKEN_SECRET is not set"), "{err}");
        assert!(secret_from(Some("   ".into())).is_err());
        let secret = secret_from(Some("s".repeat(40))).unwrap();
        assert!(mint(&args(Scope::Read, "forever"), &secret, 0).is_err());
        assert!(mint(&args(Scope::Read, "0d"), &secret, 0).is_err());
        let mut spaced = args(Scope::Read, "1d");
        spaced.name = "two words".into();
        assert!(mint(&spaced, &secret, 0).is_err());
    }
}
