//! Who may play and publish: per-stream rules (`on_play`, `on_publish`, `auth`,
//! `auth_backend` blocks, `password`, `protocols`, `max_sessions`), HTTP authorization
//! backends with Flussonic's request/response contract, and the gate that applies them on
//! the request path.
//!
//! - `rules`: the static allow/deny rules of an `auth_backend` block (pure).
//! - `backend`: one HTTP backend question, bounded in time and in calls in flight.
//! - `authorizer`: a policy (rules, backends in parallel, default) and its verdict.
//! - `access`: each stream's rules, resolved from the config once.
//! - `gate`: sessions' cached verdicts, refused sessions, publisher passwords.

pub mod access;
pub mod authorizer;
pub mod backend;
pub mod gate;
pub mod rules;

pub use access::{AccessRules, StreamAccess};
pub use authorizer::{Authorizer, PolicyError, Verdict};
pub use backend::BackendClient;
pub use gate::{Authorization, DENIED, Gate, PlayDenied, PlayRequest, PublishDenied};
