//! The SSH host key check of the agent's fetches: with `GITSHIP_GIT_KNOWN_HOSTS` set (the
//! generated Deployment sets it to the `known_hosts` of the SSH Secret, `agent manifests`), a
//! server's host key must be listed there for its host, or the fetch stops before any
//! credential is sent. An unknown host and a changed key are refused with the host, the key's
//! type and its SHA-256 fingerprint (public values, as `ssh` shows them), never key material.
//!
//! The file is OpenSSH's format: `[marker] patterns keytype base64-key [comment]`. Patterns are
//! comma-separated host names, `[host]:port` for a port other than 22, wildcards (`*`, `?`),
//! negations (`!pattern`) and hashed names (`|1|salt|hmac-sha1`, `ssh-keygen -H`). A line
//! marked `@revoked` refuses its key for every host; `@cert-authority` lines are not supported
//! (they never match: list the host keys themselves).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The largest `known_hosts` file read (a few thousand hosts).
const MAX_BYTES: u64 = 1024 * 1024;

/// What the check decided about a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The file lists this key for this host.
    Known,
    /// The file lists no key for this host.
    Unknown,
    /// The file lists other keys for this host, not this one.
    Changed,
    /// The file marks this key `@revoked`.
    Revoked,
}

/// The `known_hosts` entries of a file.
#[derive(Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    revoked: bool,
    patterns: Vec<String>,
    key: Vec<u8>,
}

impl KnownHosts {
    /// Read the file at `path` (at most 1 MiB); lines that cannot be read are skipped.
    pub fn read(path: &Path) -> Result<KnownHosts, String> {
        use std::io::Read as _;
        let file = std::fs::File::open(path)
            .map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
        if text.len() as u64 > MAX_BYTES {
            return Err(format!(
                "`{}` is larger than {} KiB",
                path.display(),
                MAX_BYTES / 1024
            ));
        }
        Ok(KnownHosts::parse(&text))
    }

    /// The entries of `text`; lines that are not entries (comments, blanks, malformed) are
    /// skipped.
    pub fn parse(text: &str) -> KnownHosts {
        let entries = text.lines().filter_map(parse_line).collect();
        KnownHosts { entries }
    }

    /// Whether `key` (the SSH wire-format public key, as the server sent it) is the key of
    /// `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = if port == 22 {
            host.to_ascii_lowercase()
        } else {
            format!("[{}]:{port}", host.to_ascii_lowercase())
        };
        if self.entries.iter().any(|e| e.revoked && e.key == key) {
            return Verdict::Revoked;
        }
        let mut listed = false;
        for entry in self
            .entries
            .iter()
            .filter(|e| !e.revoked && host_matches(&e.patterns, &name))
        {
            if entry.key == key {
                return Verdict::Known;
            }
            listed = true;
        }
        if listed {
            Verdict::Changed
        } else {
            Verdict::Unknown
        }
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if let Some(marker) = first.strip_prefix('@') {
        match marker {
            "revoked" => revoked = true,
            // `@cert-authority` and unknown markers: not a host key.
            _ => return None,
        }
        first = fields.next()?;
    }
    let _key_type = fields.next()?;
    let key = STANDARD.decode(fields.next()?).ok()?;
    let patterns = first
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.starts_with("|1|") {
                p.to_string()
            } else {
                p.to_ascii_lowercase()
            }
        })
        .collect();
    Some(Entry {
        revoked,
        patterns,
        key,
    })
}

/// OpenSSH's rule: some pattern matches and no negated one does.
fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(negated, name) {
                return false;
            }
        } else if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_matches(hashed, name);
        } else {
            matched |= wildcard(pattern, name);
        }
    }
    matched
}

/// `salt|hash`, both base64: HMAC-SHA1 of the name keyed with the salt.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// A glob with `*` (any run) and `?` (one character).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point for the last `*`.
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// `SHA256:...`, the fingerprint `ssh-keygen -l` shows for a public key (base64, no padding).
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &[u8] =
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &[u8] =
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn line(patterns: &str, key: &[u8]) -> String {
        format!("{patterns} ssh-ed25519 {} comment\n", STANDARD.encode(key))
    }

    #[test]
    fn a_listed_key_is_known_another_is_changed_an_unlisted_host_unknown() {
        let hosts = KnownHosts::parse(&format!(
            "# comment\n\n{}{}garbage line\n",
            line("github.com,140.82.121.4", KEY_A),
            line("[git.example]:2222", KEY_B)
        ));
        assert_eq!(hosts.check("github.com", 22, KEY_A), Verdict::Known);
        assert_eq!(hosts.check("GitHub.com", 22, KEY_A), Verdict::Known);
        assert_eq!(hosts.check("140.82.121.4", 22, KEY_A), Verdict::Known);
        assert_eq!(hosts.check("github.com", 22, KEY_B), Verdict::Changed);
        assert_eq!(hosts.check("gitlab.com", 22, KEY_A), Verdict::Unknown);
        // A port other than 22 is its own entry.
        assert_eq!(hosts.check("git.example", 2222, KEY_B), Verdict::Known);
        assert_eq!(hosts.check("git.example", 22, KEY_B), Verdict::Unknown);
        assert_eq!(hosts.check("github.com", 2222, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn wildcards_negations_hashes_and_revocations() {
        // `ssh-keygen -H` of `github.com` with this salt.
        let salt = [7u8; 20];
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let hash = ring::hmac::sign(&key, b"github.com");
        let hashed = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash));
        let hosts = KnownHosts::parse(&format!(
            "{}{}{}",
            line(&hashed, KEY_A),
            line("*.example.org,!evil.example.org", KEY_B),
            line("@revoked nothing.example", KEY_B),
        ));
        assert_eq!(hosts.check("github.com", 22, KEY_A), Verdict::Known);
        assert_eq!(hosts.check("gitlab.com", 22, KEY_A), Verdict::Unknown);
        // KEY_B is revoked, whichever pattern lists it.
        assert_eq!(hosts.check("git.example.org", 22, KEY_B), Verdict::Revoked);
        let hosts = KnownHosts::parse(&line("*.example.org,!evil.example.org", KEY_B));
        assert_eq!(hosts.check("git.example.org", 22, KEY_B), Verdict::Known);
        assert_eq!(hosts.check("evil.example.org", 22, KEY_B), Verdict::Unknown);
        assert_eq!(hosts.check("example.org", 22, KEY_B), Verdict::Unknown);
        // A certificate authority is not a host key.
        let hosts = KnownHosts::parse(&format!(
            "@cert-authority *.corp ssh-ed25519 {}\n",
            STANDARD.encode(KEY_A)
        ));
        assert_eq!(hosts.check("git.corp", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn globs() {
        for (pattern, name, expected) in [
            ("*", "anything", true),
            ("git?.example", "git1.example", true),
            ("git?.example", "git.example", false),
            ("*.example", "a.b.example", true),
            ("*.example", "example", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ] {
            assert_eq!(wildcard(pattern, name), expected, "{pattern} {name}");
        }
    }

    #[test]
    fn fingerprints_are_sha256_base64_without_padding() {
        let printed = fingerprint(KEY_A);
        assert!(printed.starts_with("SHA256:") && !printed.ends_with('='));
        assert_eq!(printed.len(), "SHA256:".len() + 43);
    }
}
