//! A datastore's image ([`Recovered`], in [`Format::Snapshot`]) read one version list at a time,
//! so that installing a replication snapshot never holds the whole image in memory.

use std::io::Read;

use pemba_codec::{CodecError, Format, PieceReader};
use thiserror::Error;

use crate::index::Version;
use crate::persistence::{AppliedWrite, PersistenceError, Recovered};

/// Why an image could not be received.
#[derive(Debug, Error)]
pub enum ImageError {
    /// The bytes are not an image this build reads.
    #[error("the image is unreadable: {0}")]
    Unreadable(#[from] CodecError),
    /// Staging or installing it in storage failed.
    #[error("the image could not be stored: {0}")]
    Storage(#[from] PersistenceError),
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
