//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`), which kubectl's
//! imperative commands (`create configmap|deployment|namespace|secret|service|job|...`) send.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` (typeMeta, raw); `raw` is the object in
//! the protobuf encoding of its Go type. kubesim decodes it into the JSON object it stores,
//! generically, with the field table of `data/v1.37-protobuf.json` (tag -> JSON name and
//! type for every message of the served group/versions, generated from the Kubernetes v1.37.2
//! `generated.proto` files by `data/generate-protobuf.py`), and the JSON forms of the special
//! types: `Time` and `MicroTime` (RFC 3339), `Quantity` (its string), `IntOrString` (a number
//! or a string), `RawExtension`, `FieldsV1` and apiextensions `JSON` (embedded JSON), `bytes`
//! (base64); the fields Go inlines in JSON (a Volume's `volumeSource`, an IngressRule's
//! `ingressRuleValue`, ...) merged into their parent. Go's protobuf encoder writes every non-pointer field, so singular fields holding
//! their zero value (`""`, `0`, `false`, an unset time) are dropped, as `omitempty` drops them
//! from JSON; a pointer field set to zero (`replicas: 0`) is dropped too, and then defaulted.
//! Answers stay JSON, which kubectl accepts (`Accept: application/vnd.kubernetes.protobuf,
//! application/json`).

use crate::errors::ApiError;
use crate::registry::Resource;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// One field of a message: JSON name, cardinality and type(s).
#[derive(Debug)]
struct Field {
    name: String,
    cardinality: Cardinality,
    kind: String,
    /// The value type of a map.
    value_kind: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Cardinality {
    Single,
    Repeated,
    Map,
    /// A message whose fields Go's JSON puts in the parent (`json:",inline"`).
    Inline,
}

type Messages = HashMap<String, HashMap<u64, Field>>;

fn messages() -> &'static Messages {
    static MESSAGES: OnceLock<Messages> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let table: HashMap<String, HashMap<String, Vec<String>>> =
            serde_json::from_str(include_str!("../data/v1.37-protobuf.json")).unwrap_or_default();
        table
            .into_iter()
            .map(|(message, fields)| {
                let fields = fields
                    .into_iter()
                    .filter_map(|(tag, parts)| {
                        let tag = tag.parse::<u64>().ok()?;
                        let cardinality = match parts.get(1)?.as_str() {
                            "map" => Cardinality::Map,
                            "repeated" => Cardinality::Repeated,
                            "inline" => Cardinality::Inline,
                            _ => Cardinality::Single,
                        };
                        let field = Field {
                            name: parts.first()?.clone(),
                            cardinality,
                            kind: parts.get(2)?.clone(),
                            value_kind: parts.get(3).cloned().unwrap_or_default(),
                        };
                        Some((tag, field))
                    })
                    .collect();
                (message, fields)
            })
            .collect()
    })
}

/// Why a protobuf body does not decode, in the real server's words.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({0})"
    )]
    Prefix(String),
    /// The envelope names a kind kubesim has no protobuf table for.
    #[error(
        "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/runtime/scheme.go:111\""
    )]
    UnknownKind { api_version: String, kind: String },
    /// The wire data ends early or is malformed.
    #[error("unexpected EOF")]
    Truncated,
}

/// A field's value on the wire.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, position: 0 }
    }

    fn done(&self) -> bool {
        self.position >= self.data.len()
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .data
                .get(self.position)
                .ok_or(ProtobufError::Truncated)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Truncated)
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.data.len())
            .ok_or(ProtobufError::Truncated)?;
        let bytes = &self.data[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    /// The next field: its tag and value.
    fn field(&mut self) -> Result<(u64, Wire<'a>), ProtobufError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let bytes: [u8; 8] = self
                    .take(8)?
                    .try_into()
                    .map_err(|_| ProtobufError::Truncated)?;
                Wire::Fixed64(u64::from_le_bytes(bytes))
            }
            2 => {
                let length =
                    usize::try_from(self.varint()?).map_err(|_| ProtobufError::Truncated)?;
                Wire::Bytes(self.take(length)?)
            }
            5 => {
                let bytes: [u8; 4] = self
                    .take(4)?
                    .try_into()
                    .map_err(|_| ProtobufError::Truncated)?;
                Wire::Fixed32(u32::from_le_bytes(bytes))
            }
            _ => return Err(ProtobufError::Truncated),
        };
        Ok((key >> 3, wire))
    }
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        let hex: String = body.iter().map(|byte| format!("{byte:02x}")).collect();
        return Err(ProtobufError::Prefix(hex));
    };
    let unknown = message(envelope, "k8s.io.apimachinery.pkg.runtime.Unknown")?;
    let api_version = unknown["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let kind = unknown["typeMeta"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let Some(type_name) = type_name(&api_version, &kind) else {
        return Err(ProtobufError::UnknownKind { api_version, kind });
    };
    let raw = raw_bytes(envelope)?;
    let mut object = message(raw, &type_name)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

/// The `raw` bytes (field 2) of the `runtime.Unknown` envelope.
fn raw_bytes(envelope: &[u8]) -> Result<&[u8], ProtobufError> {
    let mut reader = Reader::new(envelope);
    while !reader.done() {
        if let (2, Wire::Bytes(bytes)) = reader.field()? {
            return Ok(bytes);
        }
    }
    Ok(&[])
}

/// The protobuf message of a kind: `k8s.io.api.<group>.<version>.<Kind>`.
fn type_name(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("core", api_version));
    let short = group.split('.').next().unwrap_or(group);
    [
        format!("k8s.io.api.{short}.{version}.{kind}"),
        format!("k8s.io.apiextensions_apiserver.pkg.apis.{short}.{version}.{kind}"),
    ]
    .into_iter()
    .find(|name| messages().contains_key(name))
}

/// Decodes one message into a JSON value (an object, or the JSON form of a special type).
fn message(data: &[u8], type_name: &str) -> Result<Value, ProtobufError> {
    let fields = messages().get(type_name);
    let mut object = Map::new();
    let mut reader = Reader::new(data);
    while !reader.done() {
        let (tag, wire) = reader.field()?;
        let Some(field) = fields.and_then(|fields| fields.get(&tag)) else {
            continue;
        };
        match field.cardinality {
            Cardinality::Single => {
                let value = scalar_or_message(&wire, &field.kind)?;
                if !value.is_null() && (!is_zero(&value) || !is_scalar(&field.kind)) {
                    object.insert(field.name.clone(), value);
                }
            }
            Cardinality::Inline => {
                if let Value::Object(inlined) = scalar_or_message(&wire, &field.kind)? {
                    object.extend(inlined);
                }
            }
            Cardinality::Repeated => {
                let values = repeated(&wire, &field.kind)?;
                let entry = object
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    items.extend(values);
                }
            }
            Cardinality::Map => {
                let Wire::Bytes(entry) = wire else {
                    return Err(ProtobufError::Truncated);
                };
                let (key, value) = map_entry(entry, &field.kind, &field.value_kind)?;
                let map = object
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
            }
        }
    }
    Ok(special(type_name, object))
}

/// The values of one occurrence of a repeated field (numbers may come packed).
fn repeated(wire: &Wire, kind: &str) -> Result<Vec<Value>, ProtobufError> {
    match wire {
        Wire::Bytes(bytes) if is_scalar(kind) && !matches!(kind, "string" | "bytes") => {
            let mut reader = Reader::new(bytes);
            let mut values = Vec::new();
            while !reader.done() {
                let item = match kind {
                    "double" | "fixed64" => {
                        let bytes: [u8; 8] = reader
                            .take(8)?
                            .try_into()
                            .map_err(|_| ProtobufError::Truncated)?;
                        Wire::Fixed64(u64::from_le_bytes(bytes))
                    }
                    "float" | "fixed32" => {
                        let bytes: [u8; 4] = reader
                            .take(4)?
                            .try_into()
                            .map_err(|_| ProtobufError::Truncated)?;
                        Wire::Fixed32(u32::from_le_bytes(bytes))
                    }
                    _ => Wire::Varint(reader.varint()?),
                };
                values.push(scalar_or_message(&item, kind)?);
            }
            Ok(values)
        }
        _ => Ok(vec![scalar_or_message(wire, kind)?]),
    }
}

fn map_entry(
    entry: &[u8],
    key_kind: &str,
    value_kind: &str,
) -> Result<(String, Value), ProtobufError> {
    let mut reader = Reader::new(entry);
    let (mut key, mut value) = (String::new(), None);
    while !reader.done() {
        match reader.field()? {
            (1, wire) => {
                key = match scalar_or_message(&wire, key_kind)? {
                    Value::String(text) => text,
                    other => other.to_string(),
                }
            }
            (2, wire) => value = Some(scalar_or_message(&wire, value_kind)?),
            _ => {}
        }
    }
    let value = match value {
        Some(value) => value,
        None if value_kind == "bytes" || value_kind == "string" => json!(""),
        None => json!({}),
    };
    Ok((key, value))
}

fn is_scalar(kind: &str) -> bool {
    !kind.contains('.')
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Bool(flag) => !flag,
        _ => false,
    }
}

fn scalar_or_message(wire: &Wire, kind: &str) -> Result<Value, ProtobufError> {
    let value = match (kind, wire) {
        ("string", Wire::Bytes(bytes)) => json!(String::from_utf8_lossy(bytes)),
        ("bytes", Wire::Bytes(bytes)) => json!(crate::defaults::base64_encode(bytes)),
        ("bool", Wire::Varint(number)) => json!(*number != 0),
        // Two's complement: a negative int32 is sent as a 64-bit varint.
        ("int32" | "sint32" | "uint32", Wire::Varint(number)) => json!(*number as i64 as i32),
        ("int64" | "uint64", Wire::Varint(number)) => json!(*number as i64),
        ("double", Wire::Fixed64(bits)) => json!(f64::from_bits(*bits)),
        ("float", Wire::Fixed32(bits)) => json!(f32::from_bits(*bits)),
        (_, Wire::Bytes(bytes)) if !is_scalar(kind) => message(bytes, kind)?,
        _ => return Err(ProtobufError::Truncated),
    };
    Ok(value)
}

/// The JSON form of the apimachinery types that are not plain objects in JSON.
fn special(type_name: &str, object: Map<String, Value>) -> Value {
    let short = type_name.rsplit('.').next().unwrap_or(type_name);
    let number = |field: &str| object.get(field).and_then(Value::as_i64).unwrap_or(0);
    let embedded = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .and_then(base64_decode)
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .unwrap_or(Value::Null)
    };
    match (type_name, short) {
        ("k8s.io.apimachinery.pkg.apis.meta.v1.Time", _) => {
            time(number("seconds"), number("nanos"), false)
        }
        ("k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime", _) => {
            time(number("seconds"), number("nanos"), true)
        }
        ("k8s.io.apimachinery.pkg.api.resource.Quantity", _) => {
            object.get("string").cloned().unwrap_or(json!("0"))
        }
        ("k8s.io.apimachinery.pkg.util.intstr.IntOrString", _) => {
            if number("type") == 1 {
                object.get("strVal").cloned().unwrap_or(json!(""))
            } else {
                json!(number("intVal"))
            }
        }
        ("k8s.io.apimachinery.pkg.apis.meta.v1.Duration", _) => {
            json!(go_duration(number("duration")))
        }
        ("k8s.io.apimachinery.pkg.runtime.RawExtension", _) => embedded("raw"),
        ("k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1", _) => embedded("Raw"),
        (name, "JSON") if name.starts_with("k8s.io.apiextensions_apiserver") => embedded("raw"),
        _ => Value::Object(object),
    }
}

/// Standard base64 (the form [`scalar_or_message`] gives `bytes`) back to bytes.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET.iter().position(|candidate| *candidate == byte)?;
        bits = (bits << 6) | u32::try_from(value).ok()?;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// A `metav1.Time` (seconds) or `MicroTime` (microseconds) in RFC 3339; unset is `null`.
fn time(seconds: i64, nanos: i64, micro: bool) -> Value {
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Some(time) = chrono::DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0))
    else {
        return Value::Null;
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    json!(time.format(format).to_string())
}

/// Go's `time.Duration.String()` for whole seconds and above (`1h0m30s`, `45s`, `0s`).
fn go_duration(nanos: i64) -> String {
    let seconds = nanos / 1_000_000_000;
    let (hours, minutes, rest) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{rest}s"),
        (0, _) => format!("{minutes}m{rest}s"),
        _ => format!("{hours}h{minutes}m{rest}s"),
    }
}

/// The 400 a real server answers for a protobuf body it cannot decode into `resource`.
pub fn undecodable(resource: &Resource, body: &[u8], error: &ProtobufError) -> ApiError {
    match error {
        ProtobufError::Prefix(_) => ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {error}",
            resource.kind
        )),
        ProtobufError::UnknownKind { kind, .. } => ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {}: {error}",
            resource.version, resource.kind
        )),
        ProtobufError::Truncated => {
            let kind = body
                .strip_prefix(MAGIC)
                .and_then(|envelope| {
                    message(envelope, "k8s.io.apimachinery.pkg.runtime.Unknown").ok()
                })
                .and_then(|unknown| unknown["typeMeta"]["kind"].as_str().map(str::to_string))
                .unwrap_or_else(|| resource.kind.clone());
            ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {}: {error}",
                resource.version, resource.kind
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut unknown = Vec::new();
        bytes_field(1, &type_meta, &mut unknown);
        bytes_field(2, raw, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        body
    }

    #[test]
    fn a_config_map_decodes_with_its_metadata_and_data() {
        let mut metadata = Vec::new();
        bytes_field(1, b"settings", &mut metadata);
        bytes_field(2, b"", &mut metadata); // generateName: written although empty
        bytes_field(8, &[], &mut metadata); // creationTimestamp: an unset Time
        let mut entry = Vec::new();
        bytes_field(1, b"mode", &mut entry);
        bytes_field(2, b"fast", &mut entry);
        let mut raw = Vec::new();
        bytes_field(1, &metadata, &mut raw);
        bytes_field(2, &entry, &mut raw);
        let object = decode(&envelope("v1", "ConfigMap", &raw)).expect("decodes");
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}})
        );
    }

    #[test]
    fn bad_bodies_get_the_real_errors() {
        let error = decode(b"garbage").expect_err("no prefix");
        assert_eq!(
            error.to_string(),
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (67617262616765)"
        );
        let error = decode(&envelope("v1", "Thing", &[])).expect_err("unknown kind");
        assert!(
            error.to_string().starts_with("no kind \"Thing\""),
            "{error}"
        );
        let error = decode(&envelope("v1", "ConfigMap", &[0x0a, 0x05, 0x0a])).expect_err("short");
        assert_eq!(error.to_string(), "unexpected EOF");
    }

    #[test]
    fn special_types_take_their_json_form() {
        assert_eq!(time(1_700_000_000, 0, false), json!("2023-11-14T22:13:20Z"));
        assert_eq!(
            time(1_700_000_000, 5_000, true),
            json!("2023-11-14T22:13:20.000005Z")
        );
        assert_eq!(go_duration(3_630_000_000_000), "1h0m30s");
        let mut int_or_string = Vec::new();
        varint(2 << 3, &mut int_or_string);
        varint(8080, &mut int_or_string);
        assert_eq!(
            message(
                &int_or_string,
                "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
            )
            .expect("decodes"),
            json!(8080)
        );
    }
}
