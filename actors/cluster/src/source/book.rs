//! What this node knows of the clusters it restreams (`source` lines): each source's last
//! catalog, whether it still answers, and so where a stream comes from now.
//!
//! A source is one node of another cluster, named in the config; its catalog lists the
//! streams of that whole cluster and the nodes that have each. The book keeps the nodes a
//! catalog named, so a source whose configured node is down is asked through another of
//! its nodes: a cluster is reached through any of its nodes.
//!
//! Several sources give origin HA. A stream comes from the first source, in config order,
//! whose last ask was answered and that lists it; a source that stopped answering still
//! serves its streams, after the answering ones, until its last catalog is older than
//! the stale timeout. So a relay following a node of a source that stopped answering
//! moves as soon as an answering source has the stream, and only then.

use std::collections::BTreeMap;

/// Most nodes of one source asked in one round: a source whose nodes all fail costs a
/// round at most this many asks (each bounded by the node's ask timeout), and the node
/// that answered last is always among them.
pub const MAX_NODES_ASKED: usize = 4;

/// Which of a source's streams this node restreams: `prefix`, `only`, `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRule {
    /// Only names under `PREFIX/`.
    pub prefix: Option<String>,
    /// Only these names, or names under `P/` for an entry `P/*`; empty: every name.
    pub only: Vec<String>,
    /// Never these (same patterns); wins over `only`.
    pub except: Vec<String>,
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(prefix) => name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
        None if pattern == "*" => true,
        None => pattern == name,
    }
}

impl SourceRule {
    /// Whether `name` is restreamed by this rule.
    pub fn admits(&self, name: &str) -> bool {
        let in_prefix = self.prefix.as_deref().is_none_or(|prefix| {
            let prefix = prefix.trim_matches('/');
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
        });
        let listed = self.only.is_empty() || self.only.iter().any(|p| matches(p, name));
        in_prefix && listed && !self.except.iter().any(|p| matches(p, name))
    }
}

/// A node of a source cluster, as a catalog names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNode {
    /// Its identity in its cluster (`host:port`).
    pub id: String,
    /// Where to dial its mesh.
    pub dial: String,
}

/// A catalog as a source answered it (already checked by the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The source cluster's nodes.
    pub nodes: Vec<SourceNode>,
    /// Each stream and the indices of the nodes that have it, best first.
    pub streams: Vec<(String, Vec<u16>)>,
}

/// One configured source and what it last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// Its name: the `source` line's address as written (`HOST:PORT[/PREFIX]`).
    pub name: String,
    /// The node the config names (`host:port`), asked first.
    pub seed: String,
    /// Which streams are taken.
    pub rule: SourceRule,
    /// The nodes its last catalog named.
    pub nodes: Vec<SourceNode>,
    /// Its streams this node restreams, with their nodes (indices into `nodes`).
    pub streams: BTreeMap<String, Vec<u16>>,
    /// Unix ms of its last catalog (`None`: never answered).
    pub fetched_ms: Option<u64>,
    /// The node that gave it.
    pub answered_by: Option<String>,
    /// Why the last ask failed, when it did (cleared by an answer).
    pub last_error: Option<String>,
}

/// How a source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceHealth {
    /// Its last ask was answered.
    Answering,
    /// Its last ask failed, but its catalog is younger than the stale timeout.
    Failing,
    /// Never answered, or silent for longer than the stale timeout: offers nothing.
    Stale,
}

/// A node that has a stream, in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOwner {
    /// The source's index in config order.
    pub source: usize,
    /// How the source is doing.
    pub health: SourceHealth,
    /// The node's identity in its cluster.
    pub node: String,
    /// Where to dial it.
    pub dial: String,
}

/// Every source of this node.
#[derive(Debug, Clone, Default)]
pub struct SourceBook {
    sources: Vec<SourceState>,
    /// A source silent for this long offers nothing.
    stale_timeout_ms: u64,
}

impl SourceBook {
    /// The book of `sources` (name, seed, rule), in config order.
    pub fn new(sources: Vec<(String, String, SourceRule)>, stale_timeout_ms: u64) -> SourceBook {
        SourceBook {
            sources: sources
                .into_iter()
                .map(|(name, seed, rule)| SourceState {
                    name,
                    seed,
                    rule,
                    nodes: Vec::new(),
                    streams: BTreeMap::new(),
                    fetched_ms: None,
                    answered_by: None,
                    last_error: None,
                })
                .collect(),
            stale_timeout_ms,
        }
    }

    /// Every source, in config order.
    pub fn sources(&self) -> &[SourceState] {
        &self.sources
    }

    fn find(&self, name: &str) -> Option<&SourceState> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Where to ask source `name` for its catalog, in order, at most
    /// [`MAX_NODES_ASKED`]: the node the config names, the node that answered last,
    /// then the others the last catalog named.
    pub fn ask_order(&self, name: &str) -> Vec<String> {
        let Some(source) = self.find(name) else {
            return Vec::new();
        };
        let mut order: Vec<String> = Vec::new();
        let candidates = std::iter::once(&source.seed)
            .chain(&source.answered_by)
            .chain(source.nodes.iter().map(|node| &node.dial));
        for dial in candidates {
            if order.len() == MAX_NODES_ASKED {
                break;
            }
            if !order.contains(dial) {
                order.push(dial.clone());
            }
        }
        order
    }

    /// Source `name` answered `catalog` through the node at `answered_by` at `now_ms`.
    /// Returns how many of its streams this node restreams.
    pub fn answered(
        &mut self,
        name: &str,
        answered_by: &str,
        catalog: Catalog,
        now_ms: u64,
    ) -> usize {
        let Some(source) = self.sources.iter_mut().find(|s| s.name == name) else {
            return 0;
        };
        source.streams = catalog
            .streams
            .into_iter()
            .filter(|(stream, owners)| !owners.is_empty() && source.rule.admits(stream))
            .collect();
        source.nodes = catalog.nodes;
        source.fetched_ms = Some(now_ms);
        source.answered_by = Some(answered_by.to_string());
        source.last_error = None;
        source.streams.len()
    }

    /// Asking source `name` failed (every node tried) because of `error`.
    pub fn failed(&mut self, name: &str, error: String) {
        if let Some(source) = self.sources.iter_mut().find(|s| s.name == name) {
            source.last_error = Some(error);
        }
    }

    /// How source `source` is doing at `now_ms`.
    pub fn health(&self, source: &SourceState, now_ms: u64) -> SourceHealth {
        match source.fetched_ms {
            Some(at) if now_ms.saturating_sub(at) < self.stale_timeout_ms => {
                if source.last_error.is_none() {
                    SourceHealth::Answering
                } else {
                    SourceHealth::Failing
                }
            }
            _ => SourceHealth::Stale,
        }
    }

    /// The nodes `stream` can be taken from now, best first: answering sources before
    /// failing ones, config order within each, each source's owners in its order.
    pub fn locate(&self, stream: &str, now_ms: u64) -> Vec<SourceOwner> {
        let mut found: Vec<SourceOwner> = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            let health = self.health(source, now_ms);
            if health == SourceHealth::Stale {
                continue;
            }
            let Some(owners) = source.streams.get(stream) else {
                continue;
            };
            for &owner in owners {
                if let Some(node) = source.nodes.get(usize::from(owner)) {
                    found.push(SourceOwner {
                        source: index,
                        health,
                        node: node.id.clone(),
                        dial: node.dial.clone(),
                    });
                }
            }
        }
        // Stable: config order and each source's own order stay within a health.
        found.sort_by_key(|owner| owner.health);
        found
    }

    /// Whether a relay following `node` for `stream` should stay: the node is still
    /// offered, by a source as healthy as the best one offering the stream.
    pub fn still_has(&self, stream: &str, node: &str, now_ms: u64) -> bool {
        let found = self.locate(stream, now_ms);
        let Some(best) = found.first().map(|owner| owner.health) else {
            return false;
        };
        found
            .iter()
            .any(|owner| owner.node == node && owner.health == best)
    }

    /// The longest stream name some source offers that prefixes `path` (a stream name,
    /// possibly followed by `/file`).
    pub fn located_stream<'p>(&self, path: &'p str, now_ms: u64) -> Option<&'p str> {
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if !self.locate(candidate, now_ms).is_empty() {
                return Some(candidate);
            }
            end = candidate.rfind('/')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: Option<&str>, only: &[&str], except: &[&str]) -> SourceRule {
        SourceRule {
            prefix: prefix.map(str::to_string),
            only: only.iter().map(|s| s.to_string()).collect(),
            except: except.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_except_and_prefix_filter_names_and_except_wins() {
        let everything = SourceRule::default();
        assert!(everything.admits("cam") && everything.admits("live/a/b"));
        let live = rule(None, &["live/*", "news"], &["live/test"]);
        assert!(live.admits("live/a"));
        assert!(live.admits("live/a/b"));
        assert!(live.admits("news"));
        assert!(!live.admits("live/test"), "except wins");
        assert!(!live.admits("live"), "`live/*` is what is under live/");
        assert!(!live.admits("livestock/a"));
        assert!(!live.admits("sports"));
        let prefixed = rule(Some("live"), &[], &["live/secret"]);
        assert!(prefixed.admits("live/a"));
        assert!(!prefixed.admits("vod/a"));
        assert!(!prefixed.admits("live/secret"));
    }

    fn catalog(nodes: &[&str], streams: &[(&str, &[u16])]) -> Catalog {
        Catalog {
            nodes: nodes
                .iter()
                .map(|id| SourceNode {
                    id: id.to_string(),
                    dial: format!("dial-{id}"),
                })
                .collect(),
            streams: streams
                .iter()
                .map(|(name, owners)| (name.to_string(), owners.to_vec()))
                .collect(),
        }
    }

    fn book() -> SourceBook {
        SourceBook::new(
            vec![
                ("o1:80".into(), "o1:80".into(), rule(None, &["live/*"], &[])),
                (
                    "o2:80".into(),
                    "o2:80".into(),
                    rule(None, &[], &["live/test"]),
                ),
            ],
            10_000,
        )
    }

    #[test]
    fn a_stream_comes_from_the_first_answering_source_and_moves_when_it_stops_answering() {
        let mut book = book();
        assert!(
            book.locate("live/a", 0).is_empty(),
            "nothing before a catalog"
        );
        book.answered(
            "o1:80",
            "o1:80",
            catalog(
                &["o1:80", "o1b:80"],
                &[("live/a", &[1, 0]), ("other", &[0])],
            ),
            1_000,
        );
        book.answered(
            "o2:80",
            "o2:80",
            catalog(&["o2:80"], &[("live/a", &[0]), ("live/test", &[0])]),
            1_000,
        );
        let nodes: Vec<String> = book
            .locate("live/a", 2_000)
            .into_iter()
            .map(|o| o.node)
            .collect();
        assert_eq!(nodes, ["o1b:80", "o1:80", "o2:80"]);
        assert!(
            book.locate("other", 2_000).is_empty(),
            "o1's rule refuses it"
        );
        assert!(book.locate("live/test", 2_000).is_empty(), "o2's except");
        assert!(book.still_has("live/a", "o1b:80", 2_000));
        assert!(
            book.still_has("live/a", "o2:80", 2_000),
            "a relay on a source that answers stays there: moving back costs its viewers a new timeline"
        );

        // o1 stops answering: o2 now comes first, and a relay following o1b moves.
        book.failed("o1:80", "timed out".into());
        assert_eq!(book.locate("live/a", 3_000)[0].node, "o2:80");
        assert!(!book.still_has("live/a", "o1b:80", 3_000));
        assert!(book.still_has("live/a", "o2:80", 3_000));
        // Both fail: o1 keeps its place until its catalog is stale.
        book.failed("o2:80", "timed out".into());
        assert!(book.still_has("live/a", "o1b:80", 3_000));
        assert!(
            book.locate("live/a", 11_000).is_empty(),
            "stale: offers nothing"
        );
        // An answer restores o1.
        book.answered(
            "o1:80",
            "o1b:80",
            catalog(&["o1b:80"], &[("live/a", &[0])]),
            12_000,
        );
        assert_eq!(book.locate("live/a", 12_000)[0].node, "o1b:80");
    }

    #[test]
    fn a_source_is_asked_through_its_configured_node_then_the_others_it_named() {
        let mut book = book();
        assert_eq!(book.ask_order("o1:80"), ["o1:80"]);
        book.answered("o1:80", "o1:80", catalog(&["o1:80", "o1b:80"], &[]), 1);
        assert_eq!(
            book.ask_order("o1:80"),
            ["o1:80", "dial-o1:80", "dial-o1b:80"]
        );
        assert!(book.ask_order("nobody").is_empty());
        // A big cluster: the last to answer is asked second, and a round is bounded.
        let many: Vec<String> = (0..10).map(|i| format!("n{i}:80")).collect();
        let ids: Vec<&str> = many.iter().map(String::as_str).collect();
        book.answered("o1:80", "dial-n9:80", catalog(&ids, &[]), 2);
        assert_eq!(
            book.ask_order("o1:80"),
            ["o1:80", "dial-n9:80", "dial-n0:80", "dial-n1:80"]
        );
    }

    #[test]
    fn the_longest_offered_name_prefixing_a_path_is_the_stream() {
        let mut book = book();
        book.answered(
            "o2:80",
            "o2:80",
            catalog(&["o2:80"], &[("cam", &[0]), ("cam/hd", &[0])]),
            1,
        );
        assert_eq!(book.located_stream("cam/hd/index.m3u8", 2), Some("cam/hd"));
        assert_eq!(book.located_stream("cam/index.m3u8", 2), Some("cam"));
        assert_eq!(book.located_stream("nothing/index.m3u8", 2), None);
    }
}
