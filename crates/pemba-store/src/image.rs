//! A datastore's image ([`Recovered`], in [`Format::Snapshot`]) read one version list at a time,
//! so that installing a replication snapshot never holds the whole image in memory.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use pemba_codec::{CodecError, Format, PieceReader, PieceWriter};
use pemba_types::Revision;
use thiserror::Error;

use crate::index::Version;
use crate::persistence::{AppliedWrite, PersistenceError, Recovered};

/// Why an image could not be received.
#[derive(Debug, Error)]
pub enum ImageError {
    /// The bytes are not an image this build reads.
    #[error("the image is unreadable: {0}")]
    Unreadable(#[from] CodecError),
    /// Staging or installing it in storage failed, or reading it from storage.
    #[error("the image could not be stored or read from storage: {0}")]
    Storage(#[from] PersistenceError),
    /// It could not be written out.
    #[error("the image could not be written: {0}")]
    Unwritable(CodecError),
}

/// A consistent image of a datastore held in storage, fixed when it was taken (see
/// `Persistence::image`): writing it out may take long and blocks no writer.
pub trait ImageView: Send {
    /// Writes the image, encoded as [`Recovered`] in [`Format::Snapshot`], to `out`.
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<(), ImageError>;
}

/// What [`write_image`] writes an image from, piece by piece. The version lists and the log of
/// writes are counted first (the encoding begins with each count), then gone through: both
/// must see the same image.
pub trait ImageSource {
    /// The image's head and horizon.
    fn revisions(&self) -> Result<(Revision, Revision), ImageError>;
    /// How many version lists and records of the log of writes the image holds.
    fn counts(&self) -> Result<(u64, u64), ImageError>;
    /// Calls `each` with every version list, in key order; returns how many there were.
    fn version_lists(
        &self,
        each: &mut dyn FnMut(Vec<Version>) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError>;
    /// Schema texts by the revision that wrote them, oldest first.
    fn schemas(&self) -> Result<Vec<(Revision, String)>, ImageError>;
    /// Calls `each` with every record of the log of writes, oldest first; returns how many.
    fn write_records(
        &self,
        each: &mut dyn FnMut(AppliedWrite) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError>;
    /// The sidecar's key-values.
    fn sidecar(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ImageError>;
}

/// Writes the image `source` holds to `out`, one version list and one record at a time: the
/// bytes `pemba_codec::encode` gives for the whole [`Recovered`], which [`read_image`] reads.
pub fn write_image(source: &dyn ImageSource, out: impl Write) -> Result<(), ImageError> {
    let mut pieces = PieceWriter::open(Format::Snapshot, out).map_err(ImageError::Unwritable)?;
    let (head, horizon) = source.revisions()?;
    pieces.write(&head).map_err(ImageError::Unwritable)?;
    pieces.write(&horizon).map_err(ImageError::Unwritable)?;
    let (lists, records) = source.counts()?;
    pieces.length(lists).map_err(ImageError::Unwritable)?;
    let written =
        source.version_lists(&mut |list| pieces.write(&list).map_err(ImageError::Unwritable))?;
    let schemas = source.schemas()?;
    pieces.write(&schemas).map_err(ImageError::Unwritable)?;
    pieces.length(records).map_err(ImageError::Unwritable)?;
    let records_written = source
        .write_records(&mut |record| pieces.write(&record).map_err(ImageError::Unwritable))?;
    pieces
        .write(&source.sidecar()?)
        .map_err(ImageError::Unwritable)?;
    if (written, records_written) != (lists, records) {
        return Err(ImageError::Storage(PersistenceError::Corrupt {
            what: "an image being written",
            detail: "changed between the passes that count and write it",
        }));
    }
    Ok(())
}

/// The image `source` holds, read whole into memory (as storage gives its state back at start-up).
pub fn recovered_from(source: &dyn ImageSource) -> Result<Recovered, PersistenceError> {
    let read = || -> Result<Recovered, ImageError> {
        let (head, horizon) = source.revisions()?;
        let mut image = Recovered {
            head,
            horizon,
            schemas: source.schemas()?,
            sidecar: source.sidecar()?,
            ..Recovered::default()
        };
        source.version_lists(&mut |list| {
            image.versions.push(list);
            Ok(())
        })?;
        source.write_records(&mut |record| {
            image.writes.push(record);
            Ok(())
        })?;
        Ok(image)
    };
    read().map_err(|e| match e {
        ImageError::Storage(e) => e,
        ImageError::Unreadable(e) | ImageError::Unwritable(e) => PersistenceError::Codec(e),
    })
}

/// An image in memory is its own source.
impl ImageSource for Recovered {
    fn revisions(&self) -> Result<(Revision, Revision), ImageError> {
        Ok((self.head, self.horizon))
    }

    fn counts(&self) -> Result<(u64, u64), ImageError> {
        Ok((self.versions.len() as u64, self.writes.len() as u64))
    }

    fn version_lists(
        &self,
        each: &mut dyn FnMut(Vec<Version>) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError> {
        for list in &self.versions {
            each(list.clone())?;
        }
        Ok(self.versions.len() as u64)
    }

    fn schemas(&self) -> Result<Vec<(Revision, String)>, ImageError> {
        Ok(self.schemas.clone())
    }

    fn write_records(
        &self,
        each: &mut dyn FnMut(AppliedWrite) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError> {
        for record in &self.writes {
            each(record.clone())?;
        }
        Ok(self.writes.len() as u64)
    }

    fn sidecar(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ImageError> {
        Ok(self.sidecar.clone())
    }
}

/// An image taken whole into memory (for storage that is memory already).
pub(crate) struct ImageInMemory(pub(crate) Recovered);

impl ImageView for ImageInMemory {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<(), ImageError> {
        write_image(&self.0, out)
    }
}

/// Where [`read_image`] hands an image's pieces as it reads them.
pub(crate) trait ImageSink {
    /// One key's version list, in key order.
    fn versions(&mut self, versions: Vec<Version>) -> Result<(), PersistenceError>;
    /// One record of the log of writes, oldest first, after every version list.
    fn write(&mut self, record: AppliedWrite) -> Result<(), PersistenceError>;
}

/// Reads an image from `input`, handing its version lists and its log of writes to `sink` one
/// by one as they are read. Returns the rest of the image (its `versions` and `writes` empty).
/// The pieces are [`Recovered`]'s fields in declaration order, so the bytes are exactly those
/// `pemba_codec::encode` gives for the whole image.
pub(crate) fn read_image<R: Read>(
    input: R,
    sink: &mut impl ImageSink,
) -> Result<Recovered, ImageError> {
    let mut pieces = PieceReader::open(Format::Snapshot, input)?;
    let head = pieces.read()?;
    let horizon = pieces.read()?;
    for _ in 0..pieces.length()? {
        sink.versions(pieces.read()?)?;
    }
    let schemas = pieces.read()?;
    for _ in 0..pieces.length()? {
        sink.write(pieces.read()?)?;
    }
    let rest = Recovered {
        head,
        horizon,
        schemas,
        sidecar: pieces.read()?,
        ..Recovered::default()
    };
    pieces.finish()?;
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use pemba_types::Relationship;

    use super::*;
    use crate::index::Change;

    fn version(text: &str, created: u64) -> Version {
        Version {
            created,
            deleted: None,
            relationship: Arc::new(Relationship::parse(text).expect("a relationship")),
        }
    }

    fn image() -> Recovered {
        let tom = version("document:a#viewer@user:tom", 2);
        Recovered {
            head: 9,
            horizon: 2,
            versions: vec![
                vec![tom.clone()],
                vec![version("document:b#viewer@group:g#member", 3)],
            ],
            schemas: vec![(1, "definition user {}".into())],
            writes: vec![AppliedWrite {
                revision: 2,
                timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
                schema: None,
                changes: vec![Change::Touch(tom.relationship)],
                versions: Vec::new(),
                is_write: true,
                advances_clock: false,
                sidecar: Vec::new(),
            }],
            sidecar: [(b"k".to_vec(), b"v".to_vec())].into(),
        }
    }

    /// Keeps what it is handed.
    #[derive(Default)]
    struct Kept {
        versions: Vec<Vec<Version>>,
        writes: Vec<AppliedWrite>,
    }

    impl ImageSink for Kept {
        fn versions(&mut self, versions: Vec<Version>) -> Result<(), PersistenceError> {
            self.versions.push(versions);
            Ok(())
        }

        fn write(&mut self, record: AppliedWrite) -> Result<(), PersistenceError> {
            self.writes.push(record);
            Ok(())
        }
    }

    #[test]
    fn an_image_read_piece_by_piece_is_the_image_encoded() {
        let image = image();
        let bytes = pemba_codec::encode(Format::Snapshot, &image).expect("encodes");
        let mut kept = Kept::default();
        let rest = read_image(bytes.as_slice(), &mut kept).expect("reads");
        let read = Recovered {
            versions: kept.versions,
            writes: kept.writes,
            ..rest
        };
        assert_eq!(read, image);
    }

    #[test]
    fn an_image_written_piece_by_piece_is_the_image_encoded() {
        let image = image();
        let mut written = Vec::new();
        write_image(&image, &mut written).expect("written");
        let encoded = pemba_codec::encode(Format::Snapshot, &image).expect("encodes");
        assert_eq!(written, encoded);
    }

    #[test]
    fn a_cut_short_image_is_unreadable() {
        let bytes = pemba_codec::encode(Format::Snapshot, &image()).expect("encodes");
        let e = read_image(&bytes[..bytes.len() - 1], &mut Kept::default()).expect_err("refused");
        assert!(matches!(e, ImageError::Unreadable(_)), "{e}");
        let mut longer = bytes.clone();
        longer.push(0);
        let e = read_image(longer.as_slice(), &mut Kept::default()).expect_err("refused");
        assert!(
            matches!(e, ImageError::Unreadable(CodecError::TrailingBytes { .. })),
            "{e}"
        );
    }
}
