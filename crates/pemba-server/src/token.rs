//! ZedTokens: opaque consistency tokens naming a revision of one cluster.
//!
//! Encoding (then URL-safe base64 without padding): a format byte (1), the cluster id's length
//! and bytes, and the revision as 8 big-endian bytes. The cluster id makes a token from another
//! cluster detectable instead of silently meaning a different state.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pemba_types::Revision;
use thiserror::Error;

const FORMAT: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("failed to decode ZedToken `{0}`: not a token issued by Pemba")]
    Malformed(String),
    #[error("ZedToken `{token}` was issued by another cluster (`{issuer}`); this is cluster `{ours}`: tokens only mean something in the cluster that issued them")]
    OtherCluster {
        token: String,
        issuer: String,
        ours: String,
    },
}

/// Encodes `revision` of cluster `cluster_id` as a token.
pub fn encode(cluster_id: &str, revision: Revision) -> String {
    let id = cluster_id.as_bytes();
    let mut bytes = Vec::with_capacity(2 + id.len() + 8);
    bytes.push(FORMAT);
    bytes.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    bytes.extend_from_slice(&id[..id.len().min(255)]);
    bytes.extend_from_slice(&revision.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The cluster id and revision a token names.
pub fn parse(token: &str) -> Result<(String, Revision), TokenError> {
    let malformed = || TokenError::Malformed(token.to_string());
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| malformed())?;
    let [FORMAT, id_len, rest @ ..] = bytes.as_slice() else {
        return Err(malformed());
    };
    let id_len = usize::from(*id_len);
    if rest.len() != id_len + 8 {
        return Err(malformed());
    }
    let (id, revision) = rest.split_at(id_len);
    let issuer = std::str::from_utf8(id).map_err(|_| malformed())?;
    let revision: [u8; 8] = revision.try_into().map_err(|_| malformed())?;
    Ok((issuer.to_string(), Revision::from_be_bytes(revision)))
}

/// Decodes a token, which must have been issued by cluster `cluster_id`.
pub fn decode(cluster_id: &str, token: &str) -> Result<Revision, TokenError> {
    let (issuer, revision) = parse(token)?;
    if issuer != cluster_id {
        return Err(TokenError::OtherCluster {
            token: token.to_string(),
            issuer,
            ours: cluster_id.to_string(),
        });
    }
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_or_garbled_tokens() {
        let token = encode("ds-1", 42);
        assert_eq!(decode("ds-1", &token), Ok(42));
        assert!(matches!(
            decode("ds-2", &token),
            Err(TokenError::OtherCluster { .. })
        ));
        for bad in [
            "",
            "!!!",
            "AQ",
            &URL_SAFE_NO_PAD.encode([1, 4, b'd', b's']),
            &token[..token.len() - 2],
        ] {
            assert!(
                matches!(decode("ds-1", bad), Err(TokenError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
