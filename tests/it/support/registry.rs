//! A real registry for tests: Debian's `docker-registry` (distribution 2.x) on a free loopback
//! port with its storage in a temp dir, stopped when dropped; plus a tiny independent HTTP/1.1
//! client to read tags, manifests and config blobs back from it (so tests do not check gitship's
//! registry client with itself).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

/// Accept header covering the manifest types builders push.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// A running `docker-registry`.
pub struct TestRegistry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub address: String,
    _storage: tempfile::TempDir,
}

/// A parsed HTTP response.
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A loopback port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

impl TestRegistry {
    /// Start a registry, or `None` when `docker-registry` is missing (and tools are not required).
    pub fn start() -> Option<TestRegistry> {
        if !super::require_tool("docker-registry", "--version") {
            return None;
        }
        for _attempt in 0..3 {
            let storage = tempfile::tempdir().expect("registry storage dir");
            let port = free_port();
            let address = format!("127.0.0.1:{port}");
            let config = storage.path().join("config.yml");
            let root = storage.path().join("data");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                     maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: {address}\n",
                    root.display()
                ),
            )
            .expect("write registry config");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let mut registry = TestRegistry {
                child,
                address,
                _storage: storage,
            };
            if registry.wait_ready(Duration::from_secs(10)) {
                return Some(registry);
            }
            // Dropping it stops the child; another port may be luckier.
            drop(registry);
        }
        panic!("docker-registry did not come up on loopback");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.get("/v2/", None).is_ok_and(|r| r.status == 200) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A GET on the registry.
    pub fn get(&self, path: &str, accept: Option<&str>) -> std::io::Result<Response> {
        http_get(&self.address, path, accept)
    }

    /// The tags of `repository` (empty when it does not exist).
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let response = self
            .get(&format!("/v2/{repository}/tags/list"), None)
            .expect("tags request");
        if response.status == 404 {
            return Vec::new();
        }
        assert_eq!(
            response.status,
            200,
            "tags of {repository}: {}",
            String::from_utf8_lossy(&response.body)
        );
        let json: serde_json::Value = serde_json::from_slice(&response.body).expect("tags json");
        let mut tags: Vec<String> = json["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The manifest tagged `tag`: its digest (checked against the sha256 of the body) and JSON.
    pub fn manifest(&self, repository: &str, tag: &str) -> Option<(String, serde_json::Value)> {
        let response = self
            .get(
                &format!("/v2/{repository}/manifests/{tag}"),
                Some(MANIFEST_TYPES),
            )
            .expect("manifest request");
        if response.status == 404 {
            return None;
        }
        assert_eq!(response.status, 200, "manifest {repository}:{tag}");
        let computed = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&response.body))
        );
        let header = response
            .headers
            .get("docker-content-digest")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            header, computed,
            "registry digest header vs body of {repository}:{tag}"
        );
        Some((
            computed,
            serde_json::from_slice(&response.body).expect("manifest json"),
        ))
    }

    /// The labels in the image config of `repository:tag`.
    pub fn labels(&self, repository: &str, tag: &str) -> BTreeMap<String, String> {
        let (_, manifest) = self.manifest(repository, tag).expect("manifest exists");
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .expect("manifest has a config digest");
        let response = self
            .get(&format!("/v2/{repository}/blobs/{config_digest}"), None)
            .expect("config blob");
        assert_eq!(response.status, 200, "config blob of {repository}:{tag}");
        let config: serde_json::Value =
            serde_json::from_slice(&response.body).expect("config json");
        config["config"]["Labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The repositories in the registry.
    pub fn catalog(&self) -> Vec<String> {
        let response = self.get("/v2/_catalog", None).expect("catalog request");
        let json: serde_json::Value = serde_json::from_slice(&response.body).expect("catalog json");
        json["repositories"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (`Connection: close`, chunked or sized bodies).
pub fn http_get(address: &str, path: &str, accept: Option<&str>) -> std::io::Result<Response> {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    http_request(address, "GET", path, &headers, b"")
}

/// A minimal HTTP/1.1 request with `headers` and `body` (`Connection: close`).
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A directory of shims for `tools`: each logs its arguments (one line per call) to `log` and
/// execs the real tool found on the current `PATH`. Returns the `PATH` to use (shims first).
pub fn counting_shims(dir: &Path, log: &Path, tools: &[&str]) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        let Some(real) = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let shim = dir.join(tool);
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .expect("write shim");
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))
            .expect("chmod shim");
    }
    let mut entries = vec![dir.to_path_buf()];
    entries.extend(std::env::split_paths(&path));
    std::env::join_paths(entries).expect("join PATH")
}
