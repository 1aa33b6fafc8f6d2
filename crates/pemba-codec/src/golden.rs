//! Golden fixtures: encoded values checked into the repository, so that a change to what a
//! format encodes to fails a test instead of silently changing the log, the snapshots or the
//! disk.
//!
//! A fixture is a text file of hex bytes (`#` starts a comment line), named after the value
//! it holds. [`check`] asserts both directions against the value the test builds (values are
//! compared by their `Debug` text, which every replicated type has, unlike `PartialEq`):
//! - the fixture decodes to that value (what an earlier build wrote is still read alike);
//! - the value encodes to exactly the fixture (this build writes what the fixture holds).
//!
//! When a format's version is raised, its fixtures at the old version stay (renamed
//! `<name>.v<version>.hex`) and are checked with [`check_readable`]: old bytes must still decode.
//!
//! Fixtures are written only when `PEMBA_BLESS_GOLDEN=1` is set; without it a missing fixture
//! fails, so a test can never pass by creating what it compares against.

use std::fmt::{Debug, Write as _};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::{decode, encode, CodecError, Format};

/// The environment variable that makes [`check`] write fixtures instead of comparing.
pub const BLESS: &str = "PEMBA_BLESS_GOLDEN";

/// How a value and its fixture disagree.
#[derive(Debug, Error)]
pub enum GoldenError {
    /// There is no fixture yet.
    #[error(
        "no fixture at {path}: write it with {BLESS}=1 once the encoding is meant to be what it is"
    )]
    Missing {
        /// Where the fixture belongs.
        path: PathBuf,
    },
    /// The fixture could not be read or written.
    #[error("reading or writing the fixture {path}: {source}")]
    Io {
        /// The fixture's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The fixture is not hex text.
    #[error("the fixture {path} is not hex: {detail}")]
    NotHex {
        /// The fixture's path.
        path: PathBuf,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// The fixture no longer decodes.
    #[error("the fixture {path} no longer decodes: {source}")]
    Unreadable {
        /// The fixture's path.
        path: PathBuf,
        /// Why it does not decode.
        source: CodecError,
    },
    /// The fixture decodes to another value than the one expected.
    #[error("the fixture {path} decodes to\n  {decoded}\nnot to the expected\n  {expected}")]
    DecodesDifferently {
        /// The fixture's path.
        path: PathBuf,
        /// What it decodes to (`{:?}`).
        decoded: String,
        /// What it should decode to (`{:?}`).
        expected: String,
    },
    /// The value encodes to other bytes than the fixture holds.
    #[error("the value encodes differently from the fixture {path} (a format changed without a new version?):\n  fixture: {fixture}\n  now:     {now}")]
    EncodesDifferently {
        /// The fixture's path.
        path: PathBuf,
        /// The fixture's bytes, in hex.
        fixture: String,
        /// The value's bytes now, in hex.
        now: String,
    },
    /// The value could not be encoded.
    #[error("encoding the value: {0}")]
    Encode(CodecError),
}

/// Checks `value` against the fixture `dir/name.hex` in both directions (see the module docs).
/// With [`BLESS`] set, writes the fixture instead.
pub fn check<T>(dir: &Path, name: &str, format: Format, value: &T) -> Result<(), GoldenError>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let path = dir.join(format!("{name}.hex"));
    let now = encode(format, value).map_err(GoldenError::Encode)?;
    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        let text = format!(
            "# {format}, format version {}\n{}",
            format.current(),
            hex(&now)
        );
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|source| GoldenError::Io { path, source })?;
        return Ok(());
    }
    let fixture = check_readable(&path, format, value)?;
    if fixture != now {
        return Err(GoldenError::EncodesDifferently {
            path,
            fixture: hex(&fixture),
            now: hex(&now),
        });
    }
    Ok(())
}

/// For tests: [`check`]s `value` against the fixture `<crate>/tests/golden/<name>.hex` of the
/// crate at `manifest_dir` (pass `env!("CARGO_MANIFEST_DIR")`), and panics with the
/// difference if they disagree.
pub fn assert_fixture<T>(manifest_dir: &str, name: &str, format: Format, value: &T)
where
    T: Serialize + DeserializeOwned + Debug,
{
    let dir = Path::new(manifest_dir).join("tests/golden");
    if let Err(e) = check(&dir, name, format, value) {
        panic!("{e}");
    }
}

/// Checks that the fixture at `path` decodes to `value`; returns its bytes.
pub fn check_readable<T>(path: &Path, format: Format, value: &T) -> Result<Vec<u8>, GoldenError>
where
    T: DeserializeOwned + Debug,
{
    let bytes = read(path)?;
    let decoded: T = decode(format, &bytes).map_err(|source| GoldenError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let (decoded, expected) = (format!("{decoded:?}"), format!("{value:?}"));
    if decoded != expected {
        return Err(GoldenError::DecodesDifferently {
            path: path.to_path_buf(),
            decoded,
            expected,
        });
    }
    Ok(bytes)
}

fn read(path: &Path) -> Result<Vec<u8>, GoldenError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(GoldenError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(GoldenError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let digits: Vec<u8> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    let not_hex = |detail| GoldenError::NotHex {
        path: path.to_path_buf(),
        detail,
    };
    if !digits.len().is_multiple_of(2) {
        return Err(not_hex("an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| not_hex("a non-ASCII character"))?;
            u8::from_str_radix(text, 16).map_err(|_| not_hex("a character that is not a hex digit"))
        })
        .collect()
}

/// Lowercase hex, 32 bytes to a line.
fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2 + bytes.len() / 32 + 1);
    for line in bytes.chunks(32) {
        for byte in line {
            let _ = write!(text, "{byte:02x}");
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Before {
        revision: u64,
        name: String,
    }

    /// `Before` with its fields swapped: a change that needs a new format version.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct After {
        name: String,
        revision: u64,
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    fn before() -> Before {
        Before {
            revision: 42,
            name: "doc".into(),
        }
    }

    #[test]
    fn the_fixture_matches_its_value_both_ways() {
        check(&fixtures(), "sample", Format::WriteRecord, &before()).unwrap();
    }

    #[test]
    fn a_changed_encoding_fails_the_check() {
        if std::env::var_os(BLESS).is_some() {
            return;
        }
        let after = After {
            name: "doc".into(),
            revision: 42,
        };
        let e = check(&fixtures(), "sample", Format::WriteRecord, &after).unwrap_err();
        assert!(matches!(e, GoldenError::Unreadable { .. }), "{e}");
        let changed = Before {
            revision: 43,
            name: "doc".into(),
        };
        let e = check(&fixtures(), "sample", Format::WriteRecord, &changed).unwrap_err();
        assert!(matches!(e, GoldenError::DecodesDifferently { .. }), "{e}");
    }

    #[test]
    fn a_missing_fixture_fails_instead_of_being_written() {
        if std::env::var_os(BLESS).is_some() {
            return;
        }
        let e = check(&fixtures(), "no-such-fixture", Format::Vote, &before()).unwrap_err();
        assert!(matches!(e, GoldenError::Missing { .. }), "{e}");
        assert!(!fixtures().join("no-such-fixture.hex").exists());
    }

    #[test]
    fn hex_reads_back_what_it_writes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let dir = std::env::temp_dir().join(format!("pemba-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("all.hex");
        std::fs::write(&path, format!("# comment\n{}", hex(&bytes))).unwrap();
        assert_eq!(read(&path).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
