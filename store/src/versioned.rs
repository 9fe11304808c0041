//! A version tag for the bincode records that live on disk.
//!
//! bincode writes no schema: a record written in one layout and read in another decodes
//! into wrong values or fails far from the cause. So every such record (the Raft
//! log's control entries, the applied state, the vote, the log start) begins with a
//! tag naming its layout; a reader picks the decoder by version and refuses a version
//! it does not know with an error that names it.
//!
//! Records written before tags existed have none, and are read as the layout they
//! had then. A tagged record is never mistaken for one: the tag's first byte, 0xFF, is
//! never the first byte of an untagged record, which starts with an enum or `Option`
//! discriminant (0, 1 or 2) — or, for a log start, with a base offset whose low three
//! bytes would have to be exactly the tag's.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What precedes the version byte.
const TAG_PREFIX: [u8; 3] = [0xFF, b'R', b'V'];

/// A record's layout, as its first bytes tell it.
#[derive(Debug, PartialEq, Eq)]
pub enum Versioned<'a> {
    /// Written with a tag: `body` is bincode in layout `version`.
    Tagged { version: u8, body: &'a [u8] },
    /// Written before tags existed: the whole record is bincode.
    Untagged(&'a [u8]),
}

/// `value` in bincode behind the tag for `version`.
pub fn encode<T: Serialize>(version: u8, value: &T) -> bincode::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(TAG_PREFIX.len() + 1 + 64);
    bytes.extend_from_slice(&TAG_PREFIX);
    bytes.push(version);
    bincode::serialize_into(&mut bytes, value)?;
    Ok(bytes)
}

/// Splits a record into its layout and its bincode body.
pub fn split(bytes: &[u8]) -> Versioned<'_> {
    match bytes {
        [a, b, c, version, body @ ..] if [*a, *b, *c] == TAG_PREFIX => Versioned::Tagged {
            version: *version,
            body,
        },
        _ => Versioned::Untagged(bytes),
    }
}

/// Why a versioned record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by a newer (or foreign) build in a layout this one does not know.
    #[error("{record} in layout version {found}; this build reads versions up to {known}")]
    UnknownVersion {
        record: &'static str,
        found: u8,
        known: u8,
    },
    /// The body does not decode in the layout its tag names.
    #[error("{record} (layout version {version}) does not decode: {source}")]
    Body {
        record: &'static str,
        version: u8,
        #[source]
        source: bincode::Error,
    },
}

/// Decodes a record that has had one layout, `version`, since tags exist, and had the
/// same layout untagged before: the common case.
pub fn decode_current<T: DeserializeOwned>(
    record: &'static str,
    version: u8,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let (found, body) = match split(bytes) {
        Versioned::Tagged {
            version: found,
            body,
        } if found == version => (found, body),
        Versioned::Tagged { version: found, .. } => {
            return Err(DecodeError::UnknownVersion {
                record,
                found,
                known: version,
            })
        }
        Versioned::Untagged(body) => (0, body),
    };
    bincode::deserialize(body).map_err(|source| DecodeError::Body {
        record,
        version: found,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_record_reads_back_by_its_version() {
        let bytes = encode(3, &(7u64, "seven".to_string())).unwrap();
        let Versioned::Tagged { version, body } = split(&bytes) else {
            panic!("no tag in {bytes:?}");
        };
        assert_eq!(version, 3);
        let value: (u64, String) = bincode::deserialize(body).unwrap();
        assert_eq!(value, (7, "seven".to_string()));
        let again: (u64, String) = decode_current("pair", 3, &bytes).unwrap();
        assert_eq!(again.1, "seven");
    }

    #[test]
    fn an_untagged_record_is_read_in_the_layout_it_had() {
        for legacy in [
            bincode::serialize(&Some(5u64)).unwrap(),
            bincode::serialize(&None::<u64>).unwrap(),
            bincode::serialize(&(2u32, 9u8)).unwrap(),
        ] {
            assert_eq!(split(&legacy), Versioned::Untagged(&legacy));
        }
        let legacy = bincode::serialize(&Some(5u64)).unwrap();
        let value: Option<u64> = decode_current("option", 1, &legacy).unwrap();
        assert_eq!(value, Some(5));
    }

    #[test]
    fn a_newer_layout_is_refused_by_name() {
        let bytes = encode(2, &5u64).unwrap();
        let e = decode_current::<u64>("the applied state", 1, &bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the applied state in layout version 2; this build reads versions up to 1"
        );
    }

    #[test]
    fn a_damaged_body_names_its_record_and_version() {
        let mut bytes = encode(1, &"abc".to_string()).unwrap();
        bytes.truncate(bytes.len() - 2);
        let e = decode_current::<String>("a log start", 1, &bytes).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a log start (layout version 1) does not decode"),
            "{e}"
        );
    }
}
