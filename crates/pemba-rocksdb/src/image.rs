//! Images of the datastore (what a replication snapshot carries) read from a RocksDB snapshot
//! on a thread of their own: taking one costs the writers a moment; writing it out, however
//! long, blocks none of them.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use pemba_codec::{decode, Format};
use pemba_store::{
    write_image, AppliedWrite, ImageError, ImageSource, ImageView, PersistenceError, Version,
};
use pemba_types::Revision;
use rocksdb::{IteratorMode, Snapshot, DB};

use crate::{error, family, revision_from, HEAD, HORIZON, META, SCHEMAS, SIDECAR, WRITES};

/// The image is handed over in parts of this size; a few are in flight at once.
const PART_BYTES: usize = 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 4;

/// Takes an image of `db` (version lists from the family `live`) on a new thread; returns once
/// the RocksDB snapshot it reads is taken.
pub(crate) fn take(
    db: Arc<DB>,
    live: &'static str,
) -> Result<Box<dyn ImageView>, PersistenceError> {
    let (taken, is_taken) = sync_channel(1);
    let (parts, received) = sync_channel(PARTS_IN_FLIGHT);
    std::thread::Builder::new()
        .name("pemba-image".into())
        .spawn(move || {
            let snapshot = db.snapshot();
            let _ = taken.send(());
            let source = SnapshotSource {
                db: &db,
                snapshot,
                live,
            };
            let mut out = PartSender {
                parts: parts.clone(),
                part: Vec::with_capacity(PART_BYTES),
            };
            let written = write_image(&source, &mut out).and_then(|()| {
                out.send_part().map_err(|e| {
                    ImageError::Storage(PersistenceError::storage("handing over an image", e))
                })
            });
            if let Err(e) = written {
                let _ = parts.send(Err(e));
            }
        })
        .map_err(|e| PersistenceError::storage("starting a thread to write an image", e))?;
    is_taken
        .recv()
        .map_err(|e| PersistenceError::storage("taking a RocksDB snapshot for an image", e))?;
    Ok(Box::new(RocksImage { parts: received }))
}

/// The receiving end: parts of the encoded image, or why it failed.
struct RocksImage {
    parts: Receiver<Result<Vec<u8>, ImageError>>,
}

impl ImageView for RocksImage {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<(), ImageError> {
        for part in self.parts.iter() {
            out.write_all(&part?).map_err(|e| {
                ImageError::Storage(PersistenceError::storage("writing an image out", e))
            })?;
        }
        Ok(())
    }
}

/// Collects the encoding into parts and sends each when full. A receiver that went away ends
/// the writing (its sends fail).
struct PartSender {
    parts: SyncSender<Result<Vec<u8>, ImageError>>,
    part: Vec<u8>,
}

impl PartSender {
    fn send_part(&mut self) -> std::io::Result<()> {
        if self.part.is_empty() {
            return Ok(());
        }
        let part = std::mem::replace(&mut self.part, Vec::with_capacity(PART_BYTES));
        self.parts
            .send(Ok(part))
            .map_err(|_| std::io::Error::other("the image's reader went away"))
    }
}

impl Write for PartSender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.part.extend_from_slice(bytes);
        if self.part.len() >= PART_BYTES {
            self.send_part()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A RocksDB snapshot read as an image.
pub(crate) struct SnapshotSource<'a> {
    db: &'a DB,
    snapshot: Snapshot<'a>,
    live: &'static str,
}

impl<'a> SnapshotSource<'a> {
    /// A snapshot of `db` taken now, its version lists in the family `live`.
    pub(crate) fn new(db: &'a DB, live: &'static str) -> Self {
        SnapshotSource {
            db,
            snapshot: db.snapshot(),
            live,
        }
    }

    fn family(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, PersistenceError> {
        family(self.db, name)
    }

    /// Calls `each` with every value of `family`'s, in key order; returns how many.
    fn values(
        &self,
        family: &'static str,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError> {
        let mut count = 0;
        for item in self
            .snapshot
            .iterator_cf(self.family(family)?, IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| error("reading stored state", e))?;
            each(&key, &value)?;
            count += 1;
        }
        Ok(count)
    }

    fn meta_revision(&self, name: &[u8]) -> Result<Revision, PersistenceError> {
        match self
            .snapshot
            .get_cf(self.family(META)?, name)
            .map_err(|e| error("reading meta", e))?
        {
            Some(bytes) => revision_from(&bytes),
            None => Ok(0),
        }
    }
}

impl ImageSource for SnapshotSource<'_> {
    fn revisions(&self) -> Result<(Revision, Revision), ImageError> {
        Ok((self.meta_revision(HEAD)?, self.meta_revision(HORIZON)?))
    }

    fn counts(&self) -> Result<(u64, u64), ImageError> {
        let mut none = |_: &[u8], _: &[u8]| Ok(());
        Ok((
            self.values(self.live, &mut none)?,
            self.values(WRITES, &mut none)?,
        ))
    }

    fn version_lists(
        &self,
        each: &mut dyn FnMut(Vec<Version>) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError> {
        self.values(self.live, |_, value| {
            each(decode(Format::Versions, value).map_err(PersistenceError::from)?)
        })
    }

    fn schemas(&self) -> Result<Vec<(Revision, String)>, ImageError> {
        let mut schemas = Vec::new();
        self.values(SCHEMAS, |key, value| {
            let text =
                String::from_utf8(value.to_vec()).map_err(|_| PersistenceError::Corrupt {
                    what: "a stored schema",
                    detail: "is not UTF-8",
                })?;
            schemas.push((revision_from(key)?, text));
            Ok(())
        })?;
        Ok(schemas)
    }

    fn write_records(
        &self,
        each: &mut dyn FnMut(AppliedWrite) -> Result<(), ImageError>,
    ) -> Result<u64, ImageError> {
        self.values(WRITES, |_, value| {
            each(decode(Format::WriteRecord, value).map_err(PersistenceError::from)?)
        })
    }

    fn sidecar(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ImageError> {
        let mut sidecar = BTreeMap::new();
        self.values(SIDECAR, |key, value| {
            sidecar.insert(key.to_vec(), value.to_vec());
            Ok(())
        })?;
        Ok(sidecar)
    }
}
