//! The Markdown report as HTML, for the "Figures" part of the HTML page: its tables as
//! `<table>`s a browser lays out, not Markdown source in a `<pre>`.
//!
//! Only the Markdown `markdown.rs` writes is understood — headings (`#`, `##`), pipe
//! tables (header, `|---|` rule, rows), paragraphs, `**bold**` and `` `code` `` — so a
//! few lines do it without a Markdown crate. Anything else comes out as an escaped
//! paragraph, never as raw HTML.

/// Text made safe inside HTML (and SVG): the three characters that start markup.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline markup of one cell or paragraph: `**bold**` and `` `code` ``, text escaped.
pub fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let bold = rest.find("**");
        let code = rest.find('`');
        let (at, marker, tag) = match (bold, code) {
            (Some(b), Some(c)) if c < b => (c, "`", "code"),
            (Some(b), _) => (b, "**", "strong"),
            (None, Some(c)) => (c, "`", "code"),
            (None, None) => break,
        };
        let after = &rest[at + marker.len()..];
        let Some(end) = after.find(marker) else {
            break;
        };
        out.push_str(&escape(&rest[..at]));
        out.push_str(&format!("<{tag}>{}</{tag}>", escape(&after[..end])));
        rest = &after[end + marker.len()..];
    }
    out.push_str(&escape(rest));
    out
}

/// The cells of a pipe-table row: `| a | b |` → `["a", "b"]`.
fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(str::trim).collect()
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// Converts the report's Markdown into HTML.
pub fn render(markdown: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    let mut paragraph: Vec<&str> = Vec::new();
    let flush = |paragraph: &mut Vec<&str>, out: &mut String| {
        if !paragraph.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", inline(&paragraph.join(" "))));
            paragraph.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.starts_with('|') && lines.get(i + 1).is_some_and(|next| is_rule(next)) {
            flush(&mut paragraph, &mut out);
            out.push_str("<table>\n<thead><tr>");
            for cell in cells(t) {
                out.push_str(&format!("<th>{}</th>", inline(cell)));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            i += 2;
            while i < lines.len() && lines[i].trim().starts_with('|') {
                out.push_str("<tr>");
                for cell in cells(lines[i]) {
                    out.push_str(&format!("<td>{}</td>", inline(cell)));
                }
                out.push_str("</tr>\n");
                i += 1;
            }
            out.push_str("</tbody>\n</table>\n");
            continue;
        }
        if let Some(h) = t.strip_prefix("## ") {
            flush(&mut paragraph, &mut out);
            out.push_str(&format!("<h3>{}</h3>\n", inline(h)));
        } else if let Some(h) = t.strip_prefix("# ") {
            flush(&mut paragraph, &mut out);
            out.push_str(&format!("<h2>{}</h2>\n", inline(h)));
        } else if let Some(item) = t.strip_prefix("- ") {
            flush(&mut paragraph, &mut out);
            out.push_str(&format!("<ul><li>{}</li></ul>\n", inline(item)));
        } else if t.is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push(t);
        }
        i += 1;
    }
    flush(&mut paragraph, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_table_becomes_a_table_with_a_header_row() {
        let md = "## Targets\n\n| measurement | target |\n|---|---|\n| relay | ≥ 40 % |\n| **x** | `a<b` |\n\nafter\n";
        let html = render(md);
        assert!(html.contains("<h3>Targets</h3>"));
        assert!(html.contains("<thead><tr><th>measurement</th><th>target</th></tr></thead>"));
        assert_eq!(html.matches("<tr>").count(), 3);
        assert!(html.contains("<td><strong>x</strong></td><td><code>a&lt;b</code></td>"));
        assert!(html.contains("<p>after</p>"));
        assert!(!html.contains("|---|"));
    }

    #[test]
    fn text_is_escaped_and_an_unclosed_marker_stays_text() {
        assert_eq!(inline("a <b> & `c"), "a &lt;b&gt; &amp; `c");
        assert_eq!(inline("x **y** z"), "x <strong>y</strong> z");
        assert_eq!(render("- <script>\n"), "<ul><li>&lt;script&gt;</li></ul>\n");
    }

    #[test]
    fn the_whole_report_has_no_markdown_table_left() {
        let results = crate::Results::start(&crate::Settings::from_env().expect("defaults"));
        let html = render(&super::super::render_markdown(&results));
        assert!(html.contains("<table>"), "the memory table at least");
        assert!(!html.contains("|---"));
    }
}
