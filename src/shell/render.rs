//! Shell output for a terminal: aligned tables with bounded cell widths, colour only on a
//! TTY, pretty JSON where no table fits. Pure: (command, reply) in, text out.

use serde_json::Value;

use super::commands::Command;
use super::wire::Reply;

/// Widest cell printed; longer text ends with `…`.
pub const MAX_CELL_CHARS: usize = 60;
/// Most lines of a tree printed (the rest is counted, not shown).
pub const MAX_TREE_LINES: usize = 500;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colour (only on a TTY).
    pub colour: bool,
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > MAX_CELL_CHARS {
        let mut cut: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

fn paint(text: &str, code: &str, style: Style) -> String {
    if style.colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A status word in colour: green running/alive/up, red failed/down/stale.
fn status_colour(text: &str) -> Option<&'static str> {
    match text {
        "running" | "alive" | "up" | "capturing" => Some("32"),
        "failed" | "down" | "stale" | "unauthorized" | "error" | "stopped" => Some("31"),
        "restarting" | "starting" | "connecting" | "waiting" => Some("33"),
        _ => None,
    }
}

/// An aligned table of `rows` with `columns` (header, JSON pointer).
pub fn table(rows: &[Value], columns: &[(&str, &str)], style: Style) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, pointer)| cell(row.pointer(pointer).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = columns
        .iter()
        .zip(&widths)
        .map(|((header, _), width)| format!("{header:<width$}"))
        .collect();
    out.push_str(paint(header.join("  ").trim_end(), "1", style).as_str());
    out.push('\n');
    for row in cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(text, width)| {
                let padded = format!("{text:<width$}");
                match status_colour(text) {
                    Some(code) => paint(&padded, code, style),
                    None => padded,
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

const ACTOR_COLUMNS: &[(&str, &str)] = &[
    ("PATH", "/path"),
    ("KIND", "/kind"),
    ("STATUS", "/status"),
    ("RESTARTS", "/restarts"),
    ("MAILBOX", "/mailbox_depth"),
    ("MESSAGES", "/messages_handled"),
    ("MEMORY", "/memory"),
    ("SUMMARY", "/summary"),
];

/// `bytes` for people: `812 B`, `4.0 KiB`, `1.5 MiB`, `2.3 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Actor rows with `memory` as text (`-` for actors that do not report it).
fn with_memory_text(rows: Vec<Value>) -> Vec<Value> {
    rows.into_iter()
        .map(|mut row| {
            let text = row["memory_bytes"].as_u64().map(human_bytes);
            if let Value::Object(fields) = &mut row {
                fields.insert("memory".into(), text.map_or(Value::Null, Value::String));
            }
            row
        })
        .collect()
}

fn tree(node: &Value, depth: usize, lines: &mut Vec<String>, total: &mut usize, style: Style) {
    *total += 1;
    if lines.len() < MAX_TREE_LINES {
        let name = node["path"]
            .as_str()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or("?");
        let status = cell(&node["status"]);
        let status = match status_colour(&status) {
            Some(code) => paint(&status, code, style),
            None => status,
        };
        let mut line = format!(
            "{}{name}  [{}] {status}",
            "  ".repeat(depth),
            cell(&node["kind"])
        );
        let restarts = node["restarts"].as_u64().unwrap_or(0);
        if restarts > 0 {
            line.push_str(&format!("  restarts={restarts}"));
        }
        let mailbox = node["mailbox_depth"].as_u64().unwrap_or(0);
        if mailbox > 0 {
            line.push_str(&format!("  mailbox={mailbox}"));
        }
        let summary = cell(&node["summary"]);
        if !summary.is_empty() && summary != "-" {
            line.push_str(&format!("  {summary}"));
        }
        if let Some(failure) = node["last_failure"].as_str() {
            line.push_str(&format!("  last failure: {}", cell(&Value::from(failure))));
        }
        lines.push(line);
    }
    for child in node["children"].as_array().into_iter().flatten() {
        tree(child, depth + 1, lines, total, style);
    }
}

/// One event of a trace: `at_ms  event  details`.
pub fn trace_line(event: &Value, style: Style) -> String {
    let kind = cell(&event["event"]);
    let detail = match kind.as_str() {
        "failed" => paint(&cell(&event["reason"]), "31", style),
        "status" => cell(&event["status"]),
        "handled" => format!("message #{}", cell(&event["handled"])),
        "summary" => cell(&event["summary"]),
        "dropped" => format!(
            "{} events missed (the actor was faster than this terminal)",
            cell(&event["missed"])
        ),
        "end" => format!("trace ended: {}", cell(&event["reason"])),
        _ => String::new(),
    };
    format!("{:>13}  {kind:<8}  {detail}\n", cell(&event["at_ms"]))
}

fn key_values(value: &Value) -> String {
    let mut out = String::new();
    if let Some(object) = value.as_object() {
        let width = object.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in object {
            if key == "children" {
                continue;
            }
            out.push_str(&format!("{key:<width$}  {}\n", cell(value)));
        }
    }
    out
}

/// The text for `command`'s `reply`.
pub fn render(command: &Command, reply: &Reply, style: Style) -> String {
    if let Some(error) = reply.error_message() {
        return format!("error ({}): {error}\n", reply.status);
    }
    let body = &reply.body;
    let rows = |pointer: &str| -> Vec<Value> {
        body.pointer(pointer)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match command {
        Command::On { command, .. } => render(command, reply, style),
        Command::Help => table(
            &rows("/commands"),
            &[("COMMAND", "/command"), ("DOES", "/does")],
            style,
        ),
        Command::Tree(_) => {
            let mut lines = Vec::new();
            let mut total = 0;
            tree(body, 0, &mut lines, &mut total, style);
            let mut out = lines.join("\n");
            out.push('\n');
            if total > lines.len() {
                out.push_str(&format!(
                    "… {} more actors (narrow with `tree PATH`)\n",
                    total - lines.len()
                ));
            }
            out
        }
        Command::Ps(_) | Command::Top(..) => {
            let mut out = table(&with_memory_text(rows("/actors")), ACTOR_COLUMNS, style);
            out.push_str(&format!(
                "{} of {} actors\n",
                rows("/actors").len(),
                body["total"].as_u64().unwrap_or(0)
            ));
            out
        }
        Command::Info(_) => key_values(body),
        Command::Nodes => {
            let mut out = format!(
                "self: {} ({}), uptime {} s\n",
                cell(&body["self"]["hostname"]),
                cell(&body["self"]["status"]),
                cell(&body["self"]["uptime"])
            );
            out.push_str(&table(
                &rows("/peers"),
                &[
                    ("NODE", "/hostname"),
                    ("ADDRESS", "/address"),
                    ("STATE", "/state"),
                    ("CLIENTS", "/stats/total_clients"),
                    ("STREAMS", "/stats/online_streams"),
                    ("CPU%", "/stats/cpu_usage"),
                ],
                style,
            ));
            out
        }
        Command::Peers => table(
            &rows("/peers"),
            &[
                ("NODE", "/hostname"),
                ("ADDRESS", "/address"),
                ("STATE", "/state"),
                ("LAST_SEEN", "/last_seen"),
                ("CPU%", "/stats/cpu_usage"),
                ("MEM%", "/stats/memory_usage"),
                ("CLIENTS", "/stats/total_clients"),
                ("STREAMS", "/stats/online_streams"),
                ("OUT_KBIT", "/stats/output_kbit"),
                ("ERROR", "/error"),
            ],
            style,
        ),
        Command::Streams => table(
            &rows("/streams"),
            &[
                ("NAME", "/name"),
                ("STATUS", "/stats/status"),
                ("CLIENTS", "/stats/online_clients"),
                ("IN_KBIT", "/stats/input_bitrate"),
                ("RUNNING_ON", "/stats/running_on"),
                ("EPOCH", "/stats/epoch"),
                ("RELAYED_FROM", "/stats/relayed_from"),
                ("RELAYS_OUT", "/stats/relay_subscribers"),
            ],
            style,
        ),
        Command::Sessions => table(
            &rows("/sessions"),
            &[
                ("ID", "/id"),
                ("STREAM", "/stream"),
                ("PROTOCOL", "/protocol"),
                ("IP", "/ip"),
                ("BYTES", "/bytes"),
                ("OPENED", "/opened_at"),
            ],
            style,
        ),
        Command::Ingest => table(
            &rows("/streams"),
            &[
                ("STREAM", "/stream"),
                ("OWNER", "/owner"),
                ("CAPTURE_AT", "/capture_at"),
                ("REASON", "/reason"),
                ("EPOCH", "/epoch"),
                ("RUNNING_ON", "/running_on"),
                ("LOCAL", "/local"),
            ],
            style,
        ),
        Command::Balancer(_) => {
            let mut out = format!("mode {}\n", cell(&body["mode"]));
            out.push_str(&table(
                &rows("/servers"),
                &[
                    ("SERVER", "/server"),
                    ("STATE", "/state"),
                    ("CLIENTS", "/clients"),
                    ("OUT_KBIT", "/output_kbit"),
                    ("STREAMS", "/online_streams"),
                    ("METRIC", "/metric"),
                    ("SENT", "/redirects_since_report"),
                ],
                style,
            ));
            out.push_str("recent decisions:\n");
            out.push_str(&table(
                &rows("/recent_decisions"),
                &[
                    ("AT_MS", "/at_ms"),
                    ("STREAM", "/stream"),
                    ("COUNTRY", "/country"),
                    ("OUTCOME", "/outcome"),
                ],
                style,
            ));
            out
        }
        Command::Trace { .. } => trace_line(body, style),
        Command::Kill { path, .. } => format!(
            "{path}: killed ({}); its supervisor restarts it\n",
            cell(&body["reason"])
        ),
        Command::Config => {
            let mut text = serde_json::to_string_pretty(body).unwrap_or_default();
            text.push('\n');
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAIN: Style = Style { colour: false };

    #[test]
    fn tables_align_and_bound_their_cells() {
        let rows = vec![
            json!({"a": "x", "b": 1}),
            json!({"a": "a much longer value", "b": "y".repeat(200)}),
        ];
        let text = table(&rows, &[("A", "/a"), ("B", "/b"), ("C", "/c")], PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "A                    B".to_string() + &" ".repeat(59) + "  C"
        );
        assert!(lines[1].starts_with("x                    1"));
        assert!(lines[2].contains('…'));
        assert!(lines[2].chars().count() < 100);
        assert!(lines[1].ends_with('-'), "missing values print as -");
        assert!(!text.contains('\x1b'), "no colour off a TTY");
        assert!(table(&rows, &[("A", "/a")], Style { colour: true }).contains('\x1b'));
    }

    #[test]
    fn memory_reads_as_people_write_it() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(1_572_864), "1.5 MiB");
        assert_eq!(human_bytes(u64::MAX), "17179869184.0 GiB");
        let rows = with_memory_text(vec![
            serde_json::json!({"path": "node/streams/a", "memory_bytes": 2048}),
            serde_json::json!({"path": "node", "memory_bytes": null}),
        ]);
        let out = table(&rows, ACTOR_COLUMNS, Style { colour: false });
        assert!(out.contains("2.0 KiB"), "{out}");
        assert!(out.lines().nth(2).unwrap().contains(" - "), "{out}");
    }

    #[test]
    fn a_tree_shows_restarts_and_failures_and_errors_say_so() {
        let body = json!({
            "path": "node", "kind": "supervisor", "status": "running", "restarts": 0,
            "children": [{"path": "node/streams/cam01", "kind": "stream", "status": "running",
                          "restarts": 2, "last_failure": "killed by operator", "summary": "alive"}]
        });
        let reply = Reply { status: 200, body };
        let text = render(&Command::Tree(None), &reply, PLAIN);
        assert!(
            text.contains(
                "  cam01  [stream] running  restarts=2  alive  last failure: killed by operator"
            ),
            "{text}"
        );
        let error = Reply::error(404, "no actor at node/x");
        assert_eq!(
            render(&Command::Info("node/x".into()), &error, PLAIN),
            "error (404): no actor at node/x\n"
        );
    }
}
