//! Durations as gitship reads them, from a flag (`--timeout 5m`) or a config (`deploy.timeout`):
//! a number with a unit, bounded by [`MAX_DURATION`], with checked arithmetic. Foundation: the
//! command line, the environment configs and the Kubernetes stage share it.

use std::time::Duration;

use crate::diagnostics::UserError;

/// The longest duration gitship accepts (`--timeout`, `--lock-timeout`, `deploy.timeout`, ...):
/// 7 days. Longer waits are mistakes, and a bound keeps `Instant + duration` from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number with a unit.
    #[error("expected a number with a unit, e.g. `90s`, `5m`, `1h30m` or `500ms`")]
    Invalid,
    /// More than [`MAX_DURATION`] (or more than a `u64` can count).
    #[error("longer than the maximum of `168h` (7 days)")]
    TooLong,
}

/// Parse a duration like `90s`, `5m`, `1h30m`, `500ms` or a bare number of seconds; at most
/// [`MAX_DURATION`]. Arithmetic is checked: no input can overflow.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Invalid);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: seconds (too many digits for a `u64` is simply too long).
        let secs = text.parse::<u64>().map_err(|_| DurationError::TooLong)?;
        return bounded(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::Invalid);
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(DurationError::Invalid),
        };
        let number: u64 = number.parse().map_err(|_| DurationError::TooLong)?;
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or(DurationError::TooLong)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or(DurationError::TooLong)?;
        bounded(total)?;
    }
    Ok(total)
}

fn bounded(duration: Duration) -> Result<Duration, DurationError> {
    if duration > MAX_DURATION {
        Err(DurationError::TooLong)
    } else {
        Ok(duration)
    }
}

/// [`parse_flag`] for a duration that must not be zero (a timeout to wait for health, an
/// interval, a lease): zero would fail every deploy after its changes, or spin.
pub fn parse_positive_flag(what: &str, text: &str) -> Result<Duration, UserError> {
    let duration = parse_flag(what, text)?;
    if duration.is_zero() {
        return Err(UserError::usage(
            format!("duration `{text}` for {what} is zero"),
            "give at least `1s` (e.g. `90s`, `5m`)",
        ));
    }
    Ok(duration)
}

/// [`parse`] for a flag: a usage error naming the flag.
pub fn parse_flag(what: &str, text: &str) -> Result<Duration, UserError> {
    parse(text).map_err(|err| match err {
        DurationError::Invalid => UserError::usage(
            format!("invalid duration `{text}` for {what}"),
            "use a number with a unit, e.g. `90s`, `5m`, `1h30m` or `500ms`",
        ),
        DurationError::TooLong => UserError::usage(
            format!("duration `{text}` for {what} is {err}"),
            "use at most `168h`",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_flag("t", "90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_flag("t", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_flag("t", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_flag("t", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_flag("t", "12").unwrap(), Duration::from_secs(12));
        assert!(parse_flag("t", "5 minutes").is_err());
        assert!(parse_flag("t", "").is_err());
        assert!(parse_flag("t", "m5").is_err());
    }

    #[test]
    fn durations_never_overflow() {
        for text in [
            "18446744073709551615",
            "18446744073709551615s1s",
            "5124095576030432h",
            "99999999999999999999999s",
            "18446744073709551615ms",
            "169h",
            "604801",
        ] {
            assert_eq!(parse(text), Err(DurationError::TooLong), "{text}");
        }
        assert_eq!(parse("168h"), Ok(MAX_DURATION));
        assert_eq!(parse("604800"), Ok(MAX_DURATION));
        let err = parse_flag("`--timeout`", "18446744073709551615").unwrap_err();
        assert_eq!(
            err.message,
            "duration `18446744073709551615` for `--timeout` is longer than the maximum of `168h` (7 days)"
        );
    }
}
