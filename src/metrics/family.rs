//! A scrape as plain data, and its OpenMetrics text.
//!
//! The collectors gather [`Family`]s from the node's shared state; one function turns them
//! into text through prometheus-client's encoder, which owns the format (escaping, types,
//! `# EOF`). Gathering and encoding stay apart so a collector is tested on values, not on
//! text.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

/// The OpenMetrics type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// Only grows; OpenMetrics names its samples `NAME_total`.
    Counter,
    /// Flussonic's totals under their own names (`stream_bytes_in`): typed `unknown`, so
    /// the sample keeps the name dashboards built for Flussonic query.
    Untyped,
}

/// One metric family and its series.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Vec<(Labels, f64)>,
}

impl Family {
    pub fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: Kind::Gauge,
            series: Vec::new(),
        }
    }

    pub fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            kind: Kind::Counter,
            ..Family::gauge(name, help)
        }
    }

    pub fn untyped(name: &'static str, help: &'static str) -> Family {
        Family {
            kind: Kind::Untyped,
            ..Family::gauge(name, help)
        }
    }

    /// Adds a series.
    pub fn with(mut self, labels: Labels, value: f64) -> Family {
        self.series.push((labels, value));
        self
    }

    pub fn push(&mut self, labels: Labels, value: f64) {
        self.series.push((labels, value));
    }
}

/// The families as OpenMetrics text.
pub fn encode(families: &[Family]) -> Result<String, std::fmt::Error> {
    let collector = Scrape(families.to_vec());
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(collector));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's families, handed to the registry for the time of one encoding.
#[derive(Debug)]
struct Scrape(Vec<Family>);

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let kind = match family.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
                Kind::Untyped => MetricType::Unknown,
            };
            let mut metrics = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            for (labels, value) in &family.series {
                let series = metrics.encode_family(labels)?;
                match family.kind {
                    Kind::Gauge | Kind::Untyped => ConstGauge::new(*value).encode(series)?,
                    Kind::Counter => ConstCounter::new(*value).encode(series)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_as_openmetrics_with_escaped_labels() {
        let families = [
            Family::gauge("stream_online_clients", "Viewers now.")
                .with(vec![("name", "a\"b\\c\nd".into())], 3.0),
            Family::counter("stream_bytes_in", "Bytes received.")
                .with(vec![("name", "cam".into())], 1024.0),
        ];
        let text = encode(&families).expect("encodes");
        assert!(
            text.contains("# TYPE stream_online_clients gauge"),
            "{text}"
        );
        assert!(
            text.contains(r#"stream_online_clients{name="a\"b\\c\nd"} 3.0"#),
            "{text}"
        );
        assert!(text.contains("# TYPE stream_bytes_in counter"), "{text}");
        assert!(
            text.contains(r#"stream_bytes_in_total{name="cam"} 1024.0"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
