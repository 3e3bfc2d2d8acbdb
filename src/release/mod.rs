//! What a release is, and what makes it trusted: the manifest that lists
//! releases ([`manifest`]), the file list every release carries
//! ([`file_list`]), its archive ([`archive`], unpacked by [`unpack`]), the manifest's signature
//! ([`signature`]), sha256 ([`hash`]), the rules beyond the signature
//! ([`trust`]: freshness, locations, what an install remembers), and the
//! release policy each install decides ([`policy`]: channels, rollouts,
//! floors, targets); and file deltas ([`delta`]).

pub(crate) mod archive;
#[cfg(feature = "delta")]
pub mod delta;
pub(crate) mod file_list;
pub(crate) mod freshness;
pub(crate) mod hash;
pub(crate) mod manifest;
pub(crate) mod policy;
pub(crate) mod signature;
pub(crate) mod trust;
pub(crate) mod unpack;
