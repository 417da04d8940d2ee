//! The `ecom generate --out DIR` format, written and read here only. Training reads the three
//! delimited-protobuf files; the JSON lines hold the same records for people and other tools.
//!
//! | file | holds |
//! | --- | --- |
//! | events.pb | every raw record's value, in order ([`record_value`]) |
//! | truth.pb | the generator's truth: sessions and the labels of malformed records |
//! | catalog.pb | the products |
//! | events.jsonl, truth.jsonl, catalog.jsonl | the same, one JSON object per line ([`crate::json`]) |
//! | summary.json | the run's counts (written by `ecom generate`) |
//!
//! Delimited form: each record is a varint length, then its bytes (protobuf's delimited form).
use crate::{json, GenRecord, Payload};
use ecom_proto::v1::{Event, Product, TruthRecord};
use prost::Message;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Raw records, delimited.
pub const EVENTS_PB: &str = "events.pb";
/// Truth records, delimited.
pub const TRUTH_PB: &str = "truth.pb";
/// Products, delimited.
pub const CATALOG_PB: &str = "catalog.pb";
/// Raw records, JSON lines.
pub const EVENTS_JSONL: &str = "events.jsonl";
/// Truth records, JSON lines.
pub const TRUTH_JSONL: &str = "truth.jsonl";
/// Products, JSON lines.
pub const CATALOG_JSONL: &str = "catalog.jsonl";
/// The run's counts.
pub const SUMMARY_JSON: &str = "summary.json";
/// What `ecom train --from DIR` reads.
pub const TRAINING: [&str; 3] = [EVENTS_PB, TRUTH_PB, CATALOG_PB];

/// The value of a raw record as it goes into a file: as produced, except that no producer
/// clock is stamped (files stay byte-identical across runs), so a record meant to come from a
/// client clock ahead of the producer's is stamped ahead of the simulated time instead.
pub fn record_value(rec: &GenRecord) -> Vec<u8> {
    match (&rec.payload, rec.clock_lead_ms) {
        (Payload::Event(e), Some(lead)) => Event { event_time_ms: e.event_time_ms + lead, ..e.clone() }.encode_to_vec(),
        (Payload::Event(e), None) => e.encode_to_vec(),
        (Payload::Bytes(b), _) => b.clone(),
    }
}

/// Appends `value` in delimited form.
pub fn write_delimited(w: &mut impl Write, value: &[u8]) -> std::io::Result<()> {
    let mut len = Vec::with_capacity(5);
    prost::encoding::encode_varint(value.len() as u64, &mut len);
    w.write_all(&len)?;
    w.write_all(value)
}

/// The records of a delimited file's bytes, as slices of them; Err names the record that does
/// not parse.
pub fn read_delimited(data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut buf = data;
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = prost::encoding::decode_varint(&mut buf)
            .map_err(|e| format!("bad length prefix after {} records: {e}", out.len()))? as usize;
        if len > buf.len() {
            return Err(format!("record {} claims {len} bytes, {} left (truncated file?)", out.len(), buf.len()));
        }
        let (record, rest) = buf.split_at(len);
        out.push(record);
        buf = rest;
    }
    Ok(out)
}

/// Larger records are refused as corrupt: the generator's largest is Kafka's request limit.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// The records of a delimited stream, read one at a time: a file larger than memory reads in
/// constant space.
pub struct Records<R> {
    r: R,
    buf: Vec<u8>,
    /// Records read so far.
    pub count: u64,
}

impl<R: std::io::BufRead> Records<R> {
    /// Records of `r`.
    pub fn new(r: R) -> Self {
        Self { r, buf: Vec::new(), count: 0 }
    }

    /// The next record; None at the end; Err names the record that does not parse.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, String> {
        let n = self.count;
        // The varint length: 7 bits a byte, the high bit set on every byte but the last.
        let mut len = 0u64;
        for shift in (0..64).step_by(7) {
            let mut b = [0u8; 1];
            match self.r.read_exact(&mut b) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && shift == 0 => return Ok(None),
                Err(e) => return Err(format!("record {n}: length prefix: {e}")),
            }
            len |= u64::from(b[0] & 0x7f) << shift;
            if b[0] & 0x80 == 0 {
                break;
            }
            if shift >= 63 {
                return Err(format!("record {n}: bad length prefix"));
            }
        }
        if len > MAX_RECORD_BYTES {
            return Err(format!("record {n} claims {len} bytes, over {MAX_RECORD_BYTES} (a corrupt file?)"));
        }
        self.buf.resize(len as usize, 0);
        self.r
            .read_exact(&mut self.buf)
            .map_err(|e| format!("record {n} claims {len} bytes: {e} (truncated file?)"))?;
        self.count += 1;
        Ok(Some(&self.buf))
    }
}

/// Writes a directory of the format: the delimited files always, the JSON lines when asked.
pub struct Writer {
    events: BufWriter<File>,
    truth: BufWriter<File>,
    catalog: BufWriter<File>,
    json: Option<[BufWriter<File>; 3]>,
}

impl Writer {
    /// Creates `dir` and its files (truncating any there).
    pub fn create(dir: &Path, with_json: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let open = |name: &str| {
            let path = dir.join(name);
            File::create(&path)
                .map(BufWriter::new)
                .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))
        };
        let json = if with_json { Some([open(EVENTS_JSONL)?, open(TRUTH_JSONL)?, open(CATALOG_JSONL)?]) } else { None };
        Ok(Self { events: open(EVENTS_PB)?, truth: open(TRUTH_PB)?, catalog: open(CATALOG_PB)?, json })
    }

    /// Appends a product.
    pub fn product(&mut self, p: &Product) -> std::io::Result<()> {
        write_delimited(&mut self.catalog, &p.encode_to_vec())?;
        if let Some([_, _, catalog]) = &mut self.json {
            writeln!(catalog, "{}", json::product(p))?;
        }
        Ok(())
    }

    /// Appends a raw record ([`record_value`]).
    pub fn record(&mut self, rec: &GenRecord) -> std::io::Result<()> {
        write_delimited(&mut self.events, &record_value(rec))?;
        if let Some([events, _, _]) = &mut self.json {
            writeln!(events, "{}", json::record(rec))?;
        }
        Ok(())
    }

    /// Appends truth records.
    pub fn truth(&mut self, records: &[TruthRecord]) -> std::io::Result<()> {
        for t in records {
            write_delimited(&mut self.truth, &t.encode_to_vec())?;
            if let Some([_, truth, _]) = &mut self.json {
                writeln!(truth, "{}", json::truth(t))?;
            }
        }
        Ok(())
    }

    /// Flushes every file.
    pub fn finish(mut self) -> std::io::Result<()> {
        for w in [&mut self.events, &mut self.truth, &mut self.catalog] {
            w.flush()?;
        }
        for w in self.json.iter_mut().flatten() {
            w.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_whole_or_record_by_record() {
        let mut data = Vec::new();
        for v in [&b""[..], b"a", &[7u8; 300]] {
            write_delimited(&mut data, v).unwrap();
        }
        let whole: Vec<Vec<u8>> = read_delimited(&data).unwrap().into_iter().map(<[u8]>::to_vec).collect();
        let mut records = Records::new(&data[..]);
        let mut each = Vec::new();
        while let Some(r) = records.next_record().unwrap() {
            each.push(r.to_vec());
        }
        assert_eq!((records.count, &each), (3, &whole));
        assert_eq!(whole[2].len(), 300);
        let cut = &data[..data.len() - 1];
        assert!(read_delimited(cut).unwrap_err().contains("truncated"));
        let mut records = Records::new(cut);
        assert!(records.next_record().unwrap().is_some() && records.next_record().unwrap().is_some());
        assert!(records.next_record().unwrap_err().contains("truncated"));
        let mut huge = Vec::new();
        prost::encoding::encode_varint(1 << 40, &mut huge);
        assert!(Records::new(&huge[..]).next_record().unwrap_err().contains("corrupt"));
    }
}
