//! Retrying API requests: transient failures (429 Too Many Requests, honouring the server's
//! `retryAfterSeconds`; 5xx; timeouts; dropped or refused connections) are retried with capped
//! exponential backoff and jitter; permanent ones (every other 4xx: invalid objects, conflicts,
//! forbidden, not found) are returned at once, because repeating them cannot help.

use std::future::Future;
use std::time::Duration;

/// How a failed request should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again, after at least `after` when the server said so.
    Transient { after: Option<Duration> },
    /// Give up: the same request will fail the same way.
    Permanent,
}

/// Classify a kube client error.
pub fn classify(error: &kube::Error) -> Disposition {
    match error {
        kube::Error::Api(status) if undecodable(status.code, &status.message) => {
            Disposition::Permanent
        }
        kube::Error::Api(status) => classify_status(
            status.code,
            status.details.as_ref().map(|d| d.retry_after_seconds),
        ),
        // Connection refused/reset, timeouts (tower), broken bodies: the network, not the request.
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Disposition::Transient { after: None }
        }
        _ => Disposition::Permanent,
    }
}

/// A 500 that is the body's fault, not the server's: kube-apiserver answers a server-side apply
/// whose object it cannot convert (a field the schema does not declare, a quantity that is no
/// quantity) with 500 and one of these messages. The same body fails the same way every time.
fn undecodable(code: u16, message: &str) -> bool {
    code == 500
        && (message.starts_with("failed to create typed patch object")
            || message.starts_with("failed to convert new object"))
}

/// Classify an HTTP status code (with the server's `retryAfterSeconds`, 0 = none).
pub(crate) fn classify_status(code: u16, retry_after_seconds: Option<u32>) -> Disposition {
    let after = retry_after_seconds
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(u64::from(s)));
    match code {
        429 => Disposition::Transient { after },
        500..=599 => Disposition::Transient { after },
        // A Status without a code came from a broken response: treat like a 5xx.
        0 => Disposition::Transient { after: None },
        _ => Disposition::Permanent,
    }
}

/// Backoff parameters.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    /// Upper bound for a server-requested delay (a misbehaving server cannot stall a deploy).
    pub max_server_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            max_server_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1), with up to 50% jitter.
    pub fn delay(&self, attempt: u32, server: Option<Duration>) -> Duration {
        if let Some(server) = server {
            return server.min(self.max_server_delay);
        }
        let exponent = attempt.saturating_sub(1).min(16);
        let base = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let jitter = base.mul_f64(jitter_fraction() * 0.5);
        base.saturating_sub(jitter)
    }

    /// Run `operation` until it succeeds, fails permanently, or attempts run out.
    pub async fn run<T, F, Fut>(&self, what: &str, operation: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.run_classified(what, operation, classify).await
    }

    /// [`RetryPolicy::run`] for answers only: a 429 or 5xx from the server is tried again, a
    /// network error is returned at once (a preflight says "cannot reach" without waiting).
    pub async fn run_on_answers<T, F, Fut>(
        &self,
        what: &str,
        operation: F,
    ) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let answers = |error: &kube::Error| match error {
            kube::Error::Api(_) => classify(error),
            _ => Disposition::Permanent,
        };
        self.run_classified(what, operation, answers).await
    }

    async fn run_classified<T, F, Fut>(
        &self,
        what: &str,
        mut operation: F,
        classify: impl Fn(&kube::Error) -> Disposition,
    ) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => match classify(&error) {
                    Disposition::Transient { after } if attempt < self.attempts => {
                        let delay = self.delay(attempt, after);
                        tracing::debug!(%what, attempt, ?delay, %error, "transient failure, retrying");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    _ => return Err(error),
                },
            }
        }
    }
}

/// A number in [0, 1) that differs between calls (no RNG dependency needed for jitter).
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .elapsed()
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (hasher.finish() % 10_000) as f64 / 10_000.0
}

/// The HTTP status code of an API error, if it is one.
pub(crate) fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            message: format!("status {code}"),
            ..Status::failure("x", "y")
        }))
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify_status(429, Some(2)),
            Disposition::Transient {
                after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            classify_status(429, Some(0)),
            Disposition::Transient { after: None }
        );
        assert_eq!(
            classify_status(500, None),
            Disposition::Transient { after: None }
        );
        assert_eq!(
            classify_status(503, None),
            Disposition::Transient { after: None }
        );
        assert_eq!(
            classify_status(504, None),
            Disposition::Transient { after: None }
        );
        for permanent in [400, 401, 403, 404, 409, 410, 415, 422] {
            assert_eq!(
                classify_status(permanent, None),
                Disposition::Permanent,
                "{permanent}"
            );
        }
        assert_eq!(
            classify(&api_error(500)),
            Disposition::Transient { after: None }
        );
        assert_eq!(classify(&api_error(422)), Disposition::Permanent);
        // kube-apiserver's 500s for a body it cannot convert are the body's fault.
        for message in [
            "failed to create typed patch object (/web; apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema",
            "failed to convert new object (/data; /v1, Kind=PersistentVolumeClaim) to proper version: quantities must match the regular expression",
        ] {
            let error = kube::Error::Api(Box::new(Status {
                code: 500,
                message: message.to_string(),
                ..Status::failure("x", "y")
            }));
            assert_eq!(classify(&error), Disposition::Permanent, "{message}");
        }
        let timeout = kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        )));
        assert_eq!(classify(&timeout), Disposition::Transient { after: None });
        let serde = kube::Error::SerdeError(serde_json::from_str::<u8>("x").unwrap_err());
        assert_eq!(classify(&serde), Disposition::Permanent);
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            max_server_delay: Duration::from_secs(3),
        };
        assert!(policy.delay(1, None) <= Duration::from_millis(100));
        assert!(policy.delay(1, None) >= Duration::from_millis(50));
        assert!(policy.delay(3, None) >= Duration::from_millis(200));
        assert!(policy.delay(10, None) <= Duration::from_millis(400));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(3)
        );
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds_and_stops_on_permanent() {
        let policy = RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            max_server_delay: Duration::from_millis(5),
        };
        let calls = AtomicU32::new(0);
        let result = policy
            .run("test", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(api_error(if n == 0 { 429 } else { 500 }))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(result.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api_error(422))
            })
            .await;
        assert_eq!(status_code(&result.unwrap_err()), Some(422));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy
            .run("test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api_error(503))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
