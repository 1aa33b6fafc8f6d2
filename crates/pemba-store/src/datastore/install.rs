//! Installing a whole datastore image received from another replica (a replication snapshot)
//! in bounded memory: each version list is staged in storage and added to the new state as it
//! is read, so neither the image nor a second copy of its relationships is ever held.

use std::collections::BTreeMap;
use std::io::Read;

use parking_lot::MutexGuard;
use pemba_types::Revision;

use super::state::{State, StateBuilder};
use super::Datastore;
use crate::image::{read_image, ImageError, ImageSink};
use crate::index::Version;
use crate::persistence::{AppliedWrite, Persistence, PersistenceError};

/// How many version lists are staged in storage at once: enough that a part is one efficient
/// write, few enough that a part's copy in memory is a few MiB.
const STAGED_PART: usize = 4096;

/// A received image, staged in storage and built into a state, not yet installed. The
/// datastore is unchanged and readable until [`Install::commit`]; writers wait meanwhile.
/// Dropped uncommitted, it is abandoned: what it staged is forgotten when the next
/// replacement begins.
pub struct Install<'a> {
    datastore: &'a Datastore,
    persistence: MutexGuard<'a, Box<dyn Persistence>>,
    state: State,
}

impl Datastore {
    /// Receives a whole datastore's image from `input`: what [`Datastore::image`] writes out on
    /// another replica (`pemba_codec::Format::Snapshot`). Memory holds the state being
    /// built and one part of the version lists being staged, never the image.
    pub fn receive(&self, input: impl Read) -> Result<Install<'_>, ImageError> {
        let mut persistence = self.persistence.lock();
        persistence.begin_replacement()?;
        let mut staging = Staging {
            persistence: &mut **persistence,
            builder: StateBuilder::default(),
            part: Vec::with_capacity(STAGED_PART),
        };
        let rest = read_image(input, &mut staging)?;
        staging.stage_part()?;
        let state = staging
            .builder
            .finish(rest.head, rest.horizon, rest.schemas, rest.sidecar)?;
        Ok(Install {
            datastore: self,
            persistence,
            state,
        })
    }
}

/// The version lists go to storage in parts, and into the state being built.
struct Staging<'a> {
    persistence: &'a mut dyn Persistence,
    builder: StateBuilder,
    part: Vec<Vec<Version>>,
}

impl Staging<'_> {
    fn stage_part(&mut self) -> Result<(), PersistenceError> {
        self.persistence.stage_versions(&self.part)?;
        for versions in self.part.drain(..) {
            self.builder.add(versions);
        }
        Ok(())
    }
}

impl ImageSink for Staging<'_> {
    fn versions(&mut self, versions: Vec<Version>) -> Result<(), PersistenceError> {
        self.part.push(versions);
        if self.part.len() == STAGED_PART {
            self.stage_part()?;
        }
        Ok(())
    }

    fn write(&mut self, record: AppliedWrite) -> Result<(), PersistenceError> {
        // Every version list comes before the log of writes, whose records must find their
        // relationships indexed: the last part is staged before the first record.
        if !self.part.is_empty() {
            self.stage_part()?;
        }
        self.builder.add_write(record);
        Ok(())
    }
}

impl Install<'_> {
    /// The revision the image is at.
    pub fn head(&self) -> Revision {
        self.state.head
    }

    /// The image's sidecar (the layer above checks its own records before committing).
    pub fn sidecar(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.state.sidecar
    }

    /// Makes the image the datastore's whole state: durably (see
    /// [`Persistence::commit_replacement`]), then visibly.
    pub fn commit(mut self) -> Result<(), PersistenceError> {
        let rest = self.state.image(Vec::new());
        self.persistence.commit_replacement(&rest)?;
        let head = self.state.head;
        *self.datastore.state.write() = self.state;
        self.datastore.head.send_replace(head);
        Ok(())
    }
}
