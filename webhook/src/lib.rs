//! fidomesh: FIDO2 hardware-key identity for Linkerd authorization.
//!
//! The pipeline, shared by every caller (admission, dry-run, audit, `render`):
//!
//! 1. **Load** the fidomesh resources ([`model`]: `Authenticator`, `MeshRole`,
//!    `MeshRoleBinding`) from YAML ([`load`]) or the cluster, with [`settings`] and FIDO
//!    metadata ([`mds`]).
//! 2. **Translate** them, at an instant, into Linkerd `MeshTLSAuthentication` and
//!    `AuthorizationPolicy` objects ([`translate`]; the Linkerd types are in [`linkerd`]). The
//!    translation is a pure function and also says which keys are active and when that changes.
//!
//! Everything in this crate outside the `server` feature is pure: sync functions over owned data
//! returning typed `Result`s. The I/O edge (HTTPS, files, the cluster, the command line) lives
//! behind the `server` feature.

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
pub mod requester;
pub mod review;
pub mod settings;
pub mod token;
pub mod translate;

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod server;
