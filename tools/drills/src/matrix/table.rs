//! One row of the matrix per drill and configuration, printed as a table and saved as
//! Markdown for the docs.

use reconcile::Report;

#[derive(Debug, Clone)]
pub struct Row {
    pub drill: &'static str,
    /// `safe`, or the unsafe teaching toggle that was on.
    pub configuration: &'static str,
    pub report: Report,
    /// Orders a client asked for once and got twice (a retry without its key).
    pub orders_doubled_by_retries: u64,
    /// Messages the consumer dead-lettered (poison drill).
    pub dead_lettered: u64,
    /// Duplicates the Redis fast path and the business key `UNIQUE(order_id)` caught,
    /// and the consumer's retries of transient failures.
    pub payment_stats: crate::settle::PaymentStats,
    /// What happened, in a few words.
    pub note: String,
}

impl Row {
    pub fn new(drill: &'static str, configuration: &'static str, report: Report) -> Self {
        Self {
            drill,
            configuration,
            report,
            orders_doubled_by_retries: 0,
            dead_lettered: 0,
            payment_stats: crate::settle::PaymentStats::default(),
            note: String::new(),
        }
    }

    /// Lost: accepted and never applied.
    pub fn lost(&self) -> u64 {
        self.report.lost
    }

    /// Applied twice: one order paid twice, or one client order turned into two.
    pub fn double_applied(&self) -> u64 {
        self.report.double_applied + self.orders_doubled_by_retries
    }

    /// Orders charged more than once at the provider (its records, not our rows).
    pub fn double_charged(&self) -> u64 {
        self.report.double_charged
    }

    /// Safe configurations start with "safe"; unsafe teaching toggles with "unsafe".
    pub fn is_safe_configuration(&self) -> bool {
        self.configuration.starts_with("safe")
    }
}

const HEADER: [&str; 12] = [
    "drill",
    "configuration",
    "accepted",
    "applied",
    "dup. copies published",
    "suppressed: Redis",
    "suppressed: inbox",
    "suppressed: business key",
    "lost",
    "double-applied",
    "double-charged (provider)",
    "note",
];

fn cells(row: &Row) -> [String; 12] {
    [
        row.drill.to_owned(),
        row.configuration.to_owned(),
        row.report.accepted.to_string(),
        row.report.applied.to_string(),
        row.report.published_duplicate_copies.to_string(),
        row.payment_stats.suppressed_redis.to_string(),
        row.report.duplicates_suppressed_by_inbox.to_string(),
        row.payment_stats.suppressed_business_key.to_string(),
        row.lost().to_string(),
        row.double_applied().to_string(),
        row.double_charged().to_string(),
        row.note.clone(),
    ]
}

/// The same columns, for the Chinese page.
const HEADER_ZH: [&str; 12] = [
    "演练",
    "配置",
    "接受",
    "应用",
    "重复发布的副本",
    "拦下：Redis",
    "拦下：inbox",
    "拦下：业务键",
    "丢失",
    "重复应用",
    "重复扣款（支付渠道）",
    "说明",
];

/// The matrix as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    table(&HEADER, rows)
}

/// The matrix as a Markdown table with Chinese column names.
pub fn markdown_zh(rows: &[Row]) -> String {
    table(&HEADER_ZH, rows)
}

fn table(header: &[&str; 12], rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", cells(row).join(" | ")));
    }
    out
}

/// The matrix as an aligned plain-text table for the terminal.
pub fn plain(rows: &[Row]) -> String {
    let all: Vec<[String; 12]> = std::iter::once(HEADER.map(str::to_owned))
        .chain(rows.iter().map(cells))
        .collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &all {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The checker's figures that are not columns, in a few words.
pub fn summary(report: &Report) -> String {
    format!(
        "{} settled, {} not yet published",
        report.settled, report.not_yet_published
    )
}

/// Replaces the generated block of a docs page (between `<!-- matrix:begin -->` and
/// `<!-- matrix:end -->`) with `table`, so the page shows the figures of a real run.
pub fn replace_generated_block(page: &str, table: &str) -> Option<String> {
    const BEGIN: &str = "<!-- matrix:begin -->";
    const END: &str = "<!-- matrix:end -->";
    let start = page.find(BEGIN)? + BEGIN.len();
    let end = page.find(END)?;
    (start <= end).then(|| format!("{}\n{}{}", &page[..start], table, &page[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_block_is_replaced_and_the_rest_kept() {
        let page = "intro\n<!-- matrix:begin -->\nold\n<!-- matrix:end -->\noutro\n";
        let updated = replace_generated_block(page, "| new |\n").expect("markers");
        assert_eq!(
            updated,
            "intro\n<!-- matrix:begin -->\n| new |\n<!-- matrix:end -->\noutro\n"
        );
        assert_eq!(replace_generated_block("no markers", "x"), None);
    }

    #[test]
    fn a_client_order_placed_twice_counts_as_double_applied() {
        let mut row = Row::new("d", "unsafe", Report::default());
        row.report.double_applied = 1;
        row.orders_doubled_by_retries = 2;
        assert_eq!(row.double_applied(), 3);
        assert!(!row.is_safe_configuration());
        assert!(
            markdown(&[row])
                .lines()
                .nth(2)
                .is_some_and(|l| l.contains("| 3 |"))
        );
    }
}
