//! Build script: the player script the node serves with its embed page.
//!
//! `/NAME/embed.html` plays HLS in browsers without native HLS through hls.js. A page on a
//! private network cannot load it from a public CDN, so the node serves it itself
//! (`/flotilla/player/hls.js`). It is not copied into this repository: the build takes the
//! pinned release from the npm registry (`npm pack`, which checks the tarball against
//! the registry's integrity; the integrity is pinned here too) and embeds its
//! `dist/hls.min.js`. An offline build can point `FLOTILLA_HLSJS` at that file.
//!
//! Without npm (and without `FLOTILLA_HLSJS`) the build goes on with a warning: the node
//! then serves an empty script and the page plays through the browser's native HLS only.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hls.js release embedded (Apache-2.0, by Dailymotion and contributors).
const HLSJS_VERSION: &str = "1.7.4";
/// Its tarball's integrity as the npm registry publishes it.
const HLSJS_INTEGRITY: &str = "sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==";
/// The build inside the package: the full one (not `hls.light`), since LL-HLS in CMAF
/// serves audio as an alternate rendition, which the light build leaves out.
const HLSJS_FILE: &str = "package/dist/hls.min.js";

fn main() {
    build_info();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FLOTILLA_HLSJS");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = out.join("hls.min.js");
    let found = match std::env::var_os("FLOTILLA_HLSJS") {
        Some(path) => std::fs::copy(&path, &target)
            .map(|_| ())
            .map_err(|e| format!("FLOTILLA_HLSJS={}: {e}", Path::new(&path).display())),
        None => fetch_from_npm(&out, &target),
    };
    if let Err(why) = found {
        println!(
            "cargo:warning=hls.js {HLSJS_VERSION} not embedded ({why}): the embed page will play through native HLS only"
        );
        std::fs::write(&target, b"").expect("OUT_DIR is writable");
    }
}

/// What `flotilla --version` tells of the build: the commit and its date (from git, when
/// the source is a git checkout), the cargo profile and the target. The commit's date,
/// not the build's, so that two builds of one commit say the same.
fn build_info() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .filter(|text| !text.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FLOTILLA_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=FLOTILLA_BUILD_DATE={date}");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=FLOTILLA_BUILD_PROFILE={profile}");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=FLOTILLA_BUILD_TARGET={target}");
    // A new commit or checkout moves HEAD (or the branch it names). Only files that
    // exist are watched: cargo reruns a build script whose watched file is missing at
    // every build.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        let mut watched = vec![git_dir.join("HEAD"), git_dir.join("packed-refs")];
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(git_dir.join(reference));
        }
        for path in watched.into_iter().filter(|path| path.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// `npm pack hls.js@VERSION` into `out`, checked, and its player file extracted.
fn fetch_from_npm(out: &Path, target: &Path) -> Result<(), String> {
    let tarball = out.join(format!("hls.js-{HLSJS_VERSION}.tgz"));
    if !tarball.exists() {
        let packed = Command::new("npm")
            .args([
                "pack",
                &format!("hls.js@{HLSJS_VERSION}"),
                "--json",
                "--silent",
            ])
            .arg("--pack-destination")
            .arg(out)
            .output()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if !packed.status.success() {
            return Err(format!(
                "npm pack failed: {}",
                String::from_utf8_lossy(&packed.stderr).trim()
            ));
        }
        let report = String::from_utf8_lossy(&packed.stdout);
        if !report.contains(HLSJS_INTEGRITY) {
            let _ = std::fs::remove_file(&tarball);
            return Err("the tarball's integrity is not the pinned one".into());
        }
    }
    let extracted = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(out)
        .arg(HLSJS_FILE)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !extracted.success() {
        return Err(format!("{HLSJS_FILE} is not in the package"));
    }
    std::fs::rename(out.join(HLSJS_FILE), target).map_err(|e| e.to_string())
}
