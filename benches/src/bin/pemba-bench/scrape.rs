//! Reading a Pemba node's Prometheus counters, for the report's notes on group commit.

use std::collections::BTreeMap;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The unlabelled samples of the `/metrics` page at `addr` (`host:port`), by name.
pub async fn scrape(addr: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut page = String::new();
    stream.read_to_string(&mut page).await?;
    Ok(samples(&page))
}

/// `name value` lines of a Prometheus text page (comments and labelled samples skipped).
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.contains('{'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// How the cluster's writes shared log entries and fsyncs, from each node's counters.
pub async fn group_commit_note(label: &str, nodes: &[String]) -> anyhow::Result<String> {
    let mut writes = 0.0;
    let mut groups = 0.0;
    let mut fsyncs = Vec::new();
    for addr in nodes {
        let counters = scrape(addr).await?;
        let counter = |name: &str| counters.get(name).copied().unwrap_or(0.0);
        writes += counter("pemba_raft_grouped_writes_total");
        groups += counter("pemba_raft_write_groups_total");
        fsyncs.push(counter("pemba_log_fsyncs_total"));
    }
    let per_node = fsyncs.iter().sum::<f64>() / fsyncs.len().max(1) as f64;
    Ok(format!(
        "{label}: {writes:.0} writes (warm-up included) went into {groups:.0} log entries \
         ({:.1} per entry); each node's log synced {per_node:.0} times on average \
         ({:.1} writes per fsync; pemba_log_fsyncs_total).",
        writes / groups.max(1.0),
        writes / per_node.max(1.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unlabelled_samples_are_read() {
        let page = "# HELP a_total A.\n# TYPE a_total counter\na_total 12\nb{x=\"1\"} 3\nc 0.5\n";
        let read = samples(page);
        assert_eq!(read.get("a_total"), Some(&12.0));
        assert_eq!(read.get("c"), Some(&0.5));
        assert_eq!(read.len(), 2);
    }
}
