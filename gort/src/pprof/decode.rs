//! A reader of the profiles [`encode`](super::encode) writes, for tests:
//! gunzip, parse profile.proto, check its references (string 0 is "",
//! every string index, location, function and mapping id resolves) and
//! give samples with their stacks as function names. Not a general pprof
//! library: fields gort does not write are skipped.

use super::gzip;
use super::proto::{tag, LEN, VARINT};
use super::{Profile, ProfileSample};
use std::collections::HashMap;

/// A decoded profile.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// The profile as read back; each sample's `pcs` are its locations'
    /// addresses.
    pub profile: Profile,
    /// Per sample, the function of every line of every location,
    /// innermost first.
    pub stacks: Vec<Vec<String>>,
    /// The mappings, in order.
    pub mappings: Vec<DecodedMapping>,
    /// The whole string table.
    pub strings: Vec<String>,
}

/// A decoded mapping.
#[derive(Clone, Debug, Default)]
pub struct DecodedMapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub limit: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The mapped file.
    pub file: String,
    /// Whether its locations carry function names.
    pub has_functions: bool,
}

/// The data of a gzip file, checked against its CRC and length.
pub fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    gzip::gunzip(gz)
}

/// Decodes a gzipped profile.
pub fn decode(gz: &[u8]) -> Result<Decoded, String> {
    let raw = parse_profile(&gunzip(gz)?)?;
    raw.resolve()
}

/// One field's value: varints (and fixed-width numbers) as integers,
/// length-delimited fields as bytes.
enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl Val<'_> {
    fn int(&self) -> Result<u64, String> {
        match self {
            Val::Int(x) => Ok(*x),
            Val::Bytes(_) => Err("length-delimited field where an integer belongs".into()),
        }
    }

    /// A repeated integer field's values: packed or one per field.
    fn ints(&self) -> Result<Vec<u64>, String> {
        match self {
            Val::Int(x) => Ok(vec![*x]),
            Val::Bytes(mut b) => {
                let mut out = Vec::new();
                while !b.is_empty() {
                    out.push(varint(&mut b)?);
                }
                Ok(out)
            }
        }
    }

    fn bytes(&self) -> Result<&[u8], String> {
        match self {
            Val::Bytes(b) => Ok(b),
            Val::Int(_) => Err("integer where a length-delimited field belongs".into()),
        }
    }
}

fn varint(b: &mut &[u8]) -> Result<u64, String> {
    let mut x = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
        *b = rest;
        x |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(x);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("truncated field".into());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

/// A message's fields, in order.
fn fields(mut b: &[u8]) -> Result<Vec<(u32, Val<'_>)>, String> {
    const FIXED64: u64 = 1;
    const FIXED32: u64 = 5;
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number too large")?;
        let val = match key & 7 {
            VARINT => Val::Int(varint(&mut b)?),
            LEN => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "length too large")?;
                Val::Bytes(take(&mut b, n)?)
            }
            FIXED64 => Val::Int(u64::from_le_bytes(
                take(&mut b, 8)?.try_into().unwrap_or_default(),
            )),
            FIXED32 => Val::Int(u64::from(u32::from_le_bytes(
                take(&mut b, 4)?.try_into().unwrap_or_default(),
            ))),
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((field, val));
    }
    Ok(out)
}

/// A message's integer fields, by field number (the last value wins, as
/// in protobuf).
fn scalars(b: &[u8]) -> Result<HashMap<u32, u64>, String> {
    let mut m = HashMap::new();
    for (f, v) in fields(b)? {
        if let Val::Int(x) = v {
            m.insert(f, x);
        }
    }
    Ok(m)
}

struct RawLabel {
    key: i64,
    str: i64,
    num: i64,
    num_unit: i64,
}

#[derive(Default)]
struct RawSample {
    location_ids: Vec<u64>,
    values: Vec<i64>,
    labels: Vec<RawLabel>,
}

struct RawLocation {
    address: u64,
    mapping_id: u64,
    /// Function ids, innermost first.
    functions: Vec<u64>,
}

/// The profile as stored: string indices and ids not yet resolved.
#[derive(Default)]
struct RawProfile {
    sample_types: Vec<(i64, i64)>,
    samples: Vec<RawSample>,
    mappings: Vec<(u64, HashMap<u32, u64>)>,
    locations: HashMap<u64, RawLocation>,
    /// Function id -> name index.
    functions: HashMap<u64, i64>,
    strings: Vec<String>,
    period_type: Option<(i64, i64)>,
    scalars: HashMap<u32, u64>,
    comments: Vec<i64>,
}

fn parse_profile(b: &[u8]) -> Result<RawProfile, String> {
    use tag::profile as f;
    let mut p = RawProfile::default();
    for (field, v) in fields(b)? {
        match field {
            f::SAMPLE_TYPE => p.sample_types.push(value_type(v.bytes()?)?),
            f::SAMPLE => p.samples.push(parse_sample(v.bytes()?)?),
            f::MAPPING => {
                let m = scalars(v.bytes()?)?;
                p.mappings
                    .push((m.get(&tag::mapping::ID).copied().unwrap_or(0), m));
            }
            f::LOCATION => {
                let (id, l) = parse_location(v.bytes()?)?;
                p.locations.insert(id, l);
            }
            f::FUNCTION => {
                let m = scalars(v.bytes()?)?;
                let name = m.get(&tag::function::NAME).copied().unwrap_or(0);
                p.functions
                    .insert(m.get(&tag::function::ID).copied().unwrap_or(0), name as i64);
            }
            f::STRING_TABLE => p
                .strings
                .push(String::from_utf8(v.bytes()?.to_vec()).map_err(|_| "string not UTF-8")?),
            f::PERIOD_TYPE => p.period_type = Some(value_type(v.bytes()?)?),
            f::COMMENT => p.comments.extend(v.ints()?.into_iter().map(|x| x as i64)),
            _ => {
                if let Val::Int(x) = v {
                    p.scalars.insert(field, x);
                }
            }
        }
    }
    Ok(p)
}

fn value_type(b: &[u8]) -> Result<(i64, i64), String> {
    let m = scalars(b)?;
    let get = |f| m.get(&f).copied().unwrap_or(0) as i64;
    Ok((get(tag::value_type::TYPE), get(tag::value_type::UNIT)))
}

fn parse_sample(b: &[u8]) -> Result<RawSample, String> {
    use tag::sample as f;
    let mut s = RawSample::default();
    for (field, v) in fields(b)? {
        match field {
            f::LOCATION_ID => s.location_ids.extend(v.ints()?),
            f::VALUE => s.values.extend(v.ints()?.into_iter().map(|x| x as i64)),
            f::LABEL => {
                let m = scalars(v.bytes()?)?;
                let get = |f| m.get(&f).copied().unwrap_or(0) as i64;
                s.labels.push(RawLabel {
                    key: get(tag::label::KEY),
                    str: get(tag::label::STR),
                    num: get(tag::label::NUM),
                    num_unit: get(tag::label::NUM_UNIT),
                });
            }
            _ => {}
        }
    }
    Ok(s)
}

fn parse_location(b: &[u8]) -> Result<(u64, RawLocation), String> {
    use tag::location as f;
    let mut id = 0;
    let mut l = RawLocation {
        address: 0,
        mapping_id: 0,
        functions: Vec::new(),
    };
    for (field, v) in fields(b)? {
        match field {
            f::ID => id = v.int()?,
            f::MAPPING_ID => l.mapping_id = v.int()?,
            f::ADDRESS => l.address = v.int()?,
            f::LINE => {
                let m = scalars(v.bytes()?)?;
                l.functions
                    .push(m.get(&tag::line::FUNCTION_ID).copied().unwrap_or(0));
            }
            _ => {}
        }
    }
    Ok((id, l))
}

impl RawProfile {
    fn string(&self, i: i64) -> Result<String, String> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.strings.get(i))
            .cloned()
            .ok_or_else(|| format!("string index {i} out of range"))
    }

    fn pair(&self, (a, b): (i64, i64)) -> Result<(String, String), String> {
        Ok((self.string(a)?, self.string(b)?))
    }

    fn resolve(&self) -> Result<Decoded, String> {
        if self.strings.first().map(String::as_str) != Some("") {
            return Err("string_table[0] is not \"\"".into());
        }
        let get = |f| self.scalars.get(&f).copied().unwrap_or(0) as i64;
        let default = get(tag::profile::DEFAULT_SAMPLE_TYPE);
        let (samples, stacks) = self
            .samples
            .iter()
            .map(|s| self.sample(s))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        let profile = Profile {
            sample_types: self
                .sample_types
                .iter()
                .map(|&t| self.pair(t))
                .collect::<Result<_, _>>()?,
            default_sample_type: (default != 0).then(|| self.string(default)).transpose()?,
            period_type: self.period_type.map(|t| self.pair(t)).transpose()?,
            period: get(tag::profile::PERIOD),
            time_nanos: get(tag::profile::TIME_NANOS),
            duration_nanos: get(tag::profile::DURATION_NANOS),
            samples,
            comments: self
                .comments
                .iter()
                .map(|&c| self.string(c))
                .collect::<Result<_, _>>()?,
            ..Profile::default()
        };
        Ok(Decoded {
            profile,
            stacks,
            mappings: self
                .mappings
                .iter()
                .map(|(_, m)| self.mapping(m))
                .collect::<Result<_, _>>()?,
            strings: self.strings.clone(),
        })
    }

    fn mapping(&self, m: &HashMap<u32, u64>) -> Result<DecodedMapping, String> {
        use tag::mapping as f;
        let get = |f| m.get(&f).copied().unwrap_or(0);
        Ok(DecodedMapping {
            start: get(f::MEMORY_START),
            limit: get(f::MEMORY_LIMIT),
            offset: get(f::FILE_OFFSET),
            file: self.string(get(f::FILENAME) as i64)?,
            has_functions: get(f::HAS_FUNCTIONS) != 0,
        })
    }

    /// A sample, and the functions of its stack.
    fn sample(&self, s: &RawSample) -> Result<(ProfileSample, Vec<String>), String> {
        let mut d = ProfileSample {
            values: s.values.clone(),
            ..ProfileSample::default()
        };
        let mut functions = Vec::new();
        for id in &s.location_ids {
            let l = self.locations.get(id).ok_or(format!("no location {id}"))?;
            let mapped = l.mapping_id == 0 || self.mappings.iter().any(|(m, _)| *m == l.mapping_id);
            if !mapped {
                return Err(format!("no mapping {}", l.mapping_id));
            }
            d.pcs.push(l.address as usize);
            for f in &l.functions {
                let name = self.functions.get(f).ok_or(format!("no function {f}"))?;
                functions.push(self.string(*name)?);
            }
        }
        for l in &s.labels {
            let key = self.string(l.key)?;
            if l.str != 0 {
                d.labels.push((key, self.string(l.str)?));
            } else {
                d.num_labels.push((key, l.num, self.string(l.num_unit)?));
            }
        }
        Ok((d, functions))
    }
}
