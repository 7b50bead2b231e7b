//! Restreaming other clusters (`source` lines): the [`book`] of what each source offers,
//! and one [`link`] per source that asks it for its catalog every fetch interval.

pub mod book;
mod link;

pub use link::{NoSources, SourceIo, SourceLink, SourceLinkMsg};
