use super::*;
use crate::s3::credentials::S3Credential;
use crate::sigv4::{sign, Credentials};
use crate::token::Scope;

const NOW: u64 = 1_800_000_000;
const HOST: &str = "cache.example.com";
const PATH: &str = "/nix-store/nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar";

fn token_secret() -> TokenSecret {
    TokenSecret::new("a test secret of reasonable length, 32+")
}

fn credential(scope: Scope, expires: u64) -> S3Credential {
    S3Credential::new("ci", scope, expires).unwrap()
}

/// A request to the endpoint as a client signs it with the workspace signer.
struct Signed {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl Signed {
    fn received(&self) -> Received<'_> {
        Received {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.to_string()));
    }
}

struct Signing<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    payload: &'a str,
    at: u64,
    region: &'a str,
    id: String,
    secret: SecretKey,
}

impl Signing<'_> {
    fn new(cred: &S3Credential) -> Signing<'static> {
        Signing {
            method: "PUT",
            path: PATH,
            query: "",
            payload: UNSIGNED_PAYLOAD,
            at: NOW,
            region: "us-east-1",
            id: cred.access_key_id(),
            secret: cred.secret(&token_secret()),
        }
    }

    fn sign(&self) -> Signed {
        let time = SigningTime::from_unix_seconds(self.at);
        let mut headers = vec![
            ("host".to_string(), HOST.to_string()),
            ("x-amz-content-sha256".to_string(), self.payload.to_string()),
            ("x-amz-date".to_string(), time.amz_date()),
        ];
        let creds = Credentials::new(self.id.clone(), self.secret.expose());
        let signed = sign(
            &SignableRequest {
                method: self.method,
                path: self.path,
                query: self.query,
                headers: &headers,
                payload_hash: self.payload,
            },
            &creds,
            time,
            sigv4::Scope {
                region: self.region,
                service: "s3",
            },
            PathMode::S3,
        );
        headers.push(("authorization".to_string(), signed.authorization));
        // Sent but not signed: may change on the way.
        headers.push(("user-agent".to_string(), "curl/8.5.0".to_string()));
        headers.push(("content-length".to_string(), "10".to_string()));
        Signed {
            method: self.method.to_string(),
            path: self.path.to_string(),
            query: self.query.to_string(),
            headers,
        }
    }
}

fn code(result: Result<Verified, S3Error>) -> ErrorCode {
    result.expect_err("refused").code
}

#[test]
fn requests_signed_by_the_workspace_signer_verify() {
    let cred = credential(Scope::Write, NOW + 3600);
    let hash = sigv4::sha256_hex(b"some bytes");
    for (method, query, payload) in [
        ("PUT", "", UNSIGNED_PAYLOAD),
        ("PUT", "", hash.as_str()),
        ("GET", "", EMPTY_SHA256),
        ("HEAD", "", EMPTY_SHA256),
        ("POST", "uploads", EMPTY_SHA256),
        ("POST", "uploads=", EMPTY_SHA256),
        ("PUT", "partNumber=2&uploadId=a%2Fb.c-d_e", UNSIGNED_PAYLOAD),
        ("POST", "uploadId=abc", hash.as_str()),
        ("DELETE", "uploadId=abc", EMPTY_SHA256),
    ] {
        let mut s = Signing::new(&cred);
        s.method = method;
        s.query = query;
        s.payload = payload;
        let req = s.sign();
        let v = verify(&req.received(), &token_secret(), NOW)
            .unwrap_or_else(|e| panic!("{method} ?{query}: {e}"));
        assert_eq!(v.credential, cred);
        let want = match payload {
            UNSIGNED_PAYLOAD => Payload::Unsigned,
            EMPTY_SHA256 => Payload::Empty,
            h => Payload::Sha256(h.to_string()),
        };
        assert_eq!(v.payload, want);
    }
}

#[test]
fn any_region_in_the_scope_is_taken_when_signed_with_it() {
    let cred = credential(Scope::Read, NOW + 60);
    for region in ["us-east-1", "fra1", "auto"] {
        let mut s = Signing::new(&cred);
        s.region = region;
        assert!(verify(&s.sign().received(), &token_secret(), NOW).is_ok());
    }
}

#[test]
fn tampering_breaks_the_signature() {
    let cred = credential(Scope::Write, NOW + 3600);
    let base = Signing::new(&cred);
    let mut s = base.sign();
    s.method = "DELETE".into();
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "method"
    );
    let mut s = base.sign();
    s.path = PATH.replace("0wpl", "1wpl");
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "path"
    );
    let mut s = base.sign();
    s.query = "uploads".into();
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "query"
    );
    let mut s = base.sign();
    s.set("host", "other.example.com");
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "a signed header"
    );
    let mut s = base.sign();
    s.set("x-amz-content-sha256", EMPTY_SHA256);
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "the payload hash"
    );
    let mut s = base.sign();
    s.set("user-agent", "something else");
    s.set("content-length", "11");
    assert!(
        verify(&s.received(), &token_secret(), NOW).is_ok(),
        "headers that are not signed may change"
    );
    let mut s = base.sign();
    let auth = s.received().header("authorization").unwrap().to_string();
    s.set("authorization", &auth.replace("/us-east-1/", "/eu-west-1/"));
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "another region than the one signed"
    );
    let mut s = base.sign();
    s.set("authorization", &auth.replace("/s3/", "/ec2/"));
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::AuthorizationHeaderMalformed,
        "another service"
    );
    let mut s = base.sign();
    s.set("authorization", &auth.replace("NSC1W", "NSC1R"));
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "an edited access key id"
    );
    let mut s = base.sign();
    let sig_at = auth.rfind('=').unwrap() + 1;
    let upper = format!("{}{}", &auth[..sig_at], auth[sig_at..].to_uppercase());
    s.set("authorization", &upper);
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "signature in upper case"
    );
}

#[test]
fn wrong_secrets_unknown_ids_and_time() {
    let cred = credential(Scope::Write, NOW + 3600);
    let mut s = Signing::new(&cred);
    s.secret = SecretKey::new("0".repeat(64));
    assert_eq!(
        code(verify(&s.sign().received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "wrong secret"
    );
    let other = TokenSecret::new("another secret of reasonable length");
    assert_eq!(
        code(verify(&Signing::new(&cred).sign().received(), &other, NOW)),
        ErrorCode::SignatureDoesNotMatch,
        "another TOKEN_SECRET"
    );
    let mut s = Signing::new(&cred);
    s.id = "AKIAIOSFODNN7EXAMPLE".into();
    assert_eq!(
        code(verify(&s.sign().received(), &token_secret(), NOW)),
        ErrorCode::InvalidAccessKeyId
    );
    for (at, ok) in [
        (NOW - 20 * 60, false),
        (NOW + 20 * 60, false),
        (NOW - MAX_SKEW - 1, false),
        (NOW - MAX_SKEW, true),
        (NOW + MAX_SKEW, true),
    ] {
        let mut s = Signing::new(&cred);
        s.at = at;
        let got = verify(&s.sign().received(), &token_secret(), NOW);
        if ok {
            assert!(got.is_ok(), "{at}");
        } else {
            assert_eq!(code(got), ErrorCode::RequestTimeTooSkewed, "{at}");
        }
    }
    let expired = credential(Scope::Write, NOW);
    assert_eq!(
        code(verify(
            &Signing::new(&expired).sign().received(),
            &token_secret(),
            NOW
        )),
        ErrorCode::ExpiredToken
    );
    // An expired credential with a wrong secret learns only that the signature is wrong.
    let mut s = Signing::new(&expired);
    s.secret = SecretKey::new("x");
    assert_eq!(
        code(verify(&s.sign().received(), &token_secret(), NOW)),
        ErrorCode::SignatureDoesNotMatch
    );
}

#[test]
fn payload_forms() {
    let cred = credential(Scope::Write, NOW + 3600);
    let mut s = Signing::new(&cred);
    s.payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    let e = verify(&s.sign().received(), &token_secret(), NOW).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotImplemented);
    assert!(e.message.contains("Nix 2.33"), "{}", e.message);
    let mut s = Signing::new(&cred).sign();
    s.set("content-encoding", "aws-chunked");
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::NotImplemented
    );
    let mut s = Signing::new(&cred).sign();
    s.set("x-amz-decoded-content-length", "10");
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::NotImplemented
    );
    let mut s = Signing::new(&cred).sign();
    s.headers.retain(|(n, _)| n != "x-amz-content-sha256");
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::InvalidRequest
    );
    let mut s = Signing::new(&cred);
    s.payload = "ABCDEF";
    assert_eq!(
        code(verify(&s.sign().received(), &token_secret(), NOW)),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn malformed_authorization() {
    let cred = credential(Scope::Write, NOW + 3600);
    let good = Signing::new(&cred).sign();
    let auth = good.received().header("authorization").unwrap().to_string();
    let cases: Vec<(String, ErrorCode)> = vec![
        (
            "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=".into(),
            ErrorCode::InvalidRequest,
        ),
        ("AWS4-HMAC-SHA256".into(), ErrorCode::InvalidRequest),
        (
            "AWS4-HMAC-SHA256 Credential=x".into(),
            ErrorCode::AuthorizationHeaderMalformed,
        ),
        (
            auth.replace("SignedHeaders=host;", "SignedHeaders="),
            ErrorCode::AccessDenied,
        ),
        (
            auth.replace("host;x-amz-content-sha256", "x-amz-content-sha256;host"),
            ErrorCode::AuthorizationHeaderMalformed,
        ),
        (
            auth.replace("/aws4_request", "/aws5_request"),
            ErrorCode::AuthorizationHeaderMalformed,
        ),
        (
            format!("{auth}, Signature=00"),
            ErrorCode::AuthorizationHeaderMalformed,
        ),
        (
            auth.replace("SignedHeaders=host;", "SignedHeaders=host;range;"),
            ErrorCode::AccessDenied,
        ),
    ];
    for (value, want) in cases {
        let mut s = Signing::new(&cred).sign();
        s.set("authorization", &value);
        assert_eq!(
            code(verify(&s.received(), &token_secret(), NOW)),
            want,
            "{value}"
        );
    }
    let mut s = Signing::new(&cred).sign();
    s.headers.retain(|(n, _)| n != "authorization");
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::AccessDenied
    );
    let mut s = Signing::new(&cred).sign();
    s.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00".into();
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::NotImplemented
    );
    let mut s = Signing::new(&cred).sign();
    let a = s.received().header("authorization").unwrap().to_string();
    s.set("authorization", &a.replace("/20270115/", "/20270114/"));
    assert_eq!(
        code(verify(&s.received(), &token_secret(), NOW)),
        ErrorCode::AuthorizationHeaderMalformed,
        "scope date not the day of x-amz-date"
    );
}

/// S3's worked examples (examplebucket, 2013-05-24) verify with their published secret.
#[test]
fn s3_worked_examples_verify() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/sigv4/s3-examples.json")).unwrap();
    let id = data["credentials"]["access_key_id"].as_str().unwrap();
    let secret = data["credentials"]["secret_access_key"].as_str().unwrap();
    let now = SigningTime::parse_amz(data["timestamp"].as_str().unwrap())
        .unwrap()
        .unix_seconds();
    let mut checked = 0;
    for case in data["cases"].as_array().unwrap() {
        let Some(canonical) = case["canonical_request"].as_str() else {
            continue; // presigned: not taken here
        };
        let lines: Vec<&str> = canonical.split('\n').collect();
        let signed_headers = lines[lines.len() - 2];
        let mut headers: Vec<(String, String)> = case["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let signature = case["signature"].as_str().unwrap();
        headers.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={id}/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders={signed_headers}, Signature={signature}"
            ),
        ));
        let query: Vec<String> = case["query"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}={}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
            .collect();
        let query = query.join("&");
        let method = case["method"].as_str().unwrap();
        let req = Received {
            method,
            path: lines[1],
            query: &query,
            headers: &headers,
        };
        let lookup = |asked: &str| (asked == id).then(|| SecretKey::new(secret));
        let (got, _) =
            verify_signature(&req, now, lookup).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(got, id);
        // The same request one bit off does not.
        let mut bad = headers.clone();
        let last = bad.len() - 1;
        bad[last].1 = bad[last].1.replace(signature, &signature.replace('a', "b"));
        let req = Received {
            headers: &bad,
            ..req
        };
        assert_eq!(
            verify_signature(&req, now, lookup).unwrap_err().code,
            ErrorCode::SignatureDoesNotMatch
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}
