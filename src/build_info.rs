//! What this binary is: its version and the build it came from (set by build.rs), as
//! `flotilla --version` prints it and the node logs it at start.

/// `0.1.0 (commit 0123456789ab 2026-12-07, release, x86_64-unknown-linux-gnu)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FLOTILLA_BUILD_COMMIT"),
    " ",
    env!("FLOTILLA_BUILD_DATE"),
    ", ",
    env!("FLOTILLA_BUILD_PROFILE"),
    ", ",
    env!("FLOTILLA_BUILD_TARGET"),
    ")"
);

/// The commit the binary was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("FLOTILLA_BUILD_COMMIT");
