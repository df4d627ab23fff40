//! From a [`Profile`] to profile.proto's bytes: interning strings,
//! deduplicating functions and locations, attaching mappings (after Go's
//! runtime/pprof `profileBuilder`).

use super::proto::{tag, Writer};
use super::symbols::{self, Mapping, Pc};
use super::{Profile, ProfileSample};
use std::collections::HashMap;

/// One `Location`: an address, its mapping and its source lines
/// (function id, line), innermost inlined frame first as pprof expects.
struct Location {
    mapping_id: u64,
    address: u64,
    lines: Vec<(u64, i64)>,
}

/// The tables a profile's samples refer to, filled as samples are seen.
/// Ids are positions + 1 (0 means "none" in profile.proto).
struct Tables {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    /// (name, file) string indices.
    functions: Vec<(i64, i64)>,
    function_ids: HashMap<(String, Option<String>), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<Pc, u64>,
    mappings: Vec<Mapping>,
}

impl Tables {
    fn new(mappings: Vec<Mapping>) -> Tables {
        let mut t = Tables {
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            mappings,
        };
        // profile.proto: string_table[0] must be "".
        t.string("");
        t
    }

    /// The string table index of `s`.
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_ids.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), i);
        i
    }

    /// The id of the function `name` in `file`: one per (name, file), so
    /// that every address in a function shares it.
    fn function(&mut self, name: &str, file: Option<&str>) -> u64 {
        let key = (name.to_string(), file.map(str::to_string));
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let entry = (self.string(name), self.string(file.unwrap_or("")));
        self.functions.push(entry);
        let id = self.functions.len() as u64;
        self.function_ids.insert(key, id);
        id
    }

    /// The id of the location of `pc`, one per distinct address (and
    /// exactness, which changes what it symbolises to).
    fn location(&mut self, pc: Pc) -> u64 {
        if let Some(&id) = self.location_ids.get(&pc) {
            return id;
        }
        let lines = pc
            .frames()
            .iter()
            .map(|f| {
                let function = self.function(&f.function, f.file.as_deref());
                (function, f.line.map_or(0, i64::from))
            })
            .collect();
        let address = pc.addr as u64;
        let mapping_id = self
            .mappings
            .iter()
            .position(|m| (m.start..m.limit).contains(&address))
            .map_or(0, |i| i as u64 + 1);
        self.locations.push(Location {
            mapping_id,
            address,
            lines,
        });
        let id = self.locations.len() as u64;
        self.location_ids.insert(pc, id);
        id
    }
}

/// `p` encoded as profile.proto's `Profile` message (not yet gzipped).
/// Symbolises every address: call it on a thread with a large stack.
pub(crate) fn build(p: &Profile) -> Vec<u8> {
    let mut t = Tables::new(symbols::self_mappings());
    let mut w = Writer::default();
    for (ty, unit) in &p.sample_types {
        value_type(&mut w, &mut t, tag::profile::SAMPLE_TYPE, ty, unit);
    }
    for s in &p.samples {
        sample(&mut w, &mut t, p, s);
    }
    if let Some((ty, unit)) = &p.period_type {
        value_type(&mut w, &mut t, tag::profile::PERIOD_TYPE, ty, unit);
    }
    w.int64(tag::profile::PERIOD, p.period);
    w.int64(tag::profile::TIME_NANOS, p.time_nanos);
    w.int64(tag::profile::DURATION_NANOS, p.duration_nanos);
    let comments: Vec<u64> = p.comments.iter().map(|c| t.string(c) as u64).collect();
    w.packed(tag::profile::COMMENT, comments);
    if let Some(d) = &p.default_sample_type {
        let d = t.string(d);
        w.int64(tag::profile::DEFAULT_SAMPLE_TYPE, d);
    }
    // The tables last: samples filled them, and mappings and functions
    // add strings, so the string table goes at the very end.
    mappings(&mut w, &mut t);
    locations(&mut w, &t);
    functions(&mut w, &t);
    for s in &t.strings {
        w.bytes(tag::profile::STRING_TABLE, s.as_bytes());
    }
    w.finish()
}

fn value_type(w: &mut Writer, t: &mut Tables, field: u32, ty: &str, unit: &str) {
    let (ty, unit) = (t.string(ty), t.string(unit));
    w.message(field, |m| {
        m.int64(tag::value_type::TYPE, ty);
        m.int64(tag::value_type::UNIT, unit);
    });
}

fn sample(w: &mut Writer, t: &mut Tables, p: &Profile, s: &ProfileSample) {
    use tag::{label, sample};
    let locations: Vec<u64> = symbols::stack(p, s)
        .into_iter()
        .map(|pc| t.location(pc))
        .collect();
    let labels: Vec<(i64, i64)> = s
        .labels
        .iter()
        .map(|(k, v)| (t.string(k), t.string(v)))
        .collect();
    let num_labels: Vec<(i64, i64, i64)> = s
        .num_labels
        .iter()
        .map(|(k, n, unit)| (t.string(k), *n, t.string(unit)))
        .collect();
    w.message(tag::profile::SAMPLE, |m| {
        m.packed(sample::LOCATION_ID, locations);
        m.packed(sample::VALUE, s.values.iter().map(|&v| v as u64));
        for (k, v) in labels {
            m.message(sample::LABEL, |l| {
                l.int64(label::KEY, k);
                l.int64(label::STR, v);
            });
        }
        for (k, n, unit) in num_labels {
            m.message(sample::LABEL, |l| {
                l.int64(label::KEY, k);
                l.int64(label::NUM, n);
                l.int64(label::NUM_UNIT, unit);
            });
        }
    });
}

/// Every executable mapping, marked as fully symbolised (functions, file
/// names, lines, inlining): pprof then trusts the profile's names instead
/// of looking for the binary to symbolise it again.
fn mappings(w: &mut Writer, t: &mut Tables) {
    use tag::mapping as f;
    // Taken: every location has found its mapping by now.
    let mappings = std::mem::take(&mut t.mappings);
    for (i, m) in mappings.iter().enumerate() {
        let file = t.string(&m.file);
        w.message(tag::profile::MAPPING, |e| {
            e.uint64(f::ID, i as u64 + 1);
            e.uint64(f::MEMORY_START, m.start);
            e.uint64(f::MEMORY_LIMIT, m.limit);
            e.uint64(f::FILE_OFFSET, m.offset);
            e.int64(f::FILENAME, file);
            e.bool(f::HAS_FUNCTIONS, true);
            e.bool(f::HAS_FILENAMES, true);
            e.bool(f::HAS_LINE_NUMBERS, true);
            e.bool(f::HAS_INLINE_FRAMES, true);
        });
    }
}

fn locations(w: &mut Writer, t: &Tables) {
    use tag::{line, location as f};
    for (i, l) in t.locations.iter().enumerate() {
        w.message(tag::profile::LOCATION, |e| {
            e.uint64(f::ID, i as u64 + 1);
            e.uint64(f::MAPPING_ID, l.mapping_id);
            e.uint64(f::ADDRESS, l.address);
            for &(function, n) in &l.lines {
                e.message(f::LINE, |ln| {
                    ln.uint64(line::FUNCTION_ID, function);
                    ln.int64(line::LINE, n);
                });
            }
        });
    }
}

fn functions(w: &mut Writer, t: &Tables) {
    use tag::function as f;
    for (i, &(name, file)) in t.functions.iter().enumerate() {
        w.message(tag::profile::FUNCTION, |e| {
            e.uint64(f::ID, i as u64 + 1);
            e.int64(f::NAME, name);
            // Rust symbols are demangled already: the system name is the name.
            e.int64(f::SYSTEM_NAME, name);
            e.int64(f::FILENAME, file);
        });
    }
}
