//! Resource quantities (`resource.Quantity`: `500m`, `1Gi`, `1e3`) as kube-apiserver stores and
//! returns them: parsed exactly (integer mantissa and decimal exponent, never a float) and
//! written back in the canonical form of apimachinery's `Quantity.String()`.
//!
//! The rules, as the apimachinery `Quantity` documentation states them:
//! - a quantity keeps its suffix family: binary (`Ki` .. `Ei`), decimal SI (`n` .. `E`) or a
//!   decimal exponent (`e3`);
//! - it is written with no fractional digits and the largest exponent that loses nothing
//!   (`0.5` -> `500m`, `1024Mi` -> `1Gi`, `1.5Gi` -> `1536Mi`, `1000m` -> `1`);
//! - a binary amount below 1024, or one that is not a whole number, is written in decimal SI
//!   (`0.5Ki` -> `512`, `.001Ki` -> `1024m`);
//! - values finer than a nano are rounded away from zero (`0.9n` -> `1n`), and binary amounts
//!   are capped at 2^63-1;
//! - decimal SI has no suffix above `E`: larger exponents are written as `e<exponent>`;
//! - a string that is already in its canonical shape is kept as written (the server caches the
//!   parsed string), which is why `+1Gi` and `1E3` come back unchanged;
//! - JSON numbers are read from their text (`0.5` is the quantity `0.5`).
//!
//! Limit: mantissas are held in 128 bits, so a quantity with more than 38 significant digits is
//! rejected (kube-apiserver accepts it).

use crate::schema::Node;
use serde_json::Value;

/// The regular expression apimachinery quotes when a quantity is malformed.
const FORMAT: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Why a quantity is not valid, in apimachinery's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text does not have the shape `<number><suffix>`.
    #[error("quantities must match the regular expression '{FORMAT}'")]
    Format,
    /// The suffix is not one of the known ones.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The number does not fit (more than 38 significant digits).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalExponent,
    BinarySi,
    DecimalSi,
}

/// The parts of `<sign><digits>.<digits><suffix>`.
struct Scanned<'a> {
    negative: bool,
    /// Integer digits without leading zeros (`"0"` when there are none).
    whole: &'a str,
    /// Fraction digits.
    fraction: &'a str,
    suffix: &'a str,
}

fn digits_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .map_or(bytes.len(), |offset| from + offset)
}

fn scan(text: &str) -> Result<Scanned<'_>, QuantityError> {
    let bytes = text.as_bytes();
    let mut position = 0;
    let mut negative = false;
    match bytes.first() {
        Some(b'-') => {
            negative = true;
            position = 1;
        }
        Some(b'+') => position = 1,
        _ => {}
    }
    while bytes.get(position) == Some(&b'0') {
        position += 1;
    }
    let whole_end = digits_end(bytes, position);
    let whole = match &text[position..whole_end] {
        "" => "0",
        digits => digits,
    };
    position = whole_end;
    let mut fraction = "";
    if bytes.get(position) == Some(&b'.') {
        let fraction_end = digits_end(bytes, position + 1);
        fraction = &text[position + 1..fraction_end];
        position = fraction_end;
    }
    let suffix_start = position;
    while bytes
        .get(position)
        .is_some_and(|byte| b"eEinumkKMGTP".contains(byte))
    {
        position += 1;
    }
    if matches!(bytes.get(position), Some(b'-' | b'+')) {
        position += 1;
    }
    if digits_end(bytes, position) != bytes.len() {
        return Err(QuantityError::Format);
    }
    Ok(Scanned {
        negative,
        whole,
        fraction,
        suffix: &text[suffix_start..],
    })
}

/// The base-10 or base-2 exponent a suffix stands for.
fn interpret(suffix: &str) -> Result<(Format, i64), QuantityError> {
    let decimal = [
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("", 0),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    let binary = [
        ("Ki", 10),
        ("Mi", 20),
        ("Gi", 30),
        ("Ti", 40),
        ("Pi", 50),
        ("Ei", 60),
    ];
    if let Some((_, exponent)) = decimal.iter().find(|(name, _)| *name == suffix) {
        return Ok((Format::DecimalSi, *exponent));
    }
    if let Some((_, exponent)) = binary.iter().find(|(name, _)| *name == suffix) {
        return Ok((Format::BinarySi, *exponent));
    }
    if suffix.len() > 1
        && let Some(exponent) = suffix.strip_prefix(['e', 'E'])
        && let Ok(exponent) = exponent.parse::<i32>()
    {
        return Ok((Format::DecimalExponent, i64::from(exponent)));
    }
    Err(QuantityError::Suffix)
}

/// Whether the server keeps the text as written: the fast path of apimachinery's parser caches
/// the string when it is already canonical in shape.
fn kept_as_written(scanned: &Scanned<'_>, format: Format, exponent: i64) -> bool {
    let shifted = format!("{}{}", scanned.whole, scanned.fraction);
    match format {
        Format::BinarySi => {
            if !scanned.fraction.is_empty() {
                return false;
            }
            let precision = 15 - scanned.whole.len() as i64 - exponent * 3 / 10 - 1;
            let Ok(value) = scanned.whole.parse::<i64>() else {
                return false;
            };
            precision >= 0
                && 1i64
                    .checked_shl(exponent as u32)
                    .and_then(|multiplier| value.checked_mul(multiplier))
                    .is_some()
                && value & 0x07 != 0
        }
        Format::DecimalSi | Format::DecimalExponent => {
            let scale = exponent - scanned.fraction.len() as i64;
            shifted.len() <= 18
                && scale >= -9
                && scale % 3 == 0
                && !shifted.ends_with("000")
                && !shifted.starts_with('0')
        }
    }
}

fn power_of_ten(exponent: u32) -> Option<u128> {
    10u128.checked_pow(exponent)
}

/// The canonical text of a quantity, as kube-apiserver returns it.
pub fn canonical(text: &str) -> Result<String, QuantityError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(QuantityError::Format);
    }
    if text == "0" {
        return Ok(text.to_string());
    }
    let scanned = scan(text)?;
    let (mut format, exponent) = interpret(scanned.suffix)?;
    if kept_as_written(&scanned, format, exponent) {
        return Ok(text.to_string());
    }
    // The amount is mantissa × 10^decimal_exponent (binary suffixes multiply the mantissa).
    let digits = format!("{}{}", scanned.whole, scanned.fraction);
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    let mut decimal_exponent = match format {
        Format::BinarySi => 0,
        _ => exponent,
    } - scanned.fraction.len() as i64
        + (significant.len() - trimmed.len()) as i64;
    if trimmed.is_empty() {
        return Ok("0".to_string());
    }
    if trimmed.len() > 38 {
        return Err(QuantityError::Numeric);
    }
    let mut mantissa: u128 = trimmed.parse().map_err(|_| QuantityError::Numeric)?;
    if format == Format::BinarySi {
        mantissa = 1u128
            .checked_shl(exponent as u32)
            .and_then(|multiplier| mantissa.checked_mul(multiplier))
            .ok_or(QuantityError::Numeric)?;
    }
    // Round finer than nano away from zero.
    if decimal_exponent < -9 {
        let shift = u32::try_from(-9 - decimal_exponent).unwrap_or(u32::MAX);
        mantissa = match power_of_ten(shift) {
            Some(divisor) => mantissa / divisor + u128::from(!mantissa.is_multiple_of(divisor)),
            None => 1,
        };
        decimal_exponent = -9;
    }
    let maximum = i64::MAX as u128;
    if format == Format::BinarySi {
        let above_maximum = if decimal_exponent >= 0 {
            u32::try_from(decimal_exponent)
                .ok()
                .and_then(power_of_ten)
                .and_then(|multiplier| mantissa.checked_mul(multiplier))
                .is_none_or(|value| value > maximum)
        } else {
            power_of_ten((-decimal_exponent) as u32)
                .and_then(|scale| maximum.checked_mul(scale))
                .is_some_and(|limit| mantissa > limit)
        };
        if above_maximum {
            mantissa = maximum;
            decimal_exponent = 0;
        }
    }
    let below = |limit: u128| -> bool {
        if decimal_exponent >= 0 {
            u32::try_from(decimal_exponent)
                .ok()
                .and_then(power_of_ten)
                .and_then(|multiplier| mantissa.checked_mul(multiplier))
                .is_some_and(|value| value < limit)
        } else {
            power_of_ten((-decimal_exponent) as u32)
                .and_then(|scale| limit.checked_mul(scale))
                .is_none_or(|limit| mantissa < limit)
        }
    };
    // A binary amount below one, or below 1024 when written, is decimal.
    if format == Format::BinarySi && below(1024) {
        format = Format::DecimalSi;
    }
    let sign = if scanned.negative { "-" } else { "" };
    if format == Format::BinarySi {
        let whole = if decimal_exponent >= 0 {
            u32::try_from(decimal_exponent)
                .ok()
                .and_then(power_of_ten)
                .and_then(|multiplier| mantissa.checked_mul(multiplier))
        } else {
            power_of_ten((-decimal_exponent) as u32)
                .filter(|scale| mantissa.is_multiple_of(*scale))
                .map(|scale| mantissa / scale)
        };
        match whole {
            Some(mut whole) => {
                let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
                let mut index = 0;
                while whole != 0 && whole.is_multiple_of(1024) && index + 1 < suffixes.len() {
                    whole /= 1024;
                    index += 1;
                }
                return Ok(format!("{sign}{whole}{}", suffixes[index]));
            }
            None => format = Format::DecimalSi,
        }
    }
    while mantissa != 0 && mantissa.is_multiple_of(10) {
        mantissa /= 10;
        decimal_exponent += 1;
    }
    let remainder = decimal_exponent.rem_euclid(3);
    mantissa = power_of_ten(remainder as u32)
        .and_then(|multiplier| mantissa.checked_mul(multiplier))
        .ok_or(QuantityError::Numeric)?;
    decimal_exponent -= remainder;
    let decimal_suffix = match decimal_exponent {
        -9 => Some("n"),
        -6 => Some("u"),
        -3 => Some("m"),
        0 => Some(""),
        3 => Some("k"),
        6 => Some("M"),
        9 => Some("G"),
        12 => Some("T"),
        15 => Some("P"),
        18 => Some("E"),
        _ => None,
    };
    let suffix = match (format, decimal_suffix) {
        (Format::DecimalSi, Some(suffix)) => suffix.to_string(),
        (_, _) if decimal_exponent == 0 => String::new(),
        (_, _) => format!("e{decimal_exponent}"),
    };
    Ok(format!("{sign}{mantissa}{suffix}"))
}

/// The canonical form of a quantity given as JSON (a string or a number, read from its text).
pub fn canonical_value(value: &Value) -> Result<Option<Value>, QuantityError> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Null => return Ok(None),
        _ => return Err(QuantityError::Format),
    };
    let canonical = canonical(&text)?;
    Ok((value.as_str() != Some(canonical.as_str())).then_some(Value::String(canonical)))
}

/// Rewrites every quantity of an object (found through the schema: fields and map values whose
/// definition is `resource.Quantity`) into its canonical form.
pub fn canonicalize(value: &mut Value, node: Node) -> Result<(), QuantityError> {
    if node.is_quantity() {
        if let Some(canonical) = canonical_value(value)? {
            *value = canonical;
        }
        return Ok(());
    }
    if !node.is_known() {
        return Ok(());
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let child_node = node.field(key);
                if child.is_object() || child.is_array() || child_node.is_quantity() {
                    canonicalize(child, child_node)?;
                }
            }
        }
        Value::Array(items) => {
            let item_node = node.items();
            for item in items {
                canonicalize(item, item_node)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            assert_eq!(
                canonical(input).as_deref(),
                Ok(*expected),
                "canonical form of {input:?}"
            );
        }
    }

    // apimachinery `quantity_test.go` TestQuantityParseEmit: parse, then String().
    #[test]
    fn parse_emit() {
        check(&[
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("-1024Mi", "-1Gi"),
            ("-.001Ki", "-1024m"),
            ("-.000000000001Ki", "-2n"),
        ]);
    }

    // apimachinery `quantity_test.go` TestQuantityString: the `alternate` spelling of each row
    // parses to the row's canonical `expect`, and the canonical text is kept as written.
    #[test]
    fn alternates_become_canonical() {
        check(&[
            ("1024Mi", "1Gi"),
            ("307200Ki", "300Mi"),
            ("1025024Mi", "1001Gi"),
            ("1024Gi", "1Ti"),
            ("5000m", "5"),
            ("0.5", "500m"),
            ("1000M", "1G"),
            ("0.001T", "1G"),
            ("1000u", "1m"),
            ("1.08", "1080m"),
            ("1080000000n", "1080m"),
            ("1000E", "1e21"),
            ("5000E", "5e21"),
            ("1000000E", "1e24"),
            (".001e12", "1e9"),
            ("0.001e0", "1e-3"),
            ("1000e-12", "1e-9"),
            ("00", "0"),
        ]);
        check(&[
            ("1Gi", "1Gi"),
            ("300Mi", "300Mi"),
            ("6Ki", "6Ki"),
            ("1080m", "1080m"),
            ("300M", "300M"),
            ("1234567M", "1234567M"),
            ("80e-3", "80e-3"),
            ("300e6", "300e6"),
            ("1e3", "1e3"),
            ("3k", "3k"),
            ("1025", "1025"),
            ("1n", "1n"),
            ("1080u", "1080u"),
        ]);
    }

    // apimachinery `quantity_test.go` TestQuantityParse: the parsed amounts and formats of its
    // table, written canonically (`decQuantity(5, -1, DecimalSI)` is `500m`, and so on). Inputs
    // whose digits already sit on a multiple-of-three exponent (`100.035k`, `1.`) keep their
    // text: the parser caches it (`ParseQuantity`'s fast path).
    #[test]
    fn parse_table_written_canonically() {
        check(&[
            ("0", "0"),
            ("0n", "0"),
            ("0Ki", "0"),
            ("0Ti", "0"),
            ("1", "1"),
            ("8Ki", "8Ki"),
            ("7Mi", "7Mi"),
            ("3Ei", "3Ei"),
            ("100Ti", "100Ti"),
            ("50k", "50k"),
            ("40T", "40T"),
            ("1E", "1E"),
            ("1E-3", "1E-3"),
            ("1e3", "1e3"),
            ("1e14", "100e12"),
            ("1e13", "10e12"),
            ("100.035k", "100.035k"),
            ("0.001", "1m"),
            ("0.0005k", "500m"),
            ("0.05", "50m"),
            ("0.50000", "500m"),
            ("0.5e0", "500e-3"),
            ("0.5e-2", "5e-3"),
            ("10.035M", "10.035M"),
            ("1.2e3", "1200"),
            ("1.3E+6", "1300e3"),
            ("1.53E12", "1530e9"),
            ("9.01", "9010m"),
            ("8.1k", "8100"),
            ("7.123456M", "7.123456M"),
            ("6.987654321G", "6.987654321G"),
            ("2.5P", "2500T"),
            ("1.01E", "1010P"),
            ("3.001n", "4n"),
            ("1.1E-9", "2e-9"),
            ("0.0000000001", "1n"),
            ("0.00000000050", "1n"),
            ("0.9n", "1n"),
            ("0.00000012345", "124n"),
            ("9Ei", "9223372036854775807"),
            ("9223372036854775807Ki", "9223372036854775807"),
            ("12E", "12E"),
            ("100.035Ki", "102435840m"),
            ("0.5Mi", "512Ki"),
            ("0.05Gi", "53687091200m"),
            ("0.025Ti", "27487790694400m"),
            ("0.000000000001Ki", "2n"),
            (".001", "1m"),
            (".0001k", "100m"),
            ("1.", "1."),
            ("1.G", "1.G"),
        ]);
    }

    // apimachinery `quantity_test.go` TestQuantityParse: its `invalid` list.
    #[test]
    fn invalid_quantities_are_rejected() {
        for input in [
            "", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-",
        ] {
            assert!(canonical(input).is_err(), "{input:?} must be rejected");
        }
    }

    // The Quantity doc comment's examples and the manifests.
    #[test]
    fn documented_examples() {
        check(&[
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("1000m", "1"),
            ("100m", "100m"),
            ("0.1", "100m"),
            ("1e4", "10e3"),
            ("+1Gi", "+1Gi"),
        ]);
    }

    #[test]
    fn numbers_are_read_from_their_text() {
        let cases = [
            (serde_json::json!(0.5), Some("500m")),
            (serde_json::json!(2), None),
            (serde_json::json!(1000.0), Some("1k")),
            (serde_json::json!(1024), Some("1024")),
            (serde_json::json!("1Gi"), None),
        ];
        for (value, expected) in cases {
            let canonical = canonical_value(&value);
            let expected = expected.map(|text| Value::String(text.to_string()));
            let expected = match (&value, expected) {
                (Value::Number(number), None) => Some(Value::String(number.to_string())),
                (_, expected) => expected,
            };
            assert_eq!(canonical, Ok(expected), "{value}");
        }
        assert_eq!(
            canonical_value(&serde_json::json!(true)),
            Err(QuantityError::Format)
        );
    }
}
