//! The node's running streams by name: how a viewer's request finds its stream's shared
//! state without asking any actor.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::live::{LiveStream, Packaging};

/// Name → live stream. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    streams: Arc<RwLock<BTreeMap<String, Arc<LiveStream>>>>,
}

impl Directory {
    /// The stream called `name`, created with `packaging` if absent. A restarted stream
    /// actor gets its previous state back, so viewers keep their window across restarts.
    pub fn get_or_create(&self, name: &str, packaging: Packaging) -> Arc<LiveStream> {
        if let Some(live) = self.get(name)
            && live.packaging == packaging
        {
            return live;
        }
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        let live = streams
            .entry(name.to_string())
            .or_insert_with(|| LiveStream::new(name, packaging));
        if live.packaging != packaging {
            *live = LiveStream::new(name, packaging);
        }
        live.clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveStream>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn remove(&self, name: &str) {
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Every stream, in name order.
    pub fn all(&self) -> Vec<Arc<LiveStream>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The longest configured name that is a prefix of `path` at a `/` boundary, with
    /// the rest of the path: how `/live/news/index.m3u8` finds stream `live/news`.
    pub fn resolve<'p>(&self, path: &'p str) -> Option<(Arc<LiveStream>, &'p str)> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if let Some(live) = streams.get(candidate) {
                let rest = path[end..].trim_start_matches('/');
                return Some((live.clone(), rest));
            }
            end = candidate.rfind('/')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_with_slashes_to_the_longest_match() {
        let directory = Directory::default();
        directory.get_or_create("live", Packaging::default());
        directory.get_or_create("live/news", Packaging::default());
        let (live, rest) = directory.resolve("live/news/index.m3u8").unwrap();
        assert_eq!((live.name.as_str(), rest), ("live/news", "index.m3u8"));
        let (live, rest) = directory.resolve("live/other/mpegts").unwrap();
        assert_eq!((live.name.as_str(), rest), ("live", "other/mpegts"));
        assert!(directory.resolve("nothing/index.m3u8").is_none());
    }
}
