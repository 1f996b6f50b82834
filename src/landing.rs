//! The page at `/`: what this cache is and the `nix.conf` lines that use it.
//!
//! One small self-contained HTML document (inline CSS, no scripts, no external assets). Every
//! input (host, scheme, store dir, keys) is HTML-escaped; the page shows no secret because it
//! is given none.

use crate::nix::CacheInfo;

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the page says about uploads and access: the parts of the push bindings it may show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Push {
    /// `PRIVATE = "1"`: reading needs a token.
    pub private: bool,
    /// `TOKEN_SECRET` is set: `write` tokens may push.
    pub uploads: bool,
    /// The public half of `SIGNING_KEY`, `name:base64`.
    pub signing_key: Option<String>,
}

/// The landing page for a Worker reached at `scheme://host` (`host` may carry a port).
pub fn render(host: &str, scheme: &str, cache_info: &CacheInfo, public_keys: &[String]) -> String {
    render_with(host, scheme, cache_info, public_keys, &Push::default())
}

/// The `netrc` line for a cache at `host` (the port dropped: netrc names machines).
pub fn netrc_line(host: &str, token: &str) -> String {
    let machine = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    format!("machine {machine} login nix password {token}")
}

/// [`render`], saying whether the cache is private, how to push, and the key it signs with.
pub fn render_with(
    host: &str,
    scheme: &str,
    cache_info: &CacheInfo,
    public_keys: &[String],
    push: &Push,
) -> String {
    let mut all_keys: Vec<String> = public_keys.to_vec();
    if let Some(key) = &push.signing_key {
        if !all_keys.contains(key) {
            all_keys.push(key.clone());
        }
    }
    let public_keys = &all_keys[..];
    let access = access_section(host, push);
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        "https"
    };
    let url = escape_html(&format!("{scheme}://{host}"));
    let host = escape_html(host);
    let store_dir = escape_html(&cache_info.store_dir);
    let priority = cache_info.priority;
    let keys = public_keys
        .iter()
        .map(|k| escape_html(k))
        .collect::<Vec<_>>()
        .join(" ");
    let (trusted, extra_trusted, key_note) = if keys.is_empty() {
        (
            String::new(),
            String::new(),
            "<p>No public key is configured for this cache (binding <code>PUBLIC_KEYS</code>). \
             Ask its operator for the key its paths are signed with, and add it to \
             <code>trusted-public-keys</code>.</p>\n"
                .to_string(),
        )
    } else {
        (
            format!("\ntrusted-public-keys = {keys}"),
            format!("\nextra-trusted-public-keys = {keys}"),
            format!("<p>Paths here are signed with: <code>{keys}</code></p>\n"),
        )
    };
    let mass_query = if cache_info.want_mass_query {
        "yes"
    } else {
        "no"
    };
    format!(
        "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>Nix binary cache at {host}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }}
pre {{ background: #f4f4f4; padding: .8em 1em; overflow-x: auto; }}
code, pre {{ font-family: ui-monospace, monospace; }}
</style>
</head>
<body>
<h1>Nix binary cache at {host}</h1>
<p>This is a <a href=\"https://nixos.org/manual/nix/stable/\">Nix</a> binary cache: prebuilt store paths for <code>{store_dir}</code>, served at <code>{url}</code>. Point Nix at it and it downloads these paths instead of building them.</p>
<h2>Use it</h2>
<p>In <code>/etc/nix/nix.conf</code> (or <code>~/.config/nix/nix.conf</code> as a trusted user), to use it instead of other caches:</p>
<pre>substituters = {url}{trusted}</pre>
<p>or next to the caches you already use:</p>
<pre>extra-substituters = {url}{extra_trusted}</pre>
{key_note}{access}<p>To fetch one path and its closure without changing any configuration:</p>
<pre>nix copy --from {url} {store_dir}/&lt;hash&gt;-&lt;name&gt;</pre>
<h2>About this cache</h2>
<ul>
<li>Store directory: <code>{store_dir}</code></li>
<li>Priority: {priority} (lower wins when several caches have a path; cache.nixos.org is 40)</li>
<li>Mass queries welcome: {mass_query}</li>
<li><a href=\"/nix-cache-info\">nix-cache-info</a></li>
</ul>
</body>
</html>
"
    )
}

/// The paragraphs on private reads and on pushing; empty for a public, read-only cache.
fn access_section(host: &str, push: &Push) -> String {
    let netrc = escape_html(&netrc_line(host, "<token>"));
    let mut out = String::new();
    if push.private {
        out.push_str(&format!(
            "<p>This cache is <strong>private</strong>: every path needs an access token. Put \
             the token in a netrc file and point Nix at it (<code>netrc-file = /etc/nix/netrc</code> \
             in <code>nix.conf</code>):</p>\n<pre>{netrc}</pre>\n"
        ));
    }
    if push.uploads {
        if !push.private {
            out.push_str(&format!(
                "<p>To push, put a <code>write</code> access token in a netrc file \
                 (<code>netrc-file</code> in <code>nix.conf</code>):</p>\n<pre>{netrc}</pre>\n"
            ));
        }
        out.push_str(
            "<p>Push with <code>nix copy --to</code> this URL; a token with <code>write</code> \
             scope may push, a <code>read</code> token may only read.</p>\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_nix_conf_lines_and_keys() {
        let keys = vec!["cache.example.com-1:AAAA+/bb=".to_string()];
        let page = render("cache.example.com", "https", &CacheInfo::default(), &keys);
        assert!(page.contains("substituters = https://cache.example.com\n"));
        assert!(page.contains("extra-substituters = https://cache.example.com"));
        assert!(page.contains("extra-trusted-public-keys = cache.example.com-1:AAAA+/bb="));
        assert!(page.contains("trusted-public-keys = cache.example.com-1:AAAA+/bb="));
        assert!(page.contains("nix copy --from https://cache.example.com /nix/store/"));
        assert!(page.contains("Priority: 40"));
        assert!(!page.contains("No public key"));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn says_when_no_key_is_configured() {
        let page = render("127.0.0.1:8787", "http", &CacheInfo::default(), &[]);
        assert!(page.contains("No public key is configured"));
        assert!(page.contains("substituters = http://127.0.0.1:8787</pre>"));
        assert!(!page.contains("trusted-public-keys ="));
    }

    #[test]
    fn escapes_every_input() {
        let info = CacheInfo {
            store_dir: "/nix/<store>".into(),
            ..CacheInfo::default()
        };
        let keys = vec!["a:<script>".to_string()];
        let page = render("<img src=x>\"'&", "javascript", &info, &keys);
        assert!(!page.contains("<img"));
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<store>"));
        assert!(page.contains("&lt;img src=x&gt;&quot;&#39;&amp;"));
        assert!(!page.contains("javascript"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn private_caches_show_the_netrc_line_and_the_signing_key() {
        let push = Push {
            private: true,
            uploads: true,
            signing_key: Some("cache-1:AAAA".into()),
        };
        let page = render_with(
            "cache.example.com:8443",
            "https",
            &CacheInfo::default(),
            &[],
            &push,
        );
        assert!(page.contains("<strong>private</strong>"));
        assert!(
            page.contains("<pre>machine cache.example.com login nix password &lt;token&gt;</pre>")
        );
        assert!(page.contains("trusted-public-keys = cache-1:AAAA"));
        assert!(page.contains("nix copy --to"));
        let public = render_with(
            "c.example",
            "https",
            &CacheInfo::default(),
            &[],
            &Push::default(),
        );
        assert!(!public.contains("private"));
        assert!(!public.contains("netrc"));
    }

    #[test]
    fn netrc_lines_name_the_machine_without_its_port() {
        assert_eq!(
            netrc_line("127.0.0.1:8787", "t"),
            "machine 127.0.0.1 login nix password t"
        );
        assert_eq!(
            netrc_line("cache.example.com", "t"),
            "machine cache.example.com login nix password t"
        );
        assert_eq!(
            netrc_line("[::1]", "t"),
            "machine [::1] login nix password t"
        );
    }

    #[test]
    fn has_no_external_assets() {
        let page = render("c.example", "https", &CacheInfo::default(), &[]);
        assert!(!page.contains("src="));
        assert!(!page.contains("<link"));
        assert!(!page.contains("<script"));
    }
}
