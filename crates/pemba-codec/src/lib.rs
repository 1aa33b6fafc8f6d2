//! The one encoding of everything Pemba keeps on disk or sends to a peer.
//!
//! Every encoded value is a three-byte header, then the value in bincode (standard
//! configuration, serde):
//!
//! | byte | meaning |
//! |------|---------|
//! | 0 | [`MARK`] (`0xFF`) |
//! | 1 | the [`Format`]'s tag |
//! | 2 | the format's version |
//!
//! No bincode encoding of a value Pemba stored before formats had a header begins with `0xFF`
//! (their first byte is a varint, an `Option` tag or a bool, and bincode's varints never begin
//! with `0xFF`), so such bytes are told apart and refused by name
//! ([`CodecError::Unversioned`]) instead of being misread.
//!
//! # Versions
//! [`Format::current`] is the version this build writes; it reads every version from
//! [`Format::oldest_readable`] up to that. Bytes in a newer version are refused
//! ([`CodecError::TooNew`]): a node never guesses at data a newer build wrote. Changing what a
//! format's value encodes to (a field added, removed, reordered or retyped, an enum variant
//! inserted) needs a new version, and the golden fixtures ([`golden`]) fail until it has one.

/// Golden fixtures: encoded values checked into the repository that must still decode.
pub mod golden;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// The first byte of every encoded value.
pub const MARK: u8 = 0xFF;

/// The length of the header before the body.
pub const HEADER_LEN: usize = 3;

/// What an encoded value is. Each has its own tag and version, so one can change without the
/// others. Tags are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A Raft log entry (openraft's `Entry` of Pemba's requests), as the log stores it.
    LogEntry,
    /// A Raft log id: the committed and the last purged entry, as the log stores them.
    LogId,
    /// The Raft vote, as the log stores it.
    Vote,
    /// A datastore's whole image: what a replication snapshot carries.
    Snapshot,
    /// The state machine's record of the last applied entry and the membership.
    AppliedRecord,
    /// The state machine's record of one write request's outcome, for de-duplication.
    RequestRecord,
    /// One relationship's version list, as the RocksDB datastore stores it.
    Versions,
    /// One revision's record in the log of writes, as the RocksDB datastore stores it.
    WriteRecord,
    /// A node's founding record: the cluster it was founded with.
    Founding,
    /// A message between peers on the cluster port (Raft messages, forwarded writes, answers).
    PeerMessage,
}

impl Format {
    /// Every format, in tag order.
    pub const ALL: [Format; 10] = [
        Format::LogEntry,
        Format::LogId,
        Format::Vote,
        Format::Snapshot,
        Format::AppliedRecord,
        Format::RequestRecord,
        Format::Versions,
        Format::WriteRecord,
        Format::Founding,
        Format::PeerMessage,
    ];

    /// The tag byte that names this format in a header.
    pub const fn tag(self) -> u8 {
        match self {
            Format::LogEntry => 1,
            Format::LogId => 2,
            Format::Vote => 3,
            Format::Snapshot => 4,
            Format::AppliedRecord => 5,
            Format::RequestRecord => 6,
            Format::Versions => 7,
            Format::WriteRecord => 8,
            Format::Founding => 9,
            Format::PeerMessage => 10,
        }
    }

    /// The format a tag names, if any.
    pub fn from_tag(tag: u8) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.tag() == tag)
    }

    /// The version this build writes, and the newest it reads.
    pub const fn current(self) -> u8 {
        1
    }

    /// The oldest version this build reads.
    pub const fn oldest_readable(self) -> u8 {
        1
    }

    /// What the format holds, in words, for error messages.
    pub const fn description(self) -> &'static str {
        match self {
            Format::LogEntry => "a Raft log entry",
            Format::LogId => "a Raft log id",
            Format::Vote => "the Raft vote",
            Format::Snapshot => "a replication snapshot",
            Format::AppliedRecord => "the state machine's applied record",
            Format::RequestRecord => "a write request's de-duplication record",
            Format::Versions => "a relationship's version list",
            Format::WriteRecord => "a record in the log of writes",
            Format::Founding => "the node's founding record",
            Format::PeerMessage => "a cluster peer message",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Why bytes could not be encoded or read back as a format. `format` is, in each, the format
/// expected (or being written).
#[derive(Debug, Error)]
pub enum CodecError {
    /// The bytes end before the header does.
    #[error("{format} is {len} bytes long, shorter than its {HEADER_LEN}-byte format header")]
    Truncated {
        /// The format expected.
        format: Format,
        /// How many bytes there are.
        len: usize,
    },
    /// The bytes have no header: a build from before formats had versions wrote them.
    #[error("{format} has no format header: it was written by a Pemba build from before formats were versioned, which this build does not read")]
    Unversioned {
        /// The format expected.
        format: Format,
    },
    /// The header names another format.
    #[error("expected {expected}, found bytes of another format (tag {found_tag})")]
    WrongFormat {
        /// The format expected.
        expected: Format,
        /// The tag the header holds.
        found_tag: u8,
    },
    /// The bytes are in a version newer than this build reads.
    #[error("{format} is in format version {found}, newer than this build reads (up to version {current}): it was written by a newer Pemba build")]
    TooNew {
        /// The format expected.
        format: Format,
        /// The version the header names.
        found: u8,
        /// The newest version this build reads.
        current: u8,
    },
    /// The bytes are in a version older than this build reads.
    #[error("{format} is in format version {found}, older than this build reads (from version {oldest})")]
    TooOld {
        /// The format expected.
        format: Format,
        /// The version the header names.
        found: u8,
        /// The oldest version this build reads.
        oldest: u8,
    },
    /// The value could not be encoded.
    #[error("{format} could not be encoded: {source}")]
    Encode {
        /// The format being written.
        format: Format,
        /// bincode's reason.
        source: bincode::error::EncodeError,
    },
    /// The body does not decode as the format's value.
    #[error("{format} (format version {version}) is malformed: {source}")]
    Malformed {
        /// The format expected.
        format: Format,
        /// The version the header names.
        version: u8,
        /// bincode's reason.
        source: bincode::error::DecodeError,
    },
    /// Bytes are left over after the value.
    #[error("{format} (format version {version}) has {extra} unread bytes after its end")]
    TrailingBytes {
        /// The format expected.
        format: Format,
        /// The version the header names.
        version: u8,
        /// How many bytes are left over.
        extra: usize,
    },
    /// The writer or reader of a streamed value failed.
    #[error("{format}: {source}")]
    Io {
        /// The format being read or written.
        format: Format,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `value` in `format`'s current version, header first.
pub fn encode<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![MARK, format.tag(), format.current()];
    bincode::serde::encode_into_std_write(value, &mut bytes, bincode::config::standard())
        .map_err(|source| CodecError::Encode { format, source })?;
    Ok(bytes)
}

/// Like [`encode`], written to `out`: a large value (a snapshot) need not become one contiguous
/// buffer. The bytes are those [`encode`] returns.
pub fn encode_to<T: Serialize + ?Sized, W: std::io::Write>(
    format: Format,
    value: &T,
    out: &mut W,
) -> Result<(), CodecError> {
    out.write_all(&[MARK, format.tag(), format.current()])
        .map_err(|source| CodecError::Io { format, source })?;
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .map_err(|source| CodecError::Encode { format, source })?;
    Ok(())
}

/// Like [`decode`], read from `input` to its end (which must be the value's end).
pub fn decode_from<T: DeserializeOwned, R: std::io::Read>(
    format: Format,
    input: &mut R,
) -> Result<T, CodecError> {
    use std::io::Read;
    let io = |source| CodecError::Io { format, source };
    let mut head = Vec::with_capacity(HEADER_LEN);
    input
        .by_ref()
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    let (version, _) = header(format, &head)?;
    let value = bincode::serde::decode_from_std_read(input, bincode::config::standard()).map_err(
        |source| CodecError::Malformed {
            format,
            version,
            source,
        },
    )?;
    let mut rest = Vec::new();
    match input.read_to_end(&mut rest).map_err(io)? {
        0 => Ok(value),
        extra => Err(CodecError::TrailingBytes {
            format,
            version,
            extra,
        }),
    }
}

/// Writes one value of a format to a stream piece by piece, so that a large value (a snapshot)
/// is never built in memory whole: the counterpart of [`PieceReader`], with the same rule for
/// what the pieces are. Written so, the bytes are those [`encode`] gives for the whole value.
pub struct PieceWriter<W> {
    format: Format,
    out: W,
}

impl<W: std::io::Write> PieceWriter<W> {
    /// Writes `format`'s header (in its current version) to `out`.
    pub fn open(format: Format, mut out: W) -> Result<Self, CodecError> {
        out.write_all(&[MARK, format.tag(), format.current()])
            .map_err(|source| CodecError::Io { format, source })?;
        Ok(PieceWriter { format, out })
    }

    /// Writes the next piece.
    pub fn write<T: Serialize + ?Sized>(&mut self, piece: &T) -> Result<(), CodecError> {
        bincode::serde::encode_into_std_write(piece, &mut self.out, bincode::config::standard())
            .map(|_| ())
            .map_err(|source| CodecError::Encode {
                format: self.format,
                source,
            })
    }

    /// Writes the length of a sequence or map, before its elements.
    pub fn length(&mut self, length: u64) -> Result<(), CodecError> {
        self.write(&length)
    }

    /// The stream written to.
    pub fn finish(self) -> W {
        self.out
    }
}

/// Reads one value of a format from a stream piece by piece, so that a large value (a snapshot)
/// never has to be in memory whole.
///
/// The pieces, read in order, must be what serde serializes the value as: a struct's fields in
/// declaration order, a sequence or map as its length ([`PieceReader::length`]) then its
/// elements (a map's as key, value pairs). Read so, the bytes are those [`decode`] reads as the
/// whole value; a reader that takes the pieces in another order misreads them, which the golden
/// fixture of the value, read both ways, catches.
pub struct PieceReader<R> {
    format: Format,
    version: u8,
    input: R,
}

impl<R: std::io::Read> PieceReader<R> {
    /// Reads and checks `format`'s header from `input` (see [`header`]).
    pub fn open(format: Format, mut input: R) -> Result<Self, CodecError> {
        let mut head = [0u8; HEADER_LEN];
        let mut read = 0;
        while read < HEADER_LEN {
            match input.read(&mut head[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(CodecError::Io { format, source }),
            }
        }
        let (version, _) = header(format, &head[..read])?;
        Ok(PieceReader {
            format,
            version,
            input,
        })
    }

    /// The format version the value is in.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The next piece, as a `T`.
    pub fn read<T: DeserializeOwned>(&mut self) -> Result<T, CodecError> {
        bincode::serde::decode_from_std_read(&mut self.input, bincode::config::standard()).map_err(
            |source| CodecError::Malformed {
                format: self.format,
                version: self.version,
                source,
            },
        )
    }

    /// The next piece as the length of a sequence or map.
    pub fn length(&mut self) -> Result<u64, CodecError> {
        self.read::<u64>()
    }

    /// Checks that the value ended with the last piece read: no byte is left over.
    pub fn finish(mut self) -> Result<(), CodecError> {
        let mut rest = [0u8; 64];
        let mut extra = 0;
        loop {
            match self.input.read(&mut rest) {
                Ok(0) => break,
                Ok(n) => extra += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CodecError::Io {
                        format: self.format,
                        source,
                    })
                }
            }
        }
        match extra {
            0 => Ok(()),
            extra => Err(CodecError::TrailingBytes {
                format: self.format,
                version: self.version,
                extra,
            }),
        }
    }
}

/// Reads `bytes` as `format`: the header must name it in a version this build reads, and the
/// body must decode to a `T` with no byte left over.
pub fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, CodecError> {
    let (version, body) = header(format, bytes)?;
    let (value, read) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|source| CodecError::Malformed {
            format,
            version,
            source,
        })?;
    match body.len() - read {
        0 => Ok(value),
        extra => Err(CodecError::TrailingBytes {
            format,
            version,
            extra,
        }),
    }
}

/// Checks `bytes`' header against `format`; returns the version and the body after it.
pub fn header(format: Format, bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let Some((&[mark, tag, version], body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return match bytes.first() {
            Some(&MARK) | None => Err(CodecError::Truncated {
                format,
                len: bytes.len(),
            }),
            Some(_) => Err(CodecError::Unversioned { format }),
        };
    };
    if mark != MARK {
        return Err(CodecError::Unversioned { format });
    }
    if tag != format.tag() {
        return Err(CodecError::WrongFormat {
            expected: format,
            found_tag: tag,
        });
    }
    if version > format.current() {
        return Err(CodecError::TooNew {
            format,
            found: version,
            current: format.current(),
        });
    }
    if version < format.oldest_readable() {
        return Err(CodecError::TooOld {
            format,
            found: version,
            oldest: format.oldest_readable(),
        });
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        revision: u64,
        name: String,
        flag: Option<bool>,
    }

    fn sample() -> Sample {
        Sample {
            revision: 7,
            name: "doc".into(),
            flag: Some(true),
        }
    }

    #[test]
    fn a_streamed_value_is_the_same_bytes_and_reads_back() {
        let bytes = encode(Format::Snapshot, &sample()).unwrap();
        let mut streamed = Vec::new();
        encode_to(Format::Snapshot, &sample(), &mut streamed).unwrap();
        assert_eq!(streamed, bytes);
        let read: Sample = decode_from(Format::Snapshot, &mut bytes.as_slice()).unwrap();
        assert_eq!(read, sample());
        let mut longer = bytes.clone();
        longer.push(0);
        let error = decode_from::<Sample, _>(Format::Snapshot, &mut longer.as_slice());
        assert!(matches!(
            error,
            Err(CodecError::TrailingBytes { extra: 1, .. })
        ));
        let error = decode_from::<Sample, _>(Format::WriteRecord, &mut bytes.as_slice());
        assert!(matches!(error, Err(CodecError::WrongFormat { .. })));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Nested {
        head: u64,
        lists: Vec<Vec<Sample>>,
        names: std::collections::BTreeMap<String, u32>,
    }

    #[test]
    fn a_value_read_piece_by_piece_is_the_value_decoded_whole() {
        let value = Nested {
            head: 300,
            lists: vec![vec![sample(), sample()], vec![], vec![sample()]],
            names: [("a".to_string(), 1), ("b".to_string(), 70_000)].into(),
        };
        let bytes = encode(Format::Snapshot, &value).unwrap();
        let mut pieces = PieceReader::open(Format::Snapshot, bytes.as_slice()).unwrap();
        let head: u64 = pieces.read().unwrap();
        let mut lists = Vec::new();
        for _ in 0..pieces.length().unwrap() {
            lists.push(pieces.read::<Vec<Sample>>().unwrap());
        }
        let names = pieces.read().unwrap();
        pieces.finish().unwrap();
        assert_eq!(Nested { head, lists, names }, value);

        let mut written = PieceWriter::open(Format::Snapshot, Vec::new()).unwrap();
        written.write(&value.head).unwrap();
        written.length(value.lists.len() as u64).unwrap();
        for list in &value.lists {
            written.write(list).unwrap();
        }
        written.write(&value.names).unwrap();
        assert_eq!(written.finish(), bytes);

        let mut pieces = PieceReader::open(Format::Snapshot, bytes.as_slice()).unwrap();
        let _: u64 = pieces.read().unwrap();
        let e = pieces.finish().unwrap_err();
        assert!(matches!(e, CodecError::TrailingBytes { .. }), "{e}");
        let e = PieceReader::open(Format::Vote, bytes.as_slice())
            .err()
            .unwrap();
        assert!(matches!(e, CodecError::WrongFormat { .. }), "{e}");
        let e = PieceReader::open(Format::Snapshot, &bytes[..2])
            .err()
            .unwrap();
        assert!(matches!(e, CodecError::Truncated { len: 2, .. }), "{e}");
        let mut short = PieceReader::open(Format::Snapshot, &bytes[..6]).unwrap();
        let _: u64 = short.read().unwrap();
        let e = short.read::<Vec<Sample>>().unwrap_err();
        assert!(matches!(e, CodecError::Malformed { .. }), "{e}");
    }

    #[test]
    fn a_value_round_trips_behind_its_header() {
        let bytes = encode(Format::WriteRecord, &sample()).unwrap();
        assert_eq!(bytes[..HEADER_LEN], [MARK, 8, 1]);
        let back: Sample = decode(Format::WriteRecord, &bytes).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn tags_are_distinct_and_name_their_format() {
        for format in Format::ALL {
            assert_eq!(Format::from_tag(format.tag()), Some(format));
        }
        let mut tags: Vec<u8> = Format::ALL.iter().map(|f| f.tag()).collect();
        tags.dedup();
        assert_eq!(tags.len(), Format::ALL.len());
        assert!(Format::from_tag(0).is_none());
    }

    #[test]
    fn bytes_without_a_header_are_refused_as_unversioned() {
        let legacy = bincode::serde::encode_to_vec(sample(), bincode::config::standard()).unwrap();
        let e = decode::<Sample>(Format::WriteRecord, &legacy).unwrap_err();
        assert!(matches!(e, CodecError::Unversioned { .. }), "{e}");
        assert!(e.to_string().contains("before formats were versioned"));
    }

    #[test]
    fn a_newer_version_is_refused_and_says_so() {
        let mut bytes = encode(Format::Vote, &sample()).unwrap();
        bytes[2] = Format::Vote.current() + 1;
        let e = decode::<Sample>(Format::Vote, &bytes).unwrap_err();
        assert!(
            matches!(
                e,
                CodecError::TooNew {
                    found: 2,
                    current: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("newer Pemba build"), "{e}");
    }

    #[test]
    fn another_formats_bytes_are_refused() {
        let bytes = encode(Format::Vote, &sample()).unwrap();
        let e = decode::<Sample>(Format::LogId, &bytes).unwrap_err();
        assert!(
            matches!(e, CodecError::WrongFormat { found_tag: 3, .. }),
            "{e}"
        );
    }

    #[test]
    fn short_malformed_and_padded_bytes_are_refused() {
        let e = decode::<Sample>(Format::Vote, &[MARK, 3]).unwrap_err();
        assert!(matches!(e, CodecError::Truncated { len: 2, .. }), "{e}");
        let e = decode::<Sample>(Format::Vote, &[]).unwrap_err();
        assert!(matches!(e, CodecError::Truncated { len: 0, .. }), "{e}");
        let mut bytes = encode(Format::Vote, &sample()).unwrap();
        bytes.truncate(bytes.len() - 2);
        let e = decode::<Sample>(Format::Vote, &bytes).unwrap_err();
        assert!(matches!(e, CodecError::Malformed { .. }), "{e}");
        let mut bytes = encode(Format::Vote, &sample()).unwrap();
        bytes.push(0);
        let e = decode::<Sample>(Format::Vote, &bytes).unwrap_err();
        assert!(
            matches!(e, CodecError::TrailingBytes { extra: 1, .. }),
            "{e}"
        );
    }
}
