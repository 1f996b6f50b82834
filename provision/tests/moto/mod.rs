//! `moto_server` in auth mode for provision's end-to-end tests: started on a free port on
//! 127.0.0.1, given an IAM user allowed `s3:*` and its key, and killed by its pid when dropped.
//! Shared by the test files with `mod moto;`; each uses what it needs.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix_spaces_cache::sigv4::{uri_encode, Credentials};
use provision::api::spaces::SpacesClient;

/// The region the tests sign for (moto accepts any).
pub const REGION: &str = "fra1";

pub struct Moto {
    child: Child,
    pub port: u16,
    log: PathBuf,
    pub key_id: String,
    pub secret: String,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests moto has logged so far (its access log, one line per request).
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" HTTP/1.1\""))
            .count()
    }

    /// Each request moto served, as `METHOD /path?query STATUS`, in order.
    pub fn request_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once('"')?;
                let (request, after) = rest.split_once('"')?;
                let request = request.strip_suffix(" HTTP/1.1")?;
                let status = after.split_whitespace().next().unwrap_or("");
                Some(format!("{request} {status}"))
            })
            .collect()
    }

    /// provision's own client, straight to moto.
    pub fn s3(&self) -> SpacesClient {
        SpacesClient::new(
            &self.url(),
            REGION,
            Credentials::new(self.key_id.clone(), self.secret.clone()),
        )
        .unwrap()
        .with_retry(Duration::from_millis(10), 2)
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto_binary() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    dirs.into_iter()
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
        .expect("moto_server is not installed: run `pip install 'moto[server]'` (scripts/install.sh does)")
}

fn moto_iam(url: &str, params: &[(&str, &str)]) -> String {
    let mut body = String::from("Version=2010-05-08");
    for (k, v) in params {
        body.push_str(&format!("&{k}={}", uri_encode(v, false)));
    }
    ureq::post(&format!("{url}/"))
        .set(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&body)
        .unwrap_or_else(|e| panic!("IAM {:?} on moto failed: {e}", params.first()))
        .into_string()
        .unwrap()
}

/// `moto_server` on a free port, once it says it listens there. The port was free a moment
/// before; should another server take it first, moto exits and another port is tried, so no
/// request of these tests ever reaches a server that is not this moto.
fn spawn_listening_moto() -> Moto {
    for _ in 0..5 {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto {
            child,
            port,
            log,
            key_id: String::new(),
            secret: String::new(),
            _dir: dir,
        };
        let listening = format!("Running on http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = moto.child.try_wait() {
                break; // the port was taken meanwhile: try another
            }
            let said = std::fs::read_to_string(&moto.log).unwrap_or_default();
            if said.contains(&listening) && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("moto_server could not listen on any of 5 free ports")
}

fn xml_value(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml.find(&open).unwrap() + open.len();
    let end = start + xml[start..].find(&format!("</{name}>")).unwrap();
    xml[start..end].to_owned()
}

/// moto in auth mode, with an IAM user allowed `s3:*` and its key.
pub fn start_moto() -> Moto {
    let mut moto = spawn_listening_moto();
    let url = moto.url();
    let user = "provision";
    moto_iam(&url, &[("Action", "CreateUser"), ("UserName", user)]);
    moto_iam(
        &url,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", user),
            ("PolicyName", "s3-all"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            ),
        ],
    );
    let key = moto_iam(&url, &[("Action", "CreateAccessKey"), ("UserName", user)]);
    moto.key_id = xml_value(&key, "AccessKeyId");
    moto.secret = xml_value(&key, "SecretAccessKey");
    moto
}
