//! `provision token` as a user runs it: the secret from the environment, the token and the
//! netrc line on standard output, and clear refusals that never echo the secret.

use std::process::Command;

use nix_spaces_cache::token::{verify, Scope, TokenSecret};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

fn provision(args: &[&str], secret: Option<&str>) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_provision"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("TOKEN_SECRET");
    if let Some(secret) = secret {
        cmd.env("TOKEN_SECRET", secret);
    }
    let out = cmd.output().expect("run provision");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn mints_a_token_and_its_netrc_line() {
    let (ok, out, err) = provision(
        &[
            "token",
            "--name",
            "ci",
            "--scope",
            "write",
            "--expires-in",
            "90d",
            "--hostname",
            "cache.example.com",
        ],
        Some(SECRET),
    );
    assert!(ok, "{err}");
    let token = out.lines().next().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = verify(token, &TokenSecret::new(SECRET), now).expect("the token verifies");
    assert_eq!(claims.scope, Scope::Write);
    assert_eq!(claims.sub, "ci");
    assert!(claims.exp >= now + 90 * 86_400 - 60 && claims.exp <= now + 90 * 86_400 + 60);
    assert!(
        out.contains(&format!(
            "machine cache.example.com login nix password {token}"
        )),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !err.contains(SECRET));

    let (ok, out, _) = provision(
        &["token", "--name", "laptop", "--scope", "read", "--quiet"],
        Some(SECRET),
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 1);
    let claims = verify(out.trim(), &TokenSecret::new(SECRET), now).unwrap();
    assert_eq!(claims.scope, Scope::Read);
}

#[test]
fn refusals_name_what_is_missing() {
    let (ok, out, err) = provision(&["token", "--name", "ci", "--scope", "write"], None);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("TOKEN_SECRET is not set"), "{err}");

    let short = "short-secret-9f8e7d";
    let (ok, _, err) = provision(&["token", "--name", "ci", "--scope", "write"], Some(short));
    assert!(!ok);
    assert!(err.contains("shorter than 32 bytes"), "{err}");
    assert!(!err.contains(short), "the secret was echoed: {err}");

    let (ok, _, err) = provision(&["token", "--name", "ci", "--scope", "admin"], Some(SECRET));
    assert!(!ok);
    assert!(err.contains("--scope"), "{err}");
    assert!(!err.contains(SECRET));

    let (ok, _, err) = provision(
        &[
            "token",
            "--name",
            "ci",
            "--scope",
            "read",
            "--expires-in",
            "1y",
        ],
        Some(SECRET),
    );
    assert!(!ok);
    assert!(err.contains("--expires-in"), "{err}");
}

#[test]
fn s3_credentials_print_two_export_lines() {
    use nix_spaces_cache::s3::S3Credential;
    let (ok, out, err) = provision(
        &[
            "token",
            "--s3",
            "--name",
            "ci",
            "--scope",
            "write",
            "--expires-in",
            "90d",
        ],
        Some(SECRET),
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let id = lines[0]
        .strip_prefix("AWS_ACCESS_KEY_ID=")
        .expect("id line");
    let key = lines[1]
        .strip_prefix("AWS_SECRET_ACCESS_KEY=")
        .expect("secret line");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
    let credential = S3Credential::parse(id).expect("an id of this cache");
    assert_eq!(credential.name, "ci");
    assert_eq!(credential.scope, Scope::Write);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(credential.expires.abs_diff(now + 90 * 86_400) < 60);
    assert_eq!(credential.secret(&TokenSecret::new(SECRET)).expose(), key);
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    assert!(!err.contains(key), "the secret is printed once, on stdout");

    let (ok, out, err) = provision(
        &["token", "--s3", "--name", "ci-1", "--scope", "read"],
        Some(SECRET),
    );
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("letters and digits"), "{err}");
}
