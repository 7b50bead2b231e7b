//! What the configuration has declared so far, to refuse a second declaration in O(1).
//!
//! Streams, templates, peers, listeners and the other named objects must be unique across
//! the file and its fragments. Each new one used to be compared with every one before it,
//! which made loading quadratic in their number (issue 30.10: 40,000 streams took 3.3 s to
//! check, and the 16 MiB file limit allows ten times more). These sets answer whatever the
//! count; the model's lists stay the order of declaration.

use std::collections::{HashMap, HashSet};

use super::model::{HostPort, ListenAddr};

/// Every name, address and prefix declared at the top level so far.
#[derive(Debug, Default)]
pub struct Declared {
    /// Object names by kind, the kind as messages write it (`"stream"`, `"template"`).
    names: HashMap<&'static str, HashSet<String>>,
    /// `peer` addresses.
    pub peers: HashSet<HostPort>,
    /// `http` and `https` listen addresses (one set: both kinds share the ports).
    pub listeners: HashSet<ListenAddr>,
    /// Every template's prefixes (a published name must match one template only).
    pub prefixes: HashSet<String>,
}

impl Declared {
    /// Whether an object of `kind` named `name` was declared already.
    pub fn has(&self, kind: &'static str, name: &str) -> bool {
        self.names
            .get(kind)
            .is_some_and(|names| names.contains(name))
    }

    /// Records an object of `kind` named `name`; false when it was declared already.
    pub fn add(&mut self, kind: &'static str, name: &str) -> bool {
        let names = self.names.entry(kind).or_default();
        !names.contains(name) && names.insert(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_per_kind() {
        let mut declared = Declared::default();
        assert!(!declared.has("stream", "cam"));
        assert!(declared.add("stream", "cam"));
        assert!(declared.has("stream", "cam"));
        assert!(
            !declared.add("stream", "cam"),
            "a second declaration is refused"
        );
        assert!(!declared.has("template", "cam"), "kinds do not share names");
        assert!(!declared.has("stream", "Cam"), "names are compared exactly");
    }
}
