//! The rig the CLI tests share: the DigitalOcean and Cloudflare fakes, `moto_server` for
//! Spaces, a working directory with `provision.toml`, and the `provision` binary run inside
//! it, with every run's output kept and scanned for secrets.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::fakes::{FakeCloudflare, FakeDigitalOcean};
use crate::moto::Moto;
use provision::api::spaces::{BucketStatus, Versioning};
use serde_json::Value;

pub const DO_TOKEN: &str =
    "dop_v1_0f3c9a7e51b24d68a0c1e2f3b4d5c6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d";
pub const CF_TOKEN: &str = "cf-token-Zq8mW3rT7yU1iO5pA9sD2fG6hJ0kL4xC";
pub const HOSTNAME: &str = "cache.example.com";
pub const ZONE: &str = "example.com";
pub const REGION: &str = "fra1";
pub const SCRIPT: &str = "nix-cache";

// ---------------------------------------------------------------------------------------------
// A rig: fakes + moto + a working directory, and the binary run inside it
// ---------------------------------------------------------------------------------------------

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// API calls one command made, per provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub digitalocean: usize,
    pub cloudflare: usize,
    pub spaces: usize,
}

pub struct Rig<'m> {
    pub moto: &'m Moto,
    pub bucket: String,
    pub digitalocean: FakeDigitalOcean,
    pub cloudflare: FakeCloudflare,
    pub dir: tempfile::TempDir,
    /// `Some(account)` to store the Worker's key through Cloudflare's API.
    pub account: Option<String>,
    transcript: Mutex<Vec<String>>,
}

impl<'m> Rig<'m> {
    pub fn new(
        moto: &'m Moto,
        bucket: &str,
        worker_in_cloudflare: bool,
        extra_config: &str,
    ) -> Self {
        let digitalocean = FakeDigitalOcean::start(DO_TOKEN);
        let cloudflare = FakeCloudflare::start(CF_TOKEN, &[ZONE]);
        let account = worker_in_cloudflare.then(|| cloudflare.account_id());
        if worker_in_cloudflare {
            // `npx wrangler deploy` ran first (tests of the other order say so).
            cloudflare.deploy_script(SCRIPT);
        }
        let dir = tempfile::tempdir().unwrap();
        let worker = if worker_in_cloudflare {
            format!("[worker]\nname = \"{SCRIPT}\"\n")
        } else {
            String::new()
        };
        std::fs::write(
            dir.path().join("provision.toml"),
            format!(
                "hostname = \"{HOSTNAME}\"\nzone = \"{ZONE}\"\nregion = \"{REGION}\"\nbucket = \"{bucket}\"\n{extra_config}\n{worker}"
            ),
        )
        .unwrap();
        Rig {
            moto,
            bucket: bucket.to_owned(),
            digitalocean,
            cloudflare,
            dir,
            account,
            transcript: Mutex::new(Vec::new()),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_provision"));
        c.current_dir(self.dir.path())
            .env_clear()
            .env("DIGITALOCEAN_TOKEN", DO_TOKEN)
            .env("CLOUDFLARE_API_TOKEN", CF_TOKEN)
            .env("SPACES_ACCESS_KEY_ID", &self.moto.key_id)
            .env("SPACES_SECRET_ACCESS_KEY", &self.moto.secret)
            .env("DIGITALOCEAN_API_URL", self.digitalocean.url())
            .env("CLOUDFLARE_API_URL", self.cloudflare.url())
            .env("SPACES_ENDPOINT", self.moto.url())
            .env("PROVISION_RETRY_BASE_MS", "10")
            .env("PROVISION_RETRY_MAX_MS", "1500")
            .env("PROVISION_HTTP_TIMEOUT_MS", "1000")
            .args(args);
        if let Some(account) = &self.account {
            c.env("CLOUDFLARE_ACCOUNT_ID", account);
        }
        c
    }

    pub fn run_with(&self, mut command: Command, input: &str) -> Run {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run provision");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.transcript
            .lock()
            .unwrap()
            .push(format!("{}\n{}", run.stdout, run.stderr));
        run
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(self.command(args), "")
    }

    /// Runs and counts the API calls the run made.
    pub fn counted(&self, args: &[&str]) -> (Run, Counts) {
        let before = self.counts();
        let run = self.run(args);
        let after = self.counts();
        (
            run,
            Counts {
                digitalocean: after.digitalocean - before.digitalocean,
                cloudflare: after.cloudflare - before.cloudflare,
                spaces: after.spaces - before.spaces,
            },
        )
    }

    /// The API calls made since `before` (a [`Rig::counts`]), one line each:
    /// `provider METHOD path status`.
    pub fn calls_since(&self, before: Counts) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, calls) in [
            ("DigitalOcean", self.digitalocean.calls()),
            ("Cloudflare", self.cloudflare.calls()),
        ] {
            let skip = if name == "DigitalOcean" {
                before.digitalocean
            } else {
                before.cloudflare
            };
            lines.extend(
                calls
                    .iter()
                    .skip(skip)
                    .map(|c| format!("{name:<12} {} {} {}", c.method, c.path, c.status)),
            );
        }
        lines.extend(
            self.moto
                .request_lines()
                .into_iter()
                .skip(before.spaces)
                .map(|l| format!("{:<12} {l}", "Spaces")),
        );
        lines
    }

    pub fn counts(&self) -> Counts {
        Counts {
            digitalocean: self.digitalocean.calls().len(),
            cloudflare: self.cloudflare.calls().len(),
            spaces: self.moto.requests(),
        }
    }

    pub fn expect(&self, args: &[&str], code: i32) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, code, "provision {args:?}:\n{run:?}");
        run
    }

    pub fn secrets_file(&self) -> PathBuf {
        self.dir.path().join("worker-secrets.json")
    }

    /// The Worker's key secret, wherever apply put it.
    pub fn worker_secret(&self) -> Option<String> {
        match &self.account {
            Some(account) => {
                self.cloudflare
                    .secret_value(account, SCRIPT, "SPACES_SECRET_ACCESS_KEY")
            }
            None => std::fs::read_to_string(self.secrets_file())
                .ok()
                .map(|t| serde_json::from_str::<Value>(&t).unwrap())
                .map(|v| v["SPACES_SECRET_ACCESS_KEY"].as_str().unwrap().to_owned()),
        }
    }

    /// Fails if any secret shows in any run's output or in a file other than the two meant to
    /// hold one (both must be mode 0600).
    pub fn assert_no_leaks(&self, extra: &[String]) {
        let mut secrets = vec![
            DO_TOKEN.to_owned(),
            CF_TOKEN.to_owned(),
            self.moto.secret.clone(),
        ];
        secrets.extend(self.worker_secret());
        secrets.extend(extra.iter().cloned());
        let transcript = self.transcript.lock().unwrap();
        for (i, text) in transcript.iter().enumerate() {
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "run {i} printed a secret");
            }
            assert!(
                !text.contains("PRIVATE KEY"),
                "run {i} printed a private key"
            );
        }
        for entry in walk(self.dir.path()) {
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
            if name == "worker-secrets.json" || name.ends_with(".key") {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{name} must be private");
                for s in [DO_TOKEN, CF_TOKEN, self.moto.secret.as_str()] {
                    assert!(!text.contains(s), "{name} holds a secret it should not");
                }
                continue;
            }
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "{name} holds a secret");
            }
            assert!(!text.contains("PRIVATE KEY"), "{name} holds a private key");
        }
    }

    pub fn assert_no_violations(&self) {
        assert!(
            self.digitalocean.violations().is_empty(),
            "DigitalOcean fake: {:#?}",
            self.digitalocean.violations()
        );
        assert!(
            self.cloudflare.violations().is_empty(),
            "Cloudflare fake: {:#?}",
            self.cloudflare.violations()
        );
    }

    /// Exactly one of each resource, as a converged apply leaves it; the Worker's key reads.
    pub fn assert_converged(&self) {
        self.assert_converged_with_key("read");
    }

    /// [`Rig::assert_converged`] for a Worker that takes uploads (`TOKEN_SECRET` was in
    /// provision's environment): its key may also write.
    pub fn assert_converged_taking_uploads(&self) {
        self.assert_converged_with_key("readwrite");
    }

    fn assert_converged_with_key(&self, permission: &str) {
        let certs = self.digitalocean.certificates();
        assert_eq!(certs.len(), 1, "DigitalOcean certificates: {certs:#?}");
        assert!(certs[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("cache-example-com-origin-"));
        let origin = self.cloudflare.origin_certificates();
        assert_eq!(origin.len(), 1, "origin certificates: {origin:#?}");
        let cdn = self.digitalocean.cdn_endpoints();
        assert_eq!(cdn.len(), 1, "CDN endpoints: {cdn:#?}");
        let endpoint = format!("{}.{REGION}.cdn.digitaloceanspaces.com", self.bucket);
        assert_eq!(cdn[0]["endpoint"], endpoint.as_str());
        assert_eq!(cdn[0]["custom_domain"], HOSTNAME);
        assert_eq!(cdn[0]["ttl"], 3600);
        let dns = self.cloudflare.dns_records();
        assert_eq!(dns.len(), 1, "DNS records: {dns:#?}");
        assert_eq!(dns[0]["type"], "CNAME");
        assert_eq!(dns[0]["content"], endpoint.as_str());
        assert_eq!(dns[0]["proxied"], true);
        let keys = self.digitalocean.spaces_keys();
        assert_eq!(keys.len(), 1, "Spaces keys: {keys:#?}");
        assert_eq!(
            keys[0]["name"],
            format!("{}-worker-read", self.bucket),
            "the key is confirmed"
        );
        assert_eq!(
            keys[0]["grants"],
            serde_json::json!([{"bucket": self.bucket, "permission": permission}])
        );
        match &self.account {
            Some(account) => {
                let mut names = self.cloudflare.worker_secrets(account, SCRIPT);
                names.retain(|n| n.starts_with("SPACES_"));
                names.sort();
                assert_eq!(names, ["SPACES_ACCESS_KEY_ID", "SPACES_SECRET_ACCESS_KEY"]);
                assert_eq!(
                    self.cloudflare
                        .secret_value(account, SCRIPT, "SPACES_ACCESS_KEY_ID")
                        .as_deref(),
                    keys[0]["access_key"].as_str()
                );
            }
            None => {
                let v: Value =
                    serde_json::from_str(&std::fs::read_to_string(self.secrets_file()).unwrap())
                        .unwrap();
                assert_eq!(v["SPACES_ACCESS_KEY_ID"], keys[0]["access_key"]);
            }
        }
        let s3 = self.moto.s3();
        assert_eq!(s3.head_bucket(&self.bucket).unwrap(), BucketStatus::Owned);
        assert_eq!(
            s3.get_versioning(&self.bucket).unwrap(),
            Versioning::Enabled
        );
        let rule = s3.get_lifecycle(&self.bucket).unwrap().unwrap();
        assert_eq!(
            (
                rule.enabled,
                rule.expiration_days,
                rule.expired_object_delete_marker,
                rule.noncurrent_days,
                rule.abort_incomplete_multipart_days
            ),
            (true, None, true, Some(7), Some(1))
        );
        let policy = s3.get_policy(&self.bucket).unwrap().unwrap();
        assert!(provision::api::spaces::policy_equivalent(
            &policy,
            &provision::api::spaces::anonymous_read_policy(&self.bucket)
        ));
        let info = s3
            .get_object(&self.bucket, "nix-cache-info")
            .unwrap()
            .unwrap();
        assert_eq!(
            info.body,
            b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
        );
        assert_eq!(info.content_type.as_deref(), Some("text/x-nix-cache-info"));
    }

    /// Nothing provision makes is left.
    pub fn assert_gone(&self) {
        assert!(self.digitalocean.certificates().is_empty());
        assert!(self.digitalocean.cdn_endpoints().is_empty());
        assert!(self.digitalocean.spaces_keys().is_empty());
        assert!(self.cloudflare.origin_certificates().is_empty());
        assert!(self.cloudflare.dns_records().is_empty());
        if let Some(account) = &self.account {
            assert!(self.cloudflare.worker_secrets(account, SCRIPT).is_empty());
        }
        assert!(!self.secrets_file().exists());
        assert_eq!(
            self.moto.s3().head_bucket(&self.bucket).unwrap(),
            BucketStatus::Missing
        );
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
