//! The console's HTML building blocks: tables whose text cells are escaped (every text
//! that reaches a page goes through [`escape`], the node's one markup escaper).

use std::fmt::Write;

pub use crate::format::escape_markup as escape;

/// A cell: text to escape, or markup built here (already escaped).
pub enum Cell {
    Text(String),
    Html(String),
}

impl Cell {
    pub fn text(text: impl ToString) -> Cell {
        Cell::Text(text.to_string())
    }
}

/// A table with `id`, its header and rows.
pub fn table(id: &str, header: &[&str], rows: Vec<Vec<Cell>>) -> String {
    let mut html = format!("<table id=\"{}\"><thead><tr>", escape(id));
    for name in header {
        let _ = write!(html, "<th>{}</th>", escape(name));
    }
    html.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            html,
            "<tr><td colspan=\"{}\" class=\"none\">none</td></tr>",
            header.len()
        );
    }
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            match cell {
                Cell::Text(text) => {
                    let _ = write!(html, "<td>{}</td>", escape(&text));
                }
                Cell::Html(markup) => {
                    let _ = write!(html, "<td>{markup}</td>");
                }
            }
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// `1 d 02:03:04` for `seconds`.
pub fn duration(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let clock = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    match days {
        0 => clock,
        days => format!("{days} d {clock}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_escapes_its_text_cells() {
        let html = table(
            "t",
            &["name"],
            vec![
                vec![Cell::text("<b>x</b>")],
                vec![Cell::Html("<b>y</b>".into())],
            ],
        );
        assert!(html.contains("<td>&lt;b&gt;x&lt;/b&gt;</td>"));
        assert!(html.contains("<td><b>y</b></td>"));
    }
}
