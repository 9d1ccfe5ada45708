//! cty's msgpack encoding, driven by the schema type.
//!
//! Decoding parses the bytes into a small untyped tree first and then interprets it with the
//! type; that keeps the byte-level reader free of type logic and makes every malformed input an
//! error rather than a panic (lengths are checked against the remaining input, nesting is
//! bounded).

use std::collections::BTreeMap;

use crate::framework::{Number, Type, Value};

use super::types::{type_from_json_bytes, type_to_json_bytes};
use super::{at, check_tuple_len, sequence, Step, WireError};

/// Deeper nesting than any real schema; guards the recursive decoder against hostile input.
const MAX_DEPTH: usize = 256;

/// The untyped msgpack tree.
#[derive(Debug, Clone, PartialEq)]
enum Raw {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Array(Vec<Raw>),
    Map(Vec<(Raw, Raw)>),
    /// Any extension; cty uses type 0 (and 0x0c for refined unknowns) to mean "unknown".
    Ext,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| WireError::Malformed("unexpected end of input".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The length after a marker of a sized family (bin, ext, str, array, map), whose
    /// variants count up with the prefix width: 0 for one byte, 1 for two, 2 for four.
    fn prefixed_len(&mut self, width: u8) -> Result<usize, WireError> {
        match width {
            0 => self.len8(),
            1 => self.len16(),
            _ => self.len32(),
        }
    }

    fn len8(&mut self) -> Result<usize, WireError> {
        Ok(usize::from(self.u8()?))
    }

    fn len16(&mut self) -> Result<usize, WireError> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }

    fn len32(&mut self) -> Result<usize, WireError> {
        usize::try_from(u32::from_be_bytes(self.be()?))
            .map_err(|_| WireError::Malformed("length overflow".into()))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Raw, WireError> {
        // Every element takes at least one byte: reject impossible lengths before allocating.
        if len > self.remaining() {
            return Err(WireError::Malformed("array longer than input".into()));
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Raw::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Raw, WireError> {
        if len.saturating_mul(2) > self.remaining() {
            return Err(WireError::Malformed("map longer than input".into()));
        }
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            items.push((k, v));
        }
        Ok(Raw::Map(items))
    }

    fn ext(&mut self, len: usize) -> Result<Raw, WireError> {
        self.take(1)?; // extension type
        self.take(len)?;
        Ok(Raw::Ext)
    }

    fn value(&mut self, depth: usize) -> Result<Raw, WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::Malformed("nesting too deep".into()));
        }
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Raw::Int(i64::from(m)),
            0x80..=0x8f => return self.map(usize::from(m & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(m & 0x0f), depth),
            0xa0..=0xbf => Raw::Str(self.take(usize::from(m & 0x1f))?.to_vec()),
            0xc0 => Raw::Nil,
            0xc1 => return Err(WireError::Malformed("reserved marker 0xc1".into())),
            0xc2 => Raw::Bool(false),
            0xc3 => Raw::Bool(true),
            0xc4..=0xc6 => {
                let n = self.prefixed_len(m - 0xc4)?;
                Raw::Bin(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.prefixed_len(m - 0xc7)?;
                return self.ext(n);
            }
            0xca => Raw::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Raw::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Raw::Int(i64::from(self.u8()?)),
            0xcd => Raw::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Raw::Int(i64::from(u32::from_be_bytes(self.be()?))),
            0xcf => {
                let u = u64::from_be_bytes(self.be()?);
                match i64::try_from(u) {
                    Ok(i) => Raw::Int(i),
                    Err(_) => Raw::UInt(u),
                }
            }
            0xd0 => Raw::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Raw::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Raw::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Raw::Int(i64::from_be_bytes(self.be()?)),
            0xd4 => return self.ext(1),
            0xd5 => return self.ext(2),
            0xd6 => return self.ext(4),
            0xd7 => return self.ext(8),
            0xd8 => return self.ext(16),
            0xd9..=0xdb => {
                let n = self.prefixed_len(m - 0xd9)?;
                Raw::Str(self.take(n)?.to_vec())
            }
            0xdc..=0xdd => {
                let n = self.prefixed_len(m - 0xdb)?;
                return self.array(n, depth);
            }
            0xde..=0xdf => {
                let n = self.prefixed_len(m - 0xdd)?;
                return self.map(n, depth);
            }
            0xe0..=0xff => Raw::Int(i64::from(m as i8)),
        })
    }
}

fn parse(bytes: &[u8]) -> Result<Raw, WireError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.value(0)?;
    if r.remaining() != 0 {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes after the value",
            r.remaining()
        )));
    }
    Ok(v)
}

/// Decodes cty msgpack `bytes` as a value of type `ty`.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, WireError> {
    let raw = parse(bytes)?;
    interpret(raw, ty, &mut String::new())
}

fn describe(raw: &Raw) -> &'static str {
    match raw {
        Raw::Nil => "nil",
        Raw::Bool(_) => "bool",
        Raw::Int(_) | Raw::UInt(_) => "integer",
        Raw::Float(_) => "float",
        Raw::Str(_) => "string",
        Raw::Bin(_) => "binary",
        Raw::Array(_) => "array",
        Raw::Map(_) => "map",
        Raw::Ext => "extension",
    }
}

fn utf8(bytes: Vec<u8>, path: &str) -> Result<String, WireError> {
    String::from_utf8(bytes).map_err(|_| WireError::mismatch(path, "string is not valid UTF-8"))
}

/// Parses decimal number text as cty does (no NaN, no hex).
pub(crate) fn parse_number_text(text: &str, path: &str) -> Result<Number, WireError> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Number::Int(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Ok(Number::UInt(u));
    }
    let valid = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
        && t.chars().any(|c| c.is_ascii_digit());
    if !valid || t.parse::<f64>().is_err() {
        return Err(WireError::mismatch(
            path,
            format!("{text:?} is not a number"),
        ));
    }
    // Keep the exact text: it may carry more precision than an f64.
    Ok(Number::Decimal(t.to_string()))
}

fn interpret(raw: Raw, ty: &Type, path: &mut String) -> Result<Value, WireError> {
    match raw {
        Raw::Nil => return Ok(Value::Null),
        Raw::Ext => return Ok(Value::Unknown),
        _ => {}
    }
    match ty {
        Type::Dynamic => {
            let Raw::Array(mut parts) = raw else {
                return Err(WireError::mismatch(
                    path,
                    format!(
                        "dynamic value must be a [type, value] pair, got {}",
                        describe(&raw)
                    ),
                ));
            };
            if parts.len() != 2 {
                return Err(WireError::mismatch(
                    path,
                    "dynamic value must be a [type, value] pair",
                ));
            }
            let inner = parts.pop().unwrap_or(Raw::Nil);
            let type_bytes = match parts.pop() {
                Some(Raw::Bin(b)) | Some(Raw::Str(b)) => b,
                _ => {
                    return Err(WireError::mismatch(
                        path,
                        "dynamic value type must be JSON bytes",
                    ))
                }
            };
            let concrete = type_from_json_bytes(&type_bytes)?;
            let v = interpret(inner, &concrete, path)?;
            Ok(Value::Dynamic(concrete, Box::new(v)))
        }
        Type::Bool => match raw {
            Raw::Bool(b) => Ok(Value::Bool(b)),
            other => Err(WireError::mismatch(
                path,
                format!("bool required, got {}", describe(&other)),
            )),
        },
        Type::Number => match raw {
            Raw::Int(i) => Ok(Value::Number(Number::Int(i))),
            Raw::UInt(u) => Ok(Value::Number(Number::UInt(u))),
            Raw::Float(f) if f.is_nan() => Err(WireError::mismatch(path, "NaN is not a number")),
            Raw::Float(f) => Ok(Value::Number(Number::Float(f))),
            Raw::Str(s) => {
                let text = utf8(s, path)?;
                Ok(Value::Number(parse_number_text(&text, path)?))
            }
            other => Err(WireError::mismatch(
                path,
                format!("number required, got {}", describe(&other)),
            )),
        },
        Type::String => match raw {
            Raw::Str(s) | Raw::Bin(s) => Ok(Value::String(utf8(s, path)?)),
            other => Err(WireError::mismatch(
                path,
                format!("string required, got {}", describe(&other)),
            )),
        },
        Type::List(elem) | Type::Set(elem) => {
            let Raw::Array(items) = raw else {
                return Err(WireError::mismatch(
                    path,
                    format!("{ty} required, got {}", describe(&raw)),
                ));
            };
            let out = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| at(path, Step::Index(i), |p| interpret(item, elem, p)))
                .collect::<Result<_, _>>()?;
            Ok(sequence(ty, out))
        }
        Type::Tuple(elems) => {
            let Raw::Array(items) = raw else {
                return Err(WireError::mismatch(
                    path,
                    format!("{ty} required, got {}", describe(&raw)),
                ));
            };
            check_tuple_len(path, elems.len(), items.len())?;
            let out = items
                .into_iter()
                .zip(elems)
                .enumerate()
                .map(|(i, (item, ety))| at(path, Step::Index(i), |p| interpret(item, ety, p)))
                .collect::<Result<_, _>>()?;
            Ok(Value::Tuple(out))
        }
        Type::Map(elem) => {
            let entries = string_keyed(raw, ty, path)?;
            let out = entries
                .into_iter()
                .map(|(k, item)| {
                    let v = at(path, Step::Key(&k), |p| interpret(item, elem, p))?;
                    Ok((k, v))
                })
                .collect::<Result<_, _>>()?;
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries = string_keyed(raw, ty, path)?;
            let mut given: BTreeMap<String, Raw> = BTreeMap::new();
            for (k, v) in entries {
                if !attrs.contains_key(&k) {
                    return Err(WireError::mismatch(
                        path,
                        format!("unsupported attribute {k:?}"),
                    ));
                }
                given.insert(k, v);
            }
            if given.len() != attrs.len() {
                let missing: Vec<&str> = attrs
                    .keys()
                    .filter(|k| !given.contains_key(*k))
                    .map(String::as_str)
                    .collect();
                return Err(WireError::mismatch(
                    path,
                    format!(
                        "an object with {} attributes is required ({} given); missing {}",
                        attrs.len(),
                        given.len(),
                        missing.join(", ")
                    ),
                ));
            }
            let mut out = BTreeMap::new();
            for (k, aty) in attrs {
                let item = given.remove(k).unwrap_or(Raw::Nil);
                let v = at(path, Step::Attribute(k), |path| interpret(item, aty, path));
                out.insert(k.clone(), v?);
            }
            Ok(Value::Object(out))
        }
    }
}

fn string_keyed(raw: Raw, ty: &Type, path: &str) -> Result<Vec<(String, Raw)>, WireError> {
    let Raw::Map(entries) = raw else {
        return Err(WireError::mismatch(
            path,
            format!("{ty} required, got {}", describe(&raw)),
        ));
    };
    entries
        .into_iter()
        .map(|(k, v)| match k {
            Raw::Str(s) => Ok((utf8(s, path)?, v)),
            other => Err(WireError::mismatch(
                path,
                format!("map keys must be strings, got {}", describe(&other)),
            )),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes `value` as cty msgpack for type `ty`.
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    write_value(&mut out, value, ty, &mut String::new())?;
    Ok(out)
}

fn io(e: impl std::fmt::Display) -> WireError {
    WireError::Malformed(format!("msgpack write failed: {e}"))
}

/// cty's unknown marker: fixext1, extension type 0, one zero byte.
const UNKNOWN: [u8; 3] = [0xd4, 0x00, 0x00];

fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), WireError> {
    match n {
        Number::Int(i) => rmp::encode::write_sint(out, *i).map(|_| ()).map_err(io),
        Number::UInt(u) => rmp::encode::write_uint(out, *u).map(|_| ()).map_err(io),
        Number::Float(f) => {
            // Whole floats in i64 range go out as integers, as cty does.
            if f.fract() == 0.0 && *f >= -9.2e18 && *f <= 9.2e18 {
                rmp::encode::write_sint(out, *f as i64)
                    .map(|_| ())
                    .map_err(io)
            } else {
                rmp::encode::write_f64(out, *f).map_err(io)
            }
        }
        Number::Decimal(text) => {
            if let Ok(i) = text.parse::<i64>() {
                return rmp::encode::write_sint(out, i).map(|_| ()).map_err(io);
            }
            if let Ok(f) = text.parse::<f64>() {
                // Only when the float reproduces the text exactly; otherwise keep the text.
                if f.is_finite() && format!("{f}") == *text {
                    return rmp::encode::write_f64(out, f).map_err(io);
                }
            }
            rmp::encode::write_str(out, text).map_err(io)
        }
    }
}

/// Best-effort type of a value found in a `dynamic` slot without its type.
fn infer_type(value: &Value) -> Option<Type> {
    Some(match value {
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::Dynamic(t, _) => t.clone(),
        Value::List(items) => Type::list(infer_type(items.first()?)?),
        Value::Set(items) => Type::set(infer_type(items.first()?)?),
        Value::Map(m) => Type::map(infer_type(m.values().next()?)?),
        Value::Object(m) => Type::Object(
            m.iter()
                .map(|(k, v)| Some((k.clone(), infer_type(v)?)))
                .collect::<Option<_>>()?,
        ),
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_type).collect::<Option<_>>()?),
        Value::Null | Value::Unknown => return None,
    })
}

fn mismatch_value(path: &str, ty: &Type, value: &Value) -> WireError {
    WireError::mismatch(
        path,
        format!("cannot encode a {} value as {ty}", value.kind()),
    )
}

fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    ty: &Type,
    path: &mut String,
) -> Result<(), WireError> {
    match value {
        Value::Unknown => {
            out.extend_from_slice(&UNKNOWN);
            return Ok(());
        }
        Value::Null => {
            rmp::encode::write_nil(out).map_err(io)?;
            return Ok(());
        }
        _ => {}
    }
    if let Type::Dynamic = ty {
        let (concrete, inner) = match value {
            Value::Dynamic(t, v) => (t.clone(), v.as_ref()),
            other => (
                infer_type(other).ok_or_else(|| {
                    WireError::mismatch(path, "cannot tell the type of a dynamic value")
                })?,
                other,
            ),
        };
        rmp::encode::write_array_len(out, 2).map_err(io)?;
        rmp::encode::write_bin(out, &type_to_json_bytes(&concrete)).map_err(io)?;
        return write_value(out, inner, &concrete, path);
    }
    match (ty, value) {
        // A typed wrapper in a statically typed slot: the slot's type wins.
        (_, Value::Dynamic(_, inner)) => write_value(out, inner, ty, path),
        (Type::Bool, Value::Bool(b)) => rmp::encode::write_bool(out, *b).map_err(io),
        (Type::Number, Value::Number(n)) => write_number(out, n),
        (Type::String, Value::String(s)) => rmp::encode::write_str(out, s).map_err(io),
        (Type::List(elem), Value::List(items) | Value::Set(items) | Value::Tuple(items))
        | (Type::Set(elem), Value::List(items) | Value::Set(items) | Value::Tuple(items)) => {
            let n = u32::try_from(items.len()).map_err(io)?;
            rmp::encode::write_array_len(out, n).map_err(io)?;
            for (i, item) in items.iter().enumerate() {
                let r = at(path, Step::Index(i), |path| {
                    write_value(out, item, elem, path)
                });
                r?;
            }
            Ok(())
        }
        (Type::Tuple(elems), Value::Tuple(items) | Value::List(items)) => {
            check_tuple_len(path, elems.len(), items.len())?;
            let n = u32::try_from(items.len()).map_err(io)?;
            rmp::encode::write_array_len(out, n).map_err(io)?;
            for (i, (item, ety)) in items.iter().zip(elems).enumerate() {
                let r = at(path, Step::Index(i), |path| {
                    write_value(out, item, ety, path)
                });
                r?;
            }
            Ok(())
        }
        (Type::Map(elem), Value::Map(m) | Value::Object(m)) => {
            let n = u32::try_from(m.len()).map_err(io)?;
            rmp::encode::write_map_len(out, n).map_err(io)?;
            for (k, item) in m {
                rmp::encode::write_str(out, k).map_err(io)?;
                let r = at(path, Step::Key(k), |path| {
                    write_value(out, item, elem, path)
                });
                r?;
            }
            Ok(())
        }
        (Type::Object(attrs), Value::Object(m) | Value::Map(m)) => {
            if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(WireError::mismatch(
                    path,
                    format!("attribute {extra:?} is not in the schema"),
                ));
            }
            let n = u32::try_from(attrs.len()).map_err(io)?;
            rmp::encode::write_map_len(out, n).map_err(io)?;
            // Terraform rejects objects with missing keys, so absent attributes go out as null.
            for (k, aty) in attrs {
                rmp::encode::write_str(out, k).map_err(io)?;
                let r = at(path, Step::Attribute(k), |path| {
                    write_value(out, m.get(k).unwrap_or(&Value::Null), aty, path)
                });
                r?;
            }
            Ok(())
        }
        (ty, value) => Err(mismatch_value(path, ty, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Value, ty: Type) {
        let bytes = encode(&value, &ty).unwrap();
        let back = decode(&bytes, &ty).unwrap();
        assert_eq!(back, value, "type {ty}, bytes {bytes:02x?}");
    }

    #[test]
    fn reference_byte_examples() {
        let ty = Type::object([("id", Type::String)]);
        let unknown = Value::object([("id", Value::Unknown)]);
        assert_eq!(
            encode(&unknown, &ty).unwrap(),
            [0x81, 0xa2, b'i', b'd', 0xd4, 0x00, 0x00]
        );
        let known = Value::object([("id", Value::string("abc"))]);
        assert_eq!(
            encode(&known, &ty).unwrap(),
            [0x81, 0xa2, b'i', b'd', 0xa3, b'a', b'b', b'c']
        );
        let null_attr = Value::object([("id", Value::Null)]);
        assert_eq!(
            decode(&[0x81, 0xa2, b'i', b'd', 0xc0], &ty).unwrap(),
            null_attr
        );
        assert_eq!(decode(&[0xc0], &ty).unwrap(), Value::Null);
        assert_eq!(encode(&Value::Null, &ty).unwrap(), [0xc0]);
        // An empty provider schema arrives as an empty (non-null) map.
        let empty = Type::object(Vec::<(String, Type)>::new());
        assert_eq!(
            decode(&[0x80], &empty).unwrap(),
            Value::object(Vec::<(String, Value)>::new())
        );
        assert_eq!(
            decode(&[0x81, 0xa2, b'i', b'd', 0xd4, 0x00, 0x00], &ty).unwrap(),
            unknown
        );
    }

    #[test]
    fn any_extension_is_unknown() {
        // Refined unknown from newer Terraform: ext8 of type 0x0c with a payload.
        let refined = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc3];
        assert_eq!(decode(&refined, &Type::String).unwrap(), Value::Unknown);
        assert_eq!(
            decode(&[0xd5, 0x05, 1, 2], &Type::Number).unwrap(),
            Value::Unknown
        );
        assert_eq!(
            decode(&[0xd4, 0x00, 0x00], &Type::Dynamic).unwrap(),
            Value::Unknown
        );
    }

    #[test]
    fn primitives_round_trip() {
        round_trip(Value::Bool(true), Type::Bool);
        round_trip(Value::Bool(false), Type::Bool);
        round_trip(Value::string(""), Type::String);
        round_trip(Value::string("x".repeat(70_000)), Type::String);
        round_trip(Value::Number(Number::Int(0)), Type::Number);
        round_trip(Value::Number(Number::Int(-1)), Type::Number);
        round_trip(Value::Number(Number::Int(i64::MIN)), Type::Number);
        round_trip(Value::Number(Number::Int(i64::MAX)), Type::Number);
        round_trip(Value::Number(Number::UInt(u64::MAX)), Type::Number);
        round_trip(Value::Number(Number::Float(1.5)), Type::Number);
        round_trip(Value::Number(Number::Float(f64::INFINITY)), Type::Number);
        round_trip(
            Value::Number(Number::Decimal("123456789012345678901234567890.5".into())),
            Type::Number,
        );
        for ty in [
            Type::Bool,
            Type::Number,
            Type::String,
            Type::list(Type::String),
        ] {
            round_trip(Value::Null, ty.clone());
            round_trip(Value::Unknown, ty);
        }
    }

    #[test]
    fn number_encodings() {
        assert_eq!(encode(&Value::from(1i64), &Type::Number).unwrap(), [0x01]);
        assert_eq!(encode(&Value::from(-1i64), &Type::Number).unwrap(), [0xff]);
        // Whole float goes out as an integer.
        assert_eq!(
            encode(&Value::Number(Number::Float(3.0)), &Type::Number).unwrap(),
            [0x03]
        );
        let f = encode(&Value::Number(Number::Float(0.5)), &Type::Number).unwrap();
        assert_eq!(f[0], 0xcb);
        // Beyond f64 precision stays text.
        let big = "123456789012345678901234567890";
        let bytes = encode(&Value::Number(Number::Decimal(big.into())), &Type::Number).unwrap();
        assert_eq!(bytes[0], 0xbe); // fixstr of length 30
                                    // Every width decodes.
        let cases: &[(&[u8], i64)] = &[
            (&[0xcc, 0xff], 255),
            (&[0xcd, 0x01, 0x00], 256),
            (&[0xce, 0, 1, 0, 0], 65536),
            (&[0xcf, 0, 0, 0, 1, 0, 0, 0, 0], 1 << 32),
            (&[0xd0, 0x80], -128),
            (&[0xd1, 0xff, 0x00], -256),
            (&[0xd2, 0xff, 0xff, 0xff, 0xff], -1),
            (&[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], -2),
        ];
        for (bytes, want) in cases {
            let v = decode(bytes, &Type::Number).unwrap();
            assert_eq!(v, Value::from(*want), "{bytes:02x?}");
        }
        let f32v = decode(&[0xca, 0x3f, 0xc0, 0, 0], &Type::Number).unwrap();
        assert_eq!(f32v, Value::Number(Number::Float(1.5)));
        let s = decode(&[0xa3, b'4', b'.', b'5'], &Type::Number).unwrap();
        assert_eq!(s, Value::Number(Number::Float(4.5)));
        assert!(decode(&[0xa3, b'a', b'b', b'c'], &Type::Number).is_err());
    }

    #[test]
    fn strings_accept_bin() {
        assert_eq!(
            decode(&[0xc4, 0x02, b'h', b'i'], &Type::String).unwrap(),
            Value::string("hi")
        );
        assert!(decode(&[0xa2, 0xff, 0xfe], &Type::String).is_err());
    }

    #[test]
    fn collections_round_trip_with_unknown_and_null_everywhere() {
        let elems = vec![Value::string("a"), Value::Null, Value::Unknown];
        round_trip(Value::List(elems.clone()), Type::list(Type::String));
        round_trip(Value::Set(elems.clone()), Type::set(Type::String));
        round_trip(Value::List(vec![]), Type::list(Type::String));
        let mut m = BTreeMap::new();
        m.insert("k".to_string(), Value::Unknown);
        m.insert("n".to_string(), Value::Null);
        m.insert("v".to_string(), Value::string("x"));
        round_trip(Value::Map(m), Type::map(Type::String));
        round_trip(
            Value::Tuple(vec![Value::Bool(true), Value::Unknown, Value::Null]),
            Type::Tuple(vec![Type::Bool, Type::Number, Type::String]),
        );
        let nested_ty = Type::object([
            ("name", Type::String),
            (
                "rules",
                Type::list(Type::object([
                    ("effect", Type::String),
                    ("n", Type::Number),
                ])),
            ),
            ("tags", Type::map(Type::String)),
        ]);
        round_trip(
            Value::object([
                ("name", Value::Unknown),
                (
                    "rules",
                    Value::List(vec![
                        Value::object([("effect", Value::string("deny")), ("n", Value::Unknown)]),
                        Value::Unknown,
                        Value::Null,
                    ]),
                ),
                ("tags", Value::Null),
            ]),
            nested_ty,
        );
    }

    #[test]
    fn dynamic_wrapping() {
        let v = Value::Dynamic(Type::String, Box::new(Value::string("hi")));
        let bytes = encode(&v, &Type::Dynamic).unwrap();
        let mut want = vec![0x92, 0xc4, 8];
        want.extend_from_slice(b"\"string\"");
        want.extend_from_slice(&[0xa2, b'h', b'i']);
        assert_eq!(bytes, want);
        round_trip(v, Type::Dynamic);
        // Typed null / unknown keep their type.
        round_trip(
            Value::Dynamic(Type::list(Type::String), Box::new(Value::Null)),
            Type::Dynamic,
        );
        round_trip(
            Value::Dynamic(Type::Number, Box::new(Value::Unknown)),
            Type::Dynamic,
        );
        // Untyped null / unknown are bare.
        assert_eq!(encode(&Value::Null, &Type::Dynamic).unwrap(), [0xc0]);
        assert_eq!(
            encode(&Value::Unknown, &Type::Dynamic).unwrap(),
            [0xd4, 0, 0]
        );
        // Nested object with a dynamic attribute.
        let ty = Type::object([("params", Type::Dynamic)]);
        let inner_ty = Type::object([("a", Type::list(Type::Number))]);
        round_trip(
            Value::object([(
                "params",
                Value::Dynamic(
                    inner_ty,
                    Box::new(Value::object([(
                        "a",
                        Value::List(vec![Value::from(1i64), Value::Unknown]),
                    )])),
                ),
            )]),
            ty,
        );
        // Type JSON as str is accepted on decode.
        let mut as_str = vec![0x92, 0xa6];
        as_str.extend_from_slice(b"\"bool\"");
        as_str.push(0xc3);
        assert_eq!(
            decode(&as_str, &Type::Dynamic).unwrap(),
            Value::Dynamic(Type::Bool, Box::new(Value::Bool(true)))
        );
        // An unwrapped known value in a dynamic slot is inferred.
        let inferred = encode(&Value::string("x"), &Type::Dynamic).unwrap();
        assert_eq!(
            decode(&inferred, &Type::Dynamic).unwrap(),
            Value::Dynamic(Type::String, Box::new(Value::string("x")))
        );
    }

    #[test]
    fn objects_must_be_complete_on_decode() {
        let ty = Type::object([("a", Type::String), ("b", Type::String)]);
        let missing = [0x81, 0xa1, b'a', 0xc0];
        let err = decode(&missing, &ty).unwrap_err();
        assert!(err.to_string().contains("missing b"), "{err}");
        let extra = [0x83, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xc0, 0xa1, b'c', 0xc0];
        assert!(decode(&extra, &ty)
            .unwrap_err()
            .to_string()
            .contains("\"c\""));
        // Encoding fills absent attributes with null.
        let partial = Value::object([("a", Value::string("x"))]);
        let back = decode(&encode(&partial, &ty).unwrap(), &ty).unwrap();
        assert_eq!(
            back,
            Value::object([("a", Value::string("x")), ("b", Value::Null)])
        );
        // Extra attributes cannot be encoded.
        let bad = Value::object([("zzz", Value::Null)]);
        assert!(encode(&bad, &ty).is_err());
    }

    #[test]
    fn type_mismatches_are_errors() {
        assert!(decode(&[0xa1, b'x'], &Type::Bool).is_err());
        assert!(decode(&[0x01], &Type::String).is_err());
        assert!(decode(&[0x90], &Type::map(Type::String)).is_err());
        assert!(decode(&[0x91, 0x01], &Type::Tuple(vec![])).is_err());
        assert!(decode(&[0x81, 0x01, 0x01], &Type::map(Type::Number)).is_err());
        assert!(decode(&[0x92, 0x01, 0x01], &Type::Dynamic).is_err());
        assert!(encode(&Value::string("x"), &Type::Bool).is_err());
        let err = decode(
            &[0x81, 0xa1, b'a', 0x91, 0x01],
            &Type::object([("a", Type::list(Type::String))]),
        )
        .unwrap_err();
        assert!(err.to_string().contains(".a[0]"), "{err}");
    }

    #[test]
    fn malformed_bytes_never_panic() {
        let samples: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xc1],
            vec![0xdb, 0xff, 0xff, 0xff, 0xff],
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0x00],
            vec![0x92, 0x01],
            vec![0x81, 0xa1],
            vec![0xc0, 0xc0],
            vec![0x91; 10_000],
            b"garbage that is not msgpack at all".to_vec(),
        ];
        let types = [
            Type::Dynamic,
            Type::String,
            Type::list(Type::Dynamic),
            Type::object([("a", Type::String)]),
        ];
        for s in &samples {
            for ty in &types {
                let _ = decode(s, ty);
            }
        }
        // Pseudo-random fuzz.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push((x & 0xff) as u8);
            }
            for ty in &types {
                let _ = decode(&buf, ty);
            }
            x = x.wrapping_add(1);
        }
    }
}
