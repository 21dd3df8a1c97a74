//! fidomesh: FIDO2 hardware-key identity for Linkerd authorization.
//!
//! The pipeline, shared by every caller (admission, dry-run, `test`, `render`):
//!
//! 1. **Load** the fidomesh resources ([`model`]: `Authenticator`, `MeshRole`,
//!    `MeshRoleBinding`) from YAML ([`load`]), with [`settings`] and FIDO metadata ([`mds`], read
//!    from a BLOB verified against pinned roots by [`mds_blob`]).
//! 2. **Translate** them, at an instant, into Linkerd `MeshTLSAuthentication` and
//!    `AuthorizationPolicy` objects ([`translate`]; the Linkerd types are in [`linkerd`]). The
//!    translation is pure; it also says which keys are active and when that changes.
//! 3. **Facts**: the translation becomes the keyed `data.fidomesh` the policies read ([`data`]),
//!    one generation at a time.
//! 4. **Who is asking**: the [`requester`], from an AdmissionReview's `userInfo` ([`review`]) or
//!    a verified bearer token ([`token`]), joined with the registered keys. An AdmissionReview's
//!    request stays the text that was sent, its members located ([`rawjson`]): a cache hit reads
//!    only the head, and the cache key hashes the bytes.
//! 5. **Decide**: the Rego bundle ([`policy`]) evaluates `{request, requester}` behind a keyed
//!    decision cache ([`decide`]); [`review`] turns the verdict (and the mutation) into the
//!    AdmissionReview answer, [`dryrun`] into a dry-run answer, [`policytest`] into case results.
//!
//! Everything in this crate outside the `server` feature is pure: sync functions over owned data
//! returning typed `Result`s (reading a named file is the only I/O, for loaders the edge calls).
//! The edge (HTTPS, watching files, the decision log, the command line) lives behind the
//! `server` feature ([`server`], [`cli`]).

pub mod crd;
pub mod data;
pub mod decide;
pub mod dryrun;
pub mod linkerd;
pub mod load;
pub mod mds;
pub mod mds_blob;
pub mod model;
pub mod policy;
pub mod policytest;
pub mod rawjson;
pub mod requester;
pub mod review;
pub mod settings;
pub mod token;
pub mod translate;

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod server;
